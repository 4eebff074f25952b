//! Whole-tree helpers shared by the filesystem and the store: recursive
//! removal and size (`du`) without recursion (bounded stack and fds on
//! crafted deep trees), and error text for one-line messages.

use crate::sys::at;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

/// An io::Error's message without the "(os error N)" suffix.
pub fn strip_os(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Remove everything inside a directory (not the directory itself).
///
/// Iterative: one open directory fd at a time besides `dirfd`, a heap stack of
/// names, so a tree of any depth neither overflows the stack nor runs out of
/// fds. A directory without write or search permission for its owner (0555
/// trees of Fedora images) is made writable first.
pub fn remove_contents(dirfd: RawFd) -> io::Result<()> {
    // One frame per level from dirfd down to the directory being emptied:
    // its identity (to check the way back up) and the subdirectories still
    // to remove in it. Only the current level is held open; going up is
    // `..`, checked against the recorded identity.
    struct Frame {
        name: OsString,
        id: (u64, u64),
        subdirs: Vec<OsString>,
    }
    let top = at::openat(dirfd, OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut stack = vec![Frame { name: OsString::new(), id: identity(top.as_raw_fd())?, subdirs: empty_files(dirfd)? }];
    let mut cur = top;
    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.subdirs.pop() else {
            let done = stack.pop().map(|f| f.name).unwrap_or_default();
            let Some(parent) = stack.last() else { break };
            let up = at::openat(cur.as_raw_fd(), OsStr::new(".."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            if identity(up.as_raw_fd())? != parent.id {
                return Err(io::Error::from_raw_os_error(libc::EBUSY));
            }
            cur = up;
            at::unlinkat(cur.as_raw_fd(), &done, libc::AT_REMOVEDIR)?;
            continue;
        };
        match at::unlinkat(cur.as_raw_fd(), &name, libc::AT_REMOVEDIR) {
            Ok(()) => continue,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EEXIST | libc::EACCES)) => {}
            Err(e) => return Err(e),
        }
        make_writable(cur.as_raw_fd(), &name)?;
        let sub = at::openat(cur.as_raw_fd(), &name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)?;
        let subdirs = empty_files(sub.as_raw_fd())?;
        stack.push(Frame { name, id: identity(sub.as_raw_fd())?, subdirs });
        cur = sub;
    }
    Ok(())
}

/// Remove `dirfd/name` and, for a directory, everything below it (with
/// [`remove_contents`]; the directory itself is made writable first).
/// Absent already is success.
pub fn remove_tree_at(dirfd: RawFd, name: &OsStr) -> io::Result<()> {
    let st = match at::lstatat(dirfd, name) {
        Ok(st) => st,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return match at::unlinkat(dirfd, name, 0) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
            _ => Ok(()),
        };
    }
    make_writable(dirfd, name)?;
    let d = at::openat(dirfd, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)?;
    remove_contents(d.as_raw_fd())?;
    drop(d);
    match at::unlinkat(dirfd, name, libc::AT_REMOVEDIR) {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
        _ => Ok(()),
    }
}

/// [`remove_tree_at`] for a path (its parent directories are followed).
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let pfd = match at::openat(libc::AT_FDCWD, parent.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_tree_at(pfd.as_raw_fd(), name)
}

/// Visit every entry below a directory (pre-order, symlinks not followed):
/// `visit(parent_fd, name, stat)`. Iterative like [`remove_contents`]: one
/// directory open at a time, so any depth is fine under a small fd limit.
/// Directories that vanish or cannot be read (a 0000 directory of a rootless
/// layer) are skipped.
pub fn walk(dirfd: RawFd, mut visit: impl FnMut(RawFd, &OsStr, &at::Stat) -> io::Result<()>) -> io::Result<()> {
    struct Frame {
        id: (u64, u64),
        subdirs: Vec<OsString>,
    }
    let mut scan = |dfd: RawFd| -> io::Result<Vec<OsString>> {
        let mut dirs = Vec::new();
        for (name, _, _) in at::read_dir_fd(dfd)? {
            let name = at::os(&name);
            let st = match at::lstatat(dfd, name) {
                Ok(st) => st,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e),
            };
            visit(dfd, name, &st)?;
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                dirs.push(name.to_os_string());
            }
        }
        Ok(dirs)
    };
    let top = at::openat(dirfd, OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut stack = vec![Frame { id: identity(top.as_raw_fd())?, subdirs: scan(top.as_raw_fd())? }];
    let mut cur = top;
    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.subdirs.pop() else {
            stack.pop();
            let Some(parent) = stack.last() else { break };
            let up = at::openat(cur.as_raw_fd(), OsStr::new(".."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            if identity(up.as_raw_fd())? != parent.id {
                return Err(io::Error::from_raw_os_error(libc::EBUSY));
            }
            cur = up;
            continue;
        };
        let sub = match at::openat(cur.as_raw_fd(), &name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EACCES)) => continue,
            Err(e) => return Err(e),
        };
        let subdirs = scan(sub.as_raw_fd())?;
        stack.push(Frame { id: identity(sub.as_raw_fd())?, subdirs });
        cur = sub;
    }
    Ok(())
}

/// Bytes of everything below a directory that is not a directory (st_size,
/// symlinks not followed), walked as [`walk`] does.
pub fn du(dirfd: RawFd) -> io::Result<u64> {
    let mut total = 0u64;
    walk(dirfd, |_, _, st| {
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            total += st.st_size as u64;
        }
        Ok(())
    })?;
    Ok(total)
}

/// [`du`] of a path; 0 when it cannot be read.
pub fn du_path(p: &Path) -> u64 {
    at::openat(libc::AT_FDCWD, p.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .and_then(|fd| du(fd.as_raw_fd()))
        .unwrap_or(0)
}

fn identity(fd: RawFd) -> io::Result<(u64, u64)> {
    let st = at::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// Unlink every non-directory in a directory; returns its subdirectories.
fn empty_files(dfd: RawFd) -> io::Result<Vec<OsString>> {
    let mut dirs = Vec::new();
    for (name, dtype, _) in at::read_dir_fd(dfd)? {
        let name = at::os(&name).to_os_string();
        let is_dir = if dtype == libc::DT_UNKNOWN {
            at::lstatat(dfd, &name).map(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR).unwrap_or(false)
        } else {
            dtype == libc::DT_DIR
        };
        if is_dir {
            dirs.push(name);
        } else {
            at::unlinkat(dfd, &name, 0)?;
        }
    }
    Ok(dirs)
}

/// Give the owner rwx on a directory so its contents can be listed and removed.
fn make_writable(dirfd: RawFd, name: &OsStr) -> io::Result<()> {
    let st = at::lstatat(dirfd, name)?;
    if st.st_mode & 0o700 != 0o700 {
        let d = at::openat(dirfd, name, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)?;
        at::fchmod(d.as_raw_fd(), (st.st_mode & 0o7777) | 0o700)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_a_deep_tree_with_read_only_directories() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let top =
            at::openat(libc::AT_FDCWD, tmp.path().as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0).expect("open");
        // 5000 levels: a path far beyond PATH_MAX and a recursion depth that
        // one fd per level would not survive under a small RLIMIT_NOFILE.
        let mut cur = at::openat(top.as_raw_fd(), OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0).expect(".");
        for i in 0..5000 {
            let n = OsString::from(format!("d{}", i % 3));
            at::mkdirat(cur.as_raw_fd(), &n, 0o755).expect("mkdir");
            let f = at::openat(cur.as_raw_fd(), OsStr::new("f"), libc::O_CREAT | libc::O_WRONLY, 0o644);
            drop(f);
            cur = at::openat(cur.as_raw_fd(), &n, libc::O_RDONLY | libc::O_DIRECTORY, 0).expect("open level");
        }
        // A read-only directory with contents, as in Fedora images.
        at::mkdirat(cur.as_raw_fd(), OsStr::new("ro"), 0o755).expect("mkdir ro");
        let ro = at::openat(cur.as_raw_fd(), OsStr::new("ro"), libc::O_RDONLY | libc::O_DIRECTORY, 0).expect("ro");
        let x = at::openat(ro.as_raw_fd(), OsStr::new("x"), libc::O_CREAT | libc::O_WRONLY, 0o644).expect("x");
        at::pwrite(x.as_raw_fd(), b"abc", 0).expect("write");
        drop(x);
        at::fchmod(ro.as_raw_fd(), 0o555).expect("chmod");
        drop((cur, ro));
        assert_eq!(du(top.as_raw_fd()).expect("du"), 3);
        remove_contents(top.as_raw_fd()).expect("remove_contents");
        assert!(at::read_dir_fd(top.as_raw_fd()).expect("list").is_empty());
    }
}
