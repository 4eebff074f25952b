use std::io;
use std::os::fd::AsFd;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nix::errno::Errno;

use crate::dev_fuse::DevFuse;
use crate::passthrough::BackingId;

/// unionfs patch: how long a thread keeps reading after a request before it
/// sleeps (microseconds; 0: it sleeps at once, the release's behaviour).
static RECEIVE_SPIN_US: AtomicU64 = AtomicU64::new(0);

/// unionfs patch: set the spin time of every channel's receive (see
/// `Channel::receive`); call it before the session starts.
pub fn set_receive_spin(d: std::time::Duration) {
    RECEIVE_SPIN_US.store(d.as_micros() as u64, Ordering::Relaxed);
}

/// unionfs patch: the spin time set by `set_receive_spin`.
pub(crate) fn receive_spin() -> std::time::Duration {
    std::time::Duration::from_micros(RECEIVE_SPIN_US.load(Ordering::Relaxed))
}

/// A raw communication channel to the FUSE kernel driver
#[derive(Debug, Clone)]
pub(crate) struct Channel(Arc<DevFuse>);

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Channel {
    /// Create a new communication channel to the kernel driver by mounting the
    /// given path. The kernel driver will delegate filesystem operations of
    /// the given path to the channel.
    pub(crate) fn new(device: Arc<DevFuse>) -> Self {
        // unionfs patch: a spinning receive needs a non-blocking descriptor
        // (if that fails, reads block: no spinning, nothing else changes).
        if RECEIVE_SPIN_US.load(Ordering::Relaxed) != 0 {
            use nix::fcntl::{fcntl, FcntlArg, OFlag};
            if let Ok(fl) = fcntl(&*device, FcntlArg::F_GETFL) {
                let _ = fcntl(&*device, FcntlArg::F_SETFL(OFlag::from_bits_retain(fl) | OFlag::O_NONBLOCK));
            }
        }
        Self(device)
    }

    /// Receives data up to the capacity of the given buffer (can block).
    ///
    /// unionfs patch: with a spin time set (`set_receive_spin`) the
    /// descriptor is non-blocking and, after a request, the thread keeps
    /// reading for up to that long before it sleeps in poll(2): a request
    /// that comes meanwhile (a busy caller's next one usually does) needs no
    /// wake-up of a sleeping thread, which costs more than the request
    /// itself on a virtual machine.
    fn receive(&self, buffer: &mut [u8]) -> nix::Result<usize> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let spin = std::time::Duration::from_micros(RECEIVE_SPIN_US.load(Ordering::Relaxed));
        if spin.is_zero() {
            return nix::unistd::read(&self.0, buffer);
        }
        let start = std::time::Instant::now();
        loop {
            match nix::unistd::read(&self.0, buffer) {
                // Runnable work of this CPU (often the caller) goes first.
                Err(Errno::EAGAIN) if start.elapsed() < spin => {
                    let _ = nix::sched::sched_yield();
                }
                Err(Errno::EAGAIN) => {
                    let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
                    match poll(&mut fds, PollTimeout::NONE) {
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(e) => return Err(e),
                    }
                }
                r => return r,
            }
        }
    }

    /// Receives data up to the capacity of the given buffer (can block),
    /// retrying on errors that are safe to retry (ENOENT, EINTR, EAGAIN).
    ///
    /// - ENOENT: Operation interrupted. According to FUSE, this is safe to retry.
    /// - EINTR: Interrupted system call, retry.
    /// - EAGAIN: Explicitly instructed to try again.
    pub(crate) fn receive_retrying(&self, buffer: &mut [u8]) -> nix::Result<usize> {
        loop {
            match self.receive(buffer) {
                Ok(size) => return Ok(size),
                Err(Errno::ENOENT | Errno::EINTR | Errno::EAGAIN) => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Returns a sender object for this channel. The sender object can be
    /// used to send to the channel. Multiple sender objects can be used
    /// and they can safely be sent to other threads.
    pub(crate) fn sender(&self) -> ChannelSender {
        // Since write/writev syscalls are threadsafe, we can simply create
        // a sender by using the same file and use it in other threads.
        ChannelSender(self.0.clone())
    }

    /// Clone the FUSE device fd using FUSE_DEV_IOC_CLONE ioctl.
    ///
    /// This creates a new fd that can read FUSE requests independently,
    /// enabling true parallel request processing. The kernel distributes
    /// requests across all cloned fds.
    ///
    /// Requires Linux 4.5+. Returns an error on older kernels or non-Linux.
    #[cfg(target_os = "linux")]
    pub(crate) fn clone_fd(&self) -> io::Result<Channel> {
        use std::os::fd::AsRawFd;

        let new_dev = DevFuse::open()?;

        let mut source_fd = self.0.as_raw_fd() as u32;
        // SAFETY: fuse_dev_ioc_clone is a valid ioctl for /dev/fuse
        unsafe {
            crate::ll::ioctl::fuse_dev_ioc_clone(new_dev.as_raw_fd(), &mut source_fd)?;
        }

        Ok(Channel::new(Arc::new(new_dev)))
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ChannelSender(Arc<DevFuse>);

impl ChannelSender {
    pub(crate) fn send(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<()> {
        let rc = nix::sys::uio::writev(&self.0, bufs)?;
        // writev is atomic, so do not need to check how many bytes are written.
        // libfuse does not do it either
        // https://github.com/libfuse/libfuse/blob/6278995cca991978abd25ebb2c20ebd3fc9e8a13/lib/fuse_lowlevel.c#L267
        debug_assert_eq!(bufs.iter().map(|b| b.len()).sum::<usize>(), rc);
        Ok(())
    }

    pub(crate) fn open_backing(&self, fd: BorrowedFd<'_>) -> std::io::Result<BackingId> {
        BackingId::create(&self.0, fd)
    }

    pub(crate) unsafe fn wrap_backing(&self, id: u32) -> BackingId {
        unsafe { BackingId::wrap_raw(&self.0, id) }
    }
}
