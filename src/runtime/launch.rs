//! Starting a container's process tree, from the monitor:
//!
//! ```text
//! monitor (host; child subreaper)
//!  └ setup child: [rootless: new user namespace, id maps; new mount
//!    namespace, the unionfs daemon mounted there, volumes] new mount
//!    namespace, /dev, /sys, /etc files, pty; new pid, uts, ipc namespaces
//!     └ init (PID 1: /proc, pivot_root; forwards signals, reaps)
//!        └ the command
//! ```
//!
//! The setup child reports over a socket (`U` when its user namespace waits
//! for the id maps, the pty master, `D` the daemon, `P` the init's pid, `E`
//! a failure) and exits; the init is re-parented to the monitor. Failures of
//! the command before its exec come through the error pipe ([`init`]).
//!
//! As root the merged root is mounted on the host beforehand (so `mount`,
//! `diff`, `cp` see the running container); rootless, the daemon runs inside
//! the container's user namespace (as podman runs fuse-overlayfs), where it
//! can give files the container's ids and serve every user of the container.

use crate::runtime::idmap;
use crate::runtime::init::{self, Process};
use crate::runtime::rootfs::{self, Prepare};
use crate::store::containers::Container;
use crate::store::error::{Context, Error, Result};
use crate::store::mounts::{self, Proc};
use crate::store::Store;
use crate::sys::{process, tty};
use nix::sched::CloneFlags;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// How to start.
pub struct Options {
    pub tty: bool,
    /// Give the container a stdin pipe (`-i`).
    pub stdin: bool,
    /// Unprivileged: everything inside a user namespace.
    pub rootless: bool,
}

/// A started container, as the monitor holds it.
pub struct Launched {
    pub init: Proc,
    pub daemon: Option<Proc>,
    pub master: Option<OwnedFd>,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Why a start failed: the exit code docker would give and a message.
#[derive(Debug)]
pub struct Failed {
    pub code: i32,
    pub msg: String,
    /// The init to reap (the command failed before its exec).
    pub init: Option<i32>,
    pub daemon: Option<Proc>,
}

fn failed(code: i32, msg: impl Into<String>) -> Failed {
    Failed { code, msg: msg.into(), init: None, daemon: None }
}

pub fn hostname(c: &Container) -> String {
    if c.config.hostname.is_empty() {
        c.short_id().to_string()
    } else {
        c.config.hostname.clone()
    }
}

pub fn userdata(store: &Store, c: &Container) -> PathBuf {
    c.dir(store).join("userdata")
}

/// The process of a container's main command.
pub fn main_process(c: &Container) -> Process {
    Process {
        argv: crate::runtime::spec::argv(&c.config),
        env: c.config.env.clone(),
        extra_env: Vec::new(),
        user: c.config.user.clone(),
        cwd: c.config.working_dir.clone(),
        hostname: hostname(c),
        tty: None,
    }
}

fn dev_null() -> Result<OwnedFd> {
    crate::sys::at::openat(libc::AT_FDCWD, std::ffi::OsStr::new("/dev/null"), libc::O_RDWR | libc::O_CLOEXEC, 0)
        .ctx("/dev/null")
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    process::pipe().ctx("pipe")
}

/// Start `c` (the caller is the monitor: single-threaded, a child
/// subreaper, SIGCHLD blocked). `merged` is mounted already as root.
pub fn launch(store: &Store, c: &Container, o: &Options) -> std::result::Result<Launched, Failed> {
    if crate::runtime::spec::argv(&c.config).is_empty() {
        return Err(failed(125, "no command specified: the image has none and none was given"));
    }
    let host = hostname(c);
    rootfs::write_userdata(&userdata(store, c), &host).map_err(|e| failed(125, e.0))?;
    let subids = if o.rootless { idmap::subordinate() } else { None };
    let io = (|| -> Result<_> {
        let null = dev_null()?;
        let (ctl_m, ctl_c) = tty::socketpair().ctx("socketpair")?;
        let (err_r, err_w) = pipe()?;
        let (stdin_r, stdin_w) =
            if o.stdin && !o.tty { pipe().map(|(r, w)| (Some(r), Some(w)))? } else { (None, None) };
        let (out_r, out_w) = if o.tty { (None, None) } else { pipe().map(|(r, w)| (Some(r), Some(w)))? };
        let (errs_r, errs_w) = if o.tty { (None, None) } else { pipe().map(|(r, w)| (Some(r), Some(w)))? };
        Ok((null, ctl_m, ctl_c, err_r, err_w, stdin_r, stdin_w, out_r, out_w, errs_r, errs_w))
    })()
    .map_err(|e| failed(125, e.0))?;
    let (null, ctl_m, ctl_c, err_r, err_w, stdin_r, stdin_w, out_r, out_w, errs_r, errs_w) = io;
    let mut p = main_process(c);
    let child = match process::fork() {
        Ok(process::Fork::Child) => {
            drop((ctl_m, err_r, stdin_w, out_r, errs_r));
            let fd_or = |f: &Option<OwnedFd>| f.as_ref().map_or(null.as_raw_fd(), |f| f.as_raw_fd());
            let _ = tty::dup_to(fd_or(&stdin_r), 0);
            let _ = tty::dup_to(fd_or(&out_w), 1);
            let _ = tty::dup_to(fd_or(&errs_w), 2);
            drop((stdin_r, out_w, errs_w, null));
            setup_child(store, c, o, subids.as_ref(), &mut p, ctl_c, err_w)
        }
        Ok(process::Fork::Parent(pid)) => pid,
        Err(e) => return Err(failed(125, format!("fork: {e}"))),
    };
    drop((ctl_c, err_w, stdin_r, out_w, errs_w, null));
    let mut daemon = None;
    let mut master = None;
    let mut init_pid = None;
    let mut error = None;
    // The setup child's messages.
    let mut line = Vec::new();
    loop {
        let Ok(Some((b, fd))) = tty::recv(ctl_m.as_raw_fd()) else { break };
        if fd.is_some() {
            master = fd;
            continue;
        }
        if b != b'\n' {
            line.push(b);
            continue;
        }
        let msg = String::from_utf8_lossy(&line).to_string();
        line.clear();
        match msg.split_at(msg.len().min(1)) {
            ("U", _) => {
                let r = match &subids {
                    Some((u, g)) => idmap::apply(child, u, g),
                    None => Err("no subordinate ids".into()),
                };
                if let Err(e) = &r {
                    error = Some(format!("user namespace: {e}"));
                }
                process::write_fd(ctl_m.as_raw_fd(), if r.is_ok() { b"M" } else { b"X" });
            }
            ("D", rest) => {
                let mut it = rest.split(' ').filter_map(|x| x.parse::<u64>().ok());
                if let (Some(pid), Some(start)) = (it.next(), it.next()) {
                    daemon = Some(Proc { pid: pid as i32, start });
                }
            }
            ("P", rest) => init_pid = rest.trim().parse::<i32>().ok(),
            ("E", rest) => error = Some(rest.to_string()),
            _ => {}
        }
    }
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
    let Some(init_pid) = init_pid else {
        let msg = error.unwrap_or_else(|| "the container's setup failed".into());
        return Err(Failed { code: 125, msg, init: None, daemon });
    };
    let start = process::start_time(init_pid).unwrap_or(0);
    // The command's exec closes the error pipe; a failure writes to it.
    if let Some((code, msg)) = init::read_failure(err_r) {
        return Err(Failed { code, msg, init: Some(init_pid), daemon });
    }
    Ok(Launched { init: Proc { pid: init_pid, start }, daemon, master, stdin: stdin_w, stdout: out_r, stderr: errs_r })
}

fn send(ctl: RawFd, msg: &str) {
    process::write_fd(ctl, format!("{msg}\n").as_bytes());
}

fn unshare(flags: CloneFlags, what: &str) -> Result<()> {
    nix::sched::unshare(flags).map_err(|e| Error(format!("unshare ({what}): {}", e.desc())))
}

/// The setup child: namespaces, mounts, then the init. Never returns.
fn setup_child(
    store: &Store,
    c: &Container,
    o: &Options,
    subids: Option<&(Vec<idmap::Range>, Vec<idmap::Range>)>,
    p: &mut Process,
    ctl: OwnedFd,
    err_w: OwnedFd,
) -> ! {
    let fd = ctl.as_raw_fd();
    let r = (|| -> Result<()> {
        // Rootless, the root is mounted inside the container's namespaces
        // only, at a path of its own: `unionctl mount` on the host never
        // mistakes that daemon for one of its own.
        let merged = if o.rootless { c.dir(store).join("rootfs") } else { c.merged(store) };
        if o.rootless {
            let (uid, gid) = (crate::sys::geteuid(), nix::unistd::getegid().as_raw());
            unshare(CloneFlags::CLONE_NEWUSER, "user namespace")?;
            if subids.is_some() {
                send(fd, "U");
                let mut b = [0u8; 1];
                if nix::unistd::read(&ctl, &mut b).ok() != Some(1) || b[0] != b'M' {
                    return Err(Error("the user namespace was not mapped".into()));
                }
            } else {
                crate::sys::mount::map_self_to_root(uid, gid).ctx("user namespace id map")?;
            }
            unshare(CloneFlags::CLONE_NEWNS, "mount namespace")?;
            rootfs::make_private()?;
            std::fs::create_dir_all(&merged).ctx(merged.display())?;
            let mut opts = mounts::union_options_for(store, c, true)?;
            opts.push_str(",allow_other");
            let daemon = mounts::spawn_unionfs(&opts, &merged).map_err(|e| Error(format!("mount: {}", e.0)))?;
            send(fd, &format!("D{} {}", daemon.pid, daemon.start));
            let mut applied = Vec::new();
            mounts::apply_all(store, c, &merged, &mut applied)?;
        }
        // The container's own mount namespace (the daemon's stays apart:
        // pivot_root moves every process of a namespace).
        unshare(CloneFlags::CLONE_NEWNS, "mount namespace")?;
        rootfs::make_private()?;
        let ud = userdata(store, c);
        let console = rootfs::prepare(&Prepare {
            merged: &merged,
            userdata: &ud,
            read_only: o.rootless && c.read_only,
            rootless: o.rootless,
            tty: o.tty,
        })?;
        if let Some((master, n)) = console {
            tty::send_fd(fd, master.as_raw_fd()).ctx("pass the terminal")?;
            p.tty = Some(n);
        }
        // Our own binary, for the init (the host's files are gone after pivot_root).
        let exe = crate::sys::at::openat(
            libc::AT_FDCWD,
            std::ffi::OsStr::new("/proc/self/exe"),
            libc::O_RDONLY | libc::O_CLOEXEC,
            0,
        )
        .ctx("/proc/self/exe")?;
        unshare(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC, "pid, uts, ipc")?;
        nix::unistd::sethostname(&p.hostname).map_err(|e| Error(format!("sethostname: {}", e.desc())))?;
        match process::fork().ctx("fork")? {
            process::Fork::Child => {
                drop(ctl);
                init::exec_init(&exe, &merged, p, err_w)
            }
            process::Fork::Parent(pid) => {
                send(fd, &format!("P{pid}"));
                Ok(())
            }
        }
    })();
    if let Err(e) = r {
        send(fd, &format!("E{}", e.0.replace('\n', " ")));
        process::exit_now(125);
    }
    process::exit_now(0)
}
