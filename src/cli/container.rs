//! `unionctl create|ps|inspect|rm|mount|unmount|commit|unshare` (also under
//! `unionctl container ...`; diff, export and cp are in `container_files.rs`):
//! argument handling and output; the work happens in [`crate::store`].

use crate::cli::container_files as files;
use crate::cli::format::{self, Format};
use crate::runtime::{self, state};
use crate::store::containers::{self, Container, CreateOpts, Kind};
use crate::store::error::{err, Error, Result};
use crate::store::mounts::{self, Unmounted};
use crate::store::util::{ago, human_size, parse_rfc3339};
use crate::store::{commit, images, volumes, Store};
use crate::sys::at;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Name of the container (default: a generated one)
    #[arg(long)]
    pub name: Option<String>,
    /// Volume: NAME:/dst[:ro|:nocopy], /dst (anonymous), /host/path:/dst[:ro] (bind)
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// type=volume|bind|tmpfs,source=...,target=...[,readonly][,volume-nocopy][,tmpfs-size=...]
    #[arg(long)]
    pub mount: Vec<String>,
    /// DST[:size=64m,mode=1777,...]
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount the container's root read-only
    #[arg(long)]
    pub read_only: bool,
    /// KEY=VALUE
    #[arg(short = 'l', long)]
    pub label: Vec<String>,
    /// KEY=VALUE
    #[arg(short = 'e', long)]
    pub env: Vec<String>,
    /// A file of KEY=VALUE lines
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
    /// The container's hostname (default: its short ID)
    #[arg(long)]
    pub hostname: Option<String>,
    /// Give the process a terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Keep stdin open
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Remove the container (and its anonymous volumes) when it exits
    #[arg(long)]
    pub rm: bool,
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(long)]
    pub entrypoint: Option<String>,
    pub image: String,
    /// The command (default: the image's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct PsArgs {
    /// All containers (default: the running ones)
    #[arg(short, long)]
    pub all: bool,
    /// Sizes: the writable layer, and virtual = writable + image
    #[arg(short, long)]
    pub size: bool,
    /// IDs only
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(long)]
    pub no_trunc: bool,
    /// name=, label=KEY[=VALUE], ancestor=IMAGE, id=, status=created|mounted
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// table, json, or a template ('{{.ID}} {{.Names}}')
    #[arg(long, default_value = "table")]
    pub format: String,
    /// The newest container only
    #[arg(short = 'l', long)]
    pub latest: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CpArgs {
    /// Keep owners (uid/gid) of the source
    #[arg(short, long)]
    pub archive: bool,
    /// Follow a symlink given as the source
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// SRC: CTR:PATH, a host path, or - (a tar on stdin)
    pub src: String,
    /// DEST: CTR:PATH, a host path, or - (a tar on stdout)
    pub dest: String,
}

#[derive(Subcommand, Debug, Clone)]
// Parsed once per process: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum ContainerCmd {
    /// List containers
    #[command(alias = "list", alias = "ps")]
    Ls(PsArgs),
    /// Show everything about containers (JSON)
    Inspect {
        #[arg(required = true)]
        containers: Vec<String>,
        #[arg(short, long)]
        size: bool,
        #[arg(short, long, default_value = "json")]
        format: String,
    },
    #[command(flatten)]
    Verb(CtrVerb),
}

/// The container verbs that `unionctl` also takes at the top level
/// (`unionctl rm` = `unionctl container rm`, as podman and docker do).
#[derive(Subcommand, Debug, Clone)]
pub enum CtrVerb {
    /// Create a container from an image (prints its ID)
    Create(CreateArgs),
    /// Remove containers
    #[command(alias = "remove")]
    Rm {
        /// Unmount mounted ones first
        #[arg(short, long)]
        force: bool,
        /// Also remove their anonymous volumes
        #[arg(short, long)]
        volumes: bool,
        /// Every container
        #[arg(short, long)]
        all: bool,
        containers: Vec<String>,
    },
    /// Mount containers and print the merged paths (no argument: list mounted containers)
    Mount {
        containers: Vec<String>,
        #[arg(long, default_value = "table")]
        format: String,
        #[arg(long)]
        no_trunc: bool,
    },
    /// Drop a mount reference (the last one unmounts everything)
    #[command(alias = "umount")]
    Unmount {
        /// Every mounted container, completely
        #[arg(short, long)]
        all: bool,
        /// Drop every reference at once
        #[arg(short, long)]
        force: bool,
        containers: Vec<String>,
    },
    /// Changes to the image: A (added), C (changed), D (deleted)
    Diff {
        container: String,
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Make an image of a container's changes
    Commit {
        #[arg(short, long)]
        message: Option<String>,
        #[arg(short, long)]
        author: Option<String>,
        /// Dockerfile instruction: 'CMD ...', 'ENV k=v', 'LABEL k=v', 'WORKDIR /x', ...
        #[arg(short, long)]
        change: Vec<String>,
        /// Print only the image ID
        #[arg(short, long)]
        quiet: bool,
        /// Accepted for compatibility (a container is never running)
        #[arg(short, long)]
        pause: Option<Option<bool>>,
        container: String,
        image: Option<String>,
    },
    /// Write the container's filesystem as a tar (volumes excluded)
    Export {
        #[arg(short, long)]
        output: Option<PathBuf>,
        container: String,
    },
    /// Copy files between a container and the host
    Cp(CpArgs),
    /// Create and start a container (foreground: exits with its status)
    Run(crate::cli::run::RunArgs),
    /// Start containers (detached; -a: in the foreground)
    Start(crate::cli::run::StartArgs),
    /// Stop running containers (stop signal, SIGKILL after -t seconds)
    Stop(crate::cli::run::StopArgs),
    /// Stop then start containers
    Restart(crate::cli::run::StopArgs),
    /// Send a signal to running containers
    Kill(crate::cli::run::KillArgs),
    /// Wait for containers to stop and print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container
    Exec(crate::cli::exec::ExecArgs),
    /// Show a container's output
    Logs(crate::cli::exec::LogsArgs),
    /// Run a command where the container's volumes are mounted (rootless: its user+mount namespace)
    Unshare {
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
}

pub(crate) fn name_of(c: &Container) -> &str {
    if c.name.is_empty() {
        c.short_id()
    } else {
        &c.name
    }
}

pub fn run(store: &Store, cmd: ContainerCmd) -> Result<()> {
    match cmd {
        ContainerCmd::Ls(a) => ps(store, a),
        ContainerCmd::Inspect { containers, size, format } => inspect(store, &containers, size, &format),
        ContainerCmd::Verb(v) => run_verb(store, v),
    }
}

/// Run one of the verbs the top level shares.
pub fn run_verb(store: &Store, v: CtrVerb) -> Result<()> {
    match v {
        CtrVerb::Create(a) => create(store, a),
        CtrVerb::Rm { force, volumes, all, containers } => rm(store, &containers, force, volumes, all),
        CtrVerb::Mount { containers, format, no_trunc } => mount(store, &containers, &format, no_trunc),
        CtrVerb::Unmount { all, force, containers } => unmount(store, &containers, all, force),
        CtrVerb::Diff { container, format } => files::diff(store, &container, &format),
        CtrVerb::Commit { message, author, change, quiet, pause: _, container, image } => {
            let c = containers::resolve(store, &container)?;
            let id = commit::commit(store, &c, &commit::Opts { message, author, changes: change, name: image })?;
            let _ = quiet;
            println!("{id}");
            Ok(())
        }
        CtrVerb::Export { output, container } => files::export(store, &container, output),
        CtrVerb::Cp(a) => files::cp(store, a),
        CtrVerb::Run(a) => crate::cli::run::run(store, a),
        CtrVerb::Start(a) => crate::cli::run::start(store, a),
        CtrVerb::Stop(a) => crate::cli::run::stop(store, a),
        CtrVerb::Restart(a) => crate::cli::run::restart(store, a),
        CtrVerb::Kill(a) => crate::cli::run::kill(store, a),
        CtrVerb::Wait { containers } => crate::cli::run::wait(store, &containers),
        CtrVerb::Exec(a) => crate::cli::exec::exec(store, a),
        CtrVerb::Logs(a) => crate::cli::exec::logs(store, a),
        CtrVerb::Unshare { container, cmd } => {
            let c = containers::resolve(store, &container)?;
            crate::store::userns::enter(store, &c, &cmd)
        }
    }
}

/// What `create` and `run` ask the store for.
pub fn create_opts(a: CreateArgs) -> Result<CreateOpts> {
    let mut mounts = Vec::new();
    for v in &a.volume {
        mounts.push(containers::parse_volume_flag(v)?);
    }
    for m in &a.mount {
        mounts.push(containers::parse_mount_flag(m)?);
    }
    for t in &a.tmpfs {
        mounts.push(containers::parse_tmpfs_flag(t)?);
    }
    let mut env = Vec::new();
    for f in &a.env_file {
        let text = std::fs::read_to_string(f).map_err(|e| Error(format!("--env-file {}: {e}", f.display())))?;
        env.extend(crate::runtime::spec::parse_env_file(&text));
    }
    env.extend(a.env);
    Ok(CreateOpts {
        name: a.name,
        image: a.image,
        cmd: a.cmd,
        mounts,
        labels: a.label,
        env,
        workdir: a.workdir,
        user: a.user,
        entrypoint: a.entrypoint,
        read_only: a.read_only,
        hostname: a.hostname,
        tty: a.tty,
        interactive: a.interactive,
        auto_remove: a.rm,
    })
}

fn create(store: &Store, a: CreateArgs) -> Result<()> {
    let c = containers::create(store, &create_opts(a)?)?;
    println!("{}", c.id);
    Ok(())
}

fn sizes(store: &Store, c: &Container) -> (u64, u64) {
    let rw = crate::sys::tree::du_path(&c.upper(store));
    let image = c.image(store).map_or(0, |i| i.size);
    (rw, rw + image)
}

fn matches(store: &Store, c: &Container, mounted: bool, status: &state::View, f: &str) -> Result<bool> {
    let (k, v) = f.split_once('=').ok_or_else(|| Error(format!("invalid filter {f:?} (KEY=VALUE)")))?;
    Ok(match k {
        "name" => {
            let (start, end) = (v.starts_with('^'), v.ends_with('$') && v.len() > 1);
            let core = v.trim_start_matches('^').trim_end_matches('$');
            match (start, end) {
                (true, true) => c.name == core,
                (true, false) => c.name.starts_with(core),
                (false, true) => c.name.ends_with(core),
                _ => c.name.contains(core),
            }
        }
        "id" => c.id.starts_with(v),
        "label" => match v.split_once('=') {
            Some((lk, lv)) => c.config.labels.get(lk).is_some_and(|x| x == lv),
            None => c.config.labels.contains_key(v),
        },
        "ancestor" => match images::resolve(store, v) {
            Ok(i) => c.image_hex() == i.id,
            Err(_) => c.image_name == v || c.image_hex().starts_with(v),
        },
        "status" => match v {
            "created" | "running" | "exited" => status.status.as_str() == v,
            "mounted" => mounted,
            "paused" | "restarting" | "removing" | "dead" => false,
            _ => return err(format!("invalid status filter {v:?}")),
        },
        "volume" => c.mounts.iter().any(|m| m.name.as_deref() == Some(v) || m.destination == v),
        _ => return err(format!("invalid filter {k:?} (name, id, label, ancestor, status, volume)")),
    })
}

fn summary(c: &Container, st: &state::View, mounted: Option<&PathBuf>, size: Option<(u64, u64)>) -> Value {
    let created = parse_rfc3339(&c.created).unwrap_or(0);
    let mut v = json!({
        "Id": c.id,
        "ID": c.id,
        "Names": [c.name],
        "Image": c.image_name,
        "ImageID": c.image_hex(),
        "Command": c.command(),
        "Created": created,
        "CreatedAt": c.created,
        "RunningFor": ago(Some(created)),
        "State": st.status.as_str(),
        "Status": runtime::status_line(st),
        "ExitCode": st.exit_code,
        "Pid": st.pid,
        "Mounted": mounted.is_some(),
        "MergedDir": mounted,
        "Labels": if c.config.labels.is_empty() { Value::Null } else { json!(c.config.labels) },
        "Mounts": c.mounts.iter().map(|m| m.destination.clone()).collect::<Vec<_>>(),
    });
    if let Some((rw, root)) = size {
        v["Size"] = json!({"rw": rw, "rootFsSize": root});
    }
    v
}

fn ps(store: &Store, a: PsArgs) -> Result<()> {
    let all = containers::list(store)?;
    let mut rows = Vec::new();
    for c in &all {
        let _ = runtime::monitor::reconcile(store, c);
        let st = state::view(store, c);
        // Running ones only, unless -a or a filter says otherwise (docker).
        if !a.all && !st.running() && a.filter.is_empty() && !a.latest {
            continue;
        }
        let mounted = mounts::mounted(store, c).map(|(p, _)| p);
        let mut keep = true;
        for f in &a.filter {
            keep &= matches(store, c, mounted.is_some(), &st, f)?;
        }
        if keep {
            rows.push((c, mounted, st));
        }
    }
    if a.latest {
        rows.truncate(1);
    }
    let fmt = format::parse(&a.format);
    if a.quiet {
        for (c, _, _) in &rows {
            println!("{}", if a.no_trunc { &c.id } else { c.short_id() });
        }
        return Ok(());
    }
    if !matches!(fmt, Format::Table) {
        let objs: Vec<Value> =
            rows.iter().map(|(c, m, st)| summary(c, st, m.as_ref(), a.size.then(|| sizes(store, c)))).collect();
        return format::print_objects(&fmt, &objs);
    }
    let mut header = vec!["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"];
    if a.size {
        header.push("SIZE");
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|(c, m, st)| {
            let mut cmd = c.command().join(" ");
            if !a.no_trunc && cmd.chars().count() > 20 {
                cmd = cmd.chars().take(17).collect::<String>() + "...";
            }
            let mut r = vec![
                if a.no_trunc { c.id.clone() } else { c.short_id().to_string() },
                c.image_name.clone(),
                cmd,
                ago(parse_rfc3339(&c.created)),
                match (st.status == state::Status::Created, m.is_some()) {
                    (true, true) => "Created (mounted)".into(),
                    _ => runtime::status_line(st),
                },
                String::new(),
                c.name.clone(),
            ];
            if a.size {
                let (rw, v) = sizes(store, c);
                r.push(format!("{} (virtual {})", human_size(rw), human_size(v)));
            }
            r
        })
        .collect();
    format::table(&header, &table);
    Ok(())
}

/// Docker's `Mounts` entries.
fn mounts_json(store: &Store, c: &Container) -> Vec<Value> {
    c.mounts
        .iter()
        .map(|m| {
            let (source, driver, propagation) = match m.kind {
                Kind::Volume => {
                    (volumes::data(store, m.name.as_deref().unwrap_or_default()).display().to_string(), "local", "")
                }
                Kind::Bind => (m.source.clone().unwrap_or_default(), "", "rprivate"),
                Kind::Tmpfs => (String::new(), "", ""),
            };
            let mut v = json!({
                "Type": m.kind.as_str(),
                "Source": source,
                "Destination": m.destination,
                "Driver": driver,
                "Mode": if m.rw { "" } else { "ro" },
                "RW": m.rw,
                "Propagation": propagation,
            });
            if let Some(n) = &m.name {
                v["Name"] = json!(n);
            }
            if m.kind == Kind::Tmpfs || m.nocopy {
                let mut opts = m.options.clone();
                if m.nocopy {
                    opts.push("nocopy".into());
                }
                v["Options"] = json!(opts);
            }
            v
        })
        .collect()
}

pub fn inspect_json(store: &Store, c: &Container, size: bool) -> Result<Value> {
    let lowers: Vec<String> = match c.image(store) {
        Ok(i) => i.layer_dirs(store)?.iter().map(|p| p.display().to_string()).collect(),
        Err(_) => Vec::new(),
    };
    let state = mounts::mounted(store, c);
    let st = state::view(store, c);
    let cmd = c.command();
    let mut v = json!({
        "Id": c.id,
        "Created": c.created,
        "Path": cmd.first().cloned().unwrap_or_default(),
        "Args": cmd.get(1..).unwrap_or_default(),
        "State": {
            "Status": st.status.as_str(),
            "Running": st.running(),
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": st.pid,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": st.started_at,
            "FinishedAt": st.finished_at,
            "Mounted": state.is_some(),
            "MountCount": state.as_ref().map_or(0, |(_, s)| s.count),
            "DaemonPid": state.as_ref().map_or(0, |(_, s)| s.daemon.pid),
        },
        "Image": c.image_id,
        "ImageName": c.image_name,
        "Name": c.name,
        "Driver": "unionfs",
        "Config": {
            "Hostname": runtime::launch::hostname(c),
            "Tty": c.config.tty,
            "OpenStdin": c.config.open_stdin,
            "StopSignal": if c.config.stop_signal.is_empty() { "SIGTERM" } else { &c.config.stop_signal },
            "User": c.config.user,
            "Env": c.config.env,
            "Cmd": c.config.cmd,
            "Entrypoint": c.config.entrypoint,
            "WorkingDir": c.config.working_dir,
            "Labels": c.config.labels,
            "Image": c.image_name,
        },
        "LogPath": state::log_path(store, c).display().to_string(),
        "HostConfig": {
            "AutoRemove": c.auto_remove,
            "ReadonlyRootfs": c.read_only,
            "Binds": c.mounts.iter().filter(|m| m.kind != Kind::Tmpfs).map(|m| {
                let src = m.name.clone().or_else(|| m.source.clone()).unwrap_or_default();
                format!("{src}:{}{}", m.destination, if m.rw { "" } else { ":ro" })
            }).collect::<Vec<_>>(),
            "Tmpfs": c.mounts.iter().filter(|m| m.kind == Kind::Tmpfs)
                .map(|m| (m.destination.clone(), json!(m.options.join(","))))
                .collect::<serde_json::Map<String, Value>>(),
        },
        "GraphDriver": {
            "Name": "unionfs",
            "Data": {
                "LowerDir": lowers.join(":"),
                "UpperDir": c.upper(store).display().to_string(),
                "WorkDir": c.work(store).display().to_string(),
                "MergedDir": c.merged(store).display().to_string(),
            }
        },
        "Mounts": mounts_json(store, c),
    });
    if !at::is_root() && !c.mounts.is_empty() {
        let ns = state.as_ref().and_then(|(_, s)| s.namespace.clone());
        v["MountNamespace"] = json!({
            "Kind": "user+mount namespace (rootless: the volume, bind and tmpfs mounts are not on the host)",
            "Path": ns.map(|n| format!("/proc/{}/ns/mnt", n.pid)),
            "Enter": format!("unionctl unshare {} [CMD]", name_of(c)),
        });
    }
    if size {
        let (rw, root) = sizes(store, c);
        v["SizeRw"] = json!(rw);
        v["SizeRootFs"] = json!(root);
    }
    Ok(v)
}

fn inspect(store: &Store, which: &[String], size: bool, format: &str) -> Result<()> {
    let all = containers::list(store)?;
    let mut out = Vec::new();
    for w in which {
        out.push(inspect_json(store, containers::pick(&all, w)?, size)?);
    }
    match format::parse(format) {
        Format::Table | Format::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        f => format::print_objects(&f, &out)?,
    }
    Ok(())
}

fn rm(store: &Store, which: &[String], force: bool, vols: bool, all: bool) -> Result<()> {
    let list = containers::list(store)?;
    let targets: Vec<String> = if all { list.iter().map(|c| c.id.clone()).collect() } else { which.to_vec() };
    if targets.is_empty() {
        return err("rm needs at least one container (or --all)");
    }
    let mut last = Ok(());
    for w in &targets {
        let r = containers::pick(&list, w).and_then(|c| runtime::remove(store, c, force, vols).map(|()| c.id.clone()));
        match r {
            Ok(id) => println!("{id}"),
            Err(e) => {
                if targets.len() > 1 {
                    eprintln!("unionctl: error: {e}");
                    last = Err(Error(format!("{} of {} containers not removed", 1, targets.len())));
                } else {
                    last = Err(e);
                }
            }
        }
    }
    last
}

fn mount(store: &Store, which: &[String], format: &str, no_trunc: bool) -> Result<()> {
    if which.is_empty() {
        let mut rows = Vec::new();
        let mut objs = Vec::new();
        for c in containers::list(store)? {
            if let Some((p, s)) = mounts::mounted(store, &c) {
                rows.push(vec![
                    if no_trunc { c.id.clone() } else { c.short_id().to_string() },
                    p.display().to_string(),
                ]);
                objs.push(json!({"id": c.id, "Names": [c.name], "mountpoint": p, "MountCount": s.count}));
            }
        }
        match format::parse(format) {
            Format::Table => {
                for r in rows {
                    println!("{}  {}", r[0], r[1]);
                }
            }
            f => format::print_objects(&f, &objs)?,
        }
        return Ok(());
    }
    let all = containers::list(store)?;
    for w in which {
        let c = containers::pick(&all, w)?;
        if !at::is_root() && state::view(store, c).running() {
            // Its root is mounted inside its own user namespace; a second
            // daemon on the same upper would corrupt it.
            return crate::store::error::conflict(format!(
                "container {} is running (rootless: its root is mounted in its own namespaces): use unionctl exec, or stop it first",
                name_of(c)
            ));
        }
        let p = mounts::mount(store, c)?;
        println!("{}", p.display());
    }
    Ok(())
}

/// A running container's root is held by its monitor: only references
/// beyond that one may be dropped.
fn check_not_running(store: &Store, c: &Container, force: bool) -> Result<()> {
    if state::view(store, c).running() && (force || mounts::state(store, c).is_none_or(|s| s.count <= 1)) {
        return crate::store::error::conflict(format!("container {} is running: stop it first", name_of(c)));
    }
    Ok(())
}

fn unmount(store: &Store, which: &[String], all: bool, force: bool) -> Result<()> {
    let list = containers::list(store)?;
    if all {
        for c in &list {
            if let Err(e) = check_not_running(store, c, true) {
                eprintln!("unionctl: {e}");
                continue;
            }
            if mounts::state(store, c).is_some() {
                while let Unmounted::Released(_) = mounts::unmount(store, c, true)? {}
                println!("{}", c.id);
            }
        }
        return Ok(());
    }
    if which.is_empty() {
        return err("unmount needs at least one container (or --all)");
    }
    for w in which {
        let c = containers::pick(&list, w)?;
        check_not_running(store, c, force)?;
        mounts::unmount(store, c, force)?;
        println!("{w}");
    }
    Ok(())
}
