//! `exec`: a new process in a running container. A child of ours joins the
//! init's namespaces (user first when rootless, then ipc, uts, pid, mount:
//! the mount namespace brings the container's root), forks once more so the
//! process is inside the pid namespace, and waits for it; its exit status is
//! ours. With `-t` the process gets a terminal of the container's own devpts.

use crate::runtime::init::{self, Process};
use crate::runtime::io::{self, Flow, RawMode, Relay};
use crate::runtime::{launch, monitor, state};
use crate::store::containers::Container;
use crate::store::Store;
use crate::sys::{at, process, tty};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};

/// What `exec` was asked for.
pub struct ExecOptions {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub detach: bool,
}

/// Why an exec failed: docker's code and a message.
pub type Failure = monitor::StartError;

fn fail(code: i32, msg: impl Into<String>) -> Failure {
    Failure { code, msg: msg.into() }
}

fn join(pid: i32) -> Result<(), String> {
    let ns = |n: &str| format!("/proc/{pid}/ns/{n}");
    let same = |n: &str| std::fs::read_link(ns(n)).ok() == std::fs::read_link(format!("/proc/self/ns/{n}")).ok();
    let open = |n: &str| {
        at::openat(libc::AT_FDCWD, OsStr::new(&ns(n)), libc::O_RDONLY | libc::O_CLOEXEC, 0)
            .map_err(|e| format!("{}: {e}", ns(n)))
    };
    // Open every namespace first: after joining the mount namespace the
    // host's /proc is out of sight.
    let mut fds: Vec<(OwnedFd, CloneFlags)> = Vec::new();
    if !same("user") {
        fds.push((open("user")?, CloneFlags::CLONE_NEWUSER));
    }
    for (n, f) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        fds.push((open(n)?, f));
    }
    for (fd, f) in fds {
        nix::sched::setns(&fd, f).map_err(|e| format!("setns {f:?}: {}", e.desc()))?;
    }
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    Ok(())
}

/// Run the process; returns its exit status.
pub fn exec(store: &Store, c: &Container, o: &ExecOptions) -> Result<i32, Failure> {
    let v = state::view(store, c);
    if !v.running() || v.pid == 0 {
        return Err(fail(125, monitor::not_running(c).0));
    }
    let pid = v.pid;
    if o.argv.is_empty() {
        return Err(fail(125, "exec needs a command"));
    }
    // A terminal from the container's own devpts (through its root).
    let master = if o.tty {
        let ptmx = format!("/proc/{pid}/root/dev/pts/ptmx");
        Some(tty::open_pty(std::path::Path::new(&ptmx)).map_err(|e| fail(125, format!("{ptmx}: {e}")))?)
    } else {
        None
    };
    let p = Process {
        argv: o.argv.clone(),
        env: c.config.env.clone(),
        extra_env: o.env.clone(),
        user: o.user.clone().unwrap_or_else(|| c.config.user.clone()),
        cwd: o.workdir.clone().unwrap_or_else(|| c.config.working_dir.clone()),
        hostname: launch::hostname(c),
        tty: master.as_ref().map(|m| m.1),
    };
    let sigfd = if o.detach { None } else { Some(io::signals().map_err(|e| fail(125, format!("signals: {e}")))?) };
    let (err_r, err_w) = process::pipe().map_err(|e| fail(125, format!("pipe: {e}")))?;
    let child = match process::fork() {
        Ok(process::Fork::Child) => {
            drop(err_r);
            if let Some((m, _)) = master {
                drop(m);
            }
            if !o.interactive && !o.tty {
                if let Ok(null) = at::openat(libc::AT_FDCWD, OsStr::new("/dev/null"), libc::O_RDONLY, 0) {
                    let _ = tty::dup_to(null.as_raw_fd(), 0);
                }
            }
            if o.detach {
                process::setsid();
            }
            if let Err(e) = join(pid) {
                init::report(err_w.as_raw_fd(), 125, &e);
                process::exit_now(125);
            }
            match process::fork() {
                Ok(process::Fork::Child) => init::exec_command(&p, err_w.as_raw_fd(), p.tty.is_some() || o.detach),
                Ok(process::Fork::Parent(c)) => {
                    drop(err_w);
                    if o.detach {
                        process::exit_now(0);
                    }
                    let code = loop {
                        match waitpid(Pid::from_raw(c), None) {
                            Err(nix::errno::Errno::EINTR) => continue,
                            Ok(st) => break init::status_code(st).unwrap_or(1),
                            Err(_) => break 1,
                        }
                    };
                    process::exit_now(code)
                }
                Err(e) => {
                    init::report(err_w.as_raw_fd(), 125, &format!("fork: {e}"));
                    process::exit_now(125)
                }
            }
        }
        Ok(process::Fork::Parent(pid)) => pid,
        Err(e) => return Err(fail(125, format!("fork: {e}"))),
    };
    drop(err_w);
    if let Some((code, msg)) = init::read_failure(err_r) {
        let _ = waitpid(Pid::from_raw(child), None);
        return Err(fail(code, msg));
    }
    if o.detach {
        let _ = waitpid(Pid::from_raw(child), None);
        return Ok(0);
    }
    let Some(sigfd) = sigfd else { return Ok(0) };
    let mut code = None;
    match master {
        Some((m, _)) => {
            let _raw = nix::unistd::isatty(std::io::stdin()).unwrap_or(false).then(RawMode::enter);
            io::pass_winsize(&m);
            let mut relay = Relay {
                master: Some(m),
                stdout: None,
                stderr: None,
                stdin: None,
                forward_stdin: o.interactive,
                attached: true,
                log: None,
            };
            relay.run(&sigfd, |r, sig| {
                match sig {
                    Signal::SIGWINCH => {
                        if let Some(m) = &r.master {
                            io::pass_winsize(m);
                        }
                    }
                    Signal::SIGCHLD => {
                        if let Ok(st) = waitpid(Pid::from_raw(child), Some(WaitPidFlag::WNOHANG)) {
                            if st != WaitStatus::StillAlive {
                                code = init::status_code(st);
                            }
                        }
                    }
                    _ => {}
                }
                if code.is_some() {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            });
        }
        None => loop {
            // Our stdio is the process's: just wait (signals reach it through
            // the terminal's process group).
            match waitpid(Pid::from_raw(child), None) {
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(st) => {
                    code = init::status_code(st);
                    break;
                }
                Err(_) => break,
            }
        },
    }
    Ok(code.unwrap_or(1))
}
