//! The monitor of a running container (podman's conmon): the parent (child
//! subreaper) of the container's init, it holds the terminal or the output
//! pipes, writes the log, records the exit status and releases the mounts.
//! Detached containers get one of their own (`unionctl __monitor ID`,
//! started in its own session; it outlives the `unionctl` that started it);
//! in the foreground `unionctl run`/`start -a` is the monitor itself.

use crate::runtime::io::{self, Flow, RawMode, Relay};
use crate::runtime::launch::{self, Launched, Options};
use crate::runtime::log::Writer;
use crate::runtime::state::{self, RunState, Status};
use crate::store::containers::Container;
use crate::store::error::{Error, Result};
use crate::store::mounts::{self, Proc};
use crate::store::Store;
use crate::sys::{at, process};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::RawFd;

/// How the monitor talks to whoever started it.
pub enum Mode {
    /// Detached: `K` on this descriptor once the command runs, else
    /// `E<code> <message>`.
    Detached(RawFd),
    /// In the foreground: our terminal is the container's.
    Attached,
}

/// A start that failed: the exit code for `unionctl` and the message.
#[derive(Debug)]
pub struct StartError {
    pub code: i32,
    pub msg: String,
}

fn me() -> Proc {
    let pid = std::process::id() as i32;
    Proc { pid, start: process::start_time(pid).unwrap_or(0) }
}

fn stop_daemon(d: &Proc) {
    if d.alive() {
        let _ = process::kill(d.pid, libc::SIGTERM);
        let t0 = std::time::Instant::now();
        while d.alive() && t0.elapsed() < std::time::Duration::from_secs(3) {
            reap_any();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        if d.alive() {
            let _ = process::kill(d.pid, libc::SIGKILL);
        }
    }
    reap_any();
}

fn reap_any() {
    while let Ok(st) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if st == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Release what a run held: the rootless daemon, the root mount reference.
pub fn release(store: &Store, c: &Container, s: &mut RunState) {
    if let Some(d) = s.daemon.take() {
        if s.boot_id == process::boot_id() {
            stop_daemon(&d);
        }
        // Rootless: the volumes were activated inside the namespace.
        for m in c.mounts.iter().filter(|m| m.kind == crate::store::containers::Kind::Volume) {
            crate::store::volumes::deactivate(store, m.name.as_deref().unwrap_or_default(), &c.id);
        }
    }
    if s.mounted {
        s.mounted = false;
        if let Err(e) = mounts::unmount(store, c, false) {
            log::debug!("unmount {}: {e}", c.id);
        }
    }
}

/// Start the container and stay with it until it exits; returns its exit
/// code (Err: it did not start).
pub fn run(store: &Store, c: &Container, mode: Mode) -> std::result::Result<i32, StartError> {
    let se = |code: i32, msg: String| StartError { code, msg };
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let sigfd = io::signals().map_err(|e| se(125, format!("signals: {e}")))?;
    let rootless = !at::is_root();
    let o = Options { tty: c.config.tty, stdin: c.config.open_stdin, rootless };
    let lock = state::lock(store, c).map_err(|e| se(125, e.0))?;
    if !c.dir(store).join("container.json").exists() {
        return Err(se(125, format!("no such container: {}", c.id)));
    }
    if state::view(store, c).running() {
        return Err(se(125, format!("container {} is already running", c.name)));
    }
    let mut s = state::read(store, c);
    if s.status == Status::Running {
        // A run whose monitor died: clean up after it first.
        release(store, c, &mut s);
    }
    if rootless && mounts::mounted(store, c).is_some() {
        return Err(se(
            125,
            format!("container {} is mounted (unionctl mount): unmount it before starting it (rootless)", c.name),
        ));
    }
    s.boot_id = process::boot_id();
    s.error.clear();
    if !rootless {
        mounts::mount(store, c).map_err(|e| se(125, e.0))?;
        s.mounted = true;
    }
    let started = launch::launch(store, c, &o);
    let l: Launched = match started {
        Ok(l) => l,
        Err(f) => {
            if let Some(pid) = f.init {
                let _ = waitpid(Pid::from_raw(pid), None);
            }
            s.daemon = f.daemon.clone();
            release(store, c, &mut s);
            s.status = Status::Exited;
            s.exit_code = f.code;
            s.error = f.msg.clone();
            s.finished_at = crate::runtime::log::timestamp();
            s.init = Proc::default();
            let _ = state::write(store, c, &s);
            drop(lock);
            if c.auto_remove {
                if let Err(e) = crate::runtime::remove(store, c, false, true) {
                    log::warn!("--rm {}: {e}", c.name);
                }
            }
            return Err(se(f.code, f.msg));
        }
    };
    s.status = Status::Running;
    s.init = l.init.clone();
    s.monitor = me();
    s.daemon = l.daemon.clone();
    s.exit_code = 0;
    s.started_at = crate::runtime::log::timestamp();
    s.finished_at = state::NEVER.into();
    if let Err(e) = state::write(store, c, &s) {
        let _ = process::kill(l.init.pid, libc::SIGKILL);
        let _ = waitpid(Pid::from_raw(l.init.pid), None);
        release(store, c, &mut s);
        return Err(se(125, e.0));
    }
    drop(lock);
    let attached = matches!(mode, Mode::Attached);
    if let Mode::Detached(fd) = mode {
        process::write_fd(fd, b"K");
        // SAFETY-free: our end of the readiness pipe.
        let _ = nix::unistd::close(fd);
        process::detach_stdio();
    }
    let _raw =
        (attached && c.config.tty && nix::unistd::isatty(std::io::stdin()).unwrap_or(false)).then(RawMode::enter);
    if let Some(m) = &l.master {
        if attached {
            io::pass_winsize(m);
        } else if crate::sys::tty::winsize(0).is_none() {
            let _ = crate::sys::tty::set_winsize(std::os::fd::AsRawFd::as_raw_fd(m), 24, 80);
        }
    }
    let init = l.init.pid;
    let mut relay = Relay {
        master: l.master,
        stdout: l.stdout,
        stderr: l.stderr,
        stdin: l.stdin,
        forward_stdin: attached && c.config.open_stdin,
        attached,
        log: Some(Writer::open(&state::log_path(store, c))),
    };
    let mut code = None;
    relay.run(&sigfd, |r, sig| {
        match sig {
            Signal::SIGCHLD => loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(st) => {
                        if st.pid() == Some(Pid::from_raw(init)) {
                            code = crate::runtime::init::status_code(st);
                        }
                    }
                }
            },
            Signal::SIGWINCH => {
                if let (true, Some(m)) = (r.attached, &r.master) {
                    io::pass_winsize(m);
                }
            }
            Signal::SIGHUP if !r.attached => {}
            other => {
                if r.attached || other == Signal::SIGTERM || other == Signal::SIGINT {
                    let _ = nix::sys::signal::kill(Pid::from_raw(init), other);
                }
            }
        }
        if code.is_some() {
            Flow::Stop
        } else {
            Flow::Continue
        }
    });
    drop(_raw);
    let code = code.unwrap_or(-1);
    finish(store, c, code);
    Ok(code)
}

/// Record the exit and release everything (under the run lock); `--rm`
/// containers are removed.
fn finish(store: &Store, c: &Container, code: i32) {
    let Ok(_lock) = state::lock(store, c) else { return };
    let mut s = state::read(store, c);
    release(store, c, &mut s);
    s.status = Status::Exited;
    s.exit_code = code;
    s.finished_at = crate::runtime::log::timestamp();
    s.init = Proc::default();
    s.monitor = Proc::default();
    if let Err(e) = state::write(store, c, &s) {
        log::debug!("state of {}: {e}", c.id);
    }
    drop(_lock);
    if c.auto_remove {
        if let Err(e) = crate::runtime::remove(store, c, false, true) {
            log::warn!("--rm {}: {e}", c.name);
        }
    }
}

/// A recorded run whose monitor is gone: stop what is left, record the exit
/// as unknown, release the mounts. True when something was cleaned.
pub fn reconcile(store: &Store, c: &Container) -> Result<bool> {
    let s0 = state::read(store, c);
    if s0.status != Status::Running || state::monitor_alive(&s0) {
        return Ok(false);
    }
    let _lock = state::lock(store, c)?;
    let mut s = state::read(store, c);
    if s.status != Status::Running || state::monitor_alive(&s) || state::init_alive(&s) {
        return Ok(false);
    }
    release(store, c, &mut s);
    s.status = Status::Exited;
    s.exit_code = -1;
    s.error = "the container's monitor died; exit status unknown".into();
    if s.finished_at == state::NEVER {
        s.finished_at = crate::runtime::log::timestamp();
    }
    s.init = Proc::default();
    s.monitor = Proc::default();
    state::write(store, c, &s)?;
    drop(_lock);
    if c.auto_remove {
        crate::runtime::remove(store, c, false, true)?;
    }
    Ok(true)
}

/// For messages.
pub fn not_running(c: &Container) -> Error {
    Error(format!("container {} is not running", c.name))
}
