//! Processes in containers as the real unprivileged user `unionfs-test`
//! (created when absent): run in the foreground (root inside, the user's
//! own id and its /etc/subuid range outside, users of the image with
//! subordinate ids, exit statuses), run -d, exec, logs, stop, start, rm,
//! nothing left behind and nothing running as root on the host.
//! `UNIONFS_RUN_ORACLE=podman` runs it against rootless podman (runc).

mod ctrsupport;
mod fixtures;
mod runsupport;

use runsupport::*;
use std::fs;

/// The user's first range in /etc/subuid (or subgid): (start, count).
fn subids(file: &str) -> Option<(u64, u64)> {
    fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() == 3 && f[0] == "unionfs-test" {
            Some((f[1].parse().ok()?, f[2].parse().ok()?))
        } else {
            None
        }
    })
}

/// The real uid of a host process.
fn host_uid(pid: i32) -> Option<u32> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:").and_then(|r| r.split_whitespace().next()?.parse().ok()))
}

#[test]
fn rootless_run_exec_stop_start_rm() {
    if std::process::Command::new("newuidmap").arg("--help").output().is_err() {
        panic!("newuidmap missing: apt-get install uidmap");
    }
    let e = RunEnv::rootless();
    let (uid, gid) = e.user.unwrap();
    e.busybox();
    // Root inside, the user outside; with subordinate ids, those too.
    let out = e.sh("id -u; cat /proc/self/uid_map; echo gid; cat /proc/self/gid_map");
    let mut it = out.split("gid\n");
    let (umap, gmap) = (it.next().unwrap(), it.next().unwrap_or_default());
    let lines = |m: &str| -> Vec<Vec<u64>> {
        m.lines().filter_map(|l| l.split_whitespace().map(|x| x.parse().ok()).collect::<Option<Vec<u64>>>()).collect()
    };
    let um = lines(umap);
    assert_eq!(um[0], vec![0], "not root inside: {out}");
    assert!(um[1..].contains(&vec![0, uid as u64, 1]), "uid 0 is not the user: {out}");
    assert!(lines(gmap).contains(&vec![0, gid as u64, 1]), "gid 0 is not the user's group: {out}");
    if let Some((start, count)) = subids("/etc/subuid") {
        assert!(um[1..].contains(&vec![1, start, count]), "subordinate uids not mapped: {out}");
        // An image user (1234) runs with a subordinate id; chown to it works.
        let out = e.ok(&["run", "--rm", "-u", "app", BB, "id", "-u"]);
        assert_eq!(out, "1234\n");
        let out = e.sh("touch /tmp/f && chown 1234:2000 /tmp/f && stat -c %u:%g /tmp/f");
        assert_eq!(out, "1234:2000\n");
    }
    e.code(&["run", "--rm", BB, "sh", "-c", "exit 3"], 3);
    e.code(&["run", "--rm", BB, "nosuchcommand"], 127);
    // Its own namespaces, hostname, /proc; no host mounts.
    let out = e.sh("hostname; ls /proc | grep -c '^[0-9]'; mount | cut -d' ' -f3 | grep -c unionctl-run || true");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0].len(), 12, "{out}");
    assert!(l[1].parse::<u32>().unwrap() <= 4, "host processes visible: {out}");
    assert_eq!(l[2], "0", "host paths mounted: {out}");
    // Detached: exec, logs, stop, start, rm.
    let script = "echo started; trap 'exit 0' TERM; while :; do sleep 0.1; done";
    let id = e.ok(&["run", "-d", "--name", "svc", "-v", "data:/data", BB, "sh", "-c", script]);
    assert_eq!(id.trim().len(), 64, "{id}");
    let s = e.wait_running("svc", 20);
    let pid = s["Pid"].as_i64().unwrap() as i32;
    assert!(alive(pid));
    assert_eq!(host_uid(pid), Some(uid), "the container's PID 1 does not run as the user on the host");
    assert_ne!(ns(&pid.to_string(), "user"), ns("self", "user"), "no user namespace");
    e.ok(&["exec", "svc", "sh", "-c", "echo written > /data/f; echo layer > /root/l"]);
    assert_eq!(e.ok(&["exec", "svc", "id", "-u"]), "0\n");
    e.code(&["exec", "svc", "sh", "-c", "exit 5"], 5);
    e.wait_logs("svc", "started", 10);
    e.ok(&["stop", "-t", "5", "svc"]);
    assert_eq!(e.state("svc")["ExitCode"], 0);
    assert!(!alive(pid));
    e.ok(&["start", "svc"]);
    e.wait_running("svc", 20);
    assert_eq!(e.ok(&["exec", "svc", "cat", "/data/f", "/root/l"]), "written\nlayer\n");
    // Nothing of the user's runs as root on the host.
    for p in e.leftovers() {
        if let Some(u) = host_uid(p) {
            assert_ne!(u, 0, "process {p} ({}) runs as root", cmdline(p));
        }
    }
    e.fails(&["rm", "svc"], "running", 2);
    e.ok(&["rm", "-f", "svc"]);
    assert!(e.ids().is_empty());
    e.assert_clean();
}
