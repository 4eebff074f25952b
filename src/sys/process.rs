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

/// Put every catchable signal back to its default disposition (before an
/// exec: Rust ignores SIGPIPE, a monitor may ignore others).
pub fn default_signals() {
    for sig in 1..32 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: SIG_DFL is always a valid disposition.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

/// Keep malloc to one arena (unless `MALLOC_ARENA_MAX` says otherwise).
/// glibc gives each thread that contends an arena of its own, up to 8 per
/// core; a daemon whose inodes are made by one worker and freed by another
/// then grows each arena on its own. Measured (`scripts/bench.sh rss`, one
/// run each): peak RSS after walking 639k entries with the inode table
/// bounded was 55.0 MiB with glibc's default, 51.8 MiB with two arenas and
/// 42.2 MiB with one (32.8-33.0 MiB after 64k entries in all three).
pub fn one_malloc_arena() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator tunable.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Ignore `sig` (SIG_IGN).
pub fn ignore_signal(sig: i32) {
    // SAFETY: SIG_IGN is always a valid disposition.
    unsafe {
        libc::signal(sig, libc::SIG_IGN);
    }
}

/// Drop every capability not in `keep` from the bounding set: what an
/// exec'd program (root included) can ever hold.
pub fn limit_capabilities(keep: &[u32]) -> io::Result<()> {
    let last: u32 =
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40);
    for cap in 0..=last {
        if !keep.contains(&cap) {
            // SAFETY: no pointers.
            cvt(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) })?;
        }
    }
    Ok(())
}

/// Own a descriptor this process was started with (the caller knows it is
/// open and nobody else owns it).
pub fn adopt_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: inherited at exec, owned by nobody else in this process.
    unsafe { OwnedFd::from_raw_fd(fd) }
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

/// What identifies a process across pid reuse: its pid and start time
/// (clock ticks after boot, /proc/PID/stat field 22).
pub fn start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state); field 22 is index 19.
    if f.first() == Some(&"Z") || f.first() == Some(&"X") {
        return None;
    }
    f.get(19)?.parse().ok()
}

/// Is the process `pid` that started at `start` still running (not a zombie)?
pub fn alive(pid: i32, start: u64) -> bool {
    pid > 0 && start_time(pid) == Some(start)
}

/// This boot's id (records from before a reboot name no live process).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// kill(2).
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: no pointers.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// The pids of the processes whose executable name (`comm`) is `comm` and
/// whose last argument is `last_arg`.
pub fn find_by_last_arg(comm: &str, last_arg: &std::ffi::OsStr) -> Vec<i32> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else { return out };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(c) = std::fs::read(format!("/proc/{pid}/comm")) else { continue };
        if c.strip_suffix(b"\n").unwrap_or(&c) != comm.as_bytes() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let last = cmdline.strip_suffix(b"\0").unwrap_or(&cmdline).rsplit(|b| *b == 0).next().unwrap_or_default();
        if last == last_arg.as_bytes() {
            out.push(pid);
        }
    }
    out
}

/// A process that uses something at or below `dir`: its working directory,
/// root, an open descriptor or a mapped file. `(pid, command name)`.
pub fn user_of(dir: &std::path::Path) -> Option<(i32, String)> {
    let me = std::process::id() as i32;
    let under = |p: &std::path::Path| p.starts_with(dir);
    let rd = std::fs::read_dir("/proc").ok()?;
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let base = std::path::PathBuf::from(format!("/proc/{pid}"));
        let mut hit = ["cwd", "root"].iter().any(|l| std::fs::read_link(base.join(l)).is_ok_and(|p| under(&p)));
        if !hit {
            if let Ok(fds) = std::fs::read_dir(base.join("fd")) {
                hit = fds.flatten().any(|f| std::fs::read_link(f.path()).is_ok_and(|p| under(&p)));
            }
        }
        if !hit {
            if let Ok(maps) = std::fs::read_to_string(base.join("maps")) {
                hit = maps.lines().filter_map(|l| l.find('/').map(|i| &l[i..])).any(|p| under(std::path::Path::new(p)));
            }
        }
        if hit {
            let comm = std::fs::read_to_string(base.join("comm")).unwrap_or_default().trim().to_string();
            return Some((pid, comm));
        }
    }
    None
}

/// 32 random bytes as 64 hex digits (container and volume IDs).
pub fn random_hex64() -> io::Result<String> {
    let mut b = [0u8; 32];
    let mut got = 0;
    while got < b.len() {
        // SAFETY: the buffer is writable for the length given.
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), b.len() - got, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        got += n as usize;
    }
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
