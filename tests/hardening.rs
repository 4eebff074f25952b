//! Integration tests for filesystem hardening defects, one test per item of
//! the issue (`item<N>_...`). Where the kernel overlay can be the oracle the
//! same operations run on a kernel overlay over the same lower layers and the
//! outcomes are compared.
//!
//! item15 builds 100k files; run it alone with
//! `cargo test --test hardening item15`.

mod support;

use std::ffi::CString;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use support::*;

fn names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", p.display()))
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// What `lstat` says about a path, comparable across two mounts.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Obj { kind: u32, size: u64 },
    Err(i32),
}

fn seen(p: &Path) -> Seen {
    match fs::symlink_metadata(p) {
        Ok(m) => Seen::Obj { kind: m.mode() & libc::S_IFMT, size: if m.is_dir() { 0 } else { m.len() } },
        Err(e) => Seen::Err(e.raw_os_error().expect("os error")),
    }
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path")
}

// ---------------------------------------------------------------------------
// 4. Names the union interprets (user.overlay.opaque, user.overlay.whiteout,
//    user.fuseoverlayfs.opaque) set through a trusted.* mount are escaped.

/// Set the interpreted names through `m`, read them back.
fn item4_set(m: &Path) {
    for (p, n) in
        [("dir", "user.overlay.opaque"), ("dir2", "user.fuseoverlayfs.opaque"), ("empty", "user.overlay.whiteout")]
    {
        assert!(setxattr(&m.join(p), n, "y"), "setfattr -n {n} on {p} refused");
        assert_eq!(getxattr(&m.join(p), n).as_deref(), Some(&b"y"[..]), "{n} on {p} not shown back");
    }
}

fn item4_view(m: &Path) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<_> = ["", "dir", "dir2"].iter().map(|d| (d.to_string(), names(&m.join(d)))).collect();
    v.push(("empty".into(), vec![format!("{:?}", seen(&m.join("empty")))]));
    v
}

#[test]
fn item4_interpreted_xattr_names_set_through_the_mount_are_escaped() {
    let l = Layout::new(2);
    l.lower_file(1, "dir/a", "a");
    l.lower_file(0, "dir/b", "b");
    l.lower_file(1, "dir2/c", "c");
    l.lower_file(0, "dir2/d", "d");
    l.lower_file(0, "empty", "");
    {
        let _m = l.mount();
        item4_set(&l.mnt);
    }
    // As root without userxattr the union reads trusted.overlay.* and
    // fuse-overlayfs's user.fuseoverlayfs.*; user.overlay.* is plain user data
    // there, stored as it is (the kernel does the same). Names the union reads
    // are stored escaped, never under the name it interprets.
    assert_eq!(getxattr(&l.upper.join("dir"), "user.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert_eq!(getxattr(&l.upper.join("dir2"), "user.fuseoverlayfs.opaque"), None, "stored unescaped");
    assert_eq!(getxattr(&l.upper.join("dir2"), "user.fuseoverlayfs.overlay.opaque").as_deref(), Some(&b"y"[..]));
    let ours = {
        let _m = l.mount();
        for (p, n) in
            [("dir", "user.overlay.opaque"), ("dir2", "user.fuseoverlayfs.opaque"), ("empty", "user.overlay.whiteout")]
        {
            assert_eq!(getxattr(&l.m(p), n).as_deref(), Some(&b"y"[..]), "{n} on {p} after remount");
        }
        item4_view(&l.mnt)
    };
    let k = l.twin();
    {
        let _km = k.kernel(&l);
        item4_set(&k.mnt);
    }
    let theirs = {
        let _km = k.kernel(&l);
        item4_view(&k.mnt)
    };
    assert_eq!(ours, theirs, "structure after remount differs from the kernel overlay's");
}

// ---------------------------------------------------------------------------
// 5. A bogus origin xattr on an upper file must not hide or alias it.

#[test]
fn item5_bogus_origin_xattr_is_not_trusted() {
    let l = Layout::new(1);
    l.lower_file(0, "lowerfile", "l");
    let values = ["n:0", "n:1", "abc", "1:", ":5", "n:", "0:0"];
    for (i, v) in values.iter().enumerate() {
        let p = l.upper.join(format!("f{i}"));
        fs::write(&p, v).expect("write upper file");
        assert!(setxattr(&p, "trusted.overlay.unionfs.origin", v), "setfattr {v}");
    }
    let _m = l.mount();
    let root = fs::metadata(&l.mnt).expect("stat root");
    let listed = names(&l.mnt);
    let mut inos = std::collections::HashMap::new();
    inos.insert(fs::metadata(l.m("lowerfile")).expect("stat lowerfile").ino(), &"(lowerfile)");
    for (i, v) in values.iter().enumerate() {
        let name = format!("f{i}");
        assert!(listed.contains(&name), "origin {v:?}: {name} not listed");
        let md = fs::symlink_metadata(l.m(&name)).unwrap_or_else(|e| panic!("origin {v:?}: stat {name}: {e}"));
        assert!(md.is_file(), "origin {v:?}: {name} is not a regular file: {:o}", md.mode());
        assert_ne!(md.ino(), 0, "origin {v:?}: st_ino 0");
        assert_ne!(md.ino(), root.ino(), "origin {v:?}: st_ino is the root's");
        assert_eq!(fs::read_to_string(l.m(&name)).expect("read"), *v, "origin {v:?}: wrong data");
        if let Some(other) = inos.insert(md.ino(), v) {
            panic!("origin {v:?} and {other:?}: same st_ino {}", md.ino());
        }
    }
    // The root is still the root.
    assert!(fs::metadata(&l.mnt).expect("stat root").is_dir());
    assert!(names(&l.mnt).contains(&"lowerfile".to_string()));
    assert_eq!(fs::read_to_string(l.m("lowerfile")).expect("read"), "l");
}

// ---------------------------------------------------------------------------
// 6. File capabilities survive copy-up (except where the kernel drops them).

fn caps(p: &Path) -> String {
    let out = Command::new("getcap").arg(p).output().expect("getcap");
    let s = String::from_utf8_lossy(&out.stdout);
    s.trim().strip_prefix(&*p.to_string_lossy()).unwrap_or(&s).trim().to_string()
}

const CAP_KINDS: [&str; 6] = ["touch", "chmod", "chown", "append", "xattr", "link"];

/// Copy each `f_KIND` up through the mount `m` by that kind of change;
/// returns each change's outcome (errno or 0).
fn item6_ops(m: &Path) -> Vec<i32> {
    let f = |k: &str| m.join(format!("f_{k}"));
    let code = |r: std::io::Result<()>| r.err().map_or(0, |e| e.raw_os_error().unwrap_or(-1));
    vec![
        // `touch` of an existing file: utimensat only.
        code(fs::File::open(f("touch")).and_then(|h| h.set_modified(std::time::SystemTime::now()))),
        code(fs::set_permissions(f("chmod"), fs::Permissions::from_mode(0o750))),
        code(std::os::unix::fs::chown(f("chown"), Some(1), Some(1))),
        code(fs::OpenOptions::new().append(true).open(f("append")).and_then(|mut h| h.write_all(b"more"))),
        i32::from(!setxattr(&f("xattr"), "user.x", "1")),
        code(fs::hard_link(f("link"), m.join("f_link2"))),
    ]
}

#[test]
fn item6_file_capabilities_survive_copy_up() {
    let l = Layout::new(1);
    for k in CAP_KINDS {
        let p = l.lower_file(0, &format!("f_{k}"), "#!/bin/sh\n");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        let st = Command::new("setcap").arg("cap_net_raw+ep").arg(&p).status().expect("setcap");
        assert!(st.success(), "setcap");
    }
    let ours: Vec<_> = {
        let _m = l.mount();
        let codes = item6_ops(&l.mnt);
        let c = |k: &str| (caps(&l.m(&format!("f_{k}"))), caps(&l.upper.join(format!("f_{k}"))));
        CAP_KINDS.iter().zip(codes).map(|(k, e)| (*k, e, c(k).0, c(k).1)).collect()
    };
    let k = l.twin();
    let theirs: Vec<_> = {
        let _km = k.kernel(&l);
        let codes = item6_ops(&k.mnt);
        let c = |x: &str| (caps(&k.m(&format!("f_{x}"))), caps(&k.upper.join(format!("f_{x}"))));
        CAP_KINDS.iter().zip(codes).map(|(x, e)| (*x, e, c(x).0, c(x).1)).collect()
    };
    // The kernel keeps them through copy-up; chown and a write drop them.
    assert_eq!(
        ours, theirs,
        "(kind, errno of the change, getcap through the mount, getcap of the upper) differ from the kernel's"
    );
    for (kind, e, through, upper) in &ours {
        assert_eq!(*e, 0, "the {kind} change failed: errno {e}");
        // The documented expectation for changes that keep capabilities.
        if ["touch", "chmod", "xattr", "link"].contains(kind) {
            assert_eq!((through.as_str(), upper.as_str()), ("cap_net_raw=ep", "cap_net_raw=ep"), "copy-up by {kind}");
        }
    }
}

// ---------------------------------------------------------------------------
// 7. A file opened read-only before a copy-up sees the copied-up file.

fn item7_run(m: &Path) -> (String, u64, u64) {
    let mut a = fs::File::open(m.join("f")).expect("open A");
    let mut first = [0u8; 3];
    a.read_exact(&mut first).expect("read A before copy-up");
    assert_eq!(&first, b"old");
    let mut b = fs::OpenOptions::new().append(true).open(m.join("f")).expect("open B");
    b.write_all(b" and new").expect("append via B");
    drop(b);
    // Its cached pages may be evicted at any time (memory pressure); evict them now.
    use std::os::fd::AsRawFd;
    // SAFETY: fadvise on an open descriptor.
    assert_eq!(unsafe { libc::posix_fadvise(a.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) }, 0);
    a.seek(SeekFrom::Start(0)).expect("seek");
    let mut data = String::new();
    a.read_to_string(&mut data).expect("read A");
    let size = a.metadata().expect("fstat A").len();
    let end = a.seek(SeekFrom::End(0)).expect("lseek end");
    (data, size, end)
}

#[test]
fn item7_read_only_fd_follows_copy_up() {
    let l = Layout::new(1);
    l.lower_file(0, "f", "old");
    let ours = {
        let _m = l.mount();
        item7_run(&l.mnt)
    };
    let k = l.twin();
    let theirs = {
        let _km = k.kernel(&l);
        item7_run(&k.mnt)
    };
    assert_eq!(theirs, ("old and new".to_string(), 11, 11), "kernel oracle");
    assert_eq!(ours, theirs, "(data via fd A, fstat size, SEEK_END) differ from the kernel's");
}

// ---------------------------------------------------------------------------
// 8. Whiteouts in xattr form in a lower layer.

#[test]
fn item8_xattr_whiteouts_in_lower_layers() {
    let l = Layout::new(2);
    for d in ["d", "e", "f"] {
        l.lower_file(1, &format!("{d}/gone"), "g");
        l.lower_file(1, &format!("{d}/keep"), "k");
        l.lower_file(0, &format!("{d}/gone"), "");
    }
    // d, e: the kernel's form (parent marked "has xattr whiteouts" with opaque=x);
    // f: a whiteout xattr without the parent's marker.
    assert!(setxattr(&l.lower(0, "d"), "trusted.overlay.opaque", "x"));
    assert!(setxattr(&l.lower(0, "e"), "trusted.overlay.opaque", "x"));
    assert!(setxattr(&l.lower(0, "d/gone"), "trusted.overlay.whiteout", "y"));
    assert!(setxattr(&l.lower(0, "e/gone"), "trusted.overlay.whiteout", "\"\""));
    assert!(setxattr(&l.lower(0, "f/gone"), "trusted.overlay.whiteout", "y"));
    assert_eq!(getxattr(&l.lower(0, "e/gone"), "trusted.overlay.whiteout").as_deref(), Some(&b""[..]));
    let view = |m: &Path| -> Vec<(String, Vec<String>, Vec<Seen>)> {
        ["d", "e", "f"]
            .iter()
            .map(|d| {
                let st = ["gone", "keep"].iter().map(|n| seen(&m.join(d).join(n))).collect();
                (d.to_string(), names(&m.join(d)), st)
            })
            .collect()
    };
    let ours = {
        let _m = l.mount();
        view(&l.mnt)
    };
    let k = l.twin();
    let theirs = {
        let _km = k.kernel(&l);
        view(&k.mnt)
    };
    // What this kernel does with the marked form (6.7+): hidden everywhere.
    assert_eq!(theirs[0].1, vec!["keep"], "kernel oracle (uname -r >= 6.7 expected)");
    assert_eq!(ours, theirs, "(dir, readdir, lstat of gone/keep) differ from the kernel's");
}

// ---------------------------------------------------------------------------
// 9. readdir's d_ino equals stat's st_ino.

fn item9_mismatches(root: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let md = fs::symlink_metadata(e.path()).expect("lstat");
            if e.ino() != md.ino() {
                bad.push(format!("{}: d_ino {} st_ino {}", e.path().display(), e.ino(), md.ino()));
            }
            if md.is_dir() {
                dirs.push(e.path());
            }
        }
    }
    bad
}

fn item9_ops(m: &Path) {
    Command::new("touch").arg(m.join("f1")).status().expect("touch");
    fs::OpenOptions::new().append(true).open(m.join("dir/a")).expect("open").write_all(b"+").expect("append");
    fs::write(m.join("dir/sub/new"), "n").expect("create");
    fs::create_dir(m.join("newdir")).expect("mkdir");
    fs::set_permissions(m.join("both"), fs::Permissions::from_mode(0o700)).expect("chmod dir");
}

#[test]
fn item9_readdir_d_ino_matches_st_ino() {
    let l = Layout::new(2);
    l.lower_file(1, "f1", "1");
    l.lower_file(1, "f2", "2");
    l.lower_file(0, "f3", "3");
    l.lower_file(1, "dir/a", "a");
    l.lower_file(0, "dir/b", "b");
    l.lower_file(1, "dir/sub/x", "x");
    l.lower_file(0, "dir/sub/y", "y");
    l.lower_file(1, "both/p", "p");
    fs::create_dir_all(l.lower(0, "both")).expect("mkdir");
    fs::create_dir_all(l.upper.join("dir")).expect("mkdir upper dir");
    fs::write(l.upper.join("dir/u"), "u").expect("upper file");
    let ours = {
        let _m = l.mount();
        item9_ops(&l.mnt);
        item9_mismatches(&l.mnt)
    };
    let k = l.twin();
    fs::create_dir_all(k.upper.join("dir")).expect("mkdir upper dir");
    fs::write(k.upper.join("dir/u"), "u").expect("upper file");
    let theirs = {
        let _km = k.kernel(&l);
        item9_ops(&k.mnt);
        item9_mismatches(&k.mnt)
    };
    assert!(theirs.is_empty(), "kernel oracle: {theirs:#?}");
    assert!(ours.is_empty(), "d_ino != st_ino: {ours:#?}");
}

// ---------------------------------------------------------------------------
// 10. POSIX ACLs are enforced.

fn item10_run(m: &Path) -> (bool, String, bool, String) {
    let r = run_as(65534, 65534, &format!("cat {}", m.join("deny").display()));
    let w = run_as(65534, 65534, &format!("echo nobody >> {}", m.join("allow").display()));
    let err = |o: &std::process::Output| {
        let s = String::from_utf8_lossy(&o.stderr);
        s.rsplit(": ").next().unwrap_or_default().trim().to_string()
    };
    (r.status.success(), err(&r), w.status.success(), err(&w))
}

#[test]
fn item10_posix_acls_are_enforced() {
    let l = Layout::new(1);
    fs::set_permissions(l.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let deny = l.lower_file(0, "deny", "secret\n");
    fs::set_permissions(&deny, fs::Permissions::from_mode(0o644)).expect("chmod");
    let allow = l.lower_file(0, "allow", "shared\n");
    fs::set_permissions(&allow, fs::Permissions::from_mode(0o600)).expect("chmod");
    assert!(Command::new("setfacl").args(["-m", "u:nobody:---"]).arg(&deny).status().expect("setfacl").success());
    assert!(Command::new("setfacl").args(["-m", "u:nobody:rw"]).arg(&allow).status().expect("setfacl").success());
    let ours = {
        let _m = l.mount();
        item10_run(&l.mnt)
    };
    let ours_data = fs::read_to_string(l.upper.join("allow")).unwrap_or_default();
    let k = l.twin();
    fs::set_permissions(k.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let theirs = {
        let _km = k.kernel(&l);
        item10_run(&k.mnt)
    };
    assert_eq!(theirs, (false, "Permission denied".into(), true, String::new()), "kernel oracle");
    assert_eq!(ours, theirs, "(read deny ok, its error, write allow ok, its error) differ from the kernel's");
    assert_eq!(ours_data, "shared\nnobody\n");
}

// ---------------------------------------------------------------------------
// 11. An unprivileged daemon copies up objects owned by others.

#[test]
fn item11_unprivileged_copy_up_of_foreign_objects() {
    let (uid, gid) = test_user();
    let l = Layout::new(1);
    fs::set_permissions(l.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let d = l.lower(0, "d");
    fs::create_dir_all(&d).expect("mkdir");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).expect("chmod");
    for f in ["d/f", "g"] {
        let p = l.lower_file(0, f, "root data\n");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).expect("chmod");
    }
    for p in [&l.upper, &l.work, &l.mnt] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
    }
    let opts = format!("{},userxattr", l.opts());
    let m = UserMount {
        inner: UnionMount::start_with_prefix(
            &["setpriv", &format!("--reuid={uid}"), &format!("--regid={gid}"), "--clear-groups"],
            &opts,
            &l.mnt,
        ),
        uid,
        gid,
    };
    let mp = |r: &str| m.inner.mnt.join(r).display().to_string();
    for f in ["d/f", "g"] {
        let o = run_as(uid, gid, &format!("echo more >> {}", mp(f)));
        assert!(o.status.success(), "append to {f} as the user: {}", String::from_utf8_lossy(&o.stderr).trim());
    }
    let o = run_as(uid, gid, &format!("cat {}; stat -c '%u:%g:%a' {} {} {}", mp("d/f"), mp("d"), mp("d/f"), mp("g")));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "root data\nmore\n0:0:777\n0:0:666\n0:0:666\n");
    for p in ["d", "d/f", "g"] {
        let v = getxattr(&l.upper.join(p), "user.containers.override_stat")
            .unwrap_or_else(|| panic!("upper {p}: no user.containers.override_stat"));
        assert!(v.starts_with(b"0:0:"), "upper {p}: override_stat {:?}", String::from_utf8_lossy(&v));
    }
    drop(m);
    assert!(!is_mounted(&l.mnt));
}

// ---------------------------------------------------------------------------
// 12. O_DIRECT, and O_APPEND cleared with fcntl(F_SETFL).

fn item12_append_cleared(m: &Path) -> String {
    let f = fs::OpenOptions::new().append(true).open(m.join("ap")).expect("open O_APPEND");
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on an open descriptor.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        assert!(fl & libc::O_APPEND != 0);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_APPEND), 0);
    }
    f.write_at(b"J", 0).expect("pwrite");
    drop(f);
    fs::read_to_string(m.join("ap")).expect("read")
}

fn dd(args: &[&str]) -> (bool, String) {
    let o = Command::new("dd").args(args).arg("status=none").output().expect("dd");
    (o.status.success(), String::from_utf8_lossy(&o.stderr).trim().to_string())
}

#[test]
fn item12_o_direct_and_cleared_o_append() {
    let l = Layout::new(1);
    let data: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(l.lower(0, "lowerfile"), &data).expect("write");
    l.lower_file(0, "ap", "hello world");
    let copy = l.dir.path().join("copy");
    let mut bad = Vec::new();
    let m = l.mount();
    let of = format!("of={}", l.m("x").display());
    match dd(&["if=/dev/zero", &of, "bs=4k", "count=16", "oflag=direct"]) {
        (true, _) if fs::read(l.m("x")).expect("read x") == vec![0u8; 65536] => {}
        (true, _) => bad.push("O_DIRECT write: wrong data".to_string()),
        (false, e) => bad.push(format!("dd oflag=direct: {e}")),
    }
    let ifl = format!("if={}", l.m("lowerfile").display());
    if let (false, e) = dd(&[&ifl, "of=/dev/null", "bs=4k", "iflag=direct"]) {
        bad.push(format!("dd iflag=direct: {e}"));
    }
    match dd(&[&ifl, &format!("of={}", copy.display()), "bs=4k", "iflag=direct"]) {
        (true, _) if fs::read(&copy).expect("read copy") == data => {}
        (true, _) => bad.push("O_DIRECT read returned other data".to_string()),
        (false, e) => bad.push(format!("dd iflag=direct to a file: {e}")),
    }
    let ours = item12_append_cleared(&l.mnt);
    drop(m);
    let k = l.twin();
    let theirs = {
        let _km = k.kernel(&l);
        item12_append_cleared(&k.mnt)
    };
    assert_eq!(theirs, "Jello world", "kernel oracle");
    if ours != theirs {
        bad.push(format!("pwrite at 0 after clearing O_APPEND: {ours:?}, kernel {theirs:?}"));
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

// ---------------------------------------------------------------------------
// 13. Uppers the kernel wrote with metacopy: without `metacopy=on` a metacopy
//     file is refused at lookup (EPERM), as the kernel itself refuses it (the
//     mount works); with `metacopy=on` it shows its lower data, and the
//     kernel reads back what unionfs did to it. Directory redirects the kernel
//     wrote are followed.

#[test]
fn item13_kernel_metacopy_uppers_need_metacopy_on_and_redirects_followed() {
    let l = Layout::new(1);
    l.lower_file(0, "f", "lower data");
    l.lower_file(0, "g", "plain");
    let kernel = |opts: &str| KernelMount::with_opts(&format!("{},{opts}", l.opts()), &l.mnt);
    {
        let _km = kernel("metacopy=on,redirect_dir=on");
        fs::set_permissions(l.m("f"), fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    assert!(getxattr(&l.upper.join("f"), "trusted.overlay.metacopy").is_some(), "the kernel wrote no metacopy file");
    // The oracle: the kernel without metacopy=on.
    let (ke, kg) = {
        let _km = kernel("redirect_dir=on");
        (errno(fs::metadata(l.m("f"))), fs::read_to_string(l.m("g")).expect("read g"))
    };
    assert_eq!(ke, libc::EPERM, "kernel oracle");
    {
        let _m = l.mount();
        assert_eq!(errno(fs::metadata(l.m("f"))), ke, "stat of a metacopy file without metacopy=on");
        assert_eq!(errno(fs::read(l.m("f"))), ke, "read of a metacopy file without metacopy=on");
        assert_eq!(fs::read_to_string(l.m("g")).expect("read g"), kg);
    }
    {
        let _m = l.mount_with(&format!("{},metacopy=on", l.opts()), &[]);
        assert_eq!(fs::read_to_string(l.m("f")).expect("read f"), "lower data");
        assert_eq!(fs::metadata(l.m("f")).expect("stat f").mode() & 0o7777, 0o600);
        let f = fs::OpenOptions::new().write(true).open(l.m("f")).expect("open f for write");
        f.write_at(b"L", 0).expect("write f");
    }
    assert!(getxattr(&l.upper.join("f"), "trusted.overlay.metacopy").is_none(), "metacopy mark left after a write");
    {
        let _km = kernel("metacopy=on,redirect_dir=on");
        assert_eq!(fs::read_to_string(l.m("f")).expect("kernel reads f"), "Lower data");
    }
    // Directory redirects the kernel wrote are followed (issue 12): the tree
    // is the kernel's.
    let l = Layout::new(1);
    l.lower_file(0, "dir/a", "a");
    {
        let _km = KernelMount::with_opts(&format!("{},redirect_dir=on", l.opts()), &l.mnt);
        fs::rename(l.mnt.join("dir"), l.mnt.join("dir2")).expect("mv dir");
    }
    let _m = l.mount();
    assert_eq!(names(&l.mnt), vec!["dir2".to_string()]);
    assert_eq!(names(&l.m("dir2")), vec!["a".to_string()]);
    assert_eq!(fs::read_to_string(l.m("dir2/a")).expect("read"), "a");
}

// ---------------------------------------------------------------------------
// 14. mknod of a char device 0:0 (the whiteout form).

fn item14_run(m: &Path) -> i32 {
    let c = cpath(&m.join("c"));
    // SAFETY: valid C string.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, 0) };
    assert_ne!(r, 0, "mknod c 0 0 succeeded");
    std::io::Error::last_os_error().raw_os_error().expect("errno")
}

#[test]
fn item14_mknod_char_0_0_is_refused_like_the_kernel() {
    let l = Layout::new(1);
    l.lower_file(0, "x", "x");
    let (e, absent, listed) = {
        let _m = l.mount();
        let e = item14_run(&l.mnt);
        (e, seen(&l.m("c")), names(&l.mnt))
    };
    let k = l.twin();
    let ke = {
        let _km = k.kernel(&l);
        let ke = item14_run(&k.mnt);
        assert_eq!(seen(&k.m("c")), Seen::Err(libc::ENOENT));
        ke
    };
    assert_eq!(ke, libc::EPERM, "kernel oracle");
    assert_eq!(e, ke, "errno of mknod c 0 0");
    assert_eq!(absent, Seen::Err(libc::ENOENT));
    assert_eq!(listed, vec!["x"]);
    assert!(names(&l.upper).is_empty(), "upper has entries: {:?}", names(&l.upper));
}

// ---------------------------------------------------------------------------
// 16. One upper/work dir, two mounts.

#[test]
fn item16_second_mount_of_one_upper_is_refused() {
    let l = Layout::new(1);
    l.lower_file(0, "f", "f");
    let mnt2 = l.dir.path().join("mnt2");
    fs::create_dir(&mnt2).expect("mkdir");
    let first = l.mount();
    fs::write(l.m("f"), "written").expect("write via first");
    let a = MountAttempt::run(&l.opts(), &mnt2);
    let (status, mounted, err) = (a.status, a.mounted(), a.stderr.trim().to_string());
    drop(a);
    assert!(!mounted, "a second mount of the same upperdir/workdir is live");
    assert!(!status.success(), "second mount exited {status}");
    assert!(!err.is_empty() && err.lines().count() == 1, "not a one-line error: {err:?}");
    // The first mount is intact.
    assert_eq!(fs::read_to_string(l.m("f")).expect("read via first"), "written");
    first.stop();
    let again = UnionMount::start(&l.opts(), &mnt2, &[]);
    assert_eq!(fs::read_to_string(mnt2.join("f")).expect("read via second"), "written");
    drop(again);
}

// ---------------------------------------------------------------------------
// 15. 100k files under RLIMIT_NOFILE 1024.

fn vm_hwm_kib(pid: u32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = s.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).expect("value").parse().expect("number")
}

#[test]
fn item15_fd_and_memory_bounded_on_a_large_tree() {
    const DIRS: usize = 100;
    const FILES: usize = 1000;
    let l = Layout::new(1);
    for d in 0..DIRS {
        let dir = l.lower(0, &format!("d{d:03}"));
        fs::create_dir(&dir).expect("mkdir");
        for f in 0..FILES {
            fs::write(dir.join(format!("f{f:04}")), "abc").expect("write");
        }
    }
    let m = UnionMount::start_with_prefix(&["prlimit", "--nofile=1024:1024"], &l.opts(), &l.mnt);
    let pid = m.pid();
    let found = Command::new("find").arg(&l.mnt).output().expect("find");
    let lines = String::from_utf8_lossy(&found.stdout).lines().count();
    assert!(found.status.success(), "find: {}", String::from_utf8_lossy(&found.stderr).lines().next().unwrap_or(""));
    assert_eq!(lines, 1 + DIRS + DIRS * FILES, "find m | wc -l");
    let tar = Command::new("bash")
        .arg("-c")
        .arg(format!("set -o pipefail; tar cf - -C {} . | wc -c", l.mnt.display()))
        .output()
        .expect("tar");
    let tar_err = String::from_utf8_lossy(&tar.stderr);
    assert!(tar_err.trim().is_empty() && tar.status.success(), "tar: {}", tar_err.lines().next().unwrap_or(""));
    let bytes: u64 = String::from_utf8_lossy(&tar.stdout).trim().parse().expect("wc -c");
    assert!(bytes >= (DIRS * FILES * 1024) as u64, "tar archive too small: {bytes}");
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).expect("fd dir").count();
    assert!(fds < 1024, "daemon holds {fds} fds");
    let hwm = vm_hwm_kib(pid);
    assert!(hwm < 200 * 1024, "daemon VmHWM {hwm} KiB >= 200 MiB");
    drop(m);
}
