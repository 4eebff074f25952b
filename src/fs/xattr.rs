//! Extended attributes through the mount.
//!
//! The overlay's private xattrs (`trusted.overlay.*`, and `user.overlay.*` in
//! userxattr mode) are hidden. As in the kernel (6.7+), a private name set
//! through the mount is stored escaped (`trusted.overlay.overlay.NAME`) and
//! shown back unescaped, so an overlay can be built on top of this one. Any
//! change copies the object up first.

use crate::fs::attr::OVERRIDE_XATTR;
use crate::fs::copy_up::copy_up;
use crate::fs::inode::Inode;
use crate::fs::lookup::err;
use crate::fs::UnionFs;
use crate::sys::xattr::{self, Target};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

fn target(ino: &Inode, fd: RawFd) -> Target {
    if ino.is_dir() {
        Target::Fd(fd)
    } else {
        // Also right for symlinks: the magic link leads to the link itself.
        Target::Path(fd)
    }
}

fn check_enabled(fs: &UnionFs) -> io::Result<()> {
    if fs.opts.xattrs {
        Ok(())
    } else {
        Err(err(libc::ENOTSUP))
    }
}

/// The directory carries a default POSIX ACL (new objects in it take that
/// instead of the umask).
pub fn has_default_acl(ino: &Inode) -> bool {
    ino.is_dir()
        && ino
            .snapshot()
            .top_fd()
            .is_ok_and(|fd| matches!(xattr::get(Target::Fd(fd.as_raw_fd()), OsStr::new(DEFAULT_ACL)), Ok(Some(_))))
}

const DEFAULT_ACL: &str = "system.posix_acl_default";

/// The owner record is the union's own while it shows owners from it.
fn is_override(fs: &UnionFs, name: &[u8]) -> bool {
    fs.override_owners && name == OVERRIDE_XATTR.as_bytes()
}

pub fn get(fs: &UnionFs, ino: &Inode, name: &OsStr) -> io::Result<Vec<u8>> {
    check_enabled(fs)?;
    if is_override(fs, name.as_bytes()) {
        return Err(err(libc::ENODATA));
    }
    let top = ino.snapshot().top_fd()?;
    let stored = fs.layers.escape(name);
    xattr::get(target(ino, top.as_raw_fd()), &stored)?.ok_or_else(|| err(libc::ENODATA))
}

/// Names, each followed by a NUL, as listxattr returns them.
pub fn list(fs: &UnionFs, ino: &Inode) -> io::Result<Vec<u8>> {
    if !fs.opts.xattrs {
        return Ok(Vec::new());
    }
    let top = ino.snapshot().top_fd()?;
    let mut out = Vec::new();
    for n in xattr::list(target(ino, top.as_raw_fd()))? {
        if is_override(fs, &n) {
            continue;
        }
        if let Some(shown) = fs.layers.unescape(&n) {
            out.extend_from_slice(&shown);
            out.push(0);
        }
    }
    Ok(out)
}

pub fn set(fs: &UnionFs, ino: &Arc<Inode>, name: &OsStr, value: &[u8], flags: i32) -> io::Result<()> {
    check_enabled(fs)?;
    if is_override(fs, name.as_bytes()) {
        return Err(err(libc::EPERM));
    }
    fs.check_writable()?;
    let up = copy_up(fs, ino)?.fd()?;
    xattr::set(target(ino, up.as_raw_fd()), &fs.layers.escape(name), value, flags)
}

pub fn remove(fs: &UnionFs, ino: &Arc<Inode>, name: &OsStr) -> io::Result<()> {
    check_enabled(fs)?;
    if is_override(fs, name.as_bytes()) {
        return Err(err(libc::EPERM));
    }
    fs.check_writable()?;
    // Nothing to remove needs no copy-up.
    get(fs, ino, name)?;
    let up = copy_up(fs, ino)?.fd()?;
    xattr::remove(target(ino, up.as_raw_fd()), &fs.layers.escape(name))
}

#[cfg(test)]
mod tests {
    use crate::fs::layers::Layers;
    use crate::fs::real::FdCache;
    use std::ffi::{OsStr, OsString};

    fn layers(prefix: &'static str) -> Layers {
        Layers {
            layers: Vec::new(),
            has_upper: false,
            work: None,
            xattr_prefix: prefix,
            ino_shift: 0,
            cache: FdCache::new(16),
            root_user: true,
            workdir_lock: None,
            follow_redirects: true,
            metacopy: false,
            names: Default::default(),
            index: None,
            no_reflink: Default::default(),
        }
    }

    #[test]
    fn private_names_are_escaped_and_hidden() {
        let l = layers("user.overlay.");
        assert!(l.is_private(OsStr::new("trusted.overlay.opaque")));
        assert!(l.is_private(OsStr::new("user.overlay.origin")));
        assert!(l.is_private(OsStr::new("user.fuseoverlayfs.opaque")));
        assert!(!l.is_private(OsStr::new("trusted.overlay.overlay.opaque")));
        assert!(!l.is_private(OsStr::new("user.mime")));
        assert_eq!(l.escape(OsStr::new("trusted.overlay.x")), OsString::from("trusted.overlay.overlay.x"));
        assert_eq!(l.escape(OsStr::new("user.x")), OsString::from("user.x"));
        assert_eq!(l.unescape(b"trusted.overlay.opaque"), None);
        assert_eq!(l.unescape(b"user.overlay.overlay.y").as_deref(), Some(&b"user.overlay.y"[..]));
        assert_eq!(l.unescape(b"security.selinux").as_deref(), Some(&b"security.selinux"[..]));
    }

    #[test]
    fn the_interpreted_names_follow_the_mount_prefix() {
        // As root without userxattr the kernel reads trusted.overlay.* only:
        // user.overlay.* is user data, fuse-overlayfs's marker is ours.
        let l = layers("trusted.overlay.");
        assert!(!l.is_private(OsStr::new("user.overlay.opaque")));
        assert_eq!(l.escape(OsStr::new("user.overlay.opaque")), OsString::from("user.overlay.opaque"));
        assert_eq!(
            l.escape(OsStr::new("user.fuseoverlayfs.opaque")),
            OsString::from("user.fuseoverlayfs.overlay.opaque")
        );
        assert_eq!(l.opaque_names()[0], OsString::from("trusted.overlay.opaque"));
    }
}
