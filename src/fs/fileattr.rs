//! `lsattr`/`chattr`: the inode flags of the merged object.
//!
//! As in the kernel overlay, the flags shown are the top object's (the upper
//! one once there is one), and setting them copies the object up first. Only
//! regular files and directories have them (the FUSE module asks through an
//! ioctl, which needs an open file; other kinds answer ENOTTY).

use crate::fs::copy_up::copy_up;
use crate::fs::inode::Inode;
use crate::fs::lookup::err;
use crate::fs::real::Real;
use crate::fs::UnionFs;
use crate::sys::at;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

/// A descriptor of `real` the flag ioctls accept (no device is opened).
fn open_for_flags(ino: &Inode, real: &Real) -> io::Result<Option<OwnedFd>> {
    match ino.kind {
        libc::S_IFDIR => Ok(None),
        libc::S_IFREG => real.open_io(libc::O_RDONLY | libc::O_NONBLOCK).map(Some),
        _ => Err(err(libc::ENOTTY)),
    }
}

/// Run `f` on a descriptor of `real` fit for the flag ioctls.
fn with_fd<T>(ino: &Inode, real: &Real, f: impl FnOnce(i32) -> io::Result<T>) -> io::Result<T> {
    match open_for_flags(ino, real)? {
        Some(fd) => f(fd.as_raw_fd()),
        // A directory's held descriptor is opened O_RDONLY.
        None => f(real.fd()?.as_raw_fd()),
    }
}

/// The flags to set, in one of their two forms: `FS_IOC_SETFLAGS`'s int,
/// or the `struct fsxattr` of `FS_IOC_FSSETXATTR`.
pub enum Flags {
    Int(u32),
    Fsx([u8; 28]),
}

fn top(ino: &Inode) -> io::Result<Real> {
    ino.snapshot().top().ok_or_else(|| err(libc::ESTALE))
}

/// The top object's flags (`FS_IOC_GETFLAGS`).
pub fn get_flags(ino: &Inode) -> io::Result<u32> {
    with_fd(ino, &top(ino)?, at::get_flags)
}

/// The top object's `struct fsxattr` (`FS_IOC_FSGETXATTR`; the kernel reads
/// the old flags this way before it sets new ones).
pub fn get_fsxattr(ino: &Inode) -> io::Result<[u8; 28]> {
    with_fd(ino, &top(ino)?, at::get_fsxattr)
}

/// Set the flags: on the upper object, copied up first.
pub fn set(fs: &UnionFs, ino: &Arc<Inode>, flags: &Flags) -> io::Result<()> {
    if !matches!(ino.kind, libc::S_IFDIR | libc::S_IFREG) {
        return Err(err(libc::ENOTTY));
    }
    fs.check_writable()?;
    let up = copy_up(fs, ino)?;
    with_fd(ino, &up, |fd| match flags {
        Flags::Int(f) => at::set_flags(fd, *f),
        Flags::Fsx(x) => at::set_fsxattr(fd, x),
    })
}
