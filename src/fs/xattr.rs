//! Extended attributes through the mount. The overlay's private xattrs
//! (`trusted.overlay.*`, and `user.overlay.*` in userxattr mode) are hidden
//! and cannot be set; any change copies the object up first.

use crate::fs::copy_up::copy_up;
use crate::fs::inode::Inode;
use crate::fs::layers::Layers;
use crate::fs::lookup::err;
use crate::fs::UnionFs;
use crate::sys::xattr::{self, Target};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// A private overlay xattr name.
pub fn is_private(layers: &Layers, name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.starts_with(b"trusted.overlay.") || b.starts_with(layers.xattr_prefix.as_bytes())
}

fn target(ino: &Inode, fd: RawFd) -> io::Result<Target> {
    if ino.is_symlink() {
        // Symlinks carry no user xattrs (EPERM on set, nothing to read).
        return Err(err(libc::ENODATA));
    }
    Ok(if ino.is_dir() {
        Target::Fd(fd)
    } else {
        Target::Path(fd)
    })
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
    if is_private(&fs.layers, name) {
        return Err(err(libc::ENODATA));
    }
    let top = ino.snapshot().top().ok_or_else(|| err(libc::ESTALE))?;
    xattr::get(target(ino, top.as_raw_fd())?, name)?.ok_or_else(|| err(libc::ENODATA))
}

/// Names, each followed by a NUL, as listxattr returns them.
pub fn list(fs: &UnionFs, ino: &Inode) -> io::Result<Vec<u8>> {
    if !fs.opts.xattrs || ino.is_symlink() {
        return Ok(Vec::new());
    }
    let top = ino.snapshot().top().ok_or_else(|| err(libc::ESTALE))?;
    let mut out = Vec::new();
    for n in xattr::list(target(ino, top.as_raw_fd())?)? {
        if !is_private(&fs.layers, OsStr::from_bytes(&n)) {
            out.extend_from_slice(&n);
            out.push(0);
        }
    }
    Ok(out)
}

pub fn set(
    fs: &UnionFs,
    ino: &Arc<Inode>,
    name: &OsStr,
    value: &[u8],
    flags: i32,
) -> io::Result<()> {
    check_enabled(fs)?;
    fs.check_writable()?;
    if is_private(&fs.layers, name) {
        return Err(err(libc::EPERM));
    }
    if ino.is_symlink() {
        return Err(err(libc::EPERM));
    }
    let up = copy_up(fs, ino)?;
    xattr::set(target(ino, up.as_raw_fd())?, name, value, flags)
}

pub fn remove(fs: &UnionFs, ino: &Arc<Inode>, name: &OsStr) -> io::Result<()> {
    check_enabled(fs)?;
    fs.check_writable()?;
    if is_private(&fs.layers, name) {
        return Err(err(libc::ENODATA));
    }
    // Nothing to remove needs no copy-up.
    get(fs, ino, name)?;
    let up = copy_up(fs, ino)?;
    xattr::remove(target(ino, up.as_raw_fd())?, name)
}
