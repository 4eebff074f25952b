//! From the helper's arguments to the unionfs command line: option
//! filtering, the user-mount policy, the checks made before anything runs.

use crate::args::Args;
use crate::exit::{os_msg, Failure, FAILURE, USAGE};
use crate::options::{filter, split, Filtered};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What will run.
#[derive(Debug)]
pub struct Plan {
    /// The options given to unionfs (`-o`), joined.
    pub options: String,
    pub dir: PathBuf,
    /// Mount namespace file to enter first (`-N`).
    pub namespace: Option<PathBuf>,
    pub filtered: Filtered,
}

/// The options that make an fstab line mountable by ordinary users.
const USER_MOUNTABLE: &[&str] = &["user", "users", "owner", "group"];

/// Build the plan. `as_root`: the helper runs with euid 0. Otherwise this is
/// a user mount: mount(8) runs helpers with the user's own ids, and hands
/// them fstab lines without `user`/`users` too, so the helper keeps the
/// fstab rule itself (exit 1 without one of them). unionfs then mounts
/// through fusermount3 (whose own rules apply: a mountpoint the user may
/// write, `allow_other` only with `user_allow_other` in /etc/fuse.conf) and
/// keeps its private xattrs in `user.overlay.*` (`userxattr` is added).
pub fn plan(args: &Args, as_root: bool) -> Result<Plan, Failure> {
    let mut list = Vec::new();
    if args.read_only {
        list.push("ro".to_string());
    }
    if args.read_write {
        list.push("rw".to_string());
    }
    for o in &args.options {
        list.extend(split(o));
    }
    let mut filtered = filter(&list, args.sloppy)?;
    let user_mountable = filtered.dropped.iter().any(|o| USER_MOUNTABLE.contains(&o.split('=').next().unwrap_or(o)));
    if !as_root && !user_mountable {
        return Err(Failure::new(
            USAGE,
            "only root can mount this: an ordinary user needs `user` or `users` in the fstab line (or -o user)",
        ));
    }
    filtered.check_layers()?;
    // The source mount(8) and `mount -a` match fstab lines against.
    if !filtered.has("fsname") && !args.spec.is_empty() && !args.spec.contains([',', '\\']) {
        filtered.pass.push(format!("fsname={}", args.spec));
    }
    if !as_root && !filtered.has("userxattr") {
        filtered.pass.push("userxattr".into());
    }
    let namespace = args.namespace.as_deref().map(|ns| match ns.parse::<u32>() {
        Ok(pid) => PathBuf::from(format!("/proc/{pid}/ns/mnt")),
        Err(_) => PathBuf::from(ns),
    });
    Ok(Plan { options: filtered.pass.join(","), dir: args.dir.clone(), namespace, filtered })
}

/// `path` must be an existing directory.
fn check_dir(what: &str, path: &Path) -> Result<(), Failure> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Failure::new(FAILURE, format!("{what} {}: not a directory", path.display()))),
        Err(e) => Err(Failure::new(FAILURE, format!("{what} {}: {}", path.display(), os_msg(&e)))),
    }
}

impl Plan {
    /// The mountpoint and every layer are directories. Skipped with `-N`: the
    /// paths are the other namespace's (unionfs checks them there).
    pub fn check_dirs(&self) -> Result<(), Failure> {
        if self.namespace.is_some() {
            return Ok(());
        }
        check_dir("mountpoint", &self.dir)?;
        for (name, p) in self.filtered.layers() {
            check_dir(name, &p)?;
        }
        Ok(())
    }

    /// Program and arguments: `unionfs -o OPTIONS DIR`, under
    /// `nsenter --mount=NS --` with `-N`.
    pub fn argv(&self, unionfs: &Path) -> (OsString, Vec<OsString>) {
        let main: Vec<OsString> = vec!["-o".into(), self.options.clone().into(), self.dir.clone().into()];
        match &self.namespace {
            None => (unionfs.into(), main),
            Some(ns) => {
                let mut mount_arg = OsString::from("--mount=");
                mount_arg.push(ns);
                let mut v = vec![mount_arg, "--".into(), unionfs.into()];
                v.extend(main);
                ("nsenter".into(), v)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{parse, Parsed};

    fn args(v: &[&str]) -> Args {
        match parse(std::iter::once("mount.unionfs").chain(v.iter().copied()).map(OsString::from).collect()) {
            Ok(Parsed::Mount(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn root_mount_from_fstab() {
        // What mount(8) passes for `none /m unionfs defaults,nofail,lowerdir=...,x-foo 0 0`.
        let a = args(&["none", "/m", "-o", "rw,lowerdir=/a:/b,upperdir=/u,workdir=/w,nofail"]);
        let p = plan(&a, true).unwrap();
        assert_eq!(p.options, "rw,lowerdir=/a:/b,upperdir=/u,workdir=/w,fsname=none");
        let (prog, argv) = p.argv(Path::new("/usr/bin/unionfs"));
        assert_eq!(prog, "/usr/bin/unionfs");
        assert_eq!(argv, ["-o", "rw,lowerdir=/a:/b,upperdir=/u,workdir=/w,fsname=none", "/m"]);
    }

    #[test]
    fn user_mount_adds_userxattr() {
        // What mount(8) passes (as the user) for an fstab line with `user`.
        let a = args(&["none", "/m", "-o", "rw,noexec,nosuid,nodev,lowerdir=/a,user,_netdev,nofail"]);
        let p = plan(&a, false).unwrap();
        assert_eq!(p.options, "rw,noexec,nosuid,nodev,lowerdir=/a,fsname=none,userxattr");
        let a = args(&["mysrc", "/m", "-o", "users,lowerdir=/a,userxattr,fsname=given"]);
        assert_eq!(plan(&a, false).unwrap().options, "lowerdir=/a,userxattr,fsname=given");
        // A line without user/users: root only.
        let a = args(&["none", "/m", "-o", "rw,lowerdir=/a,nofail"]);
        assert_eq!(plan(&a, false).unwrap_err().code, USAGE);
        assert!(plan(&a, true).is_ok());
    }

    #[test]
    fn flags_and_namespace() {
        let a = args(&["none", "/m", "-r", "-N", "42", "-o", "lowerdir=/a"]);
        let p = plan(&a, true).unwrap();
        assert!(p.filtered.parsed.read_only);
        assert_eq!(p.options, "ro,lowerdir=/a,fsname=none");
        let (prog, argv) = p.argv(Path::new("/bin/unionfs"));
        assert_eq!(prog, "nsenter");
        assert_eq!(argv, ["--mount=/proc/42/ns/mnt", "--", "/bin/unionfs", "-o", "ro,lowerdir=/a,fsname=none", "/m"]);
        let a = args(&["none", "/m", "-N", "/run/netns/x", "-o", "lowerdir=/a"]);
        assert_eq!(plan(&a, true).unwrap().namespace, Some(PathBuf::from("/run/netns/x")));
        // -N: the directories are the other namespace's, not checked here.
        let a = args(&["none", "/nonexistent/m", "-N", "1", "-o", "lowerdir=/nonexistent/a"]);
        plan(&a, true).unwrap().check_dirs().unwrap();
    }

    #[test]
    fn directories_are_checked() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().display().to_string();
        std::fs::write(t.path().join("file"), "x").unwrap();
        let check = |dir: &str, opts: &str| plan(&args(&["none", dir, "-o", opts]), true).unwrap().check_dirs();
        check(&d, &format!("lowerdir={d}")).unwrap();
        for (dir, opts, want) in [
            (format!("{d}/missing"), format!("lowerdir={d}"), "mountpoint"),
            (format!("{d}/file"), format!("lowerdir={d}"), "not a directory"),
            (d.clone(), format!("lowerdir={d}:{d}/missing"), "lowerdir"),
            (d.clone(), format!("lowerdir={d}/file"), "not a directory"),
            (d.clone(), format!("lowerdir={d},upperdir={d}/file,workdir={d}"), "upperdir"),
            (d.clone(), format!("lowerdir={d},upperdir={d},workdir={d}/missing"), "No such file"),
        ] {
            let e = check(&dir, &opts).expect_err(&opts);
            assert_eq!(e.code, FAILURE);
            let msg = e.msg.unwrap();
            assert!(msg.contains(want), "{opts}: {msg}");
        }
    }
}
