//! The only `unsafe` code: thin wrappers over libc calls std lacks.
//!
//! Every wrapper returns `io::Result`; the caller maps the error to an errno
//! for the kernel (`fuser::Errno: From<io::Error>`).

pub mod at;
pub mod fusemount;
pub mod handle;
pub mod mount;
pub mod process;
pub mod resolve;
pub mod tree;
pub mod tty;
pub mod xattr;

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

/// Turn a libc return value into `io::Result`, reading errno on -1.
pub fn cvt<T: Default + PartialOrd>(ret: T) -> io::Result<T> {
    if ret < T::default() {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A C string for a file name or path; an embedded NUL is EINVAL.
pub fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `/proc/self/fd/N`: reaches the object behind an `O_PATH` descriptor for the
/// calls that have no fd form (open, xattrs, chmod, utimes, truncate).
pub fn proc_path(fd: RawFd) -> CString {
    // A decimal number never contains a NUL byte.
    CString::new(format!("/proc/self/fd/{fd}")).unwrap_or_default()
}

/// Set the calling process's umask (0 in the daemon: modes arrive masked).
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask has no failure mode.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Raise RLIMIT_NOFILE's soft limit to the hard limit (we hold one fd per cached inode).
pub fn raise_nofile_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: lim is a valid out-pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// RLIMIT_NOFILE as (soft, hard); (1024, 1024) if it cannot be read.
pub fn nofile_limit() -> (u64, u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: lim is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        (lim.rlim_cur, lim.rlim_max)
    } else {
        (1024, 1024)
    }
}

/// Blocks this thread has read from disks so far (`ru_inblock`: every read
/// it submitted, metadata included), 0 if unknown.
pub fn thread_block_reads() -> u64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: ru is writable for one rusage; RUSAGE_THREAD has no other input.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr()) } != 0 {
        return 0;
    }
    // SAFETY: filled by the successful call (and zeroed before).
    unsafe { ru.assume_init() }.ru_inblock as u64
}

/// The effective uid of this process.
pub fn geteuid() -> u32 {
    // SAFETY: no failure mode.
    unsafe { libc::geteuid() }
}
