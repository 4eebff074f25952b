//! `unionctl exec` and terminals, as root: exec joins the running
//! container's namespaces and root (its changes visible to the main
//! process), exit statuses 0/1/125/126/127/128+n, -e/-w/-u, -i piping stdin;
//! `exec -it` and `run -it` driven through a real pty (a terminal inside,
//! window size and its changes passed on, exit status back).
//! `UNIONFS_RUN_ORACLE=podman` runs them against podman (runc).

mod ctrsupport;
mod fixtures;
mod runsupport;

use runsupport::*;
use std::time::Duration;

/// A detached container that prints what appears in /tmp/shared, then exits.
fn watcher(e: &RunEnv, name: &str) -> serde_json::Value {
    let script = "echo ready; while [ ! -f /tmp/shared ]; do sleep 0.1; done; echo main-saw-$(cat /tmp/shared); \
                  trap 'exit 0' TERM; while :; do sleep 0.1; done";
    e.ok(&["run", "-d", "--name", name, BB, "sh", "-c", script]);
    e.wait_logs(name, "ready", 10);
    e.wait_running(name, 10)
}

#[test]
fn exec_joins_the_container() {
    let e = RunEnv::new();
    e.busybox();
    let s = watcher(&e, "x");
    let pid = s["Pid"].as_i64().unwrap().to_string();
    // The same namespaces as the container's PID 1 (seen from the host).
    let out =
        e.ok(&["exec", "x", "sh", "-c", "for n in mnt pid uts ipc; do readlink /proc/self/ns/$n; done; hostname"]);
    let want: Vec<String> = ["mnt", "pid", "uts", "ipc"].iter().map(|n| ns(&pid, n)).collect();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..4], want.iter().map(String::as_str).collect::<Vec<_>>()[..], "{out}");
    let id = e.inspect("x")["Id"].as_str().unwrap().to_string();
    assert_eq!(lines[4], &id[..12]);
    // The same root: a file written by exec is seen by the main process.
    e.ok(&["exec", "x", "sh", "-c", "echo from-exec > /tmp/shared"]);
    e.wait_logs("x", "main-saw-from-exec", 10);
    // The container's processes only; the exec'd one among them.
    let ps = e.ok(&["exec", "x", "ps", "-o", "pid,args"]);
    assert!(ps.lines().count() <= 8, "{ps}");
    assert!(ps.contains("while [ ! -f") || ps.contains("sleep"), "{ps}");
    // -d: returns at once, the command runs on in the container.
    e.ok(&["exec", "-d", "x", "sh", "-c", "sleep 0.3; echo detached > /tmp/d"]);
    let t0 = std::time::Instant::now();
    while e.run(&["exec", "x", "cat", "/tmp/d"]).stdout != "detached\n" {
        assert!(t0.elapsed() < Duration::from_secs(10), "exec -d did not run its command");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Exit statuses.
    e.code(&["exec", "x", "true"], 0);
    e.code(&["exec", "x", "false"], 1);
    e.code(&["exec", "x", "sh", "-c", "exit 42"], 42);
    e.code(&["exec", "x", "nosuchcommand"], 127);
    e.code(&["exec", "x", "/bin/notexec"], 126);
    e.code(&["exec", "x", "sh", "-c", "kill -9 $$"], 137);
    e.code(&["exec", "nosuchctr", "true"], 125);
    // -e, -w, -u; the image's env is there too.
    let out = e.ok(&[
        "exec",
        "-e",
        "A=1",
        "-w",
        "/home/app",
        "-u",
        "app",
        "x",
        "sh",
        "-c",
        "echo $A $IMGVAR $(pwd) $(id -u):$(id -g)",
    ]);
    assert_eq!(out, "1 image /home/app 1234:1234\n");
    assert_eq!(e.ok(&["exec", "-u", "daemon", "x", "id", "-u"]), "4321\n");
    // -i pipes stdin; without -i the command gets none.
    let o = e.run_io(
        &["exec", "-i", "x", "sh", "-c", "cat > /tmp/in; cat /tmp/in"],
        Some(b"through exec\n"),
        Duration::from_secs(20),
    );
    assert_eq!((o.code, o.stdout.as_str()), (Some(0), "through exec\n"), "{}", o.stderr);
    let o = e.run_io(&["exec", "x", "cat"], Some(b"not for you\n"), Duration::from_secs(20));
    assert_eq!((o.code, o.stdout.as_str()), (Some(0), ""), "{}", o.stderr);
    // Not running: 125.
    // (podman says 255.)
    let not_running = if e.tool == Tool::Podman { 255 } else { 125 };
    e.ok(&["stop", "x"]);
    e.code(&["exec", "x", "true"], not_running);
    e.ok(&["create", "--name", "never", BB]);
    e.code(&["exec", "never", "true"], not_running);
    e.ok(&["rm", "x", "never"]);
    e.assert_clean();
}

#[test]
fn exec_it_gives_a_terminal() {
    let e = RunEnv::new();
    e.busybox();
    watcher(&e, "t");
    let mut p = Pty::spawn(e.command(&["exec", "-it", "t", "sh"]), 30, 100);
    p.send("echo tty=$(tty) size=$(stty size) term-'ok'\n");
    let seen = p.expect("term-ok", 20);
    assert!(seen.contains("tty=/dev/pts/"), "{seen}");
    assert!(seen.contains("size=30 100"), "window size not passed on: {seen}");
    // A window-size change reaches the process.
    p.resize(40, 120);
    std::thread::sleep(Duration::from_millis(300));
    p.send("echo size2=$(stty size) again-'ok'\n");
    let seen = p.expect("again-ok", 20);
    assert!(seen.contains("size2=40 120"), "SIGWINCH not passed on: {seen}");
    // Interactive line editing reaches the shell: ^C interrupts a sleep.
    p.send("sleep 30\n");
    std::thread::sleep(Duration::from_millis(300));
    p.send("\x03");
    p.send("echo after-'int'\n");
    p.expect("after-int", 10);
    // Changes are visible to the main process.
    p.send("echo typed > /tmp/shared\n");
    e.wait_logs("t", "main-saw-typed", 10);
    p.send("exit 3\n");
    assert_eq!(p.wait(20), Some(3));
    e.ok(&["rm", "-f", "t"]);
    e.assert_clean();
}

#[test]
fn run_it_gives_a_terminal() {
    let e = RunEnv::new();
    e.busybox();
    let mut p = Pty::spawn(e.command(&["run", "-it", "--rm", "--name", "it", BB, "sh"]), 25, 90);
    p.send("echo tty=$(tty) size=$(stty size) console=$(test -c /dev/console && echo yes) term-'ok'\n");
    let seen = p.expect("term-ok", 30);
    assert!(seen.contains("tty=/dev/"), "{seen}");
    assert!(seen.contains("size=25 90"), "{seen}");
    assert!(seen.contains("console=yes"), "/dev/console missing with -t: {seen}");
    p.resize(44, 132);
    std::thread::sleep(Duration::from_millis(300));
    p.send("echo size2=$(stty size) again-'ok'\n");
    assert!(p.expect("again-ok", 20).contains("size2=44 132"));
    p.send("exit 7\n");
    assert_eq!(p.wait(20), Some(7));
    let t0 = std::time::Instant::now();
    while !e.ids().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(10), "run -it --rm left its container");
        std::thread::sleep(Duration::from_millis(100));
    }
    e.assert_clean();
}
