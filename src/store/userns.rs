//! Rootless volume, bind and tmpfs mounts. An unprivileged user cannot
//! mount on the host, so a small process (`unionctl __ns-hold`) makes a
//! user namespace (the user mapped to root) with its own mount namespace,
//! applies the container's mounts under the merged root there (the unionfs
//! mount itself, made with fusermount3, is on the host and copied in), and
//! then waits. The namespace lives as long as that process: the last
//! unmount kills it, and every mount in it goes away with it.
//! `unionctl unshare CTR [CMD]` runs a command inside (like `podman unshare`).

use crate::store::containers::{self, Container};
use crate::store::error::{err, Context, Error, Result};
use crate::store::mounts::{self, Proc};
use crate::store::Store;
use crate::sys::{mount, process};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

/// Start the holder of `c`'s mounts (merged is mounted already).
pub fn start(store: &Store, c: &Container, merged: &Path) -> Result<Proc> {
    let exe = std::env::current_exe().ctx("unionctl executable")?;
    let mut child = Command::new(exe)
        .arg("--root")
        .arg(&store.root)
        .arg("__ns-hold")
        .arg(&c.id)
        .arg(merged)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ctx("starting the namespace holder")?;
    let mut word = [0u8; 1];
    let ready = child.stdout.take().is_some_and(|mut o| o.read_exact(&mut word).is_ok() && word[0] == b'K');
    if !ready {
        let mut msg = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut msg);
        }
        let _ = child.wait();
        let line = msg.lines().last().unwrap_or("the namespace holder failed").trim();
        return err(line.trim_start_matches("unionctl: error: ").to_string());
    }
    let pid = child.id() as i32;
    let start = process::start_time(pid).ok_or_else(|| Error("the namespace holder died".into()))?;
    Ok(Proc { pid, start })
}

/// The holder itself: enter a new user+mount namespace, mount, report
/// readiness on stdout, then wait to be killed.
pub fn hold(store: &Store, id: &str, merged: &Path) -> Result<()> {
    let c = containers::resolve(store, id)?;
    let (uid, gid) = (crate::sys::geteuid(), nix::unistd::getegid().as_raw());
    mount::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS).ctx("unshare (user and mount namespace)")?;
    mount::map_self_to_root(uid, gid).ctx("user namespace id map")?;
    crate::sys::at::set_unprivileged();
    let mut applied = Vec::new();
    mounts::apply_all(store, &c, merged, &mut applied)?;
    println!("K");
    process::setsid();
    process::detach_stdio();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Enter the namespace of a mounted container (rootless) and run `cmd`.
pub fn enter(store: &Store, c: &Container, cmd: &[String]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let Some((merged, state)) = mounts::mounted(store, c) else {
        return err(format!("container {} is not mounted", c.name));
    };
    if let Some(ns) = &state.namespace {
        let base = std::path::PathBuf::from(format!("/proc/{}/ns", ns.pid));
        mount::setns(&base.join("user"), libc::CLONE_NEWUSER).ctx("entering the user namespace")?;
        mount::setns(&base.join("mnt"), libc::CLONE_NEWNS).ctx("entering the mount namespace")?;
    }
    let (prog, args) = match cmd.split_first() {
        Some((p, a)) => (p.clone(), a.to_vec()),
        None => (std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()), Vec::new()),
    };
    let e = Command::new(&prog).args(&args).env("UNIONCTL_MERGED", &merged).exec();
    err(format!("{prog}: {}", crate::sys::tree::strip_os(&e)))
}
