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
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// Run `f` on a descriptor of `real` the flag ioctls accept: a directory's
/// own (held `O_RDONLY`), a new read-only one of a regular file; no other
/// kind is opened (a device would be).
fn with_fd<T>(ino: &Inode, real: &Real, f: impl FnOnce(i32) -> io::Result<T>) -> io::Result<T> {
    match ino.kind {
        libc::S_IFDIR => f(real.fd()?.as_raw_fd()),
        libc::S_IFREG => f(real.open_io(libc::O_RDONLY | libc::O_NONBLOCK)?.as_raw_fd()),
        _ => Err(err(libc::ENOTTY)),
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
