//! `index=on` (issue 12): the names of a lower hard link stay one file across
//! copy-up, in the kernel overlay's on-disk format, so that unionfs and the
//! kernel overlay (with `index=on`, the oracle) take turns on one upper and
//! work dir and each sees the links the other made.

mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use support::*;

fn with_index(l: &Layout) -> String {
    format!("{},index=on", l.opts())
}

fn kernel_index(l: &Layout) -> KernelMount {
    KernelMount::with_opts(&format!("{},index=on,redirect_dir=on", l.opts()), &l.mnt)
}

/// (content, st_nlink, st_ino) of each name.
fn names(l: &Layout, ns: &[&str]) -> Vec<(String, u64, u64)> {
    ns.iter()
        .map(|n| {
            let p = l.m(n);
            let m = fs::metadata(&p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
            (fs::read_to_string(&p).expect("read"), m.nlink(), m.ino())
        })
        .collect()
}

fn assert_linked(what: &str, got: &[(String, u64, u64)], data: &str, nlink: u64) {
    for (c, n, i) in got {
        assert_eq!((c.as_str(), *n), (data, nlink), "{what}: {got:?}");
        assert_eq!(*i, got[0].2, "{what}: names show different st_ino: {got:?}");
    }
}

fn index_entries(work: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(work.join("index"))
        .expect("workdir/index")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn links_survive_turns_of_unionfs_and_the_kernel() {
    let l = Layout::new(1);
    let a = l.lower_file(0, "a", "one\n");
    fs::create_dir(l.lower(0, "d")).expect("mkdir");
    fs::hard_link(&a, l.lower(0, "b")).expect("link");
    fs::hard_link(&a, l.lower(0, "d/c")).expect("link");
    let ino = fs::metadata(&a).expect("stat").ino();
    {
        let _m = l.mount_with(&with_index(&l), &[]);
        fs::write(l.m("a"), "two\n").expect("write through a");
        let got = names(&l, &["a", "b", "d/c"]);
        assert_linked("unionfs after a write through a", &got, "two\n", 3);
        assert_eq!(got[0].2, ino, "st_ino is the lower file's");
    }
    // The kernel finds the index entry we wrote: the names not copied up
    // show the copy too.
    let entries = index_entries(&l.work);
    assert_eq!(entries.len(), 1, "one index entry: {entries:?}");
    assert!(entries[0].starts_with("00fb"), "not an ovl_fb handle: {entries:?}");
    {
        let _k = kernel_index(&l);
        assert_linked("the kernel over our upper", &names(&l, &["a", "b", "d/c"]), "two\n", 3);
        fs::write(l.m("b"), "three\n").expect("kernel: write through b");
        fs::remove_file(l.m("a")).expect("kernel: unlink a");
    }
    {
        let _m = l.mount_with(&with_index(&l), &[]);
        let got = names(&l, &["b", "d/c"]);
        assert_linked("unionfs over the kernel's changes", &got, "three\n", 2);
        assert_eq!(got[0].2, ino, "st_ino after the kernel's copy");
        assert_eq!(errno(fs::metadata(l.m("a"))), libc::ENOENT);
        fs::remove_file(l.m("b")).expect("unlink b");
        assert_linked("one name left", &names(&l, &["d/c"]), "three\n", 1);
    }
    {
        let _k = kernel_index(&l);
        assert_linked("the kernel, one name left", &names(&l, &["d/c"]), "three\n", 1);
    }
    {
        let _m = l.mount_with(&with_index(&l), &[]);
        fs::remove_file(l.m("d/c")).expect("unlink the last name");
        assert_eq!(fs::read_dir(&l.mnt).expect("ls").count(), 1, "only d is left");
    }
    assert!(index_entries(&l.work).is_empty(), "the entry outlived the last name: {:?}", index_entries(&l.work));
    // The lower file is untouched.
    assert_eq!(fs::read_to_string(&a).expect("lower"), "one\n");
}

#[test]
fn an_upper_made_over_other_lowers_is_refused_like_the_kernel() {
    let l = Layout::new(1);
    l.lower_file(0, "f", "f");
    {
        let _m = l.mount_with(&with_index(&l), &[]);
        fs::write(l.m("g"), "g").expect("write");
    }
    let other = l.dir.path().join("other");
    fs::create_dir(&other).expect("mkdir");
    let opts =
        format!("lowerdir={},upperdir={},workdir={},index=on", other.display(), l.upper.display(), l.work.display());
    // The oracle refuses it.
    let k = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&l.mnt)
        .output()
        .expect("mount");
    if k.status.success() {
        umount(&l.mnt);
        panic!("the kernel overlay mounted an upper made over other lowers");
    }
    let a = MountAttempt::run(&opts, &l.mnt);
    let (status, mounted, err) = (a.status, a.mounted(), a.stderr.trim().to_string());
    drop(a);
    assert!(!mounted && !status.success(), "mounted with index=on over other lowers");
    assert!(err.lines().count() == 1 && err.contains("index=on"), "not a one-line error: {err:?}");
    // index=off does not check (as the kernel).
    let off = format!("lowerdir={},upperdir={},workdir={}", other.display(), l.upper.display(), l.work.display());
    let _m = UnionMount::start(&off, &l.mnt, &[]);
    assert_eq!(fs::read_to_string(l.m("g")).expect("read"), "g");
}

#[test]
fn nfs_export_is_refused_with_one_line() {
    let l = Layout::new(1);
    let a = MountAttempt::run(&format!("{},index=on,nfs_export=on", l.opts()), &l.mnt);
    let (status, mounted, err) = (a.status, a.mounted(), a.stderr.trim().to_string());
    drop(a);
    assert!(!mounted && !status.success(), "mounted with nfs_export=on");
    assert!(err.lines().count() == 1 && err.contains("nfs_export") && err.contains("not supported"), "{err:?}");
    let _m = UnionMount::start(&format!("{},index=on,nfs_export=off", l.opts()), &l.mnt, &[]);
}

#[test]
fn crash_leftovers_and_orphans_go_at_mount() {
    let l = Layout::new(1);
    let a = l.lower_file(0, "a", "a");
    fs::hard_link(&a, l.lower(0, "b")).expect("link");
    {
        let _m = l.mount_with(&with_index(&l), &[]);
        fs::write(l.m("a"), "copied").expect("write");
    }
    let entries = index_entries(&l.work);
    assert_eq!(entries.len(), 1);
    // A copy staged by a crashed mount, and an entry no name shows any more.
    fs::write(l.work.join("index/#dead-1"), "partial").expect("write temp");
    let orphan = l.work.join("index/00fb1d0001000000000000000000000000000000000000000000000000");
    fs::write(&orphan, "orphan").expect("write orphan");
    assert!(setxattr(&orphan, "trusted.overlay.nlink", "U-1"));
    {
        let _m = l.mount_with(&with_index(&l), &[]);
        assert_eq!(index_entries(&l.work), entries, "leftovers kept");
        assert_linked("after cleaning", &names(&l, &["a", "b"]), "copied", 2);
    }
}
