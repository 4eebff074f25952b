//! `unionctl volume ...`: argument handling and output; the work happens in
//! [`crate::store::volumes`].

use crate::cli::format::{self, Format};
use crate::store::error::{err, Context, Error, Result};
use crate::store::util::human_size;
use crate::store::{archive, containers, volumes, Store};
use clap::Subcommand;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

#[derive(Subcommand, Debug, Clone)]
pub enum VolumeCmd {
    /// Create a volume (a generated name when none is given)
    Create {
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// KEY=VALUE
        #[arg(short, long)]
        label: Vec<String>,
        /// Driver options: type=tmpfs, device=..., o=size=10m; type=none,o=bind,device=/dir
        #[arg(short, long)]
        opt: Vec<String>,
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        /// name=, label=KEY[=VALUE], dangling=true|false, driver=local
        #[arg(short, long)]
        filter: Vec<String>,
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Show volumes (JSON)
    Inspect {
        #[arg(required = true)]
        volumes: Vec<String>,
        #[arg(short, long, default_value = "json")]
        format: String,
    },
    /// Remove volumes (-f also removes the containers that use them, as podman)
    #[command(alias = "remove")]
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove unused anonymous volumes (-a: every unused volume)
    Prune {
        #[arg(short, long)]
        all: bool,
        /// Do not ask (there is never a prompt)
        #[arg(short, long)]
        force: bool,
        /// label=KEY[=VALUE], label!=...
        #[arg(long)]
        filter: Vec<String>,
    },
    /// Write a volume's data as a tar (owners, modes, xattrs, hard links, holes kept)
    Export {
        #[arg(short, long)]
        output: Option<PathBuf>,
        volume: String,
    },
    /// Fill a new or empty volume from a tar (FILE or - for standard input)
    Import { volume: String, input: PathBuf },
}

fn kv(list: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for x in list {
        let (k, v) = x.split_once('=').unwrap_or((x, ""));
        if k.is_empty() {
            return err(format!("invalid {what} {x:?} (KEY=VALUE)"));
        }
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

fn label_match(labels: &BTreeMap<String, String>, v: &str) -> bool {
    match v.split_once('=') {
        Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
        None => labels.contains_key(v),
    }
}

fn inspect_json(store: &Store, v: &volumes::Volume, users: &[String]) -> Value {
    json!({
        "Name": v.name,
        "Driver": v.driver,
        "Mountpoint": volumes::data(store, &v.name),
        "CreatedAt": v.created_at,
        "Labels": v.labels,
        "Scope": "local",
        "Options": v.options,
        "Anonymous": v.anonymous,
        "NeedsCopyUp": v.needs_copy_up,
        "MountCount": volumes::mount_count(store, &v.name),
        "UsedBy": users,
    })
}

/// Remove the containers using a volume (`volume rm -f`).
fn remove_users(store: &Store, ids: &[String]) -> Result<()> {
    for id in ids {
        let c = containers::resolve(store, id)?;
        crate::runtime::remove(store, &c, true, false)?;
    }
    Ok(())
}

pub fn run(store: &Store, cmd: VolumeCmd) -> Result<()> {
    match cmd {
        VolumeCmd::Create { driver, label, opt, name } => {
            let labels = kv(&label, "label")?;
            let opts = kv(&opt, "option")?;
            let _lock = store.lock()?;
            let (v, _) = volumes::create(store, name.as_deref(), &driver, labels, opts, false)?;
            println!("{}", v.name);
            Ok(())
        }
        VolumeCmd::Ls { quiet, filter, format } => {
            let users = volumes::users(store)?;
            let mut out = Vec::new();
            for v in volumes::list(store)? {
                let mut keep = true;
                for f in &filter {
                    let (k, val) =
                        f.split_once('=').ok_or_else(|| Error(format!("invalid filter {f:?} (KEY=VALUE)")))?;
                    keep &= match k {
                        "name" => v.name.contains(val),
                        "label" => label_match(&v.labels, val),
                        "driver" => v.driver == val,
                        "dangling" => {
                            let unused = users.get(&v.name).is_none_or(|u| u.is_empty());
                            match val {
                                "true" | "1" => unused,
                                "false" | "0" => !unused,
                                _ => return err(format!("invalid dangling filter {val:?} (true or false)")),
                            }
                        }
                        _ => return err(format!("invalid filter {k:?} (name, label, dangling, driver)")),
                    };
                }
                if keep {
                    out.push(v);
                }
            }
            if quiet {
                for v in &out {
                    println!("{}", v.name);
                }
                return Ok(());
            }
            match format::parse(&format) {
                Format::Table => {
                    let rows: Vec<Vec<String>> = out.iter().map(|v| vec![v.driver.clone(), v.name.clone()]).collect();
                    format::table(&["DRIVER", "VOLUME NAME"], &rows);
                    Ok(())
                }
                f => {
                    let objs: Vec<Value> = out
                        .iter()
                        .map(|v| inspect_json(store, v, users.get(&v.name).map_or(&[], |u| u.as_slice())))
                        .collect();
                    format::print_objects(&f, &objs)
                }
            }
        }
        VolumeCmd::Inspect { volumes: which, format } => {
            let users = volumes::users(store)?;
            let mut out = Vec::new();
            for n in &which {
                let v = volumes::get(store, n)?;
                out.push(inspect_json(store, &v, users.get(n).map_or(&[], |u| u.as_slice())));
            }
            match format::parse(&format) {
                Format::Table | Format::Json => println!("{}", serde_json::to_string_pretty(&out)?),
                f => format::print_objects(&f, &out)?,
            }
            Ok(())
        }
        VolumeCmd::Rm { force, volumes: which } => {
            let mut last = Ok(());
            for n in &which {
                let r = (|| -> Result<()> {
                    volumes::get(store, n)?;
                    if force {
                        let users = volumes::users(store)?;
                        remove_users(store, users.get(n).map_or(&[], |u| u.as_slice()))?;
                    }
                    let _lock = store.lock()?;
                    volumes::get(store, n)?;
                    volumes::check_unused(&volumes::users(store)?, n)?;
                    volumes::remove(store, n)
                })();
                match r {
                    Ok(()) => println!("{n}"),
                    Err(e) if which.len() > 1 => {
                        eprintln!("unionctl: error: {e}");
                        last = Err(Error("some volumes were not removed".into()));
                    }
                    Err(e) => last = Err(e),
                }
            }
            last
        }
        VolumeCmd::Prune { all, force: _, filter } => {
            let _lock = store.lock()?;
            let users = volumes::users(store)?;
            let mut removed = Vec::new();
            let mut bytes = 0;
            for v in volumes::list(store)? {
                if users.get(&v.name).is_some_and(|u| !u.is_empty()) || (!all && !v.anonymous) {
                    continue;
                }
                let mut keep = false;
                for f in &filter {
                    if let Some(l) = f.strip_prefix("label!=") {
                        keep |= label_match(&v.labels, l);
                    } else if let Some(l) = f.strip_prefix("label=") {
                        keep |= !label_match(&v.labels, l);
                    } else {
                        return err(format!("invalid filter {f:?} (label=KEY[=VALUE] or label!=...)"));
                    }
                }
                if keep {
                    continue;
                }
                bytes += volumes::size(store, &v.name);
                volumes::remove(store, &v.name)?;
                removed.push(v.name);
            }
            if !removed.is_empty() {
                println!("Deleted Volumes:");
                for n in &removed {
                    println!("{n}");
                }
                println!();
            }
            println!("Total reclaimed space: {}", human_size(bytes));
            Ok(())
        }
        VolumeCmd::Export { output, volume } => {
            volumes::get(store, &volume)?;
            let data = volumes::data(store, &volume);
            crate::cli::container_files::write_archive(output.as_deref(), "an archive", |w| {
                let d = crate::sys::at::openat(libc::AT_FDCWD, data.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .ctx(data.display())?;
                let opts = archive::Options { root_name: Some("./".into()), sparse: true, ..Default::default() };
                let bw = archive::write_tree(d.as_raw_fd(), &opts, std::io::BufWriter::with_capacity(1 << 20, w))?;
                bw.into_inner().map_err(|e| e.into_error()).ctx("output")?;
                Ok(())
            })
        }
        VolumeCmd::Import { volume, input } => {
            {
                let _lock = store.lock()?;
                volumes::create(store, Some(&volume), "local", BTreeMap::new(), BTreeMap::new(), false)?;
            }
            if !volumes::is_empty(store, &volume)? {
                return err(format!("volume {volume} is not empty (import fills a new or empty volume)"));
            }
            let data = volumes::data(store, &volume);
            let r = if input.as_os_str() == "-" {
                crate::store::unpack::unpack(std::io::stdin().lock(), &data)
            } else {
                let f = std::fs::File::open(&input).ctx(input.display())?;
                let (_, plain) = crate::store::compress::decompress(f).ctx(input.display())?;
                crate::store::unpack::unpack(plain, &data)
            };
            if let Err(e) = r {
                // Nothing half-imported stays.
                let _ = crate::sys::tree::remove_tree(&data);
                let _ = std::fs::create_dir(&data);
                return Err(Error(format!("volume import {volume}: {e}")));
            }
            volumes::mark_filled(store, &volume)
        }
    }
}
