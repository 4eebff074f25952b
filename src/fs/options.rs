//! `-o` option parsing into a typed [`Options`] (fuse-overlayfs compatible).
//!
//! Unknown options produce a warning, never a failure. Layer paths are only
//! parsed here; [`crate::fs::layers`] validates them.

use std::path::PathBuf;
use std::time::Duration;

/// An id mapping range `container_id:host_id:len` (uidmapping=/gidmapping=).
/// `redirect_dir=`, the kernel's meanings: `on` renames directories that
/// have lower parts by recording where those are, and follows such records;
/// `follow` follows them but answers such a rename with EXDEV; `off` is
/// `follow` (the kernel's `redirect_always_follow` default); `nofollow`
/// neither creates nor follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectDir {
    On,
    Follow,
    Off,
    NoFollow,
}

impl RedirectDir {
    fn parse(v: &str) -> Result<RedirectDir, String> {
        Ok(match v {
            "on" | "1" | "true" | "yes" => RedirectDir::On,
            "follow" => RedirectDir::Follow,
            "off" | "0" | "false" | "no" => RedirectDir::Off,
            "nofollow" => RedirectDir::NoFollow,
            _ => return Err(format!("redirect_dir={v}: expected on, follow, off or nofollow")),
        })
    }

    pub fn creates(self) -> bool {
        self == RedirectDir::On
    }

    pub fn follows(self) -> bool {
        self != RedirectDir::NoFollow
    }
}

/// `passthrough=`: which opens of regular files the kernel serves straight
/// from the real file (FUSE passthrough, root daemons on kernels with it).
/// `on`: files whose data is in the upper layer (and every file of a mount
/// without a writable upper: nothing can be copied up under a reader);
/// `all`: also files read from a lower layer on a writable mount (a
/// descriptor opened on a lower file then keeps reading the lower data after
/// a copy-up, where the kernel overlay follows the copy); `off`: never.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassthroughMode {
    Off,
    On,
    All,
}

impl PassthroughMode {
    fn parse(v: &str) -> Result<PassthroughMode, String> {
        Ok(match v {
            "on" | "1" | "true" | "yes" | "auto" => PassthroughMode::On,
            "all" => PassthroughMode::All,
            "off" | "0" | "false" | "no" => PassthroughMode::Off,
            _ => return Err(format!("passthrough={v}: expected on, all or off")),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub len: u32,
}

/// Everything the filesystem and the session need from the command line.
#[derive(Clone, Debug)]
pub struct Options {
    /// Lower layers, top-most first.
    pub lowerdirs: Vec<PathBuf>,
    pub upperdir: Option<PathBuf>,
    pub workdir: Option<PathBuf>,
    /// Entry/attr cache time given to the kernel.
    pub timeout: Duration,
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// How long a worker keeps reading after a request before it sleeps
    /// (`spin=MICROSECONDS`; 0: at once).
    pub spin: Duration,
    /// Inodes the daemon keeps before it asks the kernel to hand the least
    /// recently used back (`max_inodes=N`; 0: no bound; see `prune.rs`).
    pub max_inodes: usize,
    /// fsync copied-up data and honour fsync requests (off with `volatile`/`fsync=0`).
    pub fsync: bool,
    pub redirect_dir: RedirectDir,
    pub metacopy: bool,
    pub index: bool,
    /// Asked for; refused at mount (not supported).
    pub nfs_export: bool,
    /// Use `user.overlay.*` xattrs for private markers (rootless).
    pub userxattr: bool,
    pub xattrs: bool,
    pub allow_other: bool,
    pub allow_root: bool,
    pub read_only: bool,
    pub static_nlink: bool,
    pub passthrough: PassthroughMode,
    /// Take requests through FUSE over io_uring (`io_uring`, off by default;
    /// the kernel offers it only with the fuse module's `enable_uring` set).
    pub io_uring: bool,
    pub squash_to_uid: Option<u32>,
    pub squash_to_gid: Option<u32>,
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
    /// 0: owners as stored; 2: `user.containers.override_stat` shown;
    /// `None`: 2 when the daemon is not root, else 0.
    pub xattr_permissions: Option<u8>,
    /// Plain mount flags passed to the kernel (nosuid, nodev, noexec, noatime, ...).
    pub mount_flags: Vec<String>,
    pub fsname: Option<String>,
    pub subtype: Option<String>,
    /// Options we accept but do not act on, reported once at start.
    pub warnings: Vec<String>,
}

/// The inode table's default bound: about 32 MB of inodes (64Ki, ~500 bytes each).
pub const DEFAULT_MAX_INODES: usize = 65536;

impl Default for Options {
    fn default() -> Self {
        Options {
            lowerdirs: Vec::new(),
            upperdir: None,
            workdir: None,
            timeout: Duration::from_secs(86400),
            threads: 0,
            spin: Duration::from_micros(100),
            max_inodes: DEFAULT_MAX_INODES,
            fsync: true,
            redirect_dir: RedirectDir::On,
            metacopy: false,
            index: false,
            nfs_export: false,
            userxattr: false,
            xattrs: true,
            allow_other: false,
            allow_root: false,
            read_only: false,
            static_nlink: false,
            passthrough: PassthroughMode::On,
            io_uring: false,
            squash_to_uid: None,
            squash_to_gid: None,
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            xattr_permissions: None,
            mount_flags: Vec::new(),
            fsname: None,
            subtype: None,
            warnings: Vec::new(),
        }
    }
}

/// Split on `sep`, honouring backslash escapes (`\,` `\:` `\\`).
pub fn split_escaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n) if n == sep || n == '\\' => cur.push(n),
                Some(n) => {
                    cur.push('\\');
                    cur.push(n);
                }
                None => cur.push('\\'),
            }
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// Split a `-o` string into options, keeping escaped commas inside values.
fn split_options(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out.into_iter().filter(|o| !o.is_empty()).collect()
}

fn unescape_commas(s: &str) -> String {
    s.replace("\\,", ",")
}

fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "on" | "yes" | "true" | "follow" | "auto" => Ok(true),
        "0" | "off" | "no" | "false" | "nofollow" => Ok(false),
        _ => Err(format!("invalid value for {key}: {v:?}")),
    }
}

fn parse_u32(key: &str, v: &str) -> Result<u32, String> {
    v.parse().map_err(|_| format!("invalid value for {key}: {v:?}"))
}

/// `ID:MAPPED:LEN[:ID:MAPPED:LEN...]`, an optional leading colon (podman) accepted.
pub fn parse_idmap(key: &str, v: &str) -> Result<Vec<IdMap>, String> {
    let nums: Vec<&str> = v.trim_start_matches(':').split(':').collect();
    if !nums.len().is_multiple_of(3) || nums.is_empty() {
        return Err(format!("invalid {key}: {v:?} (expected ID:MAPPED:LEN[:...])"));
    }
    nums.chunks(3)
        .map(|c| {
            Ok(IdMap { inside: parse_u32(key, c[0])?, outside: parse_u32(key, c[1])?, len: parse_u32(key, c[2])? })
        })
        .collect()
}

impl Options {
    /// Apply one comma-separated `-o` string.
    pub fn apply(&mut self, optstr: &str) -> Result<(), String> {
        for opt in split_options(optstr) {
            let (key, val) = match opt.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (opt.clone(), None),
            };
            let v = || val.clone().ok_or_else(|| format!("option {key} needs a value"));
            match key.as_str() {
                "lowerdir" => {
                    let v = unescape_commas(&v()?);
                    self.lowerdirs =
                        split_escaped(&v, ':').into_iter().filter(|s| !s.is_empty()).map(PathBuf::from).collect();
                }
                "upperdir" => self.upperdir = Some(PathBuf::from(unescape_commas(&v()?))),
                "workdir" => self.workdir = Some(PathBuf::from(unescape_commas(&v()?))),
                "timeout" => {
                    let s: f64 = v()?.parse().map_err(|_| format!("invalid timeout: {:?}", val))?;
                    if !(0.0..=1e9).contains(&s) {
                        return Err(format!("invalid timeout: {s}"));
                    }
                    self.timeout = Duration::from_secs_f64(s);
                }
                "threaded" => {
                    if !parse_bool(&key, &v()?)? {
                        self.threads = 1;
                    }
                }
                "threads" => self.threads = parse_u32(&key, &v()?)? as usize,
                "max_inodes" => self.max_inodes = parse_u32(&key, &v()?)? as usize,
                "spin" => self.spin = Duration::from_micros(parse_u32(&key, &v()?)?.min(100_000) as u64),
                "fsync" => self.fsync = parse_bool(&key, &v()?)?,
                "volatile" => self.fsync = false,
                "redirect_dir" => self.redirect_dir = RedirectDir::parse(&v()?)?,
                "metacopy" => self.metacopy = parse_bool(&key, &v()?)?,
                "index" => self.index = parse_bool(&key, &v()?)?,
                "nfs_export" => self.nfs_export = parse_bool(&key, &val.clone().unwrap_or("on".into()))?,
                "userxattr" => self.userxattr = true,
                "noxattrs" => self.xattrs = !parse_bool(&key, &val.clone().unwrap_or("1".into()))?,
                "xattr_permissions" => self.xattr_permissions = Some(parse_u32(&key, &v()?)?.min(2) as u8),
                "allow_other" => self.allow_other = true,
                "allow_root" => self.allow_root = true,
                "ro" => self.read_only = true,
                "rw" => self.read_only = false,
                "static_nlink" => self.static_nlink = true,
                "passthrough" => self.passthrough = PassthroughMode::parse(&v()?)?,
                "io_uring" => self.io_uring = parse_bool(&key, &val.clone().unwrap_or("on".into()))?,
                "squash_to_root" => {
                    self.squash_to_uid = Some(0);
                    self.squash_to_gid = Some(0);
                }
                "squash_to_uid" => self.squash_to_uid = Some(parse_u32(&key, &v()?)?),
                "squash_to_gid" => self.squash_to_gid = Some(parse_u32(&key, &v()?)?),
                "uidmapping" => self.uid_map = parse_idmap(&key, &v()?)?,
                "gidmapping" => self.gid_map = parse_idmap(&key, &v()?)?,
                "fsname" => self.fsname = Some(v()?),
                "subtype" => self.subtype = Some(v()?),
                "suid" | "nosuid" | "dev" | "nodev" | "exec" | "noexec" | "atime" | "noatime" | "diratime"
                | "nodiratime" | "relatime" | "norelatime" | "strictatime" | "sync" | "async" | "dirsync" => {
                    self.mount_flags.push(key.clone())
                }
                // Accepted for compatibility; behaviour is already what they ask for.
                "default_permissions"
                | "noacl"
                | "xino"
                | "ino32_t"
                | "writeback"
                | "kernel_cache"
                | "max_write"
                | "splice_write"
                | "splice_read"
                | "splice_move"
                | "auto_unmount"
                | "plugins"
                | "fast_ino"
                | "defaults"
                | "auto"
                | "noauto"
                | "user"
                | "nouser"
                | "users"
                | "_netdev"
                | "nofail" => {}
                k if k.starts_with("x-") => {}
                _ => self.warnings.push(format!("unknown option {opt:?} ignored")),
            }
        }
        Ok(())
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Mount { opts: Box<Options>, mountpoint: PathBuf, foreground: bool, debug: bool },
    Help,
    Version,
}

pub const USAGE: &str = "usage: unionfs [-f] [-d] -o lowerdir=A:B[,upperdir=U,workdir=W][,opts] MOUNTPOINT
       unionfs SOURCE MOUNTPOINT -o OPTIONS       (mount.fuse form)

Stacks read-only lower directories (A on top of B) under a writable upper
directory, with the kernel overlayfs's semantics and on-disk format.
Without upperdir the mount is read-only.

  -f            stay in the foreground
  -d            debug log (implies -f)
  -o OPTIONS    lowerdir=, upperdir=, workdir=, timeout=SECS, threads=N, spin=USECS,
                max_inodes=N,
                fsync=0|1, volatile, redirect_dir=, metacopy=, index=, userxattr,
                allow_other, allow_root, ro, nosuid, nodev, noexec, noatime,
                fsname=, subtype=, uidmapping=, gidmapping=, squash_to_root,
                squash_to_uid=, squash_to_gid=, static_nlink, xattr_permissions=,
                passthrough=on|all|off, io_uring=on|off
  -h, --help    this help
  -V, --version print the version";

/// Parse argv (without the program name).
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut opts = Options::default();
    let mut positional = Vec::new();
    let mut foreground = false;
    let mut debug = false;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        match a.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "-f" => foreground = true,
            "-d" | "--debug" => {
                debug = true;
                foreground = true;
            }
            "-s" => opts.threads = 1,
            "-o" => {
                i += 1;
                let o = args.get(i).ok_or("-o needs an argument")?;
                opts.apply(o)?;
            }
            s if s.starts_with("-o") => opts.apply(&s[2..])?,
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(format!("unknown argument {s:?}"));
            }
            _ => positional.push(a.clone()),
        }
        i += 1;
    }
    // `unionfs SOURCE MOUNTPOINT` (mount.fuse form) or `unionfs MOUNTPOINT`.
    let mountpoint = match positional.len() {
        1 => positional.remove(0),
        2 => {
            // The source column shows SOURCE unless fsname= says otherwise.
            if opts.fsname.is_none() && !positional[0].is_empty() {
                opts.fsname = Some(positional[0].clone());
            }
            positional.remove(1)
        }
        0 => return Err("missing MOUNTPOINT".into()),
        _ => return Err(format!("too many arguments: {}", positional.join(" "))),
    };
    if opts.lowerdirs.is_empty() {
        return Err("missing lowerdir= option".into());
    }
    if opts.upperdir.is_some() != opts.workdir.is_some() {
        return Err("upperdir= and workdir= must be given together".into());
    }
    // The kernel's rule: metacopy files are found through redirects, which
    // a writable mount must be able to make.
    if opts.metacopy {
        let conflict = match opts.redirect_dir {
            RedirectDir::Off => Some("off"),
            RedirectDir::NoFollow => Some("nofollow"),
            RedirectDir::Follow if opts.upperdir.is_some() => Some("follow"),
            _ => None,
        };
        if let Some(v) = conflict {
            return Err(format!("conflicting options: metacopy=on,redirect_dir={v}"));
        }
    }
    // The kernel's rule: the inode index lives in the work dir; without an
    // upper layer `index=on` is useless and ignored.
    if opts.upperdir.is_none() {
        opts.index = false;
    }
    Ok(Command::Mount { opts: Box::new(opts), mountpoint: PathBuf::from(mountpoint), foreground, debug })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_fuse_overlayfs_form() {
        let c = parse_args(&args(&[
            "-o",
            "lowerdir=/a:/b\\:c,upperdir=/u,workdir=/w,volatile,uidmapping=:0:100000:65536",
            "/mnt",
        ]))
        .unwrap();
        let Command::Mount { opts, mountpoint, foreground, .. } = c else { panic!() };
        assert_eq!(opts.lowerdirs, vec![PathBuf::from("/a"), PathBuf::from("/b:c")]);
        assert_eq!(opts.upperdir, Some(PathBuf::from("/u")));
        assert!(!opts.fsync);
        assert_eq!(opts.spin, Duration::from_micros(100));
        assert_eq!(opts.uid_map, vec![IdMap { inside: 0, outside: 100000, len: 65536 }]);
        assert_eq!(mountpoint, PathBuf::from("/mnt"));
        assert!(!foreground);
    }

    #[test]
    fn parses_mount_fuse_form_and_flags() {
        let c = parse_args(&args(&["none", "/m", "-o", "lowerdir=/l,ro,nosuid,bogus,spin=0", "-f"]));
        let Command::Mount { opts, mountpoint, foreground, .. } = c.unwrap() else { panic!() };
        assert!(opts.spin.is_zero());
        assert_eq!(mountpoint, PathBuf::from("/m"));
        assert!(foreground && opts.read_only);
        assert_eq!(opts.mount_flags, vec!["nosuid".to_string()]);
        assert_eq!(opts.warnings.len(), 1);
    }

    #[test]
    fn metacopy_needs_redirects_like_the_kernel() {
        let rw = |o: &str| parse_args(&args(&["-o", &format!("lowerdir=/l,upperdir=/u,workdir=/w,{o}"), "/m"]));
        let mount = |r: Result<Command, String>| match r {
            Ok(Command::Mount { opts, .. }) => opts.metacopy,
            other => panic!("{other:?}"),
        };
        assert!(mount(rw("metacopy=on")));
        assert!(!mount(rw("metacopy=off")));
        assert!(mount(rw("redirect_dir=on,metacopy=on")));
        for bad in ["redirect_dir=off", "redirect_dir=nofollow", "redirect_dir=follow"] {
            let e = rw(&format!("metacopy=on,{bad}")).expect_err(bad);
            assert!(e.contains("conflicting options"), "{e}");
        }
        // Read-only: following is enough.
        assert!(parse_args(&args(&["-o", "lowerdir=/l:/k,metacopy=on,redirect_dir=follow", "/m"])).is_ok());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse_args(&args(&["/m"])).is_err());
        assert!(parse_args(&args(&["-o", "lowerdir=/l,upperdir=/u", "/m"])).is_err());
        assert!(parse_args(&args(&["-o", "lowerdir=/l,timeout=x", "/m"])).is_err());
        assert!(parse_args(&args(&["-o", "lowerdir=/l,uidmapping=1:2", "/m"])).is_err());
        assert!(parse_args(&args(&["-o", "lowerdir=/l", "/a", "/b", "/c"])).is_err());
        assert!(matches!(parse_args(&args(&["--version"])), Ok(Command::Version)));
    }

    #[test]
    fn passthrough_modes() {
        let mut o = Options::default();
        assert_eq!(o.passthrough, PassthroughMode::On);
        for (v, m) in [("off", PassthroughMode::Off), ("all", PassthroughMode::All), ("on", PassthroughMode::On)] {
            o.apply(&format!("passthrough={v}")).unwrap();
            assert_eq!(o.passthrough, m);
        }
        assert!(o.apply("passthrough=maybe").is_err());
    }

    #[test]
    fn escaped_commas_in_paths() {
        let mut o = Options::default();
        o.apply("lowerdir=/a\\,b,upperdir=/u\\,1").unwrap();
        assert_eq!(o.lowerdirs, vec![PathBuf::from("/a,b")]);
        assert_eq!(o.upperdir, Some(PathBuf::from("/u,1")));
    }
}
