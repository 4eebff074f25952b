//! Path resolution inside a container root, as `chroot` would see it: one
//! component at a time with `O_NOFOLLOW`, symlinks read and followed by us,
//! an absolute target restarting at the root and `..` stopping there. So a
//! symlink in an image (`/escape -> /etc`, `x -> ../../../..`) always lands
//! inside the root and never on the host.

use super::at;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// Symlinks followed before ELOOP (the kernel's limit).
const MAX_LINKS: u32 = 40;

/// Where a path led.
pub struct Resolved {
    /// The directory holding the last component (the root for `/`).
    pub parent: OwnedFd,
    /// The last component (None for the root itself).
    pub name: Option<OsString>,
    /// The object (`O_PATH`), when it exists.
    pub obj: Option<OwnedFd>,
}

/// How to resolve.
#[derive(Clone, Copy, Default)]
pub struct How {
    /// Make missing directories on the way (0755), the last one too.
    pub mkdir: bool,
    /// Follow a symlink in the last component (else it is the object).
    pub follow_last: bool,
    /// A missing last component is not an error (`obj` is None).
    pub allow_missing_last: bool,
}

fn dup_dir(fd: RawFd) -> io::Result<OwnedFd> {
    at::openat(fd, OsStr::new("."), libc::O_PATH | libc::O_DIRECTORY, 0)
}

fn open_path(dir: RawFd, name: &OsStr, flags: i32) -> io::Result<OwnedFd> {
    at::openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW | flags, 0)
}

fn push_components(todo: &mut Vec<OsString>, path: &[u8]) {
    for c in path.split(|b| *b == b'/').rev() {
        if !c.is_empty() && c != b"." {
            todo.push(OsStr::from_bytes(c).to_os_string());
        }
    }
}

/// Resolve `path` (relative to the root `root`; a leading `/` means the root).
pub fn resolve(root: RawFd, path: &[u8], how: How) -> io::Result<Resolved> {
    let mut todo = Vec::new();
    push_components(&mut todo, path);
    // The directories from the root down to the current one (the root excluded).
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut links = 0;
    let cur = |stack: &Vec<OwnedFd>| stack.last().map_or(root, |f| f.as_raw_fd());
    while let Some(c) = todo.pop() {
        if c == ".." {
            stack.pop();
            continue;
        }
        let last = todo.is_empty();
        let dir = cur(&stack);
        let st = match at::lstatat(dir, &c) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                if how.mkdir {
                    match at::mkdirat(dir, &c, 0o755) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                    todo.push(c);
                    continue;
                }
                if last && how.allow_missing_last {
                    return Ok(Resolved { parent: dup_dir(dir)?, name: Some(c), obj: None });
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        match st.st_mode & libc::S_IFMT {
            libc::S_IFLNK if !last || how.follow_last => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = at::readlinkat(dir, &c)?;
                if target.starts_with(b"/") {
                    stack.clear();
                }
                push_components(&mut todo, &target);
            }
            libc::S_IFDIR => {
                let fd = open_path(dir, &c, libc::O_DIRECTORY)?;
                if last {
                    return Ok(Resolved { parent: dup_dir(dir)?, name: Some(c), obj: Some(fd) });
                }
                stack.push(fd);
            }
            _ if last => {
                if how.mkdir {
                    return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
                }
                let fd = open_path(dir, &c, 0)?;
                return Ok(Resolved { parent: dup_dir(dir)?, name: Some(c), obj: Some(fd) });
            }
            _ => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
        }
    }
    // The path ended at a directory reached through `..`, a symlink or `/`.
    let dir = cur(&stack);
    Ok(Resolved { parent: dup_dir(dir)?, name: None, obj: Some(dup_dir(dir)?) })
}

/// The object at `path` inside the root, every symlink followed in the root.
pub fn open(root: RawFd, path: &[u8]) -> io::Result<OwnedFd> {
    let r = resolve(root, path, How { follow_last: true, ..How::default() })?;
    r.obj.ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
}

/// `mkdir -p` inside the root; returns the directory (`O_PATH`).
pub fn mkdir_all(root: RawFd, path: &[u8]) -> io::Result<OwnedFd> {
    let r = resolve(root, path, How { mkdir: true, follow_last: true, ..How::default() })?;
    r.obj.ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        std::fs::create_dir_all(t.path().join("outside")).expect("mkdir");
        symlink("/etc", root.join("abs")).expect("symlink");
        symlink("../../../../outside", root.join("rel")).expect("symlink");
        symlink("/nowhere/deep", root.join("dangling")).expect("symlink");
        let rfd = at::openat(libc::AT_FDCWD, root.as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0).expect("root");
        let r = rfd.as_raw_fd();
        let p = |fd: &OwnedFd| at::fd_path(fd.as_raw_fd());
        assert_eq!(p(&open(r, b"/abs").expect("abs")), root.join("etc"));
        // `..` stops at the root: `rel` is the root's `outside` (missing), made inside.
        assert_eq!(open(r, b"/rel").err().and_then(|e| e.raw_os_error()), Some(libc::ENOENT));
        assert_eq!(p(&mkdir_all(r, b"/rel/x").expect("mkdir")), root.join("outside/x"));
        assert_eq!(p(&mkdir_all(r, b"/dangling").expect("dangling")), root.join("nowhere/deep"));
        assert_eq!(p(&open(r, b"/../../etc/./").expect("dots")), root.join("etc"));
        assert!(open(r, b"/missing").is_err());
        assert!(!t.path().join("nowhere").exists() && !t.path().join("outside/x").exists());
    }
}
