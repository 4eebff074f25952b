//! Extended attributes through the mount.
//!
//! The overlay's private xattrs (`trusted.overlay.*`, and `user.overlay.*` in
//! userxattr mode) are hidden. As in the kernel (6.7+), a private name set
//! through the mount is stored escaped (`trusted.overlay.overlay.NAME`) and
//! shown back unescaped, so an overlay can be built on top of this one. Any
//! change copies the object up first.

use crate::fs::copy_up::copy_up;
use crate::fs::inode::Inode;
use crate::fs::layers::Layers;
use crate::fs::lookup::err;
use crate::fs::UnionFs;
use crate::sys::xattr::{self, Target};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::Arc;

const TRUSTED: &[u8] = b"trusted.overlay.";

/// The private prefix `name` falls under, if any.
fn private_prefix<'a>(layers: &'a Layers, name: &[u8]) -> Option<&'a [u8]> {
    [TRUSTED, layers.xattr_prefix.as_bytes()].into_iter().find(|p| name.starts_with(p))
}

/// A private overlay xattr as stored in a layer (escaped user data excluded).
pub fn is_private(layers: &Layers, name: &OsStr) -> bool {
    let b = name.as_bytes();
    match private_prefix(layers, b) {
        Some(p) => !b[p.len()..].starts_with(b"overlay."),
        None => false,
    }
}

/// The stored name for a name given through the mount.
fn escape(layers: &Layers, name: &OsStr) -> OsString {
    let b = name.as_bytes();
    match private_prefix(layers, b) {
        Some(p) => {
            let mut v = p.to_vec();
            v.extend_from_slice(b"overlay.");
            v.extend_from_slice(&b[p.len()..]);
            OsString::from_vec(v)
        }
        None => name.to_os_string(),
    }
}

/// The name shown for a stored name (None: private, hidden).
fn unescape(layers: &Layers, stored: &[u8]) -> Option<Vec<u8>> {
    match private_prefix(layers, stored) {
        Some(p) => {
            let rest = stored[p.len()..].strip_prefix(b"overlay.")?;
            let mut v = p.to_vec();
            v.extend_from_slice(rest);
            Some(v)
        }
        None => Some(stored.to_vec()),
    }
}

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

pub fn get(fs: &UnionFs, ino: &Inode, name: &OsStr) -> io::Result<Vec<u8>> {
    check_enabled(fs)?;
    let top = ino.snapshot().top().ok_or_else(|| err(libc::ESTALE))?;
    let stored = escape(&fs.layers, name);
    xattr::get(target(ino, top.as_raw_fd()), &stored)?.ok_or_else(|| err(libc::ENODATA))
}

/// Names, each followed by a NUL, as listxattr returns them.
pub fn list(fs: &UnionFs, ino: &Inode) -> io::Result<Vec<u8>> {
    if !fs.opts.xattrs {
        return Ok(Vec::new());
    }
    let top = ino.snapshot().top().ok_or_else(|| err(libc::ESTALE))?;
    let mut out = Vec::new();
    for n in xattr::list(target(ino, top.as_raw_fd()))? {
        if let Some(shown) = unescape(&fs.layers, &n) {
            out.extend_from_slice(&shown);
            out.push(0);
        }
    }
    Ok(out)
}

pub fn set(fs: &UnionFs, ino: &Arc<Inode>, name: &OsStr, value: &[u8], flags: i32) -> io::Result<()> {
    check_enabled(fs)?;
    fs.check_writable()?;
    let up = copy_up(fs, ino)?;
    xattr::set(target(ino, up.as_raw_fd()), &escape(&fs.layers, name), value, flags)
}

pub fn remove(fs: &UnionFs, ino: &Arc<Inode>, name: &OsStr) -> io::Result<()> {
    check_enabled(fs)?;
    fs.check_writable()?;
    // Nothing to remove needs no copy-up.
    get(fs, ino, name)?;
    let up = copy_up(fs, ino)?;
    xattr::remove(target(ino, up.as_raw_fd()), &escape(&fs.layers, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> Layers {
        Layers { layers: Vec::new(), has_upper: false, work: None, xattr_prefix: "user.overlay.", ino_shift: 0 }
    }

    #[test]
    fn private_names_are_escaped_and_hidden() {
        let l = layers();
        assert!(is_private(&l, OsStr::new("trusted.overlay.opaque")));
        assert!(is_private(&l, OsStr::new("user.overlay.origin")));
        assert!(!is_private(&l, OsStr::new("trusted.overlay.overlay.opaque")));
        assert!(!is_private(&l, OsStr::new("user.mime")));
        assert_eq!(escape(&l, OsStr::new("trusted.overlay.x")), OsString::from("trusted.overlay.overlay.x"));
        assert_eq!(escape(&l, OsStr::new("user.x")), OsString::from("user.x"));
        assert_eq!(unescape(&l, b"trusted.overlay.opaque"), None);
        assert_eq!(unescape(&l, b"user.overlay.overlay.y").as_deref(), Some(&b"user.overlay.y"[..]));
        assert_eq!(unescape(&l, b"security.selinux").as_deref(), Some(&b"security.selinux"[..]));
    }
}
