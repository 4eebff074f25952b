//! Integration tests of unionfs behaviour that the kernel overlay cannot be
//! the oracle for (OCI markers, private xattrs, read-only mounts, st_ino
//! across remount, on-disk format of the upper, crash leftovers, holes,
//! concurrency). The kernel-comparable semantics live in tests/oracle/.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use support::*;

fn names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// What is staged in the work dir: its entries but the shared whiteout
/// every whiteout links to (kept there, as the kernel keeps its own).
fn staged(l: &Layout) -> Vec<String> {
    let mut v = names(&l.work.join("work"));
    v.retain(|n| n != "#whiteout");
    v
}

#[test]
fn read_only_mount_refuses_every_write() {
    let l = Layout::new(2);
    l.lower_file(0, "f", "top");
    l.lower_file(1, "d/g", "g");
    let _m = l.mount_with(&format!("lowerdir={}", l.lowerdir()), &[]);
    let e = libc::EROFS;
    assert_eq!(errno(fs::write(l.m("new"), "x")), e);
    assert_eq!(errno(fs::OpenOptions::new().write(true).open(l.m("f"))), e);
    assert_eq!(errno(fs::create_dir(l.m("nd"))), e);
    assert_eq!(errno(fs::remove_file(l.m("f"))), e);
    assert_eq!(errno(fs::remove_dir(l.m("d"))), e);
    assert_eq!(errno(fs::rename(l.m("f"), l.m("f2"))), e);
    assert_eq!(errno(fs::hard_link(l.m("f"), l.m("f2"))), e);
    assert_eq!(errno(std::os::unix::fs::symlink("x", l.m("s"))), e);
    assert_eq!(errno(fs::set_permissions(l.m("f"), fs::Permissions::from_mode(0o600))), e);
    assert!(!setxattr(&l.m("f"), "user.x", "1"));
    // Reads still work, and nothing was written anywhere.
    assert_eq!(fs::read_to_string(l.m("f")).unwrap(), "top");
    assert_eq!(fs::read_to_string(l.m("d/g")).unwrap(), "g");
    assert!(names(&l.upper).is_empty());
}

#[test]
fn oci_markers_are_honoured_and_never_visible() {
    let l = Layout::new(2);
    l.lower_file(1, "gone", "x");
    l.lower_file(1, "keep", "k");
    l.lower_file(0, ".wh.gone", "");
    l.lower_file(1, "dir/old", "o");
    l.lower_file(0, "dir/.wh..wh..opq", "");
    l.lower_file(0, "dir/new", "n");
    l.lower_file(0, "same/.wh.mine", "");
    l.lower_file(0, "same/mine", "same layer wins");
    let _m = l.mount();
    assert_eq!(names(&l.mnt), vec!["dir", "keep", "same"]);
    assert_eq!(names(&l.m("dir")), vec!["new"]);
    // A marker never hides a file of its own layer.
    assert_eq!(fs::read_to_string(l.m("same/mine")).unwrap(), "same layer wins");
    assert_eq!(errno(fs::metadata(l.m("gone"))), libc::ENOENT);
    assert_eq!(errno(fs::metadata(l.m(".wh.gone"))), libc::ENOENT);
    assert_eq!(errno(fs::metadata(l.m("dir/.wh..wh..opq"))), libc::ENOENT);
    // Marker names cannot be created through the mount.
    assert_eq!(errno(fs::write(l.m(".wh.x"), "")), libc::EINVAL);
    assert_eq!(errno(fs::create_dir(l.m(".wh..wh..opq"))), libc::EINVAL);
    // The deleted name can be made again.
    fs::write(l.m("gone"), "back").unwrap();
    assert_eq!(fs::read_to_string(l.m("gone")).unwrap(), "back");
}

#[test]
fn xattr_and_fuse_overlayfs_markers_are_read() {
    let l = Layout::new(2);
    l.lower_file(1, "a/x", "x");
    l.lower_file(1, "b/y", "y");
    l.lower_file(1, "c/z", "z");
    fs::create_dir_all(l.lower(0, "a")).unwrap();
    fs::create_dir_all(l.lower(0, "b")).unwrap();
    fs::create_dir_all(l.lower(0, "c")).unwrap();
    assert!(setxattr(&l.lower(0, "a"), "trusted.overlay.opaque", "y"));
    assert!(setxattr(&l.lower(0, "b"), "user.overlay.opaque", "y"));
    assert!(setxattr(&l.lower(0, "c"), "user.fuseoverlayfs.opaque", "y"));
    l.lower_file(1, "w", "w");
    // An xattr whiteout: zero-size file marked as such.
    l.lower_file(0, "w", "");
    assert!(setxattr(&l.lower(0, "w"), "trusted.overlay.whiteout", "y"));
    {
        let _m = l.mount();
        // As root the kernel's names are trusted.overlay.*: user.overlay.* is
        // user data there (the kernel ignores it too).
        for (d, opaque) in [("a", true), ("b", false), ("c", true)] {
            assert_eq!(names(&l.m(d)).is_empty(), opaque, "{d} opaque should be {opaque}");
        }
        assert_eq!(errno(fs::metadata(l.m("w"))), libc::ENOENT);
    }
    // With userxattr the user.overlay.* names are the union's.
    let _m = l.mount_with(&format!("{},userxattr", l.opts()), &[]);
    assert!(names(&l.m("b")).is_empty(), "b should be opaque with userxattr");
}

#[test]
fn upper_holds_only_kernel_format_markers() {
    let l = Layout::new(1);
    l.lower_file(0, "f", "f");
    l.lower_file(0, "d/inner", "i");
    l.lower_file(0, "e/x", "x");
    {
        let _m = l.mount();
        fs::remove_file(l.m("f")).unwrap();
        fs::remove_file(l.m("d/inner")).unwrap();
        fs::remove_dir(l.m("d")).unwrap();
        fs::create_dir(l.m("d")).unwrap();
        fs::remove_dir_all(l.m("e")).unwrap();
    }
    let st = stat(&l.upper.join("f"));
    assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFCHR);
    assert_eq!(st.st_rdev, 0);
    // One inode for every whiteout, as the kernel makes them.
    let e = stat(&l.upper.join("e"));
    assert_eq!((e.st_mode & libc::S_IFMT, e.st_rdev, e.st_ino), (libc::S_IFCHR, 0, st.st_ino));
    assert!(st.st_nlink >= 2);
    assert_eq!(getxattr(&l.upper.join("d"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert!(names(&l.upper.join("d")).is_empty(), "no sentinel files in an opaque dir");
    assert_eq!(stat(&l.upper.join("e")).st_mode & libc::S_IFMT, libc::S_IFCHR);
    let mut stray = Vec::new();
    for e in walk(&l.upper) {
        if e.file_name().unwrap().to_string_lossy().starts_with(".wh.") {
            stray.push(e);
        }
    }
    assert!(stray.is_empty(), "OCI markers in the upper: {stray:?}");
    assert!(staged(&l).is_empty(), "work dir left dirty");
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.symlink_metadata().unwrap().is_dir() {
            out.extend(walk(&e));
        }
        out.push(e);
    }
    out
}

#[test]
fn private_xattrs_hidden_and_escaped() {
    let l = Layout::new(1);
    l.lower_file(0, "d/f", "f");
    fs::create_dir_all(l.lower(0, "o")).unwrap();
    assert!(setxattr(&l.lower(0, "o"), "trusted.overlay.opaque", "y"));
    let _m = l.mount();
    let list = std::process::Command::new("getfattr").args(["-d", "-m", "-"]).arg(l.m("o")).output().unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains("overlay"), "private xattr listed");
    assert_eq!(getxattr(&l.m("o"), "trusted.overlay.opaque"), None);
    // Set through the mount: stored escaped, shown back as given.
    assert!(setxattr(&l.m("d/f"), "trusted.overlay.mine", "v"));
    assert_eq!(getxattr(&l.m("d/f"), "trusted.overlay.mine").as_deref(), Some(&b"v"[..]));
    assert_eq!(getxattr(&l.upper.join("d/f"), "trusted.overlay.overlay.mine").as_deref(), Some(&b"v"[..]));
    // Copy-up recorded its origin privately; it never shows through the mount.
    assert!(getxattr(&l.upper.join("d/f"), "trusted.overlay.unionfs.origin").is_some());
    let list = std::process::Command::new("getfattr").args(["-d", "-m", "-"]).arg(l.m("d/f")).output().unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains("origin"));
}

#[test]
fn st_ino_stable_across_copy_up_and_remount() {
    let l = Layout::new(1);
    l.lower_file(0, "f", "f");
    l.lower_file(0, "d/g", "g");
    let (f0, d0, g0);
    {
        let _m = l.mount();
        f0 = fs::metadata(l.m("f")).unwrap().ino();
        d0 = fs::metadata(l.m("d")).unwrap().ino();
        g0 = fs::metadata(l.m("d/g")).unwrap().ino();
        fs::OpenOptions::new().append(true).open(l.m("f")).unwrap().write_all(b"more").unwrap();
        fs::set_permissions(l.m("d/g"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(fs::metadata(l.m("f")).unwrap().ino(), f0);
        assert_eq!(fs::metadata(l.m("d")).unwrap().ino(), d0);
        assert_eq!(fs::metadata(l.m("d/g")).unwrap().ino(), g0);
        fs::write(l.m("new"), "n").unwrap();
    }
    let new0 = fs::metadata(l.upper.join("new")).unwrap().ino();
    let _m = l.mount();
    assert_eq!(fs::metadata(l.m("f")).unwrap().ino(), f0);
    assert_eq!(fs::metadata(l.m("d")).unwrap().ino(), d0);
    assert_eq!(fs::metadata(l.m("d/g")).unwrap().ino(), g0);
    assert_eq!(fs::metadata(l.m("new")).unwrap().ino(), new0);
    // Unique: every visible object has its own number.
    let inos: std::collections::HashSet<u64> =
        ["f", "d", "d/g", "new"].iter().map(|p| fs::metadata(l.m(p)).unwrap().ino()).collect();
    assert_eq!(inos.len(), 4);
}

#[test]
fn hard_links_share_inode_and_count() {
    let l = Layout::new(1);
    l.lower_file(0, "f", "data");
    let _m = l.mount();
    fs::hard_link(l.m("f"), l.m("g")).unwrap();
    let (f, g) = (fs::metadata(l.m("f")).unwrap(), fs::metadata(l.m("g")).unwrap());
    assert_eq!(f.ino(), g.ino());
    assert_eq!((f.nlink(), g.nlink()), (2, 2));
    fs::remove_file(l.m("f")).unwrap();
    assert_eq!(fs::metadata(l.m("g")).unwrap().nlink(), 1);
    assert_eq!(fs::read_to_string(l.m("g")).unwrap(), "data");
}

#[test]
fn stale_work_entries_are_removed_at_mount() {
    let l = Layout::new(1);
    l.lower_file(0, "f", "f");
    fs::create_dir_all(l.work.join("work/#dead-copy/sub")).unwrap();
    fs::write(l.work.join("work/#dead-copy/sub/partial"), "half a file").unwrap();
    fs::write(l.work.join("work/#stale"), "x").unwrap();
    let _m = l.mount();
    assert!(names(&l.work.join("work")).is_empty());
    fs::write(l.m("f"), "written").unwrap();
    assert_eq!(fs::read_to_string(l.upper.join("f")).unwrap(), "written");
}

#[test]
fn other_users_reach_the_mount_as_root_mounts_it() {
    let l = Layout::new(1);
    fs::set_permissions(l.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    l.lower_file(0, "pub", "public");
    let _m = l.mount();
    assert!(as_nobody(&format!("cat {} >/dev/null", l.m("pub").display())), "allow_other: nobody cannot read");
    assert!(!as_nobody(&format!("echo x > {}", l.m("pub").display())), "mode 644 must refuse nobody's write");
}

#[test]
fn setuid_bit_cleared_when_a_non_owner_writes() {
    let l = Layout::new(1);
    fs::set_permissions(l.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let p = l.lower_file(0, "suid", "#!/bin/sh\n");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o4777)).unwrap();
    let _m = l.mount();
    assert!(as_nobody(&format!("echo '# more' >> {}", l.m("suid").display())));
    let mode = fs::metadata(l.m("suid")).unwrap().mode();
    assert_eq!(mode & 0o4000, 0, "setuid survived a write by another user: {mode:o}");
}

#[test]
fn sparse_files_stay_sparse_on_copy_up() {
    let l = Layout::new(1);
    let p = l.lower_file(0, "sparse", "");
    {
        let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(256 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_at(b"middle", 128 << 20).unwrap();
    }
    let _m = l.mount();
    fs::OpenOptions::new().append(true).open(l.m("sparse")).unwrap().write_all(b"end").unwrap();
    let up = fs::metadata(l.upper.join("sparse")).unwrap();
    assert_eq!(up.len(), (256 << 20) + 3);
    assert!(up.blocks() < 4096, "copy-up filled the holes: {} blocks", up.blocks());
    let f = fs::File::open(l.m("sparse")).unwrap();
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 6];
    f.read_exact_at(&mut buf, 128 << 20).unwrap();
    assert_eq!(&buf, b"middle");
}

#[test]
fn readdir_offsets_stable_while_the_directory_changes() {
    let l = Layout::new(2);
    for i in 0..300 {
        l.lower_file(i % 2, &format!("d/f{i:03}"), "x");
    }
    let _m = l.mount();
    let mut rd = fs::read_dir(l.m("d")).unwrap();
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen.push(rd.next().unwrap().unwrap().file_name());
    }
    for i in 0..50 {
        fs::write(l.m(&format!("d/new{i}")), "n").unwrap();
        fs::remove_file(l.m(&format!("d/f{:03}", 299 - i))).unwrap();
    }
    seen.extend(rd.map(|e| e.unwrap().file_name()));
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an entry was returned twice");
    assert_eq!(seen.len(), 300, "the open handle's listing changed under it");
    assert_eq!(names(&l.m("d")).len(), 300);
}

#[test]
fn a_removed_objects_number_taken_by_a_new_one_is_a_new_inode() {
    // Objects are found without being opened; one removed through the mount
    // while the kernel still holds its inode must keep its real inode number
    // taken, or the next object made gets it (ext4 hands out the number just
    // freed) and shows as the removed one (here: ESTALE or the old target).
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let l = Layout::new(1);
    let _m = l.mount();
    let mut reused = 0;
    for r in 0..40 {
        let (a, b) = (l.m(&format!("a{r}")), l.m(&format!("b{r}")));
        std::os::unix::fs::symlink(format!("old{r}"), &a).unwrap();
        let c = std::ffi::CString::new(a.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string; the descriptor is owned below.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW) };
        assert!(fd >= 0, "O_PATH open of {}", a.display());
        // SAFETY: just opened.
        let held = unsafe { OwnedFd::from_raw_fd(fd) };
        let ino = fs::symlink_metadata(l.upper.join(format!("a{r}"))).unwrap().ino();
        fs::remove_file(&a).unwrap();
        std::os::unix::fs::symlink(format!("new{r}"), &b).unwrap();
        if fs::symlink_metadata(l.upper.join(format!("b{r}"))).unwrap().ino() == ino {
            reused += 1;
        }
        assert_eq!(fs::read_link(&b).unwrap(), Path::new(&format!("new{r}")), "round {r}");
        drop(held);
    }
    eprintln!("real inode numbers reused while held by the kernel: {reused} of 40");
}

#[test]
fn small_lower_files_read_from_the_open_follow_later_changes() {
    // A small lower file's data reaches the kernel with its open; a read-only
    // descriptor must still see writes made through another one (the kernel
    // overlay's reads follow the copy-up), a truncate, and a rewrite.
    use std::io::{Read, Seek, SeekFrom};
    let l = Layout::new(1);
    l.lower_file(0, "s", "lower data\n");
    l.lower_file(0, "t", "to be truncated");
    l.lower_file(0, "big", &"x".repeat(300 << 10));
    let _m = l.mount();
    let mut ro = fs::File::open(l.m("s")).unwrap();
    let mut got = String::new();
    ro.read_to_string(&mut got).unwrap();
    assert_eq!(got, "lower data\n");
    let mut w = fs::OpenOptions::new().write(true).open(l.m("s")).unwrap();
    w.write_all(b"UPPER").unwrap();
    ro.seek(SeekFrom::Start(0)).unwrap();
    got.clear();
    ro.read_to_string(&mut got).unwrap();
    assert_eq!(got, "UPPER data\n", "the read-only descriptor follows the copy-up");
    assert_eq!(fs::read_to_string(l.m("s")).unwrap(), "UPPER data\n");
    assert_eq!(fs::read_to_string(l.m("t")).unwrap(), "to be truncated");
    fs::OpenOptions::new().write(true).open(l.m("t")).unwrap().set_len(5).unwrap();
    assert_eq!(fs::read_to_string(l.m("t")).unwrap(), "to be");
    fs::write(l.m("t"), "rewritten, longer than before").unwrap();
    assert_eq!(fs::read_to_string(l.m("t")).unwrap(), "rewritten, longer than before");
    assert_eq!(fs::read(l.m("big")).unwrap().len(), 300 << 10);
}

#[test]
fn ioctls_are_enotty_and_leave_no_log() {
    // FUSE sends every ioctl to the daemon (Python's open() asks TCGETS of
    // each file): the answer is ENOTTY, as on the kernel overlay, and the
    // daemon's log stays quiet.
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let l = Layout::new(1);
    l.lower_file(0, "f", "x");
    let mut m = l.mount();
    let f = fs::File::open(l.m("f")).unwrap();
    for _ in 0..20 {
        let mut t = [0u8; 256];
        // SAFETY: TCGETS writes at most a struct termios into the buffer.
        let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::TCGETS, t.as_mut_ptr()) };
        assert_eq!((r, std::io::Error::last_os_error().raw_os_error()), (-1, Some(libc::ENOTTY)));
    }
    drop(f);
    let mut child = m.child.take().expect("daemon");
    force_umount(&m.mnt);
    wait_or_kill(&mut child);
    let mut log = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut log).unwrap();
    assert!(!log.contains("ioctl"), "the daemon logged the ioctls: {log}");
}

#[test]
fn inode_flags_show_the_top_object_and_set_on_a_copy_up() {
    // lsattr/chattr, as on the kernel overlay: the flags shown are the top
    // object's; setting them copies up and leaves the lower file alone.
    use std::os::fd::AsRawFd;
    fn flags(p: &Path) -> i32 {
        let f = fs::File::open(p).unwrap();
        let mut v: libc::c_int = 0;
        // SAFETY: FS_IOC_GETFLAGS writes one int.
        assert_eq!(unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut v) }, 0, "{}", p.display());
        v
    }
    fn set_flags(p: &Path, v: i32) {
        let f = fs::File::open(p).unwrap();
        // SAFETY: FS_IOC_SETFLAGS reads one int.
        assert_eq!(unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &v) }, 0, "{}", p.display());
    }
    const NOATIME: i32 = 0x80; // FS_NOATIME_FL, chattr +A
    let l = Layout::new(1);
    l.lower_file(0, "d/f", "data");
    let _m = l.mount();
    let lower = l.lowers[0].join("d/f");
    assert_eq!(flags(&l.m("d/f")), flags(&lower));
    assert_eq!(flags(&l.m("d")), flags(&l.lowers[0].join("d")));
    for rel in ["d/f", "d"] {
        let want = flags(&l.m(rel)) | NOATIME;
        set_flags(&l.m(rel), want);
        assert_eq!(flags(&l.m(rel)), want, "{rel} through the mount");
        assert_eq!(flags(&l.upper.join(rel)), want, "{rel}'s upper copy");
        assert_eq!(flags(&l.lowers[0].join(rel)) & NOATIME, 0, "{rel}'s lower");
    }
    assert_eq!(fs::read_to_string(l.m("d/f")).unwrap(), "data");
}

#[test]
fn concurrent_copy_ups_of_the_same_files() {
    let l = Layout::new(1);
    for i in 0..20 {
        l.lower_file(0, &format!("deep/a/b/f{i}"), "");
    }
    let _m = l.mount();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let mnt = l.mnt.clone();
            std::thread::spawn(move || {
                for round in 0..10 {
                    for i in 0..20 {
                        let mut f =
                            fs::OpenOptions::new().append(true).open(mnt.join(format!("deep/a/b/f{i}"))).unwrap();
                        f.write_all(format!("{t}.{round}\n").as_bytes()).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for i in 0..20 {
        let data = fs::read_to_string(l.m(&format!("deep/a/b/f{i}"))).unwrap();
        assert_eq!(data.lines().count(), 80, "f{i} lost appends");
        assert_eq!(fs::read_to_string(l.upper.join(format!("deep/a/b/f{i}"))).unwrap(), data);
    }
    assert!(staged(&l).is_empty());
}

#[test]
fn open_excl_and_modes_follow_the_caller() {
    let l = Layout::new(1);
    l.lower_file(0, "exists", "e");
    let _m = l.mount();
    assert_eq!(errno(fs::OpenOptions::new().write(true).create_new(true).open(l.m("exists"))), libc::EEXIST);
    let f = fs::OpenOptions::new().write(true).create_new(true).mode(0o640).open(l.m("made")).unwrap();
    drop(f);
    let md = fs::metadata(l.upper.join("made")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o640 & !current_umask());
    assert_eq!((md.uid(), md.gid()), (0, 0));
}

fn current_umask() -> u32 {
    // SAFETY: umask has no failure mode; the value is restored at once.
    unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    }
}

#[test]
fn uid_mapping_shifts_owners_both_ways() {
    let l = Layout::new(1);
    let p = l.lower_file(0, "f", "x");
    std::os::unix::fs::chown(&p, Some(1000), Some(1000)).unwrap();
    let _m = l.mount_with(&format!("{},uidmapping=0:100000:65536,gidmapping=0:100000:65536", l.opts()), &[]);
    let md = fs::metadata(l.m("f")).unwrap();
    assert_eq!((md.uid(), md.gid()), (101000, 101000));
    std::os::unix::fs::chown(l.m("f"), Some(100005), None).unwrap();
    assert_eq!(fs::metadata(l.upper.join("f")).unwrap().uid(), 5);
    assert_eq!(errno(std::os::unix::fs::chown(l.m("f"), Some(5), None)), libc::EINVAL);
}

fn mounts_line(mnt: &Path) -> Option<Vec<String>> {
    let want = mnt.canonicalize().ok()?;
    fs::read_to_string("/proc/mounts")
        .ok()?
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>())
        .find(|f| f.get(1).map(std::path::PathBuf::from).as_ref() == Some(&want))
}

#[test]
fn proc_mounts_shows_the_subtype_and_fsname() {
    let l = Layout::new(1);
    {
        let _m = l.mount();
        let f = mounts_line(&l.mnt).expect("mount listed");
        assert_eq!(f[2], "fuse.unionfs", "type column");
        assert_eq!(f[0], "unionfs", "source column");
    }
    let _m = l.mount_with(&format!("{},fsname=ctr-42,subtype=myfs", l.opts()), &[]);
    let f = mounts_line(&l.mnt).expect("mount listed");
    assert_eq!((f[0].as_str(), f[2].as_str()), ("ctr-42", "fuse.myfs"));
    let found = Command::new("findmnt").args(["-n", "-t", "fuse.myfs", "-o", "TARGET"]).output().expect("findmnt");
    assert!(String::from_utf8_lossy(&found.stdout).contains(&*l.mnt.canonicalize().expect("canon").to_string_lossy()));
}

/// Times the daemon's io_uring queue threads (`fuser-ring-N`) were put on a
/// CPU (`schedstat`'s third field): they run only to serve a request.
fn ring_thread_runs(pid: u32) -> u64 {
    let mut runs = 0;
    for t in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let comm = fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.starts_with("fuser-ring-") {
            let st = fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            runs += st.split_whitespace().nth(2).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    runs
}

#[test]
fn fuse_over_io_uring_serves_requests_and_their_biggest_answers() {
    // With `-o io_uring` and a kernel that offers it (scripts/test.sh sets
    // the fuse module's enable_uring for the run), requests come through the
    // io_uring queues: a listing that fills READDIRPLUS answers, 1 MiB reads
    // and writes (a full payload buffer each way, page cache path), and
    // namespace changes all give what they give through /dev/fuse.
    if fs::read_to_string("/sys/module/fuse/parameters/enable_uring").map(|v| v.trim() != "Y").unwrap_or(true) {
        eprintln!("skipped: the fuse module's enable_uring is off");
        return;
    }
    let l = Layout::new(1);
    let mut names = std::collections::BTreeSet::new();
    for i in 0..2000 {
        let n = format!("f{i:04}-{}", "n".repeat(120));
        l.lower_file(0, &format!("d/{n}"), "v");
        names.insert(n);
    }
    let big: Vec<u8> = (0..(3 << 20) + 4097).map(|i: u32| (i.wrapping_mul(7) % 251) as u8).collect();
    fs::write(l.lower(0, "big"), &big).unwrap();
    let m = l.mount_with(&format!("{},io_uring,passthrough=off", l.opts()), &[]);
    let before = ring_thread_runs(m.pid());
    assert!(
        fs::read_dir(format!("/proc/{}/task", m.pid())).unwrap().flatten().any(|t| fs::read_to_string(
            t.path().join("comm")
        )
        .unwrap_or_default()
        .starts_with("fuser-ring-")),
        "no io_uring queue threads"
    );
    let listed: std::collections::BTreeSet<String> =
        fs::read_dir(l.m("d")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(listed, names);
    for n in names.iter().take(200) {
        assert_eq!(fs::read_to_string(l.m(&format!("d/{n}"))).unwrap(), "v");
    }
    assert!(fs::read(l.m("big")).unwrap() == big, "big file read through the mount differs");
    let mut rev = big.clone();
    rev.reverse();
    fs::write(l.m("new"), &rev).unwrap();
    assert!(fs::read(l.upper.join("new")).unwrap() == rev, "written file differs in the upper");
    fs::rename(l.m("new"), l.m("d/moved")).unwrap();
    fs::remove_file(l.m(&format!("d/f0000-{}", "n".repeat(120)))).unwrap();
    assert_eq!(errno(fs::metadata(l.m("new"))), libc::ENOENT);
    assert_eq!(fs::metadata(l.m("d/moved")).unwrap().len(), rev.len() as u64);
    assert_eq!(fs::read_dir(l.m("d")).unwrap().count(), names.len());
    let served = ring_thread_runs(m.pid()) - before;
    assert!(served >= 200, "the io_uring queue threads ran {served} times: requests did not come through them");
}
