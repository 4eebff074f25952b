//! Extended attributes on the object behind a descriptor.
//!
//! Directories are held open O_RDONLY (f*xattr works); other objects are held
//! as O_PATH, reached through `/proc/self/fd/N` (the path forms follow the magic
//! link to the object itself).

use super::{cstr, cvt, proc_path};
use std::ffi::OsStr;
use std::io;
use std::os::fd::RawFd;

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

/// Get an xattr value; `Ok(None)` when it is absent.
pub fn get(t: Target, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: buf writable for its length; valid C strings.
        let r = unsafe {
            match t {
                Target::Fd(fd) => libc::fgetxattr(fd, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()),
                Target::Path(fd) => {
                    let p = proc_path(fd);
                    libc::getxattr(p.as_ptr(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                }
            }
        };
        match cvt(r) {
            Ok(n) => {
                buf.truncate(n as usize);
                return Ok(Some(buf));
            }
            Err(e) if errno_is(&e, libc::ERANGE) => {
                let need = size_of(t, &c)?;
                buf.resize(need.max(buf.len() * 2), 0);
            }
            Err(e) if errno_is(&e, libc::ENODATA) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

fn size_of(t: Target, c: &std::ffi::CStr) -> io::Result<usize> {
    // SAFETY: null buffer with size 0 asks for the size.
    let r = unsafe {
        match t {
            Target::Fd(fd) => libc::fgetxattr(fd, c.as_ptr(), std::ptr::null_mut(), 0),
            Target::Path(fd) => {
                let p = proc_path(fd);
                libc::getxattr(p.as_ptr(), c.as_ptr(), std::ptr::null_mut(), 0)
            }
        }
    };
    cvt(r).map(|n| n as usize)
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

/// Get an xattr of `name` in the directory `dirfd` without following a
/// symlink there and without opening it (one syscall). Values over 4 KiB are
/// reported as absent (callers read short private records only).
pub fn get_at(dirfd: RawFd, name: &OsStr, xname: &OsStr) -> io::Result<Option<Vec<u8>>> {
    use std::os::unix::ffi::OsStrExt;
    let mut p = format!("/proc/self/fd/{dirfd}/").into_bytes();
    p.extend_from_slice(name.as_bytes());
    let p = cstr(OsStr::from_bytes(&p))?;
    let c = cstr(xname)?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: buf writable for its length; valid C strings.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    match cvt(r) {
        Ok(n) => {
            buf.truncate(n as usize);
            Ok(Some(buf))
        }
        Err(e) if errno_is(&e, libc::ENODATA) || errno_is(&e, libc::ERANGE) || errno_is(&e, libc::ENOTSUP) => Ok(None),
        Err(e) => Err(e),
    }
}
