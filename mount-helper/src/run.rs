//! Find unionfs, run it, and turn its outcome into mount(8)'s status.

use crate::exit::{os_msg, Failure, FAILURE, SYSERR};
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Where mount(8) run by a user leaves no PATH (it clears the environment).
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where unionfs is looked for: next to this helper's real file (symlinks
/// resolved: the build directory, or an install's `PREFIX/sbin`), in the
/// sibling `../bin` (`PREFIX/bin`), then on PATH (or a default PATH).
pub fn candidates(exe: Option<&Path>, path: Option<OsString>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(dir) = exe.and_then(Path::parent) {
        v.push(dir.join("unionfs"));
        if let Some(prefix) = dir.parent() {
            v.push(prefix.join("bin/unionfs"));
        }
    }
    let path = path.filter(|p| !p.is_empty()).unwrap_or_else(|| DEFAULT_PATH.into());
    v.extend(std::env::split_paths(&path).filter(|d| d.is_absolute()).map(|d| d.join("unionfs")));
    v
}

/// The unionfs binary to run.
pub fn locate() -> Result<PathBuf, Failure> {
    let exe = std::env::current_exe().ok();
    candidates(exe.as_deref(), std::env::var_os("PATH"))
        .into_iter()
        .find(|p| is_executable(p))
        .ok_or_else(|| Failure::new(SYSERR, "unionfs not found next to mount.unionfs nor on PATH"))
}

/// unionfs's status as mount(8)'s: it printed its own one-line error.
pub fn map_status(status: ExitStatus) -> Result<(), Failure> {
    if status.success() {
        Ok(())
    } else {
        Err(Failure::silent(FAILURE))
    }
}

/// Run and wait: unionfs exits once the mount is live (its daemon stays).
pub fn run(prog: &OsString, argv: &[OsString]) -> Result<(), Failure> {
    let status = Command::new(prog)
        .args(argv)
        .status()
        .map_err(|e| Failure::new(SYSERR, format!("cannot run {}: {}", Path::new(prog).display(), os_msg(&e))))?;
    map_status(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn lookup_order() {
        let c = candidates(Some(Path::new("/opt/u/sbin/mount.unionfs")), Some("/a:rel:/b".into()));
        let want = ["/opt/u/sbin/unionfs", "/opt/u/bin/unionfs", "/a/unionfs", "/b/unionfs"];
        assert_eq!(c, want.iter().map(PathBuf::from).collect::<Vec<_>>());
        // No PATH (mount(8) run by a user): the default one.
        let c = candidates(None, None);
        assert_eq!(c.first(), Some(&PathBuf::from("/usr/local/bin/unionfs")));
        assert!(c.contains(&PathBuf::from("/usr/bin/unionfs")));
    }

    #[test]
    fn statuses() {
        assert_eq!(map_status(ExitStatus::from_raw(0)), Ok(()));
        assert_eq!(map_status(ExitStatus::from_raw(1 << 8)), Err(Failure::silent(FAILURE)));
        assert_eq!(map_status(ExitStatus::from_raw(2 << 8)), Err(Failure::silent(FAILURE)));
        assert_eq!(map_status(ExitStatus::from_raw(9)), Err(Failure::silent(FAILURE)));
        let e = run(&"/nonexistent/unionfs".into(), &[]).unwrap_err();
        assert_eq!(e.code, SYSERR);
    }
}
