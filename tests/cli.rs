//! The `unionfs` command line: help/version, validation before mounting,
//! daemon mode, signals and clean shutdown.

mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).stdin(Stdio::null()).output().expect("run unionfs")
}

#[test]
fn version_and_help_exit_zero() {
    let v = run(&["--version"]);
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).contains("unionfs version"));
    let h = run(&["--help"]);
    assert!(h.status.success());
    assert!(String::from_utf8_lossy(&h.stdout).contains("lowerdir="));
}

/// Each bad command line fails with one line on stderr, non-zero, unmounted.
#[test]
fn bad_input_fails_before_mounting() {
    let l = Layout::new(1);
    l.lower_file(0, "sub/f", "x");
    let file = l.lower_file(0, "plainfile", "x");
    let (lw, up, wk, mnt) =
        (l.lowerdir(), l.upper.display().to_string(), l.work.display().to_string(), l.mnt.display().to_string());
    let inside_lower = l.lower(0, "sub").display().to_string();
    let shm_differs = fs::metadata("/dev/shm").map(|m| m.dev()).ok() != fs::metadata(&l.upper).map(|m| m.dev()).ok();
    let mut cases: Vec<(String, Vec<String>)> = vec![
        (
            "missing lower".into(),
            vec!["-o".into(), format!("lowerdir=/nonexistent/x,upperdir={up},workdir={wk}"), mnt.clone()],
        ),
        (
            "lower is a file".into(),
            vec!["-o".into(), format!("lowerdir={},upperdir={up},workdir={wk}", file.display()), mnt.clone()],
        ),
        (
            "upper inside a lower".into(),
            vec!["-o".into(), format!("lowerdir={lw},upperdir={inside_lower},workdir={wk}"), mnt.clone()],
        ),
        (
            "mountpoint inside a layer".into(),
            vec!["-o".into(), format!("lowerdir={lw},upperdir={up},workdir={wk}"), inside_lower.clone()],
        ),
        (
            "missing mountpoint".into(),
            vec!["-o".into(), format!("lowerdir={lw},upperdir={up},workdir={wk}"), "/nonexistent/m".into()],
        ),
        ("upper without work".into(), vec!["-o".into(), format!("lowerdir={lw},upperdir={up}"), mnt.clone()]),
        ("no lowerdir".into(), vec!["-o".into(), format!("upperdir={up},workdir={wk}"), mnt.clone()]),
        ("no mountpoint".into(), vec!["-o".into(), format!("lowerdir={lw}")]),
        ("bad timeout".into(), vec!["-o".into(), format!("lowerdir={lw},timeout=soon"), mnt.clone()]),
    ];
    if shm_differs {
        cases.push((
            "work on another fs".into(),
            vec!["-o".into(), format!("lowerdir={lw},upperdir={up},workdir=/dev/shm"), mnt.clone()],
        ));
    }
    for (what, args) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let start = Instant::now();
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: succeeded");
        assert!(err.starts_with("unionfs: error: "), "{what}: stderr {err:?}");
        assert!(err.trim_end().lines().count() <= 2, "{what}: long stderr {err:?}");
        assert!(start.elapsed() < Duration::from_secs(5), "{what}: took too long");
        assert!(!is_mounted(&l.mnt), "{what}: mounted anyway");
    }
}

#[test]
fn unknown_options_warn_but_mount() {
    let l = Layout::new(1);
    l.lower_file(0, "f", "x");
    let m = UnionMount::start(&format!("{},no_such_option=1", l.opts()), &l.mnt, &[]);
    assert_eq!(fs::read_to_string(l.m("f")).unwrap(), "x");
    drop(m);
}

fn daemon_pid(mnt: &std::path::Path) -> Option<u32> {
    let want = mnt.display().to_string();
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<String> = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = state.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'));
        if !zombie && args.first().is_some_and(|a| a.ends_with("unionfs")) && args.contains(&want) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn daemon_mode_exits_once_mounted_and_unmount_ends_it() {
    let l = Layout::new(1);
    l.lower_file(0, "hello", "world");
    let out = run(&["-o", &l.opts(), &l.mnt.display().to_string()]);
    assert!(out.status.success(), "daemon start failed: {}", String::from_utf8_lossy(&out.stderr));
    // Live at the moment the command returned: no polling needed.
    let mounted = is_mounted(&l.mnt);
    let content = fs::read_to_string(l.m("hello"));
    let pid = daemon_pid(&l.mnt);
    force_umount(&l.mnt);
    assert!(mounted, "not mounted when the command returned");
    assert_eq!(content.unwrap(), "world");
    let pid = pid.expect("daemon process");
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon_pid(&l.mnt) == Some(pid) {
        assert!(Instant::now() < deadline, "daemon {pid} still running after unmount");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_and_sigint_unmount_and_exit_zero() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let l = Layout::new(1);
        l.lower_file(0, "f", "x");
        let mut m = l.mount();
        fs::write(l.m("new"), "data").unwrap();
        let pid = m.child.as_ref().unwrap().id() as i32;
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, sig) };
        let st = wait_or_kill(m.child.as_mut().unwrap());
        assert!(st.success(), "signal {sig}: exit {st}");
        assert!(!is_mounted(&l.mnt), "signal {sig}: still mounted");
        assert_eq!(fs::read_to_string(l.upper.join("new")).unwrap(), "data");
    }
}

#[test]
fn mount_fuse_form_with_source_argument() {
    let l = Layout::new(1);
    l.lower_file(0, "f", "x");
    let m = Command::new(BIN)
        .args(["ctr-7", &l.mnt.display().to_string(), "-o", &format!("rw,{}", l.opts())])
        .status()
        .unwrap();
    let ok = m.success() && is_mounted(&l.mnt) && fs::read_to_string(l.m("f")).ok().as_deref() == Some("x");
    // SOURCE is the source column, as mount.fuse users expect.
    let want = l.mnt.canonicalize().unwrap();
    let source = fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .find(|line| line.split(' ').nth(1).map(std::path::PathBuf::from) == Some(want.clone()))
        .and_then(|line| line.split(' ').next().map(str::to_string));
    force_umount(&l.mnt);
    assert!(ok, "SOURCE MOUNTPOINT -o form did not mount");
    assert_eq!(source.as_deref(), Some("ctr-7"));
}
