//! mount.unionfs end to end, as root, through mount(8) itself: fstab files
//! (`mount --fstab`, `mount -a -T`), `mount -t unionfs`, systemd's argv,
//! `mount -t fuse.unionfs` through mount.fuse3, user mounts from /etc/fstab
//! as the real user `unionfs-test`, and every bad input with its status.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

fn mount(args: &[&str]) -> std::process::Output {
    run(Command::new("mount").args(args))
}

fn umount(dir: &Path) {
    let o = run(Command::new("umount").arg(dir));
    assert!(o.status.success(), "umount {}: {}", dir.display(), text(&o.stderr));
    assert_eq!(mount_count(dir), 0);
}

fn ok(o: &std::process::Output, what: &str) {
    assert!(o.status.success(), "{what}: status {:?}, stderr {}", o.status.code(), text(&o.stderr));
}

/// The merged view is there: l1 over l2, writes land in the upper.
fn check_union(l: &Layout) {
    assert_eq!(fs::read_to_string(l.mnt.join("top")).unwrap(), "from l1\n");
    assert_eq!(fs::read_to_string(l.mnt.join("bottom")).unwrap(), "from l2\n");
    fs::write(l.mnt.join("new"), "new\n").unwrap();
    assert_eq!(fs::read_to_string(l.upper.join("new")).unwrap(), "new\n");
}

#[test]
fn fstab_file_mount_all_umount_findmnt() {
    need_root!();
    let _lock = system_lock();
    let _helper = install_helper();
    let l = Layout::new();
    let off = l.path("off");
    fs::create_dir(&off).unwrap();
    let fstab = l.path("fstab");
    fs::write(
        &fstab,
        format!(
            "# a comment\n\
             none {mnt} unionfs defaults,nofail,_netdev,{opts},x-systemd.requires-mounts-for={l1},comment=x 0 0\n\
             none {off} unionfs noauto,lowerdir={l1} 0 0\n",
            mnt = l.mnt.display(),
            off = off.display(),
            opts = l.opts(),
            l1 = l.l1.display()
        ),
    )
    .unwrap();
    let f = fstab.to_str().unwrap();
    let m = l.mnt.to_str().unwrap();

    ok(&mount(&["--fstab", f, m]), "mount --fstab");
    assert_eq!(findmnt(&l.mnt, "FSTYPE,SOURCE"), "fuse.unionfs none");
    check_union(&l);
    // Already mounted: mount -a sees it (same source and target), mounts nothing.
    ok(&mount(&["-a", "-T", f]), "mount -a (again)");
    assert_eq!(mount_count(&l.mnt), 1);
    umount(&l.mnt);

    ok(&mount(&["-a", "-T", f]), "mount -a");
    assert_eq!(findmnt(&l.mnt, "FSTYPE"), "fuse.unionfs");
    assert_eq!(mount_count(&off), 0, "noauto line mounted by -a");
    assert_eq!(fs::read_to_string(l.mnt.join("new")).unwrap(), "new\n");
    umount(&l.mnt);

    ok(&mount(&["-a", "-t", "unionfs", "-T", f]), "mount -a -t unionfs");
    assert_eq!(mount_count(&l.mnt), 1);
    umount(&l.mnt);
    // A noauto line mounts by its mountpoint.
    ok(&mount(&["--fstab", f, off.to_str().unwrap()]), "mount noauto line");
    assert_eq!(findmnt(&off, "FSTYPE,OPTIONS").split(',').next(), Some("fuse.unionfs ro"));
    assert_eq!(fs::read_to_string(off.join("top")).unwrap(), "from l1\n");
    umount(&off);
}

#[test]
fn mount_t_unionfs_ro_and_systemd_argv() {
    need_root!();
    let _lock = system_lock();
    let _helper = install_helper();
    let l = Layout::new();
    let m = l.mnt.to_str().unwrap();

    ok(&mount(&["-t", "unionfs", "none", m, "-o", &l.opts()]), "mount -t unionfs");
    assert_eq!(findmnt(&l.mnt, "FSTYPE,SOURCE"), "fuse.unionfs none");
    check_union(&l);
    umount(&l.mnt);

    ok(&mount(&["-t", "unionfs", "-o", &format!("ro,{}", l.opts()), "layers", m]), "mount -o ro");
    assert_eq!(findmnt(&l.mnt, "SOURCE,OPTIONS").split(',').next(), Some("layers ro"));
    let e = fs::write(l.mnt.join("x"), "x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(30), "{e}"); // EROFS
    umount(&l.mnt);

    // What systemd runs for a .mount unit with Type=unionfs:
    // mount WHAT WHERE [-s] [-w] -t TYPE -o OPTIONS, then umount WHERE -c.
    let opts = format!("{},x-systemd.requires-mounts-for={}", l.opts(), l.l1.display());
    ok(&mount(&["none", m, "-w", "-t", "unionfs", "-o", &opts]), "systemd's mount argv");
    assert_eq!(findmnt(&l.mnt, "FSTYPE"), "fuse.unionfs");
    let o = run(Command::new("umount").arg(m).arg("-c"));
    ok(&o, "umount -c");
    assert_eq!(mount_count(&l.mnt), 0);
    // The helper itself with everything an fstab line may carry.
    let o = run(Command::new(HELPER)
        .args(["none", m, "-s", "-t", "unionfs", "-o"])
        .arg(format!("rw,defaults,auto,nofail,_netdev,users,{opts},x-systemd.automount,comment=systemd.automount")));
    ok(&o, "helper with fstab/systemd options");
    assert_eq!(findmnt(&l.mnt, "FSTYPE"), "fuse.unionfs");
    umount(&l.mnt);
}

#[test]
fn mount_t_fuse_unionfs_through_mount_fuse3() {
    need_root!();
    if !Path::new("/sbin/mount.fuse3").exists() && !Path::new("/usr/sbin/mount.fuse3").exists() {
        panic!("mount.fuse3 is missing: apt-get install fuse3");
    }
    let _lock = system_lock();
    // mount(8) clears PATH and mount.fuse3 runs `unionfs` through /bin/sh:
    // unionfs has to be in a directory of the default PATH.
    let _unionfs = Link::new("/usr/local/bin/unionfs", &unionfs_bin());
    let l = Layout::new();
    ok(&mount(&["-t", "fuse.unionfs", "none", l.mnt.to_str().unwrap(), "-o", &l.opts()]), "mount -t fuse.unionfs");
    assert_eq!(findmnt(&l.mnt, "FSTYPE"), "fuse.unionfs");
    check_union(&l);
    umount(&l.mnt);
}

#[test]
fn user_mount_from_etc_fstab() {
    need_root!();
    let _lock = system_lock();
    let (uid, _) = test_user();
    let _helper = install_helper();
    let l = Layout::for_user();
    let denied = l.path("denied");
    fs::create_dir(&denied).unwrap();
    std::os::unix::fs::lchown(&denied, Some(uid), None).unwrap();
    let _fstab = EtcFstab::append(&format!(
        "none {} unionfs user,noauto,{} 0 0\nnone {} unionfs noauto,lowerdir={} 0 0\n",
        l.mnt.display(),
        l.opts(),
        denied.display(),
        l.l1.display()
    ));
    let as_user = |args: &[&str]| run(Command::new("runuser").args(["-u", USER, "--"]).args(args));
    let m = l.mnt.to_str().unwrap();

    ok(&as_user(&["mount", m]), "user mount");
    let cols = findmnt(&l.mnt, "FSTYPE,OPTIONS");
    assert!(cols.starts_with("fuse.unionfs rw,nosuid,nodev,noexec"), "{cols}");
    assert!(cols.contains(&format!("user_id={uid}")), "{cols}");
    ok(&as_user(&["sh", "-c", &format!("echo mine > {m}/mine && cat {m}/top {m}/bottom")]), "user writes");
    let st = fs::metadata(l.upper.join("mine")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&st), uid);
    ok(&as_user(&["umount", m]), "user umount");
    assert_eq!(mount_count(&l.mnt), 0);

    // A line without `user`: mount(8) refuses the user (status 1).
    let o = as_user(&["mount", denied.to_str().unwrap()]);
    let leaked = mount_count(&denied);
    if leaked > 0 {
        // Never leave a mount behind, also when the test fails.
        let _ = Command::new("umount").arg("-l").arg(&denied).status();
    }
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert_eq!(leaked, 0);
}

/// One line on stderr, `code`, nothing mounted.
fn fails(o: &std::process::Output, code: i32, want: &str, mnt: &Path, what: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{what}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err:?}");
    assert!(err.contains(want), "{what}: {err:?} lacks {want:?}");
    assert_eq!(mount_count(mnt), 0, "{what}: mounted");
}

#[test]
fn bad_input_and_exit_codes() {
    need_root!();
    let _lock = system_lock();
    let _helper = install_helper();
    let l = Layout::new();
    let m = l.mnt.to_str().unwrap();
    let (l1, up, wk) = (l.l1.display().to_string(), l.upper.display().to_string(), l.work.display().to_string());
    let file = l.path("file");
    fs::write(&file, "x").unwrap();
    let file = file.display().to_string();
    let missing = l.path("missing").display().to_string();

    // Through mount(8): the helper's status is mount's.
    for (opts, dir, want) in [
        (format!("lowerdir={l1},bogus"), m, "unknown option \"bogus\""),
        (format!("lowerdir={l1},timeout=soon"), m, "bad option \"timeout=soon\""),
        (format!("lowerdir={missing}"), m, "No such file or directory"),
        (format!("lowerdir={l1}:{file}"), m, "not a directory"),
        (format!("lowerdir={l1},upperdir={file},workdir={wk}"), m, "not a directory"),
        (format!("lowerdir=l1,upperdir={up},workdir={wk}"), m, "is relative"),
        (format!("lowerdir={l1},upperdir=./upper,workdir={wk}"), m, "is relative"),
        (format!("lowerdir={l1},upperdir={up}"), m, "together"),
        (format!("upperdir={up},workdir={wk}"), m, "missing lowerdir"),
        (format!("lowerdir={l1}"), &missing, "mountpoint"),
        (format!("lowerdir={l1}"), &file, "mountpoint"),
        // unionfs's own validation, reported by unionfs.
        (format!("lowerdir={l1},upperdir={up},workdir={l1}"), m, "unionfs: error:"),
    ] {
        let o = mount(&["-t", "unionfs", "none", dir, "-o", &opts]);
        fails(&o, 32, want, &l.mnt, &opts);
    }

    // The helper's own command line: status 1.
    let helper = |args: &[&str]| run(Command::new(HELPER).args(args));
    let opts = format!("lowerdir={l1}");
    fails(&helper(&["none"]), 1, "mount.unionfs:", &l.mnt, "missing DIR");
    fails(&helper(&["none", m, "-x", "-o", &opts]), 1, "mount.unionfs:", &l.mnt, "unknown flag");
    fails(&helper(&["none", m, "-t", "ext4", "-o", &opts]), 1, "not type \"ext4\"", &l.mnt, "wrong type");
    // unionfs nowhere to be found: status 2.
    let lone = l.path("lone-helper");
    fs::copy(HELPER, &lone).unwrap();
    let o = run(Command::new(&lone).args(["none", m, "-o", &opts]).env("PATH", "/nonexistent"));
    fails(&o, 2, "unionfs not found", &l.mnt, "no unionfs");

    // -f: everything checked, nothing mounted.
    ok(&helper(&["none", m, "-f", "-o", &l.opts()]), "fake");
    assert_eq!(mount_count(&l.mnt), 0);
    fails(&helper(&["none", m, "-f", "-o", &format!("lowerdir={missing}")]), 32, "lowerdir", &l.mnt, "fake, bad");
    // -s: unknown options dropped with a warning; -v prints the command.
    let o = helper(&["-sv", "none", m, "-o", &format!("{},bogus", l.opts())]);
    ok(&o, "sloppy");
    let err = text(&o.stderr);
    assert!(err.contains("unknown option \"bogus\" ignored") && err.contains("unionfs -o"), "{err}");
    assert!(!err.contains(",bogus"), "{err}");
    assert_eq!(findmnt(&l.mnt, "FSTYPE"), "fuse.unionfs");
    umount(&l.mnt);
}
