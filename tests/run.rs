//! `unionctl run` in the foreground, as root: exit statuses as docker's,
//! stdout/stderr/stdin, what the process sees (namespaces, /proc, /dev,
//! /sys, hostname and /etc files, no host mounts, nothing leaking out, no
//! way to make a read-only volume writable), the image config and the flags
//! that override it, `--rm`, and the state `ps`/`inspect` report.
//! `UNIONFS_RUN_ORACLE=podman cargo test --test run` runs the same checks
//! against podman (runc) to keep the expectations docker's.

mod ctrsupport;
mod fixtures;
mod runsupport;

use runsupport::*;
use std::fs;
use std::time::Duration;

#[test]
fn exit_statuses_are_dockers() {
    let e = RunEnv::new();
    e.busybox();
    e.code(&["run", "--rm", BB, "true"], 0);
    e.code(&["run", "--rm", BB, "false"], 1);
    e.code(&["run", "--rm", BB, "sh", "-c", "exit 3"], 3);
    // The command cannot be found: 127; found but not executable: 126.
    let o = e.code(&["run", "--rm", BB, "nosuchcommand"], 127);
    assert!(o.stderr.contains("nosuchcommand"), "{}", o.stderr);
    e.code(&["run", "--rm", BB, "/bin/nosuch"], 127);
    e.code(&["run", "--rm", BB, "/bin/notexec"], 126);
    e.code(&["run", "--rm", BB, "/etc"], 126);
    // unionctl's own errors: 125, one line.
    for args in [
        vec!["run", "--rm", "localhost/rt/nosuch:1", "true"],
        vec!["run", "--rm", "--no-such-flag", BB, "true"],
        vec!["run", "--rm", "-v", "vol:relative", BB, "true"],
        vec!["run", "--rm", "-v", "/no/such/host/dir:/x", BB, "true"],
        vec!["run", "--rm", "--env-file", "/no/such/file", BB, "true"],
    ] {
        let o = e.code(&args, 125);
        assert!(!o.stderr.trim().is_empty(), "{args:?}: no message");
    }
    // The run --rm that failed left nothing.
    assert!(e.ids().is_empty(), "{:?}", e.ids());
    e.assert_clean();
}

#[test]
fn a_signal_death_is_128_plus_n() {
    let e = RunEnv::new();
    e.busybox();
    let mut fg = e.spawn(&["run", "--name", "victim", BB, "sleep", "60"]);
    e.wait_running("victim", 20);
    e.ok(&["kill", "-s", "KILL", "victim"]);
    let st = wait_child(&mut fg, 20);
    assert_eq!(st, Some(137), "foreground run of a container killed by SIGKILL");
    assert_eq!(e.ok(&["wait", "victim"]).trim(), "137");
    let s = e.state("victim");
    assert_eq!(s["ExitCode"], 137, "{s}");
    assert_eq!(s["Running"], false, "{s}");
    // A process that kills itself (not PID 1, so the signal is not ignored).
    e.code(&["run", "--rm", BB, "sh", "-c", "sh -c 'kill -USR1 $$'; exit $?"], 138);
    e.ok(&["rm", "victim"]);
    e.assert_clean();
}

/// The exit status of a spawned client within `secs`.
fn wait_child(c: &mut std::process::Child, secs: u64) -> Option<i32> {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            return st.code();
        }
        if t0.elapsed() > Duration::from_secs(secs) {
            let _ = c.kill();
            panic!("still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stdout_stderr_and_stdin() {
    let e = RunEnv::new();
    e.busybox();
    let o = e.code(&["run", "--rm", BB, "sh", "-c", "echo out; echo err >&2; exit 4"], 4);
    assert_eq!(o.stdout, "out\n");
    assert!(o.stderr.contains("err\n") && !o.stderr.contains("out"), "{}", o.stderr);
    // -i: stdin is piped through, EOF included.
    let o =
        e.run_io(&["run", "--rm", "-i", BB, "sh", "-c", "cat; echo done"], Some(b"piped\n"), Duration::from_secs(30));
    assert_eq!((o.code, o.stdout.as_str()), (Some(0), "piped\ndone\n"), "{}", o.stderr);
    // A bigger stream, byte for byte.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let o = e.run_io(&["run", "--rm", "-i", BB, "md5sum"], Some(&big), Duration::from_secs(30));
    let want = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&big)?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(o.stdout.split(' ').next(), String::from_utf8_lossy(&want.stdout).split(' ').next(), "{}", o.stderr);
    // Without -i the container's stdin is not the caller's: cat ends at once.
    let o = e.run_io(&["run", "--rm", BB, "cat"], Some(b"not for you\n"), Duration::from_secs(30));
    assert_eq!((o.code, o.stdout.as_str()), (Some(0), ""), "{}", o.stderr);
    e.assert_clean();
}

#[test]
fn what_the_process_sees() {
    let e = RunEnv::new();
    e.busybox();
    let script = r#"
echo "pid=$$"
echo "hostname=$(hostname)"
echo "etchostname=$(cat /etc/hostname)"
grep -q "$(hostname)" /etc/hosts && echo hosts-names-me
grep -q localhost /etc/hosts && echo hosts-localhost
test -f /etc/resolv.conf && echo resolv-present
echo "procs=$(ls /proc | grep -c '^[0-9]')"
echo "dev=$(ls /dev | tr '\n' ' ')"
echo x > /dev/null && echo null-ok
echo "zero=$(head -c 5 /dev/zero | wc -c)"
echo "urandom=$(head -c 7 /dev/urandom | wc -c)"
echo x 2>/dev/null > /dev/full || echo full-ok
echo "fd=$(readlink /dev/fd) stdin=$(readlink /dev/stdin) stdout=$(readlink /dev/stdout)"
touch /sys/x 2>/dev/null || echo sys-readonly
test -d /sys/kernel && echo sys-there
for n in mnt pid uts ipc; do echo "ns-$n=$(readlink /proc/self/ns/$n)"; done
echo "ps=$(ps -o pid,comm | tail -n +2 | tr -s ' ' | tr '\n' ';')"
echo mountinfo:
cat /proc/self/mountinfo
"#;
    let out = e.ok(&["run", "--name", "seen", BB, "sh", "-c", script]);
    let v = e.inspect("seen");
    let id = v["Id"].as_str().unwrap().to_string();
    assert_eq!(v["Config"]["Hostname"], id[..12], "inspect .Config.Hostname");
    let get = |k: &str| out.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or_default().to_string();
    // A fresh pid namespace: the shell is PID 1 (or 2 under a small init).
    let pid: u32 = get("pid").parse().unwrap();
    assert!(pid <= 2, "{out}");
    let procs: u32 = get("procs").parse().unwrap();
    assert!((1..=6).contains(&procs), "host processes visible in /proc:\n{out}");
    assert!(!get("ps").contains("cargo") && !get("ps").contains("run-"), "{out}");
    // Hostname: the short ID, in /etc/hostname and /etc/hosts.
    assert_eq!(get("hostname"), id[..12], "{out}");
    assert_eq!(get("etchostname"), id[..12], "{out}");
    for w in ["hosts-names-me", "hosts-localhost", "resolv-present", "null-ok", "full-ok", "sys-readonly", "sys-there"]
    {
        // (podman --network none, the oracle's setting, writes no resolv.conf.)
        let skip = e.tool == Tool::Podman && w == "resolv-present";
        assert!(skip || out.lines().any(|l| l == w), "{w} missing:\n{out}");
    }
    assert_eq!((get("zero"), get("urandom")), ("5".into(), "7".into()), "{out}");
    assert_eq!(get("fd"), "/proc/self/fd stdin=/proc/self/fd/0 stdout=/proc/self/fd/1", "{out}");
    // A minimal /dev: the standard nodes, none of the host's disks.
    let dev: Vec<String> = get("dev").split_whitespace().map(str::to_string).collect();
    for want in ["null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "fd", "stdin", "stdout", "stderr"] {
        assert!(dev.iter().any(|d| d == want), "/dev/{want} missing: {dev:?}");
    }
    let host_dev: Vec<String> =
        fs::read_dir("/dev").unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    for d in &dev {
        assert!(
            [
                "null", "zero", "full", "random", "urandom", "tty", "console", "pts", "shm", "mqueue", "fd", "stdin",
                "stdout", "stderr", "ptmx", "core"
            ]
            .contains(&d.as_str())
                || !host_dev.contains(d),
            "host device /dev/{d} in the container: {dev:?}"
        );
    }
    // Namespaces of its own.
    for n in ["mnt", "pid", "uts", "ipc"] {
        assert_ne!(get(&format!("ns-{n}")), ns("self", n), "{n} namespace shared with the host");
        assert!(get(&format!("ns-{n}")).starts_with(&format!("{n}:[")), "{out}");
    }
    // Mounts: none of the host's (other than /proc, /sys, /dev kinds).
    let cmounts: Vec<(String, String, String)> = out
        .split("mountinfo:\n")
        .nth(1)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            Some((f[4].to_string(), f[5].to_string(), f[dash + 1].to_string()))
        })
        .collect();
    let points: Vec<&str> = cmounts.iter().map(|m| m.0.as_str()).collect();
    for want in ["/", "/proc", "/dev", "/sys", "/dev/pts"] {
        assert!(points.contains(&want), "{want} not mounted: {points:?}");
    }
    let host_points: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect();
    for p in &points {
        let special = *p == "/"
            || ["/proc", "/sys", "/dev", "/etc/host", "/etc/resolv.conf", "/anon", "/run/.containerenv"]
                .iter()
                .any(|s| p.starts_with(s));
        assert!(special || !host_points.iter().any(|h| h == p), "host mount {p} visible: {points:?}");
        assert!(!p.contains("unionctl-run."), "host path as a mount point: {p}");
    }
    let sys = cmounts.iter().find(|m| m.0 == "/sys").unwrap();
    assert!(sys.1.split(',').any(|o| o == "ro"), "/sys not read-only: {sys:?}");
    assert_eq!(cmounts.iter().find(|m| m.0 == "/proc").unwrap().2, "proc");
    // --hostname
    let out = e.ok(&[
        "run",
        "--rm",
        "--hostname",
        "box",
        BB,
        "sh",
        "-c",
        "hostname; echo $(cat /etc/hostname); grep -c box /etc/hosts",
    ]);
    assert_eq!(out, "box\nbox\n1\n");
    e.ok(&["rm", "seen"]);
    e.assert_clean();
}

#[test]
fn nothing_mounted_inside_leaks_and_read_only_volumes_stay_so() {
    let e = RunEnv::new();
    e.busybox();
    let host = e.path("hostdir");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("f"), "host file\n").unwrap();
    let hostv = format!("{}:/h:ro", host.display());
    let script = r#"
mount -t tmpfs inner /mnt 2>/dev/null && touch /mnt/inside
echo ready
cat /h/f
mount -o remount,rw /ro 2>/dev/null; mount -o remount,bind,rw /ro 2>/dev/null
touch /ro/x 2>/dev/null && echo WROTE-RO || echo ro-held
mount -o remount,rw /h 2>/dev/null; mount -o remount,bind,rw /h 2>/dev/null
touch /h/x 2>/dev/null && echo WROTE-BIND || echo bind-held
sleep 60
"#;
    e.ok(&["volume", "create", "rov"]);
    let id = e.ok(&["run", "-d", "--name", "l", "-v", "rov:/ro:ro", "-v", &hostv, BB, "sh", "-c", script]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "run -d prints the ID: {id}");
    let t0 = std::time::Instant::now();
    let logs = loop {
        let l = e.ok(&["logs", "l"]);
        if l.contains("bind-held") || l.contains("WROTE") {
            break l;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "container did not get there: {l}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(logs.contains("host file\nro-held\nbind-held\n"), "{logs}");
    // The tmpfs the container mounted on /mnt is not on the host.
    let host_mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host_mi.lines().any(|l| l.contains(" - tmpfs inner ")), "container's mount leaked to the host");
    let vol = e.ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", "rov"]);
    assert!(!std::path::Path::new(vol.trim()).join("x").exists());
    assert!(!host.join("x").exists());
    e.ok(&["rm", "-f", "l"]);
    e.assert_clean();
}

#[test]
fn image_config_and_the_flags_over_it() {
    let e = RunEnv::new();
    e.busybox();
    // Entrypoint + Cmd: a command replaces Cmd; --entrypoint replaces both.
    assert_eq!(e.ok(&["run", "--rm", APP]), "ep default\n");
    assert_eq!(e.ok(&["run", "--rm", APP, "a", "b"]), "ep a b\n");
    let probe = "echo $IMGVAR $(pwd) $(id -u):$(id -g) $(id -G | tr ' ' '\\n' | sort -nu | tr '\\n' ' ')";
    assert_eq!(
        e.ok(&["run", "--rm", "--entrypoint", "/bin/sh", APP, "-c", probe]),
        "app /home/app 1234:1234 1234 2000 2001\n"
    );
    // User resolved in the container's own /etc/passwd and /etc/group
    // (daemon is 4321 there, 1 on the host), supplementary groups set.
    let who = |u: &str| {
        e.ok(&[
            "run",
            "--rm",
            "-u",
            u,
            BB,
            "sh",
            "-c",
            "echo $(id -u):$(id -g) $(id -G | tr ' ' '\\n' | sort -nu | tr '\\n' ' ')",
        ])
    };
    assert_eq!(who("daemon"), "4321:4321 2001 4321\n");
    // An explicit group: that group alone (runc's rule).
    assert_eq!(who("app:extra"), "1234:2000 2000\n");
    assert_eq!(who("0"), "0:0 0\n");
    assert_eq!(who("1500:1600"), "1500:1600 1600\n");
    let o = e.code(&["run", "--rm", "-u", "nosuchuser", BB, "true"], 126);
    assert!(o.stderr.contains("nosuchuser"), "{o:?}");
    // Env: the image's, -e over it, --env-file.
    fs::write(e.path("envfile"), "FROMFILE=yes\n# a comment\n\nIMGVAR=file\n").unwrap();
    let out = e.ok(&[
        "run",
        "--rm",
        "--env-file",
        &e.path("envfile").display().to_string(),
        "-e",
        "NEW=1",
        BB,
        "sh",
        "-c",
        "echo $IMGVAR $FROMFILE $NEW $PATH",
    ]);
    assert_eq!(out, "file yes 1 /usr/local/bin:/usr/bin:/bin\n");
    assert_eq!(e.ok(&["run", "--rm", "-e", "IMGVAR=flag", BB, "sh", "-c", "echo $IMGVAR"]), "flag\n");
    // -w (created when missing, as docker does).
    assert_eq!(e.ok(&["run", "--rm", "-w", "/tmp", BB, "pwd"]), "/tmp\n");
    // (-w of a missing directory: docker creates it, podman refuses; not checked.)
    // --read-only: the root refuses writes; volumes and tmpfs take them.
    let out = e.ok(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch",
        "-v",
        "rw:/v",
        BB,
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo root-written; touch /scratch/a /v/a && echo others-ok",
    ]);
    assert_eq!(out, "others-ok\n");
    // --mount and -l.
    e.ok(&[
        "run",
        "--name",
        "lab",
        "-l",
        "tier=test",
        "--mount",
        "type=tmpfs,target=/mt",
        BB,
        "sh",
        "-c",
        "touch /mt/f",
    ]);
    assert_eq!(e.inspect("lab")["Config"]["Labels"]["tier"], "test");
    e.ok(&["rm", "lab"]);
    // A named volume keeps what a --rm container wrote; the writable layer does not.
    e.ok(&["run", "--rm", "-v", "keep:/k", BB, "sh", "-c", "echo kept > /k/f; echo gone > /root/f"]);
    assert_eq!(
        e.ok(&["run", "--rm", "-v", "keep:/k", BB, "sh", "-c", "cat /k/f; cat /root/f 2>/dev/null || echo fresh"]),
        "kept\nfresh\n"
    );
    e.assert_clean();
}

#[test]
fn rm_flag_removes_container_anonymous_volumes_and_layer() {
    let e = RunEnv::new();
    e.busybox();
    let vols_before = e.ok(&["volume", "ls", "-q"]);
    e.ok(&["run", "--rm", "-v", "named:/n", BB, "sh", "-c", "echo x > /anon/a; echo y > /n/b; echo z > /root/c"]);
    assert!(e.ids().is_empty(), "run --rm left a container");
    let vols: Vec<String> = e.ok(&["volume", "ls", "-q"]).lines().map(str::to_string).collect();
    assert_eq!(vols, vec!["named".to_string()], "anonymous volume not removed (before: {vols_before:?})");
    if e.tool == Tool::Unionctl {
        let left: Vec<_> =
            fs::read_dir(e.store().join("containers")).map(|d| d.flatten().collect()).unwrap_or_default();
        assert!(left.is_empty(), "writable layer left: {left:?}");
    }
    // Also when the command fails, and for a detached --rm container.
    e.code(&["run", "--rm", BB, "sh", "-c", "exit 9"], 9);
    e.ok(&["run", "--rm", "-d", "--name", "dr", BB, "sleep", "0.2"]);
    let t0 = std::time::Instant::now();
    while !e.ids().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(20), "run --rm -d container not removed after exit");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(e.ok(&["volume", "ls", "-q"]).trim(), "named");
    e.assert_clean();
}

#[test]
fn ps_and_inspect_state_through_the_life_of_a_container() {
    let e = RunEnv::new();
    e.busybox();
    e.ok(&["create", "--name", "c", BB, "sh", "-c", "echo hi; exit 3"]);
    assert_eq!(e.ps_status("c"), "Created");
    let s = e.state("c");
    assert_eq!(
        (s["Status"].as_str(), s["Running"].as_bool(), s["Pid"].as_i64()),
        (Some("created"), Some(false), Some(0)),
        "{s}"
    );
    // start -a: attached, its status passed on.
    let o = e.code(&["start", "-a", "c"], 3);
    assert_eq!(o.stdout, "hi\n");
    let s = e.state("c");
    assert_eq!(s["Status"], "exited", "{s}");
    assert_eq!(s["ExitCode"], 3, "{s}");
    assert_eq!(s["Running"], false);
    assert!(is_time(&s["StartedAt"]) && is_time(&s["FinishedAt"]), "{s}");
    // (podman 4.3 can record a FinishedAt a little before StartedAt.)
    assert!(e.tool == Tool::Podman || s["FinishedAt"].as_str() >= s["StartedAt"].as_str(), "{s}");
    let st = e.ps_status("c");
    assert!(st.starts_with("Exited (3) ") && st.ends_with(" ago"), "{st}");
    assert!(!e.ok(&["ps", "--format", "{{.Names}}"]).contains('c'), "ps without -a lists an exited container");
    // Detached: Up, a live Pid; wait prints the code.
    e.ok(&["create", "--name", "d", BB, "sh", "-c", "sleep 1.5; exit 5"]);
    e.ok(&["start", "d"]);
    let s = e.state("d");
    assert_eq!((s["Status"].as_str(), s["Running"].as_bool()), (Some("running"), Some(true)), "{s}");
    let pid = s["Pid"].as_i64().unwrap() as i32;
    assert!(alive(pid), "State.Pid {pid} is not alive");
    assert_ne!(ns(&pid.to_string(), "pid"), ns("self", "pid"));
    let st = e.ps_status("d");
    assert!(st.starts_with("Up "), "{st}");
    assert!(e.ok(&["ps", "--format", "{{.Names}}"]).lines().any(|l| l == "d"));
    assert_eq!(e.ok(&["wait", "d"]).trim(), "5");
    let s = e.state("d");
    assert_eq!((s["ExitCode"].as_i64(), s["Pid"].as_i64()), (Some(5), Some(0)), "{s}");
    assert!(!alive(pid));
    // A second start runs it again.
    e.ok(&["start", "d"]);
    assert_eq!(e.ok(&["wait", "d"]).trim(), "5");
    e.ok(&["rm", "c", "d"]);
    e.assert_clean();
}
