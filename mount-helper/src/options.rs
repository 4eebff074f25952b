//! Option filtering: which of mount(8)'s `-o` list reaches unionfs.
//!
//! - mount(8)/fstab-only options are dropped: `defaults`, `auto`, `noauto`,
//!   `user`, `users`, `nouser`, `owner`, `group`, `_netdev`, `nofail`, `x-*`,
//!   `comment=*` (mount(8) already keeps some of these back; fstab and
//!   systemd pass the rest).
//! - Everything unionfs's own parser knows is passed on unchanged: layer
//!   options, `ro`/`rw`, VFS flags (`nosuid`, `noexec`, `noatime`, ...) and
//!   FUSE options (`allow_other`, `allow_root`, `default_permissions`,
//!   `fsname=`, `subtype=`, ...).
//! - An unknown option is an error (dropped with a warning under `-s`); an
//!   invalid value always is.
//!
//! unionfs's parser ([`unionfs::fs::options::Options::apply`]) is the one
//! authority on what unionfs accepts: an option it would only warn about is
//! "unknown" here.

use crate::exit::{Failure, FAILURE};
use std::path::PathBuf;
use unionfs::fs::options::Options;

/// Options that belong to mount(8), fstab or systemd, never to the filesystem.
const MOUNT8_ONLY: &[&str] =
    &["defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group", "_netdev", "nofail"];

/// Is `opt` (`key` or `key=value`) one of mount(8)'s, to be dropped?
pub fn is_mount8_only(opt: &str) -> bool {
    let key = opt.split_once('=').map_or(opt, |(k, _)| k);
    MOUNT8_ONLY.contains(&key) || key.starts_with("x-") || key == "comment"
}

/// Split a comma-separated list; a backslash keeps the next character (an
/// escaped comma stays in its option, escapes are kept for unionfs).
pub fn split(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().filter(|o| !o.is_empty()).collect()
}

/// The outcome of filtering.
#[derive(Debug)]
pub struct Filtered {
    /// Passed to unionfs, in order.
    pub pass: Vec<String>,
    /// Dropped as mount(8)'s own.
    pub dropped: Vec<String>,
    /// Unknown options dropped under `-s`.
    pub sloppy_dropped: Vec<String>,
    /// What unionfs will make of `pass`.
    pub parsed: Options,
}

/// Filter `list` (already split). Errors: unknown option (unless `sloppy`),
/// invalid value: status 32 ("bad option"), as mount(8) reports a kernel
/// filesystem's refusal of an option.
pub fn filter(list: &[String], sloppy: bool) -> Result<Filtered, Failure> {
    let mut f =
        Filtered { pass: Vec::new(), dropped: Vec::new(), sloppy_dropped: Vec::new(), parsed: Options::default() };
    for opt in list {
        if is_mount8_only(opt) {
            f.dropped.push(opt.clone());
            continue;
        }
        let mut probe = Options::default();
        probe.apply(opt).map_err(|e| Failure::new(FAILURE, format!("bad option {opt:?}: {e}")))?;
        if !probe.warnings.is_empty() {
            if sloppy {
                f.sloppy_dropped.push(opt.clone());
                continue;
            }
            return Err(Failure::new(FAILURE, format!("unknown option {opt:?}")));
        }
        f.parsed.apply(opt).map_err(|e| Failure::new(FAILURE, format!("bad option {opt:?}: {e}")))?;
        f.pass.push(opt.clone());
    }
    Ok(f)
}

impl Filtered {
    /// Does the list already set `key` (`key` or `key=...`)?
    pub fn has(&self, key: &str) -> bool {
        self.pass.iter().any(|o| o == key || o.strip_prefix(key).is_some_and(|r| r.starts_with('=')))
    }

    /// Every layer path, named by its option: lowerdir entries, upperdir, workdir.
    pub fn layers(&self) -> Vec<(&'static str, PathBuf)> {
        let o = &self.parsed;
        let mut v: Vec<(&'static str, PathBuf)> = o.lowerdirs.iter().map(|p| ("lowerdir", p.clone())).collect();
        v.extend(o.upperdir.iter().map(|p| ("upperdir", p.clone())));
        v.extend(o.workdir.iter().map(|p| ("workdir", p.clone())));
        v
    }

    /// The layer options make a mount: lowerdir given, upper and work together,
    /// every path absolute (fstab and mount(8) have no working directory to
    /// resolve a relative one against).
    pub fn check_layers(&self) -> Result<(), Failure> {
        if self.parsed.lowerdirs.is_empty() {
            return Err(Failure::new(FAILURE, "missing lowerdir= option"));
        }
        if self.parsed.upperdir.is_some() != self.parsed.workdir.is_some() {
            return Err(Failure::new(FAILURE, "upperdir= and workdir= must be given together"));
        }
        for (name, p) in self.layers() {
            if !p.is_absolute() {
                return Err(Failure::new(
                    FAILURE,
                    format!("{name} {:?} is relative: layer paths must be absolute", p.display().to_string()),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str, sloppy: bool) -> Result<Filtered, Failure> {
        filter(&split(s), sloppy)
    }

    #[test]
    fn split_keeps_escapes() {
        assert_eq!(split("a,b\\,c,,d=1"), vec!["a", "b\\,c", "d=1"]);
        assert_eq!(split(""), Vec::<String>::new());
        assert_eq!(split("lowerdir=/a\\:b:/c"), vec!["lowerdir=/a\\:b:/c"]);
    }

    #[test]
    fn mount8_options_are_dropped() {
        let r = f(
            "rw,defaults,auto,noauto,user,users,nouser,owner,group,_netdev,nofail,x-systemd.requires-mounts-for=/l,\
             x-gvfs-show,comment=systemd.automount,lowerdir=/l",
            false,
        )
        .unwrap();
        assert_eq!(r.pass, vec!["rw", "lowerdir=/l"]);
        assert_eq!(r.dropped.len(), 13);
        assert!(r.sloppy_dropped.is_empty());
    }

    #[test]
    fn filesystem_vfs_and_fuse_options_pass() {
        let list = "lowerdir=/a:/b,upperdir=/u,workdir=/w,ro,nosuid,nodev,noexec,noatime,sync,dirsync,\
                    allow_other,allow_root,default_permissions,fsname=x,subtype=unionfs,auto_unmount,\
                    timeout=5,threads=2,volatile,userxattr,uidmapping=0:1000:1,squash_to_root,static_nlink";
        let r = f(list, false).unwrap();
        assert_eq!(r.pass, split(list));
        assert!(r.dropped.is_empty());
        assert!(r.parsed.read_only && r.parsed.allow_other && r.parsed.userxattr);
        assert_eq!(r.layers().len(), 4);
        r.check_layers().unwrap();
        assert!(r.has("fsname") && r.has("ro") && !r.has("rw") && !r.has("fsnam"));
    }

    #[test]
    fn unknown_and_invalid_options_fail_with_32() {
        for bad in ["lowerdir=/l,bogus", "lowerdir=/l,remount", "lowerdir=/l,bind", "lowerdir=/l,max_read=4096"] {
            let e = f(bad, false).expect_err(bad);
            assert_eq!(e.code, FAILURE);
            assert!(e.msg.unwrap().starts_with("unknown option"), "{bad}");
        }
        for bad in ["lowerdir=/l,timeout=x", "lowerdir=/l,uidmapping=1:2", "lowerdir", "lowerdir=/l,fsync=maybe"] {
            let e = f(bad, true).expect_err(bad);
            assert_eq!(e.code, FAILURE);
            assert!(e.msg.unwrap().starts_with("bad option"), "{bad}");
        }
    }

    #[test]
    fn sloppy_drops_unknown_options() {
        let r = f("lowerdir=/l,bogus,nodev,other=1", true).unwrap();
        assert_eq!(r.pass, vec!["lowerdir=/l", "nodev"]);
        assert_eq!(r.sloppy_dropped, vec!["bogus", "other=1"]);
    }

    #[test]
    fn layer_rules() {
        let check = |s: &str| f(s, false).unwrap().check_layers();
        check("lowerdir=/a:/b\\:c,upperdir=/u,workdir=/w").unwrap();
        check("lowerdir=/a").unwrap();
        for bad in [
            "upperdir=/u,workdir=/w",
            "lowerdir=/a,upperdir=/u",
            "lowerdir=/a,workdir=/w",
            "lowerdir=a",
            "lowerdir=/a:b",
            "lowerdir=/a:./b",
            "lowerdir=/a,upperdir=u,workdir=/w",
            "lowerdir=/a,upperdir=/u,workdir=../w",
        ] {
            let e = check(bad).expect_err(bad);
            assert_eq!(e.code, FAILURE, "{bad}");
        }
        let e = check("lowerdir=/a:rel").unwrap_err();
        assert_eq!(e.msg.as_deref(), Some("lowerdir \"rel\" is relative: layer paths must be absolute"));
    }
}
