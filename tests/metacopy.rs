//! `metacopy=on` (issue 12): a `chown -R` of a big lower tree copies up
//! metadata only, so the upper holds no file data, the files keep showing
//! their lower content (also after a remount, and to the kernel overlay
//! mounted over that upper); the kernel overlay with the same option is the
//! oracle for how much the upper may hold.

mod support;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use support::*;

const DIRS: usize = 20;
const FILES_PER_DIR: usize = 25;
const FILE_SIZE: usize = 64 << 10;

/// Content of lower file `d/i`: distinct per file.
fn content(d: usize, i: usize) -> String {
    let line = format!("file {d}/{i}\n");
    let mut s = line.repeat(FILE_SIZE / line.len() + 1);
    s.truncate(FILE_SIZE);
    s
}

fn rel(d: usize, i: usize) -> String {
    format!("tree/d{d}/f{i}")
}

/// Bytes of the regular files under `dir`: (on disk, as `du` counts them;
/// in data extents, as SEEK_DATA/SEEK_HOLE find them).
fn usage(dir: &Path) -> (u64, u64) {
    let (mut disk, mut data) = (0, 0);
    for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display())) {
        let e = e.expect("entry");
        let m = e.metadata().expect("metadata");
        if m.is_dir() {
            let (a, b) = usage(&e.path());
            disk += a;
            data += b;
        } else if m.is_file() {
            disk += m.blocks() * 512;
            data += data_extents(&e.path(), m.len());
        }
    }
    (disk, data)
}

fn data_extents(p: &Path, size: u64) -> u64 {
    let f = fs::File::open(p).expect("open");
    let fd = f.as_raw_fd();
    let (mut off, mut total) = (0i64, 0u64);
    while (off as u64) < size {
        // SAFETY: lseek on a descriptor we own.
        let data = unsafe { libc::lseek(fd, off, libc::SEEK_DATA) };
        if data < 0 {
            break; // ENXIO: no data after off
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let hole = if hole < 0 { size as i64 } else { hole };
        total += (hole - data) as u64;
        off = hole;
    }
    total
}

fn chown_r(root: &Path) {
    let st = Command::new("chown").args(["-R", "1234:4321"]).arg(root).status().expect("chown");
    assert!(st.success(), "chown -R failed");
}

/// Every file shows the new owner and its lower content.
fn check_tree(root: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    for d in 0..DIRS {
        for i in 0..FILES_PER_DIR {
            let p = root.join(rel(d, i));
            let m = fs::metadata(&p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
            if (m.uid(), m.gid()) != (1234, 4321) {
                bad.push(format!("{}: owner {}:{}", p.display(), m.uid(), m.gid()));
            }
            if m.blocks() == 0 {
                bad.push(format!("{}: st_blocks 0 (the lower data's expected)", p.display()));
            }
            if fs::read_to_string(&p).ok().as_deref() != Some(content(d, i).as_str()) {
                bad.push(format!("{}: not the lower content", p.display()));
            }
        }
    }
    bad
}

#[test]
fn chown_r_of_a_lower_tree_writes_no_data() {
    let l = Layout::new(1);
    for d in 0..DIRS {
        for i in 0..FILES_PER_DIR {
            l.lower_file(0, &rel(d, i), &content(d, i));
        }
    }
    let lower_bytes = (DIRS * FILES_PER_DIR * FILE_SIZE) as u64;
    assert_eq!(usage(&l.lowers[0]).1, lower_bytes, "lower data");
    let opts = format!("{},metacopy=on", l.opts());
    {
        let _m = l.mount_with(&opts, &[]);
        chown_r(&l.m("tree"));
        let bad = check_tree(&l.mnt);
        assert!(bad.is_empty(), "{bad:#?}");
    }
    let ours = usage(&l.upper);
    // The oracle: the kernel overlay with metacopy=on over the same lowers.
    let k = l.twin();
    {
        let _km = KernelMount::with_opts(&format!("{},metacopy=on,redirect_dir=on", kernel_opts(&l, &k)), &k.mnt);
        chown_r(&k.m("tree"));
    }
    let theirs = usage(&k.upper);
    assert_eq!(theirs.1, 0, "kernel oracle: its upper holds file data");
    assert_eq!(ours.1, 0, "the upper holds file data after chown -R");
    // On disk: at most what the kernel's takes (xattr blocks), far below the data.
    assert!(
        ours.0 <= theirs.0.max(64 << 10) && ours.0 < lower_bytes / 10,
        "upper uses {} bytes after chown -R (the kernel's: {}; lower data: {lower_bytes})",
        ours.0,
        theirs.0
    );
    // After a remount, and as the kernel overlay shows our upper.
    {
        let _m = l.mount_with(&opts, &[]);
        let bad = check_tree(&l.mnt);
        assert!(bad.is_empty(), "after remount: {bad:#?}");
    }
    {
        let work2 = l.dir.path().join("work2");
        fs::create_dir_all(&work2).expect("mkdir work2");
        let _km = KernelMount::with_opts(
            &format!(
                "lowerdir={},upperdir={},workdir={},metacopy=on,redirect_dir=on",
                l.lowerdir(),
                l.upper.display(),
                work2.display()
            ),
            &l.mnt,
        );
        let bad = check_tree(&l.mnt);
        assert!(bad.is_empty(), "the kernel over our upper: {bad:#?}");
    }
    assert_eq!(usage(&l.upper).1, 0, "reading copied data up");
}

fn kernel_opts(l: &Layout, k: &Twin) -> String {
    format!("lowerdir={},upperdir={},workdir={}", l.lowerdir(), k.upper.display(), k.work.display())
}

/// An unprivileged daemon marks its metadata-only copies with
/// `user.overlay.metacopy` (the prefix of its other private xattrs). The
/// kernel refuses `userxattr` with `metacopy=on`, so there is no oracle: the
/// outcome is checked directly.
#[test]
fn unprivileged_metacopy_uses_the_user_prefix() {
    let (uid, gid) = test_user();
    let l = Layout::new(1);
    fs::set_permissions(l.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = content(1, 2);
    l.lower_file(0, "f", &data);
    for p in [&l.lowers[0], &l.lower(0, "f"), &l.upper, &l.work, &l.mnt] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
    }
    let m = UserMount {
        inner: UnionMount::start_with_prefix(
            &["setpriv", &format!("--reuid={uid}"), &format!("--regid={gid}"), "--clear-groups"],
            &format!("{},metacopy=on", l.opts()),
            &l.mnt,
        ),
        uid,
        gid,
    };
    let f = l.m("f").display().to_string();
    let o = run_as(uid, gid, &format!("chmod 600 {f} && setfattr -n user.k -v v {f}"));
    assert!(o.status.success(), "chmod/setfattr as the user: {}", String::from_utf8_lossy(&o.stderr).trim());
    let up = l.upper.join("f");
    assert_eq!(getxattr(&up, "user.overlay.metacopy").as_deref(), Some(&b""[..]), "no user.overlay.metacopy");
    assert!(getxattr(&up, "trusted.overlay.metacopy").is_none());
    assert_eq!(usage(&l.upper).1, 0, "metadata copy-up wrote data");
    // Only the user reaches the mount (no allow_other).
    let cat = || String::from_utf8_lossy(&run_as(uid, gid, &format!("cat {f}")).stdout).into_owned();
    assert_eq!(cat(), data);
    let o = run_as(uid, gid, &format!("echo more >> {f}"));
    assert!(o.status.success(), "append as the user: {}", String::from_utf8_lossy(&o.stderr).trim());
    assert_eq!(cat(), format!("{data}more\n"));
    assert!(getxattr(&up, "user.overlay.metacopy").is_none(), "mark left after the data copy");
    assert_eq!(fs::metadata(&up).expect("stat upper").mode() & 0o777, 0o600);
    drop(m);
    assert!(!is_mounted(&l.mnt));
}
