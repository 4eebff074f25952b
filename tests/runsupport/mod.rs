//! Shared by the tests of processes in containers (tests/run*.rs): a store in
//! a temp dir driven through the real `unionctl` binary (or, with
//! `UNIONFS_RUN_ORACLE=podman`, through podman with runc on a store of its
//! own, to check that the tests themselves expect what docker/podman do),
//! every command under a timeout, images made on the spot from the host's
//! static busybox, a pty driver for `-it`, and a guard that leaves no
//! container, process or mount behind, also when the test panics.
#![allow(dead_code)]

mod image;
mod procs;
mod pty;

#[allow(unused_imports)]
pub use image::*;
#[allow(unused_imports)]
pub use procs::*;
#[allow(unused_imports)]
pub use pty::*;

use crate::ctrsupport::{detach_all_under, mounts_under};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The busybox image: PATH /bin, Cmd sh, an anonymous volume at /anon.
pub const BB: &str = "localhost/rt/busybox:1";
/// The same layer with User app, WorkingDir /home/app, Env, Entrypoint
/// `/bin/echo ep`, Cmd `default`, StopSignal SIGUSR1.
pub const APP: &str = "localhost/rt/app:1";

/// What a command did.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tool {
    Unionctl,
    Podman,
}

pub struct RunEnv {
    pub t: tempfile::TempDir,
    pub tool: Tool,
    /// Put in the environment of every command: finds what they left running.
    tag: String,
    /// Rootless: every command runs as this (uid, gid), HOME in the temp dir.
    pub user: Option<(u32, u32)>,
}

pub const TAG_VAR: &str = "UNIONFS_RUNTEST";

impl RunEnv {
    pub fn new() -> RunEnv {
        let t = tempfile::Builder::new().prefix("unionctl-run.").tempdir_in("/tmp").unwrap();
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let tool = match std::env::var("UNIONFS_RUN_ORACLE").as_deref() {
            Ok("podman") => Tool::Podman,
            _ => Tool::Unionctl,
        };
        let tag = t.path().display().to_string();
        RunEnv { t, tool, tag, user: None }
    }

    /// Every command as the unprivileged user `unionfs-test` (created when
    /// absent), with HOME, XDG_DATA_HOME, XDG_RUNTIME_DIR and the store in a
    /// home of its own in the temp dir.
    pub fn rootless() -> RunEnv {
        let mut e = RunEnv::new();
        let (uid, gid) = test_user();
        for d in ["home", "home/run", "home/store", "home/podman"] {
            let p = e.path(d);
            fs::create_dir_all(&p).unwrap();
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        }
        fs::set_permissions(e.path("home/run"), fs::Permissions::from_mode(0o700)).unwrap();
        e.user = Some((uid, gid));
        e
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.t.path().join(p)
    }

    pub fn store(&self) -> PathBuf {
        if self.user.is_some() {
            self.path("home/store")
        } else {
            self.path("store")
        }
    }

    /// The command for `args` (unionctl's spelling) against this store.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = match (self.user, self.tool) {
            (Some(_), _) => {
                let mut c = self.as_user("setpriv");
                let home = self.path("home");
                match self.tool {
                    Tool::Unionctl => {
                        c.arg(env!("CARGO_BIN_EXE_unionctl")).arg("--root").arg(self.store());
                    }
                    Tool::Podman => {
                        c.arg("podman")
                            .arg("--root")
                            .arg(home.join("podman/root"))
                            .arg("--runroot")
                            .arg(home.join("podman/run"));
                        c.args([
                            "--storage-driver",
                            "overlay",
                            "--cgroup-manager",
                            "cgroupfs",
                            "--events-backend",
                            "none",
                            "--runtime",
                            "runc",
                        ]);
                    }
                }
                c.args(podman_args_if(self.tool, args));
                c
            }
            (None, Tool::Unionctl) => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_unionctl"));
                c.arg("--root").arg(self.store());
                c.args(args);
                c
            }
            (None, Tool::Podman) => {
                let mut c = Command::new("podman");
                c.arg("--root").arg(self.path("podman/root")).arg("--runroot").arg(self.path("podman/run"));
                c.args(["--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]);
                c.args(["--runtime", "runc"]);
                c.args(podman_args(args));
                c
            }
        };
        c.env(TAG_VAR, &self.tag);
        c
    }

    /// `prog` as the rootless user (with its HOME and XDG dirs), or as is.
    pub fn as_user(&self, prog: &str) -> Command {
        let Some((uid, gid)) = self.user else { return Command::new(prog) };
        let mut c = Command::new("setpriv");
        c.args([format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into()]);
        let home = self.path("home");
        c.env("HOME", &home).env("XDG_DATA_HOME", home.join("share"));
        c.env("XDG_RUNTIME_DIR", home.join("run")).env("XDG_CONFIG_HOME", home.join("config"));
        c.env(TAG_VAR, &self.tag);
        if prog != "setpriv" {
            c.arg(prog);
        }
        c
    }

    /// Run `args` with stdin from /dev/null (60 s at most).
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_io(args, None, Duration::from_secs(60))
    }

    /// Run `args`, feeding `stdin` (None: /dev/null), killed and failing
    /// after `timeout`. Output pipes must close when the command exits: a
    /// detached process that kept them would hang `ID=$(unionctl run -d ...)`.
    pub fn run_io(&self, args: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> Out {
        let mut c = self.command(args);
        c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        run_command(c, &format!("{args:?}"), stdin, timeout)
    }

    /// `args` must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.ok(), "{:?} {args:?} failed ({:?}/{:?}): {}{}", self.tool, o.code, o.signal, o.stdout, o.stderr);
        o.stdout
    }

    /// `args` must exit with `code`; its output.
    pub fn code(&self, args: &[&str], code: i32) -> Out {
        let o = self.run(args);
        assert_eq!(o.code, Some(code), "{args:?}: exit status; stdout {:?} stderr {:?}", o.stdout, o.stderr);
        o
    }

    /// `args` must fail with `code` and one line on stderr containing `want`
    /// (any case).
    pub fn fails(&self, args: &[&str], want: &str, code: i32) -> String {
        let o = self.code(args, code);
        let err = o.stderr.trim_end();
        assert_eq!(err.lines().count(), 1, "{args:?}: not one line on stderr: {err}");
        assert!(err.to_lowercase().contains(&want.to_lowercase()), "{args:?}: expected {want:?} in {err}");
        o.stderr
    }

    /// A process of ours running `args` (killed by the guard when left).
    pub fn spawn(&self, args: &[&str]) -> Child {
        let mut c = self.command(args);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().unwrap()
    }

    pub fn inspect(&self, c: &str) -> serde_json::Value {
        let s = self.ok(&["inspect", c]);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("inspect {c}: {e}: {s}"));
        v[0].clone()
    }

    pub fn state(&self, c: &str) -> serde_json::Value {
        self.inspect(c)["State"].clone()
    }

    /// The STATUS column of `ps -a` for the container named `name`.
    pub fn ps_status(&self, name: &str) -> String {
        let out = self.ok(&["ps", "-a", "--format", "{{.Names}}|{{.Status}}"]);
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}|")))
            .unwrap_or_else(|| panic!("{name} not in ps -a: {out}"))
            .to_string()
    }

    /// Wait up to `secs` for the container to exist and run; its State.
    pub fn wait_running(&self, c: &str, secs: u64) -> serde_json::Value {
        let t0 = Instant::now();
        loop {
            let o = self.run(&["inspect", c]);
            if o.ok() {
                let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap_or_default();
                if v[0]["State"]["Running"] == true {
                    return v[0]["State"].clone();
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(secs), "{c} not running after {secs} s: {}", o.stdout);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait up to `secs` for `logs` of `c` to contain `want`; the logs.
    pub fn wait_logs(&self, c: &str, want: &str, secs: u64) -> String {
        let t0 = Instant::now();
        loop {
            let o = self.run(&["logs", c]);
            let all = format!("{}{}", o.stdout, o.stderr);
            if all.contains(want) {
                return o.stdout;
            }
            assert!(t0.elapsed() < Duration::from_secs(secs), "no {want:?} in the logs of {c} after {secs} s: {all}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait up to `secs` for `n` lines of `logs` of `c` equal to `line`.
    pub fn wait_logs_count(&self, c: &str, line: &str, n: usize, secs: u64) {
        let t0 = Instant::now();
        loop {
            let o = self.run(&["logs", c]);
            if o.stdout.lines().filter(|l| *l == line).count() >= n {
                return;
            }
            assert!(t0.elapsed() < Duration::from_secs(secs), "not {n} x {line:?} in the logs of {c}: {}", o.stdout);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait up to `secs` for the container to stop running.
    pub fn wait_exited(&self, c: &str, secs: u64) -> serde_json::Value {
        let t0 = Instant::now();
        loop {
            let s = self.state(c);
            if s["Running"] == false {
                return s;
            }
            assert!(t0.elapsed() < Duration::from_secs(secs), "{c} still running after {secs} s: {s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Load an OCI layout at `dir` (tag `name`, a full name).
    pub fn load(&self, dir: &Path, name: &str) {
        match self.tool {
            Tool::Unionctl => {
                self.ok(&["image", "load", "-i", &dir.display().to_string()]);
            }
            Tool::Podman => {
                let base = if self.user.is_some() { self.path("home/podman") } else { self.path("podman") };
                let dst = format!(
                    "containers-storage:[overlay@{}+{}]{name}",
                    base.join("root").display(),
                    base.join("run").display()
                );
                let mut c = self.as_user("skopeo");
                c.args(["copy", "-q", &format!("oci:{}:{name}", dir.display()), &dst]);
                c.stdin(Stdio::null());
                let o = run_command(c, "skopeo copy", None, Duration::from_secs(120));
                assert!(o.ok(), "skopeo copy to {dst}: {}", o.stderr);
            }
        }
    }

    /// Build and load the busybox images BB and APP.
    pub fn busybox(&self) {
        let layer = busybox_layer();
        let cfg = serde_json::json!({
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "IMGVAR=image"],
            "Cmd": ["sh"],
            "Volumes": {"/anon": {}},
        });
        write_oci(&self.path("bb-oci"), &layer, &cfg, BB);
        self.load(&self.path("bb-oci"), BB);
        let cfg = serde_json::json!({
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "IMGVAR=app", "HOME=/home/app"],
            "Entrypoint": ["/bin/echo", "ep"],
            "Cmd": ["default"],
            "User": "app",
            "WorkingDir": "/home/app",
            "StopSignal": "SIGUSR1",
        });
        write_oci(&self.path("app-oci"), &layer, &cfg, APP);
        self.load(&self.path("app-oci"), APP);
    }

    /// `run --rm` in the foreground: stdout, and the exit status must be 0.
    pub fn sh(&self, script: &str) -> String {
        self.ok(&["run", "--rm", BB, "sh", "-c", script])
    }

    /// Every container's ID (`ps -aq --no-trunc`).
    pub fn ids(&self) -> Vec<String> {
        self.ok(&["ps", "-aq", "--no-trunc"]).lines().map(str::to_string).collect()
    }

    /// Processes of this test still alive: what its commands started
    /// (tagged, and their descendants) and whatever has a root on one of
    /// the file systems mounted below its temp dir.
    pub fn leftovers(&self) -> Vec<i32> {
        let devs: HashSet<String> = mount_devs_under(self.t.path());
        let me = std::process::id() as i32;
        let procs = processes();
        let mut found: HashSet<i32> = HashSet::new();
        for p in &procs {
            if p.pid == me || p.zombie {
                continue;
            }
            let tagged = fs::read(format!("/proc/{}/environ", p.pid))
                .map(|e| e.split(|b| *b == 0).any(|kv| kv == format!("{TAG_VAR}={}", self.tag).as_bytes()))
                .unwrap_or(false);
            if tagged || root_dev(p.pid).is_some_and(|d| devs.contains(&d)) {
                found.insert(p.pid);
            }
        }
        // Their descendants (a container's processes under its monitor).
        let mut kids: HashMap<i32, Vec<i32>> = HashMap::new();
        for p in &procs {
            if !p.zombie {
                kids.entry(p.ppid).or_default().push(p.pid);
            }
        }
        let mut todo: Vec<i32> = found.iter().copied().collect();
        while let Some(p) = todo.pop() {
            for k in kids.get(&p).into_iter().flatten() {
                if found.insert(*k) {
                    todo.push(*k);
                }
            }
        }
        found.remove(&me);
        let mut v: Vec<i32> = found.into_iter().collect();
        v.sort();
        v
    }

    /// Nothing of this test's containers left: no process, no mount.
    pub fn assert_clean(&self) {
        let t0 = Instant::now();
        loop {
            let mut procs = self.leftovers();
            // (rootless podman keeps a pause process for its user namespace.)
            procs.retain(|p| !(self.tool == Tool::Podman && cmdline(*p) == "catatonit -P"));
            let mut mounts = mounts_under(self.t.path());
            // (podman keeps its storage's own private mount while it lives.)
            mounts.retain(|m| !(self.tool == Tool::Podman && m.ends_with("podman/root/overlay")));
            if procs.is_empty() && mounts.is_empty() {
                return;
            }
            if t0.elapsed() > Duration::from_secs(5) {
                let desc: Vec<String> = procs.iter().map(|p| format!("{p} {}", cmdline(*p))).collect();
                panic!("left behind: processes {desc:?}, mounts {mounts:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RunEnv {
    fn drop(&mut self) {
        let ids = match self.tool {
            Tool::Unionctl => {
                let mut c = self.command(&["ps", "-aq", "--no-trunc"]);
                c.stdin(Stdio::null());
                let o = try_run(c, Duration::from_secs(20));
                o.map(|o| o.stdout.lines().map(str::to_string).collect::<Vec<_>>()).unwrap_or_default()
            }
            Tool::Podman => vec!["-a".to_string()],
        };
        for id in ids {
            let mut c = self.command(&["rm", "-f", "-v", &id]);
            c.stdin(Stdio::null());
            let _ = try_run(c, Duration::from_secs(30));
        }
        for _ in 0..3 {
            let left = self.leftovers();
            if left.is_empty() {
                break;
            }
            for p in left {
                // SAFETY: a signal to a process this test started (tagged or
                // below one) or one running in a root it mounted.
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.tool == Tool::Unionctl {
            let mut c = self.command(&["unmount", "--all"]);
            c.stdin(Stdio::null());
            let _ = try_run(c, Duration::from_secs(30));
        }
        detach_all_under(self.t.path());
        for pid in crate::ctrsupport::daemons_under(self.t.path()) {
            // SAFETY: a plain signal to a daemon this test started.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        // Whatever a dying daemon or monitor mounted last.
        if !mounts_under(self.t.path()).is_empty() {
            std::thread::sleep(Duration::from_millis(300));
            detach_all_under(self.t.path());
        }
    }
}

fn podman_args_if(tool: Tool, args: &[&str]) -> Vec<String> {
    match tool {
        Tool::Unionctl => args.iter().map(|s| s.to_string()).collect(),
        Tool::Podman => podman_args(args),
    }
}

/// unionctl's arguments as podman spells them (run/create: no pull, no
/// network but for the httpd service, which needs the host's loopback;
/// limits this machine allows).
fn podman_args(args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    if matches!(args.first(), Some(&"run") | Some(&"create")) {
        let net = if args.iter().any(|a| a.contains("httpd")) { "host" } else { "none" };
        // Detached: --init, PID 1 forwards signals as unionctl's init does
        // (in the foreground catatonit would turn 126/127 into 1).
        let init = if args.contains(&"-d") { "--init" } else { "--init=false" };
        let extra =
            ["--pull", "never", init, "--network", net, "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"];
        for (i, a) in extra.iter().enumerate() {
            v.insert(1 + i, a.to_string());
        }
    }
    v
}

fn run_command(mut c: Command, what: &str, stdin: Option<&[u8]>, timeout: Duration) -> Out {
    match run_inner(&mut c, stdin, timeout) {
        Ok(o) => o,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn try_run(mut c: Command, timeout: Duration) -> Option<Out> {
    run_inner(&mut c, None, timeout).ok()
}

fn run_inner(c: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<Out, String> {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let t0 = Instant::now();
    let mut child = c.spawn().map_err(|e| format!("spawn: {e}"))?;
    if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    let (tx, rx) = mpsc::channel();
    for (i, r) in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut r = r;
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            let _ = tx.send((i, buf));
        });
    }
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("did not finish within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = t0.elapsed();
    let mut outs = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok((i, b)) => outs[i] = b,
            Err(_) => {
                return Err("exited, but something it started still holds its stdout or stderr open".into());
            }
        }
    }
    Ok(Out {
        code: status.code(),
        signal: status.signal(),
        stdout: String::from_utf8_lossy(&outs[0]).into_owned(),
        stderr: String::from_utf8_lossy(&outs[1]).into_owned(),
        took,
    })
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` on 127.0.0.1:port, retried for up to `secs`: the response body.
pub fn http_get(port: u16, path: &str, secs: u64) -> Option<String> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut r = String::new();
            if s.read_to_string(&mut r).is_ok() && r.starts_with("HTTP/") {
                return r.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The unprivileged test user (created when absent): (uid, gid).
pub fn test_user() -> (u32, u32) {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "unionfs-test"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok().filter(|_| out.status.success())
    };
    if id("-u").is_none() {
        let _ = Command::new("useradd").args(["-m", "-s", "/bin/sh", "unionfs-test"]).status();
    }
    (id("-u").expect("uid of unionfs-test"), id("-g").expect("gid of unionfs-test"))
}

/// An RFC 3339 time that is not the zero time.
pub fn is_time(v: &serde_json::Value) -> bool {
    v.as_str().is_some_and(|s| s.len() >= 20 && s.as_bytes()[4] == b'-' && s.contains('T') && !s.starts_with("0001"))
}
