//! Inside the container: the process that becomes PID 1 (a small init, like
//! `docker run --init`: it forwards signals to the command and reaps every
//! zombie, and exits with the command's status, 128+N for a signal), and the
//! command itself: terminal, user (from the container's own passwd and
//! group files), working directory, environment, then exec.
//!
//! A failure before the exec is written to the error pipe as `CODE message`
//! (126: cannot be invoked, 127: not found); a successful exec closes it.

use crate::runtime::spec::{self, User};
use crate::sys::{process, tty};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What the command needs.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Process {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    /// Added after the image's and the defaults (exec `-e`).
    pub extra_env: Vec<String>,
    pub user: String,
    pub cwd: String,
    pub hostname: String,
    /// The pty slave number in the container's devpts.
    pub tty: Option<u32>,
}

/// Signals the init forwards (everything a user sends, not the ones the
/// kernel generates for the init itself).
const FORWARD: [Signal; 11] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGALRM,
    Signal::SIGCONT,
    Signal::SIGPWR,
    Signal::SIGURG,
];

fn init_set() -> SigSet {
    let mut s = SigSet::empty();
    for sig in FORWARD {
        s.add(sig);
    }
    s.add(Signal::SIGCHLD);
    s
}

/// Exit status in the shell's terms.
pub fn status_code(st: WaitStatus) -> Option<i32> {
    match st {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

/// The name PID 1 shows (`ps` in the container: `unionctl-init -- CMD`).
pub const INIT_NAME: &str = "unionctl-init";
/// The descriptors the init is started with: its process spec (JSON), the error pipe.
const SPEC_FD: RawFd = 3;
const ERR_FD: RawFd = 4;

/// What the init is given.
#[derive(serde::Serialize, serde::Deserialize)]
struct InitSpec {
    /// The root to enter (`/proc`, pivot_root).
    root: PathBuf,
    process: Process,
}

/// Become the container's init: a fresh image of our own binary (`exe`;
/// still on the host's root: it is dynamically linked), so PID 1 holds
/// none of the monitor's memory and shows as `unionctl-init -- CMD`. It
/// enters the container's root itself. Never returns.
pub fn exec_init(exe: &OwnedFd, root: &Path, p: &Process, err_w: OwnedFd) -> ! {
    let spec = serde_json::to_vec(&InitSpec { root: root.to_path_buf(), process: p.clone() }).unwrap_or_default();
    let r = (|| -> std::io::Result<std::convert::Infallible> {
        let (r, w) = process::pipe()?;
        // The spec is small: it fits the pipe's buffer.
        process::write_fd(w.as_raw_fd(), &spec);
        drop(w);
        // Out of the way of the numbers the init is given.
        let (r, err, exe) = (
            tty::dup_above(r.as_raw_fd(), 10)?,
            tty::dup_above(err_w.as_raw_fd(), 10)?,
            tty::dup_above(exe.as_raw_fd(), 10)?,
        );
        tty::dup_to(r.as_raw_fd(), SPEC_FD)?;
        tty::dup_to(err.as_raw_fd(), ERR_FD)?;
        let mut argv = vec![cstring(INIT_NAME.as_bytes()), cstring(b"--")];
        argv.extend(p.argv.iter().map(|a| cstring(a.as_bytes())));
        let env: [CString; 0] = [];
        Ok(nix::unistd::fexecve(&exe, &argv, &env)?)
    })();
    let e = r.err().map(|e| e.to_string()).unwrap_or_default();
    report(err_w.as_raw_fd(), 125, &format!("start the init: {e}"));
    process::exit_now(125)
}

/// The init's entry point (our binary started as [`INIT_NAME`]).
pub fn init_main() -> ! {
    let spec = process::read_all(SPEC_FD, 1 << 20);
    let s: InitSpec = match serde_json::from_slice(&spec) {
        Ok(s) => s,
        Err(e) => fail(ERR_FD, 125, &format!("init: bad process spec: {e}")),
    };
    drop(process::adopt_fd(SPEC_FD));
    if let Err(e) = crate::runtime::rootfs::enter(&s.root) {
        fail(ERR_FD, 125, &e.0);
    }
    run_init(&s.process, process::adopt_fd(ERR_FD))
}

/// Run as PID 1: start the command, forward signals, reap; never returns.
pub fn run_init(p: &Process, err_w: OwnedFd) -> ! {
    let set = init_set();
    let _ = set.thread_block();
    let child = match process::fork() {
        Ok(process::Fork::Child) => exec_command(p, err_w.as_raw_fd(), true),
        Ok(process::Fork::Parent(pid)) => pid,
        Err(e) => {
            report(err_w.as_raw_fd(), 126, &format!("fork: {e}"));
            process::exit_now(126)
        }
    };
    drop(err_w);
    tty::close_from(3, &[]);
    loop {
        let Ok(sig) = set.wait() else { continue };
        if sig != Signal::SIGCHLD {
            let _ = nix::sys::signal::kill(Pid::from_raw(child), sig);
            continue;
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(st) => {
                    if st.pid() == Some(Pid::from_raw(child)) {
                        process::exit_now(status_code(st).unwrap_or(1));
                    }
                }
            }
        }
    }
}

/// The capabilities a container's processes may hold (podman's default
/// set): no CAP_SYS_ADMIN (mounts, remounting a read-only volume), no
/// CAP_MKNOD (device nodes), no CAP_SYS_MODULE, CAP_SYS_PTRACE, ...
pub const CAPABILITIES: [u32; 11] = [
    0,  // CHOWN
    1,  // DAC_OVERRIDE
    3,  // FOWNER
    4,  // FSETID
    5,  // KILL
    6,  // SETGID
    7,  // SETUID
    8,  // SETPCAP
    10, // NET_BIND_SERVICE
    18, // SYS_CHROOT
    31, // SETFCAP
];

/// Wait for the command's exec: the error pipe closes (None), or carries
/// `CODE message` (126 when the code is missing).
pub fn read_failure(err_r: OwnedFd) -> Option<(i32, String)> {
    let msg = process::read_all(err_r.as_raw_fd(), 4096);
    if msg.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&msg).to_string();
    let (code, m) = text.split_once(' ').unwrap_or(("126", &text));
    Some((code.parse().unwrap_or(126), m.to_string()))
}

/// Write `CODE message` to the error pipe.
pub fn report(fd: RawFd, code: i32, msg: &str) {
    process::write_fd(fd, format!("{code} {msg}").as_bytes());
}

fn fail(err_w: RawFd, code: i32, msg: &str) -> ! {
    report(err_w, code, msg);
    process::exit_now(code)
}

/// Find `cmd` the way execvp does, in the container's PATH.
fn find_executable(cmd: &str, path: &str) -> Result<PathBuf, (i32, String)> {
    if cmd.contains('/') {
        return match std::fs::metadata(cmd) {
            Ok(m) if m.is_dir() => Err((126, format!("exec: {cmd:?}: is a directory"))),
            Ok(_) => Ok(PathBuf::from(cmd)),
            Err(_) => Err((127, format!("exec: {cmd:?}: no such file or directory"))),
        };
    }
    let mut denied = None;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(cmd);
        if let Ok(m) = std::fs::metadata(&cand) {
            if m.is_file() {
                if nix::unistd::access(&cand, nix::unistd::AccessFlags::X_OK).is_ok() {
                    return Ok(cand);
                }
                denied.get_or_insert(cand);
            }
        }
    }
    match denied {
        Some(c) => Err((126, format!("exec: {:?}: permission denied", c.display().to_string()))),
        None => Err((127, format!("exec: {cmd:?}: executable file not found in $PATH"))),
    }
}

fn cstring(s: &[u8]) -> CString {
    CString::new(s.iter().copied().filter(|b| *b != 0).collect::<Vec<u8>>()).unwrap_or_default()
}

/// Resolve the user through the container's own files (we are in its root).
pub fn user_of(spec_user: &str) -> Result<User, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    spec::resolve_user(spec_user, &passwd, &group)
}

/// The command: terminal, user, directory, environment, exec. Never returns.
pub fn exec_command(p: &Process, err_w: RawFd, new_session: bool) -> ! {
    let _ = SigSet::all().thread_unblock();
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    process::default_signals();
    if new_session {
        let _ = nix::unistd::setsid();
    }
    if let Some(n) = p.tty {
        let slave = format!("/dev/pts/{n}");
        match crate::sys::at::openat(libc::AT_FDCWD, std::ffi::OsStr::new(&slave), libc::O_RDWR, 0) {
            Ok(fd) => {
                let _ = tty::set_controlling_tty(fd.as_raw_fd());
                for to in 0..3 {
                    let _ = tty::dup_to(fd.as_raw_fd(), to);
                }
            }
            Err(e) => fail(err_w, 126, &format!("open {slave}: {e}")),
        }
    }
    let user = match user_of(&p.user) {
        Ok(u) => u,
        Err(e) => fail(err_w, 126, &e),
    };
    let env = spec::environment(&p.env, &p.extra_env, &p.hostname, &user.home, p.tty.is_some());
    let cwd = if p.cwd.is_empty() { "/" } else { &p.cwd };
    if std::env::set_current_dir(cwd).is_err() {
        // docker makes a missing working directory.
        if std::fs::create_dir_all(cwd).is_err() || std::env::set_current_dir(cwd).is_err() {
            fail(err_w, 126, &format!("chdir to cwd ({cwd:?}): no such file or directory"));
        }
    }
    if let Err(e) = process::limit_capabilities(&CAPABILITIES) {
        fail(err_w, 126, &format!("capabilities: {e}"));
    }
    let gids: Vec<nix::unistd::Gid> = user.groups.iter().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
    if let Err(e) = nix::unistd::setgroups(&gids) {
        // A user namespace with setgroups denied: keep none.
        if e != nix::errno::Errno::EPERM {
            fail(err_w, 126, &format!("setgroups: {}", e.desc()));
        }
    }
    let g = nix::unistd::Gid::from_raw(user.gid);
    if let Err(e) = nix::unistd::setresgid(g, g, g) {
        fail(err_w, 126, &format!("setgid {}: {}", user.gid, e.desc()));
    }
    let u = nix::unistd::Uid::from_raw(user.uid);
    if let Err(e) = nix::unistd::setresuid(u, u, u) {
        fail(err_w, 126, &format!("setuid {}: {}", user.uid, e.desc()));
    }
    let Some(cmd) = p.argv.first() else { fail(err_w, 126, "no command specified") };
    let path = spec::getenv(&env, "PATH").unwrap_or(spec::DEFAULT_PATH).to_string();
    let exe = match find_executable(cmd, &path) {
        Ok(e) => e,
        Err((code, msg)) => fail(err_w, code, &msg),
    };
    let argv: Vec<CString> = p.argv.iter().map(|a| cstring(a.as_bytes())).collect();
    let envp: Vec<CString> = env.iter().map(|a| cstring(a.as_bytes())).collect();
    tty::cloexec_from(3);
    let e = nix::unistd::execve(&cstring(exe.as_os_str().as_bytes()), &argv, &envp).unwrap_err();
    let code = if e == nix::errno::Errno::ENOENT { 127 } else { 126 };
    fail(err_w, code, &format!("exec {cmd:?}: {}", e.desc()))
}
