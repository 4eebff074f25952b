//! Extended attributes on the object behind a descriptor.
//!
//! Directories are held open O_RDONLY (f*xattr works); other objects are held
//! as O_PATH, reached through `/proc/self/fd/N` (the path forms follow the magic
//! link to the object itself).

use super::{cstr, cvt, proc_path};
use std::ffi::{CStr, OsStr};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};

/// How to reach an object's xattrs.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// A real (non-O_PATH) open descriptor.
    Fd(RawFd),
    /// An O_PATH descriptor of a non-symlink.
    Path(RawFd),
}

fn errno_is(e: &io::Error, code: i32) -> bool {
    e.raw_os_error() == Some(code)
}

/// A value read by `call` (one get into the buffer it is given; an empty
/// buffer asks for the size), grown until it fits; `Ok(None)` when absent.
fn read_value(mut call: impl FnMut(&mut [u8]) -> io::Result<usize>) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match call(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(e) if errno_is(&e, libc::ERANGE) => {
                let need = call(&mut [])?;
                buf.resize(need.max(buf.len() * 2), 0);
            }
            Err(e) if errno_is(&e, libc::ENODATA) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Get an xattr value; `Ok(None)` when it is absent.
pub fn get(t: Target, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    let c = cstr(name)?;
    read_value(|buf| {
        // SAFETY: buf writable for its length (0: a size query); valid C strings.
        let r = unsafe {
            match t {
                Target::Fd(fd) => libc::fgetxattr(fd, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()),
                Target::Path(fd) => {
                    let p = proc_path(fd);
                    libc::getxattr(p.as_ptr(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                }
            }
        };
        cvt(r).map(|n| n as usize)
    })
}

/// True when the xattr exists with exactly this value.
pub fn has_value(t: Target, name: &OsStr, value: &[u8]) -> bool {
    matches!(get(t, name), Ok(Some(v)) if v == value)
}

pub fn set(t: Target, name: &OsStr, value: &[u8], flags: i32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid pointers.
    let r = unsafe {
        match t {
            Target::Fd(fd) => libc::fsetxattr(fd, c.as_ptr(), value.as_ptr().cast(), value.len(), flags),
            Target::Path(fd) => {
                let p = proc_path(fd);
                libc::setxattr(p.as_ptr(), c.as_ptr(), value.as_ptr().cast(), value.len(), flags)
            }
        }
    };
    cvt(r).map(drop)
}

pub fn remove(t: Target, name: &OsStr) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid pointers.
    let r = unsafe {
        match t {
            Target::Fd(fd) => libc::fremovexattr(fd, c.as_ptr()),
            Target::Path(fd) => {
                let p = proc_path(fd);
                libc::removexattr(p.as_ptr(), c.as_ptr())
            }
        }
    };
    cvt(r).map(drop)
}

/// List xattr names (each without its NUL).
pub fn list(t: Target) -> io::Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: buf writable for its length.
        let r = unsafe {
            match t {
                Target::Fd(fd) => libc::flistxattr(fd, buf.as_mut_ptr().cast(), buf.len()),
                Target::Path(fd) => {
                    let p = proc_path(fd);
                    libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                }
            }
        };
        match cvt(r) {
            Ok(n) => {
                buf.truncate(n as usize);
                return Ok(buf.split(|b| *b == 0).filter(|s| !s.is_empty()).map(<[u8]>::to_vec).collect());
            }
            Err(e) if errno_is(&e, libc::ERANGE) => {
                let len = buf.len();
                buf.resize(len * 4, 0);
            }
            Err(e) if errno_is(&e, libc::ENOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    }
}

/// `getxattrat(2)` (Linux 6.13; the same number on every architecture).
const SYS_GETXATTRAT: libc::c_long = 464;

/// `struct xattr_args` of the `*xattrat` calls.
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// Set once `getxattrat` answered ENOSYS: use the `/proc` path form.
static NO_GETXATTRAT: AtomicBool = AtomicBool::new(false);

/// One `lgetxattr` of `name` in `dirfd` into `buf` (empty: ask the size).
fn lgetxattr_at(dirfd: RawFd, name: &CStr, xname: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    if !NO_GETXATTRAT.load(Ordering::Relaxed) {
        let mut args = XattrArgs { value: buf.as_mut_ptr() as u64, size: buf.len() as u32, flags: 0 };
        // SAFETY: valid C strings; args points at a writable buffer of its size.
        let r = unsafe {
            libc::syscall(
                SYS_GETXATTRAT,
                dirfd as libc::c_long,
                name.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW as libc::c_long,
                xname.as_ptr(),
                &mut args as *mut XattrArgs,
                std::mem::size_of::<XattrArgs>(),
            )
        };
        match cvt(r) {
            Err(e) if errno_is(&e, libc::ENOSYS) => NO_GETXATTRAT.store(true, Ordering::Relaxed),
            r => return r.map(|n| n as usize),
        }
    }
    proc_lgetxattr_at(dirfd, name, xname, buf)
}

/// `lgetxattr_at` for kernels before 6.13: by a path through `/proc`.
fn proc_lgetxattr_at(dirfd: RawFd, name: &CStr, xname: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    let mut p = format!("/proc/self/fd/{dirfd}/").into_bytes();
    p.extend_from_slice(name.to_bytes());
    let p = cstr(OsStr::from_bytes(&p))?;
    // SAFETY: buf writable for its length; valid C strings.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), xname.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    cvt(r).map(|n| n as usize)
}

/// Get an xattr of `name` in the directory `dirfd` without following a
/// symlink there and without opening it (one syscall where the kernel has
/// `getxattrat`); `Ok(None)` when it is absent or the filesystem has none.
pub fn get_at(dirfd: RawFd, name: &OsStr, xname: &OsStr) -> io::Result<Option<Vec<u8>>> {
    let (n, c) = (cstr(name)?, cstr(xname)?);
    match read_value(|buf| lgetxattr_at(dirfd, &n, &c, buf)) {
        Err(e) if errno_is(&e, libc::ENOTSUP) => Ok(None),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::at;
    use std::os::fd::AsRawFd;

    fn dir() -> (tempfile::TempDir, std::os::fd::OwnedFd) {
        let d = tempfile::tempdir().unwrap();
        let fd = at::openat(libc::AT_FDCWD, d.path().as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap();
        (d, fd)
    }

    #[test]
    fn get_at_reads_by_name_without_following_symlinks() {
        let (d, fd) = dir();
        std::fs::write(d.path().join("f"), b"").unwrap();
        std::os::unix::fs::symlink("f", d.path().join("l")).unwrap();
        let o = at::openat(fd.as_raw_fd(), OsStr::new("f"), libc::O_PATH, 0).unwrap();
        let big = vec![b'v'; 1000];
        if set(Target::Path(o.as_raw_fd()), OsStr::new("user.t"), &big, 0).is_err() {
            return; // a filesystem without user xattrs
        }
        let (n, x) = (OsStr::new("f"), OsStr::new("user.t"));
        assert_eq!(get_at(fd.as_raw_fd(), n, x).unwrap(), Some(big), "a value over the first buffer");
        assert_eq!(get_at(fd.as_raw_fd(), n, OsStr::new("user.none")).unwrap(), None);
        assert_eq!(get_at(fd.as_raw_fd(), OsStr::new("l"), x).unwrap(), None, "the symlink itself, not f");
        let e = get_at(fd.as_raw_fd(), OsStr::new("gone"), x).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        // The older kernels' form answers the same.
        let (cn, cx) = (cstr(n).unwrap(), cstr(x).unwrap());
        let mut buf = vec![0u8; 2000];
        assert_eq!(proc_lgetxattr_at(fd.as_raw_fd(), &cn, &cx, &mut buf).unwrap(), 1000);
        let cl = cstr(OsStr::new("l")).unwrap();
        let e = proc_lgetxattr_at(fd.as_raw_fd(), &cl, &cx, &mut buf).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODATA));
    }
}
