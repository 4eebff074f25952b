//! Processes in containers: `run`, `start`, `stop`, `kill`, `wait`, `exec`,
//! logs. Above the store (containers, mounts, volumes), below the CLI.
//!
//! ```text
//! spec.rs     argv, environment, user (from the container's own files)
//! state.rs    state.json: created/running/exited, pids with start times
//! idmap.rs    rootless: subordinate ids, newuidmap/newgidmap
//! rootfs.rs   /dev, /sys, /proc, /etc files, read-only root, pivot_root
//! init.rs     PID 1 (signals, zombies) and the command's exec
//! launch.rs   the fork choreography: namespaces, daemon, init
//! io.rs       terminal/pipes <-> log and our terminal; signals
//! monitor.rs  the monitor (conmon): waits, logs, records the exit
//! exec.rs     a process joining a running container
//! log.rs      the k8s-file log format
//! ```

pub mod exec;
pub mod idmap;
pub mod init;
pub mod io;
pub mod launch;
pub mod log;
pub mod monitor;
pub mod rootfs;
pub mod spec;
pub mod state;

use crate::store::containers::{self, Container, Kind};
use crate::store::error::{err, Context, Result};
use crate::store::{mounts, volumes, Store};
use crate::sys::process;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Start `c` with a detached monitor (`unionctl __monitor`); returns once
/// the command runs. Err carries docker's exit code.
pub fn start_detached(store: &Store, c: &Container) -> std::result::Result<(), monitor::StartError> {
    let se = |code, msg: String| monitor::StartError { code, msg };
    let _ = monitor::reconcile(store, c);
    if state::view(store, c).running() {
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| se(125, format!("unionctl executable: {e}")))?;
    let mut child = Command::new(exe)
        .arg("--root")
        .arg(&store.root)
        .arg("__monitor")
        .arg(&c.id)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| se(125, format!("starting the monitor: {e}")))?;
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        // The monitor keeps running: read only its readiness message.
        let mut b = [0u8; 1];
        if o.read_exact(&mut b).is_ok() {
            out.push(b[0] as char);
            if b[0] != b'K' {
                let _ = o.read_to_string(&mut out);
            }
        }
    }
    if out == "K" {
        // It lives on in its own session; the zombie is reaped when we exit.
        std::mem::forget(child);
        return Ok(());
    }
    let _ = child.wait();
    let body = out.strip_prefix('E').unwrap_or(&out);
    let (code, msg) = body.split_once(' ').unwrap_or(("125", body));
    let msg = if msg.is_empty() { "the monitor failed to start the container" } else { msg };
    Err(se(code.parse().unwrap_or(125), msg.to_string()))
}

/// The detached monitor's entry point (`unionctl __monitor ID`).
pub fn monitor_main(store: &Store, id: &str) -> Result<()> {
    process::setsid();
    let c = containers::resolve(store, id)?;
    match monitor::run(store, &c, monitor::Mode::Detached(1)) {
        Ok(_) => process::exit_now(0),
        Err(e) => {
            process::write_fd(1, format!("E{} {}", e.code, e.msg).as_bytes());
            process::exit_now(e.code)
        }
    }
}

/// The signal `stop` sends first: the image's StopSignal, else SIGTERM.
pub fn stop_signal(c: &Container) -> i32 {
    parse_signal(&c.config.stop_signal).unwrap_or(libc::SIGTERM)
}

/// `TERM`, `SIGTERM`, `15`.
pub fn parse_signal(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<i32>() {
        return (1..65).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    name.parse::<nix::sys::signal::Signal>().ok().map(|x| x as i32)
}

/// Send `sig` to a running container's init.
pub fn kill(store: &Store, c: &Container, sig: i32) -> Result<()> {
    let v = state::view(store, c);
    if !v.running() || v.pid == 0 {
        return Err(monitor::not_running(c));
    }
    process::kill(v.pid, sig).ctx(format!("kill {}", c.name))
}

/// Wait until the container is not running any more (its monitor has
/// recorded the exit, or is gone); returns the exit code.
pub fn wait(store: &Store, c: &Container, timeout: Option<Duration>) -> Result<i32> {
    let t0 = Instant::now();
    loop {
        let s = state::read(store, c);
        if s.status != state::Status::Running {
            return Ok(s.exit_code);
        }
        if !state::monitor_alive(&s) && !state::init_alive(&s) {
            monitor::reconcile(store, c)?;
            continue;
        }
        if timeout.is_some_and(|t| t0.elapsed() > t) {
            return err(format!("container {} did not stop in time", c.name));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `stop`: the stop signal, SIGKILL after `timeout`, then wait for the exit
/// to be recorded. A container that is not running is left alone.
pub fn stop(store: &Store, c: &Container, timeout: Duration) -> Result<()> {
    let s = state::read(store, c);
    if s.status != state::Status::Running {
        return Ok(());
    }
    if state::init_alive(&s) {
        let _ = process::kill(s.init.pid, stop_signal(c));
        let t0 = Instant::now();
        while state::init_alive(&s) && t0.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(5));
        }
        if state::init_alive(&s) {
            let _ = process::kill(s.init.pid, libc::SIGKILL);
        }
    }
    wait(store, c, Some(Duration::from_secs(60))).map(drop)
}

/// Remove a container: a running one only with `force` (killed first);
/// `anon_volumes` removes its anonymous volumes too.
pub fn remove(store: &Store, c: &Container, force: bool, anon_volumes: bool) -> Result<()> {
    let _ = monitor::reconcile(store, c);
    if state::view(store, c).running() {
        if !force {
            return crate::store::error::conflict(format!(
                "cannot remove container {}: it is running (stop it first, or use rm -f)",
                c.name
            ));
        }
        stop(store, c, Duration::ZERO)?;
    }
    let removal = || -> Result<()> {
        let _lock = store.lock()?;
        containers::remove(store, c)?;
        if anon_volumes {
            let users = volumes::users(store)?;
            for m in c.mounts.iter().filter(|m| m.kind == Kind::Volume && m.anonymous) {
                let n = m.name.as_deref().unwrap_or_default();
                if users.get(n).is_none_or(|u| u.is_empty()) {
                    volumes::remove(store, n)?;
                }
            }
        }
        Ok(())
    };
    if force {
        mounts::force_unmount(store, c)?;
    }
    mounts::with_unmounted(store, c, removal)
}

/// docker's "Up 5 seconds" / "Exited (0) 2 minutes ago" / "Created".
pub fn status_line(v: &state::View) -> String {
    let secs = |t: &str| crate::store::util::parse_rfc3339(t);
    match v.status {
        state::Status::Created => "Created".into(),
        state::Status::Running => {
            let up = secs(&v.started_at).map_or(0, |t| (crate::store::util::now_secs() - t).max(0));
            format!("Up {}", human_duration(up))
        }
        state::Status::Exited => {
            let ago = secs(&v.finished_at).map_or(0, |t| (crate::store::util::now_secs() - t).max(0));
            format!("Exited ({}) {} ago", v.exit_code, human_duration(ago))
        }
    }
}

/// docker's units.HumanDuration.
pub fn human_duration(secs: i64) -> String {
    let (m, h) = (secs / 60, secs / 3600);
    match secs {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if (secs as f64 / 3600.0).round() == 1.0 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", h / 24 / 365),
    }
}
