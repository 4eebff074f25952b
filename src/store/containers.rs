//! Containers: one directory per container under `containers/`:
//!
//! ```text
//! containers/<id>/container.json   the record (Id, Name, ImageID, Config, Mounts, ...)
//! containers/<id>/diff/            the writable upper (a kernel overlay upper)
//! containers/<id>/work/            unionfs's work dir
//! containers/<id>/merged/          the mount point
//! containers/<id>/mount.json       mount state (see `mounts.rs`), while mounted
//! ```
//!
//! A container is made in `tmp/` and renamed into place with its record, so
//! a directory without `container.json` is an interrupted removal (swept at
//! open). Records are written under the store lock; mounting takes the
//! container's own lock (`tmp/locks/ctr-<id>.lock`).
//!
//! The image guard (`image rm`/`prune`) reads only `Id` and `ImageID` of
//! every record, in either form `containers/<id>.json` or
//! `containers/<id>/container.json`: an image a container uses is kept.

use crate::store::error::{conflict, err, Context, Error, Result};
use crate::store::images::{self, ImageRecord};
use crate::store::util::{read_json, write_json};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::PathBuf;

#[derive(Deserialize)]
struct ContainerRef {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "ImageID")]
    image_id: String,
}

/// Every container record path (both forms).
fn record_paths(store: &Store) -> Result<Vec<PathBuf>> {
    let dir = store.root.join("containers");
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx(dir.display()),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.ctx(dir.display())?;
        let p = e.path();
        let record = if p.is_dir() {
            p.join("container.json")
        } else if p.extension().is_some_and(|x| x == "json") {
            p
        } else {
            continue;
        };
        if record.exists() {
            out.push(record);
        }
    }
    out.sort();
    Ok(out)
}

/// Image ID (hex) -> the IDs of the containers using it. A record that cannot
/// be read is an error: nothing may be removed while it is unknown what that
/// container needs.
pub fn images_in_use(store: &Store) -> Result<HashMap<String, Vec<String>>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for record in record_paths(store)? {
        let c: ContainerRef = read_json(&record).ctx("container record")?;
        let image = c.image_id.strip_prefix("sha256:").unwrap_or(&c.image_id).to_string();
        out.entry(image).or_default().push(c.id);
    }
    for users in out.values_mut() {
        users.sort();
    }
    Ok(out)
}

/// What the container runs with: the image config merged with `create` flags.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Config {
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The container's hostname (empty: its short ID).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// The image's StopSignal (empty: SIGTERM).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// A terminal (`-t`).
    #[serde(default)]
    pub tty: bool,
    /// Keep stdin open (`-i`).
    #[serde(default)]
    pub open_stdin: bool,
}

/// The three kinds of mounts under a container's root.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Volume,
    Bind,
    Tmpfs,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Volume => "volume",
            Kind::Bind => "bind",
            Kind::Tmpfs => "tmpfs",
        }
    }
}

/// One mount of a container (docker's `Mounts` entry plus what we need to apply it).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MountSpec {
    #[serde(rename = "Type")]
    pub kind: Kind,
    /// The volume's name.
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The host path of a bind mount.
    #[serde(rename = "Source", default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(rename = "Destination")]
    pub destination: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    /// Never fill the volume from the image (`nocopy`).
    #[serde(rename = "NoCopy", default)]
    pub nocopy: bool,
    /// A volume made for this container only (`-v /dst`, image `Volumes`).
    #[serde(rename = "Anonymous", default)]
    pub anonymous: bool,
    /// tmpfs: `size=`, `mode=`; flags (`noexec`, ...).
    #[serde(rename = "Options", default)]
    pub options: Vec<String>,
}

/// containers/<id>/container.json
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Container {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    /// The image as it was named at create.
    #[serde(rename = "ImageName", default)]
    pub image_name: String,
    #[serde(rename = "Created", default)]
    pub created: String,
    #[serde(rename = "Config", default)]
    pub config: Config,
    #[serde(rename = "Mounts", default)]
    pub mounts: Vec<MountSpec>,
    #[serde(rename = "ReadOnly", default)]
    pub read_only: bool,
    /// `run --rm`: removed with its anonymous volumes when it exits.
    #[serde(rename = "AutoRemove", default)]
    pub auto_remove: bool,
}

impl Container {
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }

    pub fn image_hex(&self) -> &str {
        self.image_id.strip_prefix("sha256:").unwrap_or(&self.image_id)
    }

    pub fn dir(&self, store: &Store) -> PathBuf {
        store.root.join("containers").join(&self.id)
    }
    pub fn upper(&self, store: &Store) -> PathBuf {
        self.dir(store).join("diff")
    }
    pub fn work(&self, store: &Store) -> PathBuf {
        self.dir(store).join("work")
    }
    pub fn merged(&self, store: &Store) -> PathBuf {
        self.dir(store).join("merged")
    }

    pub fn image(&self, store: &Store) -> Result<ImageRecord> {
        images::resolve(store, self.image_hex())
            .map_err(|_| Error(format!("container {}: its image {} is gone", self.short_id(), short(self.image_hex()))))
    }

    /// The command as `ps` shows it (entrypoint then cmd).
    pub fn command(&self) -> Vec<String> {
        let mut v = self.config.entrypoint.clone().unwrap_or_default();
        v.extend(self.config.cmd.clone().unwrap_or_default());
        v
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Every container (newest first). A record that cannot be read is skipped
/// with a warning (listings stay usable; removal guards use `images_in_use`).
pub fn list(store: &Store) -> Result<Vec<Container>> {
    let mut out = Vec::new();
    for p in record_paths(store)? {
        match read_json::<Container>(&p) {
            Ok(c) => out.push(c),
            Err(e) => eprintln!("unionctl: warning: skipping container record: {e}"),
        }
    }
    out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// Find a container by name, full ID or unique ID prefix.
pub fn resolve(store: &Store, what: &str) -> Result<Container> {
    let all = list(store)?;
    pick(&all, what).cloned()
}

/// [`resolve`] among `all`.
pub fn pick<'a>(all: &'a [Container], what: &str) -> Result<&'a Container> {
    if let Some(c) = all.iter().find(|c| c.id == what) {
        return Ok(c);
    }
    if let Some(c) = all.iter().find(|c| c.name == what) {
        return Ok(c);
    }
    if !what.is_empty() && what.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hits: Vec<&Container> = all.iter().filter(|c| c.id.starts_with(what)).collect();
        match hits.len() {
            0 => {}
            1 => return Ok(hits[0]),
            n => {
                let names: Vec<String> = hits.iter().map(|c| format!("{} ({})", c.short_id(), c.name)).collect();
                return err(format!(
                    "container ID prefix {what:?} is ambiguous: {n} containers match: {}",
                    names.join(", ")
                ));
            }
        }
    }
    err(format!("no such container: {what}"))
}

/// Docker's rule for names (container and volume).
pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A generated name, `adjective_noun` as docker makes them.
fn random_name(taken: &[Container]) -> String {
    const A: [&str; 24] = [
        "admiring",
        "brave",
        "busy",
        "clever",
        "dazzling",
        "eager",
        "elastic",
        "festive",
        "gallant",
        "happy",
        "jolly",
        "keen",
        "lucid",
        "modest",
        "nifty",
        "optimistic",
        "peaceful",
        "quirky",
        "serene",
        "sharp",
        "tender",
        "upbeat",
        "vibrant",
        "zealous",
    ];
    const N: [&str; 24] = [
        "agnesi", "babbage", "bohr", "curie", "darwin", "euler", "fermat", "gauss", "hopper", "hypatia", "kepler",
        "lovelace", "meitner", "newton", "noether", "pascal", "ritchie", "shannon", "thompson", "torvalds", "turing",
        "wiles", "wozniak", "yalow",
    ];
    loop {
        let r = crate::sys::process::random_hex64().unwrap_or_default();
        let n = usize::from_str_radix(r.get(..8).unwrap_or("0"), 16).unwrap_or(0);
        let name = format!("{}_{}", A[n % A.len()], N[(n / A.len()) % N.len()]);
        if !taken.iter().any(|c| c.name == name) {
            return name;
        }
        let numbered = format!("{name}{}", n % 10);
        if !taken.iter().any(|c| c.name == numbered) {
            return numbered;
        }
    }
}

/// Check that `dst` is a destination inside the container root.
pub fn check_destination(dst: &str) -> Result<()> {
    if !dst.starts_with('/') {
        return err(format!("invalid mount destination {dst:?}: must be an absolute path"));
    }
    if dst.split('/').any(|c| c == "..") {
        return err(format!("invalid mount destination {dst:?}: \"..\" would leave the container root"));
    }
    if dst.split('/').all(|c| c.is_empty() || c == ".") {
        return err(format!("invalid mount destination {dst:?}: cannot mount over the container root"));
    }
    Ok(())
}

/// `a//b/./c/` -> `/a/b/c`.
pub fn clean(dst: &str) -> String {
    let parts: Vec<&str> = dst.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    format!("/{}", parts.join("/"))
}

fn bind_source(src: &str) -> Result<String> {
    let p = std::path::Path::new(src);
    let abs = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().ctx("current directory")?.join(p) };
    match fs::metadata(&abs) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return err(format!("bind source path does not exist: {}", abs.display()));
        }
        Err(e) => return Err(e).ctx(format!("bind source {}", abs.display())),
    }
    Ok(abs.canonicalize().ctx(abs.display())?.display().to_string())
}

/// `-v SPEC`: `/dst` (anonymous volume), `NAME:/dst[:opts]` (named volume),
/// `/host:/dst[:opts]` (bind); opts `ro`, `rw`, `nocopy` (others, like `z`, are accepted).
pub fn parse_volume_flag(spec: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [d] => (None, *d, ""),
        [s, d] => (Some(*s), *d, ""),
        [s, d, o] => (Some(*s), *d, *o),
        _ => return err(format!("invalid volume specification {spec:?} (SOURCE:DESTINATION[:OPTIONS])")),
    };
    check_destination(dst)?;
    let mut m = MountSpec {
        kind: Kind::Volume,
        name: None,
        source: None,
        destination: clean(dst),
        rw: true,
        nocopy: false,
        anonymous: src.is_none(),
        options: Vec::new(),
    };
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" | "readonly" => m.rw = false,
            "rw" => m.rw = true,
            "nocopy" => m.nocopy = true,
            "copy" | "z" | "Z" | "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "rbind"
            | "bind" | "consistent" | "cached" | "delegated" => {}
            _ => return err(format!("invalid volume option {o:?} in {spec:?}")),
        }
    }
    match src {
        None => {}
        Some(s) if s.starts_with('/') || s.starts_with('.') => {
            m.kind = Kind::Bind;
            m.source = Some(bind_source(s)?);
        }
        Some(s) => {
            if !valid_name(s) {
                return err(format!(
                    "invalid volume name {s:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed (use an absolute path for a bind mount)"
                ));
            }
            m.name = Some(s.to_string());
        }
    }
    Ok(m)
}

/// `--tmpfs DST[:size=64m,mode=1777,...]`.
pub fn parse_tmpfs_flag(spec: &str) -> Result<MountSpec> {
    let (dst, opts) = spec.split_once(':').unwrap_or((spec, ""));
    check_destination(dst)?;
    let mut m = MountSpec {
        kind: Kind::Tmpfs,
        name: None,
        source: None,
        destination: clean(dst),
        rw: true,
        nocopy: false,
        anonymous: false,
        options: Vec::new(),
    };
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        tmpfs_option(&mut m, o, spec)?;
    }
    Ok(m)
}

fn tmpfs_option(m: &mut MountSpec, o: &str, spec: &str) -> Result<()> {
    match o.split_once('=') {
        Some(("size", v)) => {
            parse_size(v).ok_or_else(|| Error(format!("invalid tmpfs size {v:?} in {spec:?}")))?;
            m.options.push(format!("size={v}"));
        }
        Some(("mode", v)) => {
            u32::from_str_radix(v, 8).map_err(|_| Error(format!("invalid tmpfs mode {v:?} in {spec:?}")))?;
            m.options.push(format!("mode={v}"));
        }
        Some(("nr_inodes", v)) => m.options.push(format!("nr_inodes={v}")),
        None if o == "ro" => m.rw = false,
        None if o == "rw" => m.rw = true,
        None if matches!(o, "noexec" | "exec" | "nosuid" | "suid" | "nodev" | "dev" | "tmpcopyup" | "notmpcopyup") => {
            m.options.push(o.to_string())
        }
        _ => return err(format!("invalid tmpfs option {o:?} in {spec:?}")),
    }
    Ok(())
}

/// `64m`, `1g`, `4096` -> bytes.
pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim().to_ascii_lowercase();
    let v = v.strip_suffix('b').unwrap_or(&v);
    let (num, mult) = match v.chars().last()? {
        'k' => (&v[..v.len() - 1], 1u64 << 10),
        'm' => (&v[..v.len() - 1], 1 << 20),
        'g' => (&v[..v.len() - 1], 1 << 30),
        't' => (&v[..v.len() - 1], 1 << 40),
        _ => (v, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// `--mount type=volume|bind|tmpfs,source=...,target=...,readonly,...` (docker's syntax).
pub fn parse_mount_flag(spec: &str) -> Result<MountSpec> {
    let mut kind = None;
    let (mut src, mut dst) = (None, None);
    let mut m = MountSpec {
        kind: Kind::Volume,
        name: None,
        source: None,
        destination: String::new(),
        rw: true,
        nocopy: false,
        anonymous: false,
        options: Vec::new(),
    };
    let mut tmpfs_opts = Vec::new();
    for kv in spec.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (kv, None),
        };
        let flag = |v: Option<&str>| -> Result<bool> {
            match v {
                None | Some("true") | Some("1") => Ok(true),
                Some("false") | Some("0") => Ok(false),
                Some(x) => err(format!("invalid value {x:?} for {k:?} in --mount {spec:?}")),
            }
        };
        match (k, v) {
            ("type", Some(t)) => {
                kind = Some(match t {
                    "volume" => Kind::Volume,
                    "bind" => Kind::Bind,
                    "tmpfs" => Kind::Tmpfs,
                    _ => return err(format!("unsupported mount type {t:?} (volume, bind or tmpfs)")),
                })
            }
            ("source" | "src", Some(s)) => src = Some(s.to_string()),
            ("destination" | "dst" | "target", Some(d)) => dst = Some(d.to_string()),
            ("readonly" | "ro", v) => m.rw = !flag(v)?,
            ("volume-nocopy", v) => m.nocopy = flag(v)?,
            ("tmpfs-size", Some(s)) => tmpfs_opts.push(format!("size={s}")),
            ("tmpfs-mode", Some(s)) => tmpfs_opts.push(format!("mode={s}")),
            ("bind-propagation" | "consistency" | "bind-nonrecursive" | "relabel", _) => {}
            _ => return err(format!("unexpected key {k:?} in --mount {spec:?}")),
        }
    }
    let kind = kind.ok_or_else(|| Error(format!("--mount {spec:?}: type= is required")))?;
    let dst = dst.ok_or_else(|| Error(format!("--mount {spec:?}: target= is required")))?;
    check_destination(&dst)?;
    m.kind = kind;
    m.destination = clean(&dst);
    match kind {
        Kind::Bind => {
            let s = src.ok_or_else(|| Error(format!("--mount {spec:?}: a bind mount needs source=")))?;
            if !s.starts_with('/') {
                return err(format!("--mount {spec:?}: the source of a bind mount must be an absolute path"));
            }
            m.source = Some(bind_source(&s)?);
        }
        Kind::Volume => match src {
            Some(s) if !valid_name(&s) => {
                return err(format!("invalid volume name {s:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"));
            }
            Some(s) => m.name = Some(s),
            None => m.anonymous = true,
        },
        Kind::Tmpfs => {
            if src.is_some() {
                return err(format!("--mount {spec:?}: a tmpfs mount takes no source"));
            }
            for o in tmpfs_opts {
                tmpfs_option(&mut m, &o, spec)?;
            }
        }
    }
    if kind != Kind::Tmpfs && !m.options.is_empty() {
        return err(format!("--mount {spec:?}: tmpfs options on a {} mount", kind.as_str()));
    }
    Ok(m)
}

/// What `create` was asked for.
#[derive(Debug, Default, Clone)]
pub struct CreateOpts {
    pub name: Option<String>,
    pub image: String,
    pub cmd: Vec<String>,
    pub mounts: Vec<MountSpec>,
    pub labels: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub entrypoint: Option<String>,
    pub read_only: bool,
    pub hostname: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub auto_remove: bool,
}

fn json_strings(v: Option<&serde_json::Value>) -> Option<Vec<String>> {
    v?.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
}

/// The image config's `config` object as our [`Config`] plus its `Volumes`.
pub fn image_config(store: &Store, img: &ImageRecord) -> Result<(Config, Vec<String>)> {
    let (_, cfg) = img.config(store)?;
    let c = cfg.config.unwrap_or(serde_json::Value::Null);
    let labels = c
        .get("Labels")
        .and_then(|l| l.as_object())
        .map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default();
    let mut volumes: Vec<String> =
        c.get("Volumes").and_then(|v| v.as_object()).map(|o| o.keys().cloned().collect()).unwrap_or_default();
    volumes.sort();
    let config = Config {
        cmd: json_strings(c.get("Cmd")),
        entrypoint: json_strings(c.get("Entrypoint")),
        env: json_strings(c.get("Env")).unwrap_or_default(),
        working_dir: c.get("WorkingDir").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
        user: c.get("User").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
        labels,
        stop_signal: c.get("StopSignal").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
        ..Config::default()
    };
    Ok((config, volumes))
}

/// RFC 3339 with nanoseconds (docker's `Created`).
pub fn now_rfc3339_nanos() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let s = crate::store::util::rfc3339(d.as_secs() as i64);
    format!("{}.{:09}Z", s.trim_end_matches('Z'), d.subsec_nanos())
}

/// The type of the filesystem `p` is on (from mountinfo), for messages.
pub fn fs_type(p: &std::path::Path) -> String {
    crate::sys::mount::mountinfo()
        .into_iter()
        .filter(|m| p.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len())
        .map_or_else(|| "unknown".to_string(), |m| m.fstype)
}

/// Can a union's upper live in `dir`? (The private xattrs unionfs writes and
/// a whiteout device.) The answer names what is missing.
fn probe_upper(dir: &std::path::Path) -> Result<()> {
    use crate::sys::{at, xattr};
    use std::os::fd::AsRawFd;
    let fd = at::openat(libc::AT_FDCWD, dir.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0).ctx(dir.display())?;
    let name = if at::is_root() { "trusted.overlay.unionfs.probe" } else { "user.overlay.unionfs.probe" };
    let what = |why: String| {
        Error(format!(
            "the store {} is on a filesystem ({}) that cannot hold a container's writable layer: {why}",
            dir.parent().and_then(|p| p.parent()).and_then(|p| p.parent()).unwrap_or(dir).display(),
            fs_type(dir)
        ))
    };
    xattr::set(xattr::Target::Fd(fd.as_raw_fd()), std::ffi::OsStr::new(name), b"y", 0).map_err(|e| {
        what(format!(
            "extended attributes ({}) not supported ({})",
            name.split('.').next().unwrap_or(name),
            crate::sys::tree::strip_os(&e)
        ))
    })?;
    let _ = xattr::remove(xattr::Target::Fd(fd.as_raw_fd()), std::ffi::OsStr::new(name));
    let wh = std::ffi::OsStr::new(".probe-whiteout");
    at::mknodat(fd.as_raw_fd(), wh, libc::S_IFCHR, 0).map_err(|e| {
        what(format!("whiteouts (char device 0:0) cannot be made ({})", crate::sys::tree::strip_os(&e)))
    })?;
    let _ = at::unlinkat(fd.as_raw_fd(), wh, 0);
    Ok(())
}

/// Create a container (record, empty upper and work dir, volumes). Nothing
/// of the image is copied.
pub fn create(store: &Store, o: &CreateOpts) -> Result<Container> {
    let img = images::resolve(store, &o.image)?;
    if let Some(n) = &o.name {
        if !valid_name(n) {
            return err(format!("invalid container name {n:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"));
        }
    }
    let (mut config, image_volumes) = image_config(store, &img)?;
    if !o.cmd.is_empty() {
        config.cmd = Some(o.cmd.clone());
    }
    if let Some(ep) = &o.entrypoint {
        config.entrypoint = if ep.is_empty() { None } else { Some(vec![ep.clone()]) };
        if o.cmd.is_empty() {
            config.cmd = None;
        }
    }
    for e in &o.env {
        let key = e.split('=').next().unwrap_or(e);
        config.env.retain(|x| x.split('=').next() != Some(key));
        config.env.push(e.clone());
    }
    for l in &o.labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            return err(format!("invalid label {l:?} (KEY=VALUE)"));
        }
        config.labels.insert(k.to_string(), v.to_string());
    }
    if let Some(w) = &o.workdir {
        config.working_dir = w.clone();
    }
    if let Some(u) = &o.user {
        config.user = u.clone();
    }
    if let Some(h) = &o.hostname {
        if h.is_empty() || h.len() > 64 || !h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return err(format!("invalid hostname {h:?}"));
        }
        config.hostname = h.clone();
    }
    config.tty = o.tty;
    config.open_stdin = o.interactive;
    let mut mounts = o.mounts.clone();
    for (i, m) in mounts.iter().enumerate() {
        if mounts[..i].iter().any(|x| x.destination == m.destination) {
            return err(format!("duplicate mount destination {}", m.destination));
        }
    }
    for v in image_volumes {
        if check_destination(&v).is_err() {
            continue;
        }
        let dst = clean(&v);
        if !mounts.iter().any(|m| m.destination == dst) {
            mounts.push(MountSpec {
                kind: Kind::Volume,
                name: None,
                source: None,
                destination: dst,
                rw: true,
                nocopy: false,
                anonymous: true,
                options: Vec::new(),
            });
        }
    }
    for m in mounts.iter_mut() {
        if m.kind == Kind::Volume && m.name.is_none() {
            m.name = Some(crate::sys::process::random_hex64().ctx("random")?);
            m.anonymous = true;
        }
    }
    let id = crate::sys::process::random_hex64().ctx("random")?;
    let mut c = Container {
        id: id.clone(),
        name: o.name.clone().unwrap_or_default(),
        image_id: format!("sha256:{}", img.id),
        image_name: images::matching_name(&img, &o.image).unwrap_or_else(|| img.id.clone()),
        created: now_rfc3339_nanos(),
        config,
        mounts,
        read_only: o.read_only,
        auto_remove: o.auto_remove,
    };
    let tmp = store.temp_dir("ctr")?;
    for d in ["diff", "work", "merged"] {
        fs::create_dir(tmp.path.join(d)).ctx(tmp.path.join(d).display())?;
    }
    fs::create_dir_all(store.root.join("containers")).ctx("containers")?;
    probe_upper(&tmp.path.join("work")).map_err(|e| {
        // Name the store, not the temp dir.
        Error(e.0.replace(&tmp.path.display().to_string(), &store.root.display().to_string()))
    })?;
    let _lock = store.lock()?;
    let all = list(store)?;
    match &o.name {
        Some(n) => {
            if let Some(other) = all.iter().find(|x| x.name == *n) {
                return conflict(format!(
                    "the container name {n:?} is already in use by {}: remove that container to reuse the name",
                    other.short_id()
                ));
            }
        }
        None => c.name = random_name(&all),
    }
    let made = crate::store::volumes::ensure_for(store, &c)?;
    let placed = (|| {
        write_json(&tmp.path.join("container.json"), &c)?;
        crate::store::recover::sync_dir(&tmp.path).ctx("sync")?;
        let dest = c.dir(store);
        fs::rename(&tmp.path, &dest).ctx(dest.display())
    })();
    if let Err(e) = placed {
        for v in made {
            let _ = crate::store::volumes::remove(store, &v);
        }
        return Err(e);
    }
    Ok(c)
}

/// Remove a container's record and directories (the caller holds the store
/// lock and made sure nothing is mounted). The record goes first: a
/// half-removed directory is no container and is swept later.
pub fn remove(store: &Store, c: &Container) -> Result<()> {
    let dir = c.dir(store);
    match fs::remove_file(dir.join("container.json")) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // The file form of a record.
            let f = store.root.join("containers").join(format!("{}.json", c.id));
            match fs::remove_file(&f) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e).ctx(f.display()),
                _ => {}
            }
        }
        Err(e) => return Err(e).ctx(dir.display()),
    }
    crate::sys::tree::remove_tree(&dir).ctx(dir.display())
}

/// Save a changed record (under the store lock).
pub fn save(store: &Store, c: &Container) -> Result<()> {
    write_json(&c.dir(store).join("container.json"), c)
}
