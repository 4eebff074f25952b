//! Moving a container's bytes: its terminal (pty master) or its stdout and
//! stderr pipes to the log and, when attached, to our own terminal; our
//! stdin to the container; signals (child exits, window size changes,
//! signals to pass on) through one signalfd, in one poll loop.

use crate::runtime::log::{Stream, Writer};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Signals a foreground container gets from us (docker's sig-proxy).
pub const PROXIED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCONT,
];

/// Block SIGCHLD, SIGWINCH and the proxied signals, and read them from a
/// descriptor (call before starting children: they inherit the mask and
/// unblock what they need).
pub fn signals() -> std::io::Result<SignalFd> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    set.add(Signal::SIGWINCH);
    for s in PROXIED {
        set.add(s);
    }
    set.thread_block()?;
    Ok(SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?)
}

/// Our terminal in raw mode while attached to a container's terminal;
/// restored when dropped.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else { return RawMode { saved: None } };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        if termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).is_err() {
            return RawMode { saved: None };
        }
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}

/// Copy our terminal's size to the container's.
pub fn pass_winsize(master: &OwnedFd) {
    match crate::sys::tty::winsize(0) {
        Some((rows, cols)) => {
            let _ = crate::sys::tty::set_winsize(master.as_raw_fd(), rows, cols);
        }
        None => {
            if crate::sys::tty::winsize(master.as_raw_fd()).is_none() {
                let _ = crate::sys::tty::set_winsize(master.as_raw_fd(), 24, 80);
            }
        }
    }
}

/// What the loop does after a signal.
pub enum Flow {
    Continue,
    Stop,
}

/// The endpoints of one container process's I/O.
pub struct Relay {
    pub master: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The container's stdin (a pipe; with a terminal the master is written).
    pub stdin: Option<OwnedFd>,
    /// Forward our stdin.
    pub forward_stdin: bool,
    /// Copy output to our stdout/stderr.
    pub attached: bool,
    pub log: Option<Writer>,
}

fn read_some(fd: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    match nix::unistd::read(fd, buf) {
        Ok(0) => None,
        Ok(n) => Some(n),
        Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => Some(0),
        // EIO: the terminal's last user is gone.
        Err(_) => None,
    }
}

fn write_all(fd: BorrowedFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Err(_) => return false,
        }
    }
    true
}

impl Relay {
    fn output(&mut self, stream: Stream, data: &[u8]) {
        if let Some(l) = self.log.as_mut() {
            l.write(stream, data);
        }
        if self.attached {
            let r = match stream {
                Stream::Stdout => std::io::stdout().write_all(data).and_then(|_| std::io::stdout().flush()),
                Stream::Stderr => std::io::stderr().write_all(data),
            };
            if r.is_err() {
                // Our terminal went away: keep logging.
                self.attached = false;
            }
        }
    }

    /// Run until `on_signal` says stop; then drain what is left to read.
    pub fn run(&mut self, sigfd: &SignalFd, mut on_signal: impl FnMut(&mut Relay, Signal) -> Flow) {
        for fd in [&self.master, &self.stdout, &self.stderr].into_iter().flatten() {
            let _ = crate::sys::tty::set_nonblocking(fd);
        }
        let stdin = std::io::stdin();
        let mut stdin_open = self.forward_stdin;
        let mut buf = vec![0u8; 64 * 1024];
        'outer: loop {
            let mut stop = false;
            {
                // Poll set: 0 signals, then master/stdout/stderr, then our stdin.
                let mut kinds = Vec::new();
                let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
                for (k, f) in [(0u8, &self.master), (1, &self.stdout), (2, &self.stderr)] {
                    if let Some(f) = f {
                        fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                        kinds.push(k);
                    }
                }
                if stdin_open {
                    fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
                    kinds.push(3);
                }
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => break,
                }
                let ready: Vec<(u8, bool)> = fds[1..]
                    .iter()
                    .zip(&kinds)
                    .map(|(p, k)| (*k, p.revents().is_some_and(|r| !r.is_empty())))
                    .collect();
                let sig_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
                drop(fds);
                for (k, is_ready) in ready {
                    if !is_ready {
                        continue;
                    }
                    match k {
                        0..=2 => {
                            let slot = match k {
                                0 => &mut self.master,
                                1 => &mut self.stdout,
                                _ => &mut self.stderr,
                            };
                            let Some(fd) = slot.as_ref() else { continue };
                            match read_some(fd, &mut buf) {
                                Some(0) => {}
                                Some(n) => {
                                    let stream = if k == 2 { Stream::Stderr } else { Stream::Stdout };
                                    let data = buf[..n].to_vec();
                                    self.output(stream, &data);
                                }
                                None => *slot = None,
                            }
                        }
                        _ => {
                            let n = nix::unistd::read(stdin.as_fd(), &mut buf).unwrap_or(0);
                            let target = self.master.as_ref().or(self.stdin.as_ref());
                            if n == 0 {
                                stdin_open = false;
                                // The container sees the end of its input.
                                if self.master.is_none() {
                                    self.stdin = None;
                                }
                            } else if let Some(t) = target {
                                if !write_all(t.as_fd(), &buf[..n]) {
                                    stdin_open = false;
                                }
                            }
                        }
                    }
                }
                if sig_ready {
                    while let Ok(Some(si)) = sigfd.read_signal() {
                        if let Ok(sig) = Signal::try_from(si.ssi_signo as i32) {
                            if let Flow::Stop = on_signal(self, sig) {
                                stop = true;
                            }
                        }
                    }
                }
            }
            if stop {
                break 'outer;
            }
        }
        self.drain(&mut buf);
    }

    /// Read what the container left in its pipes or terminal (its processes
    /// are gone: the write ends close soon; bounded wait).
    fn drain(&mut self, buf: &mut [u8]) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        while std::time::Instant::now() < deadline {
            let mut any = false;
            for k in 0..3 {
                let slot = match k {
                    0 => &mut self.master,
                    1 => &mut self.stdout,
                    _ => &mut self.stderr,
                };
                let Some(fd) = slot.as_ref() else { continue };
                match read_some(fd, buf) {
                    Some(0) => any = true,
                    Some(n) => {
                        any = true;
                        let stream = if k == 2 { Stream::Stderr } else { Stream::Stdout };
                        let data = buf[..n].to_vec();
                        self.output(stream, &data);
                    }
                    None => *slot = None,
                }
            }
            if !any || (self.stdout.is_none() && self.stderr.is_none() && self.master.is_none()) {
                break;
            }
            // With a terminal, EAGAIN is all there is once the processes are gone.
            if let (Some(m), None, None) = (&self.master, &self.stdout, &self.stderr) {
                let mut p = [PollFd::new(m.as_fd(), PollFlags::POLLIN)];
                if poll(&mut p, PollTimeout::from(20u8)).unwrap_or(0) == 0 {
                    break;
                }
                continue;
            }
            let fds: Vec<PollFd> = [&self.stdout, &self.stderr]
                .into_iter()
                .flatten()
                .map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN))
                .collect();
            let mut fds = fds;
            let _ = poll(&mut fds, PollTimeout::from(50u8));
        }
    }
}
