//! Process-level calls: fork/setsid for daemonizing, signal masks, pipes.

use super::cvt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Result of [`fork`].
pub enum Fork {
    Parent(i32),
    Child,
}

/// fork(2). Call only while the process has a single thread.
pub fn fork() -> io::Result<Fork> {
    // SAFETY: the caller guarantees no other threads exist.
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(if pid == 0 { Fork::Child } else { Fork::Parent(pid) })
}

pub fn setsid() {
    // SAFETY: no pointers; failure (already a leader) is harmless.
    unsafe {
        libc::setsid();
    }
}

/// A pipe (read end, write end), close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-element array.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both fds were just created.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Point stdin/stdout/stderr at /dev/null (a daemon's terminal may go away).
pub fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard fds.
            unsafe {
                libc::dup2(null.as_raw_fd(), fd);
            }
        }
    }
}

fn sigset(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

/// Block signals in this thread (and threads it starts later).
pub fn block_signals(sigs: &[i32]) {
    let set = sigset(sigs);
    // SAFETY: valid set pointer.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Wait for one of the (blocked) signals; returns its number.
pub fn wait_signal(sigs: &[i32]) -> i32 {
    let set = sigset(sigs);
    let mut sig = 0;
    // SAFETY: valid pointers.
    unsafe {
        libc::sigwait(&set, &mut sig);
    }
    sig
}

/// Write all of `buf` to a raw fd (for the readiness pipe).
pub fn write_fd(fd: RawFd, buf: &[u8]) {
    // SAFETY: buf readable for its length; a short write only loses a message.
    unsafe {
        libc::write(fd, buf.as_ptr().cast(), buf.len());
    }
}

/// Read the daemon's readiness message: `K`, or `E` and a message up to EOF.
pub fn read_all(fd: RawFd, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        // SAFETY: buf writable.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 || out.len() >= max {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
        // "K" (ready) is the whole message; an error message runs to EOF.
        if out.first() == Some(&b'K') {
            break;
        }
    }
    out
}

/// Leave the process now without running destructors (forked parent).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns.
    unsafe { libc::_exit(code) }
}

/// umount2(2); `lazy` detaches (MNT_DETACH).
pub fn umount(path: &std::path::Path, lazy: bool) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = super::cstr(std::ffi::OsStr::from_bytes(path.as_os_str().as_bytes()))?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: valid C string.
    cvt(unsafe { libc::umount2(c.as_ptr(), flags) }).map(drop)
}
