//! Terminals and descriptors for the container runtime: the pty ioctls,
//! passing a descriptor over a Unix socket, and closing what a child must
//! not inherit.

use super::cvt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A new pty of the devpts instance whose `ptmx` is `ptmx`: the master
/// (close-on-exec, unlocked) and the slave's number.
pub fn open_pty(ptmx: &std::path::Path) -> io::Result<(OwnedFd, u32)> {
    let m = super::at::openat(libc::AT_FDCWD, ptmx.as_os_str(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC, 0)?;
    let n = pty_unlock(m.as_raw_fd())?;
    Ok((m, n))
}

/// Unlock a pty master opened from a `ptmx` and return its slave number.
fn pty_unlock(master: RawFd) -> io::Result<u32> {
    let zero: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int, TIOCGPTN writes one.
    cvt(unsafe { libc::ioctl(master, libc::TIOCSPTLCK, &zero) })?;
    let mut n: libc::c_uint = 0;
    // SAFETY: as above.
    cvt(unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut n) })?;
    Ok(n)
}

/// Make `fd` (a terminal) the controlling terminal of this session.
pub fn set_controlling_tty(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument.
    cvt(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(drop)
}

/// The window size of a terminal: (rows, cols).
pub fn winsize(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: ws is a valid out-pointer.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

pub fn set_winsize(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: ws is valid for reading.
    cvt(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// Send one descriptor over a Unix socket.
pub fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let data = [b'F'];
    let iov = [io::IoSlice::new(&data)];
    let fds = [fd];
    sendmsg::<()>(sock, &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)?;
    Ok(())
}

/// Receive one byte and the descriptor sent with it, if any (None: the
/// peer closed).
pub fn recv(sock: RawFd) -> io::Result<Option<(u8, Option<OwnedFd>)>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut data = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut data)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = loop {
        match recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r?,
        }
    };
    if msg.bytes == 0 {
        return Ok(None);
    }
    let mut got = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for (i, fd) in fds.iter().enumerate() {
                // SAFETY: the kernel just gave us these descriptors.
                let owned = unsafe { OwnedFd::from_raw_fd(*fd) };
                if i == 0 {
                    got = Some(owned);
                }
            }
        }
    }
    Ok(Some((data[0], got)))
}

/// Receive one descriptor sent with [`send_fd`] (None: the peer closed).
pub fn recv_fd(sock: RawFd) -> io::Result<Option<OwnedFd>> {
    Ok(recv(sock)?.and_then(|(_, fd)| fd))
}

/// Mark every descriptor from `first` on close-on-exec.
pub fn cloexec_from(first: u32) {
    // SAFETY: no pointers; failure (old kernel) leaves descriptors as they are.
    unsafe {
        libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
    }
}

/// Close every descriptor from `first` on, except `keep`.
pub fn close_from(first: i32, keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|k| *k >= first).collect();
    keep.sort_unstable();
    let mut lo = first;
    for k in keep.into_iter().chain([i32::MAX]) {
        if k > lo {
            // SAFETY: no pointers; closing descriptors we own.
            unsafe {
                libc::syscall(libc::SYS_close_range, lo as u32, (k - 1) as u32, 0);
            }
        }
        lo = k.saturating_add(1);
    }
}

/// dup2(2): `fd` becomes `to` (without close-on-exec).
pub fn dup_to(fd: RawFd, to: RawFd) -> io::Result<()> {
    if fd == to {
        // dup2 to itself keeps close-on-exec: clear it.
        // SAFETY: no pointers.
        return cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(drop);
    }
    // SAFETY: no pointers.
    cvt(unsafe { libc::dup2(fd, to) }).map(drop)
}

/// A close-on-exec copy of `fd` numbered `min` or above.
pub fn dup_above(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: no pointers.
    let n = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })?;
    // SAFETY: just created.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Make `fd` non-blocking.
pub fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: no pointers.
    let fl = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: no pointers.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) }).map(drop)
}

/// A Unix socket pair (close-on-exec).
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-element array.
    cvt(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) })?;
    // SAFETY: both were just created.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
