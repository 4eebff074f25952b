//! The store's hardening (issue items by number): private modes, the xattr
//! allow-list, bounded headers and free space, synced and swept layers,
//! sparse members, tmp/ sweeping, `save -o` onto links and streams, rootless
//! owners and read-only trees, truncated legacy archives, deep trees, and the
//! rm/prune guards. Each test runs the real binary against a temp store.

mod fixtures;

use fixtures::*;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

const USER: &str = "unionfs-test";

/// A temp dir other users may traverse (so only the store's own modes protect it).
fn tmp() -> tempfile::TempDir {
    let t = tempfile::Builder::new().prefix("unionctl-hard.").tempdir_in("/tmp").unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    t
}

fn id_of(user: &str) -> Option<(u32, u32)> {
    let q = |f: &str| -> Option<u32> {
        let o = Command::new("id").args([f, user]).output().ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok().filter(|_| o.status.success())
    };
    Some((q("-u")?, q("-g")?))
}

/// The unprivileged test user (created when absent).
fn test_user() -> (u32, u32) {
    static ONCE: Mutex<()> = Mutex::new(());
    let _g = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(ids) = id_of(USER) {
        return ids;
    }
    let _ =
        Command::new("useradd").args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER]).status();
    id_of(USER).expect("cannot create the test user")
}

/// A command run as the test user.
fn as_user(prog: &str) -> Command {
    let (uid, gid) = test_user();
    let mut c = Command::new("setpriv");
    c.args([&format!("--reuid={uid}"), &format!("--regid={gid}"), "--clear-groups", prog]);
    c
}

fn ctl_load(ctl: &Ctl, p: &Path) -> String {
    ctl.ok(&["image", "load", "-i", &p.display().to_string()])
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn xattr_names(p: &Path) -> Vec<String> {
    let f = fs::File::open(p).unwrap();
    let mut v: Vec<String> =
        unionfs::sys::xattr::list(unionfs::sys::xattr::Target::Fd(std::os::fd::AsRawFd::as_raw_fd(&f)))
            .unwrap()
            .into_iter()
            .map(|n| String::from_utf8_lossy(&n).into_owned())
            .collect();
    v.sort();
    v
}

fn getxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let f = fs::File::open(p).ok()?;
    unionfs::sys::xattr::get(
        unionfs::sys::xattr::Target::Fd(std::os::fd::AsRawFd::as_raw_fd(&f)),
        std::ffi::OsStr::new(name),
    )
    .ok()
    .flatten()
}

/// Entries of tmp/ other than the locks directory.
fn tmp_entries(ctl: &Ctl) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(ctl.root.join("tmp"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.retain(|n| n != "locks");
    v
}

/// A directory member with any path (the writer refuses "./").
fn raw_dir(name: &str, mode: u32) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(mode);
    h.set_size(0);
    h.set_mtime(1_600_000_000);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    h.as_bytes().to_vec()
}

// 1
#[test]
fn store_is_private_to_its_owner() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let (built, _) = oci_layout(&t.path().join("oci"), &rich_layers(), Comp::Gzip, "example/private:1");
    ctl_load(&ctl, &t.path().join("oci"));
    assert_eq!(mode(&ctl.root), 0o700, "store root");
    for d in ["layers", "tmp", "blobs", "images"] {
        assert_eq!(mode(&ctl.root.join(d)) & 0o077, 0, "{d} reachable by others");
    }
    let su = ctl.root.join("layers").join(&built.diff_ids[0]).join("diff/bin/su");
    assert_eq!(mode(&su), 0o4755);
    let o = as_user("stat").arg(&su).output().unwrap();
    assert!(!o.status.success(), "another user can reach a setuid file of a layer");
    assert!(String::from_utf8_lossy(&o.stderr).contains("Permission denied"), "{}", String::from_utf8_lossy(&o.stderr));
    let o =
        as_user("cat").arg(ctl.root.join("layers").join(&built.diff_ids[0]).join("diff/etc/passwd")).output().unwrap();
    assert!(!o.status.success(), "another user can read a layer file");

    // A store made before: 0755 everywhere; the next command fixes it.
    for d in ["", "layers", "tmp", "blobs", "blobs/sha256", "images"] {
        fs::set_permissions(ctl.root.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(ctl.root.join("layers").join(&built.diff_ids[0]), fs::Permissions::from_mode(0o755)).unwrap();
    ctl.ok(&["image", "ls"]);
    assert_eq!(mode(&ctl.root), 0o700, "old store root not fixed");
    for d in ["layers", "tmp", "blobs", "images"] {
        assert_eq!(mode(&ctl.root.join(d)) & 0o077, 0, "old store: {d} not fixed");
    }
    assert!(!as_user("stat").arg(&su).output().unwrap().status.success());
}

// 2
#[test]
fn only_allowed_xattrs_are_applied() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    // A v2 file capability: effective, cap_net_bind_service permitted.
    let cap: Vec<u8> = [0x01, 0, 0, 0x02, 0, 0x04, 0, 0].iter().copied().chain([0u8; 12]).collect();
    let mut b = tar::Builder::new(Vec::new());
    let dir_x: Vec<(&str, &[u8])> = vec![
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ("SCHILY.xattr.user.overlay.opaque", b"y"),
        ("SCHILY.xattr.user.fuseoverlayfs.override_stat", b"0:0:0755"),
        ("SCHILY.xattr.user.dirnote", b"kept"),
    ];
    b.append_pax_extensions(dir_x).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "d", &[][..]).unwrap();
    let file_x: Vec<(&str, &[u8])> = vec![
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        ("SCHILY.xattr.trusted.foo", b"bar"),
        ("SCHILY.xattr.user.containers.override_stat", b"0:0:04755:file"),
        ("SCHILY.xattr.security.selinux", b"system_u:object_r:shadow_t:s0"),
        ("SCHILY.xattr.user.mime", b"text/plain"),
        ("SCHILY.xattr.security.capability", &cap),
    ];
    b.append_pax_extensions(file_x).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o755);
    h.set_size(3);
    b.append_data(&mut h, "d/f", &b"hi\n"[..]).unwrap();
    let l = b.into_inner().unwrap();
    let built = docker_archive(&t.path().join("x.tar"), &[l], &["xattrs:1"], false);
    ctl_load(&ctl, &t.path().join("x.tar"));
    let diff = ctl.root.join("layers").join(&built.diff_ids[0]).join("diff");
    assert_eq!(xattr_names(&diff.join("d")), vec!["user.dirnote".to_string()]);
    assert_eq!(xattr_names(&diff.join("d/f")), vec!["security.capability".to_string(), "user.mime".to_string()]);
    assert_eq!(getxattr(&diff.join("d/f"), "user.mime").as_deref(), Some(&b"text/plain"[..]));
}

// 3
#[test]
fn oversized_extension_headers_are_refused() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    ctl.ok(&["image", "ls"]);
    // A 2 MiB PAX record.
    let mut b = tar::Builder::new(Vec::new());
    let big = vec![b'x'; 2 << 20];
    b.append_pax_extensions([("comment", &big[..])]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(2);
    b.append_data(&mut h, "f", &b"x\n"[..]).unwrap();
    docker_archive(&t.path().join("pax.tar"), &[b.into_inner().unwrap()], &["pax:1"], false);
    ctl.must_fail(&t.path().join("pax.tar"), "larger than 1 MiB");
    // A 2 MiB GNU long name.
    let mut b = tar::Builder::new(Vec::new());
    let name = "a/".repeat(1 << 20) + "f";
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(2);
    b.append_data(&mut h, &name, &b"x\n"[..]).unwrap();
    docker_archive(&t.path().join("long.tar"), &[b.into_inner().unwrap()], &["long:1"], false);
    ctl.must_fail(&t.path().join("long.tar"), "larger than 1 MiB");
    // The outer archive too.
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("comment", &big[..])]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(2);
    b.append_data(&mut h, "manifest.json", &b"[]"[..]).unwrap();
    fs::write(t.path().join("outer.tar"), b.into_inner().unwrap()).unwrap();
    ctl.must_fail(&t.path().join("outer.tar"), "larger than 1 MiB");
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(p: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(p).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(p)
            .status();
        assert!(st.unwrap().success(), "mount tmpfs");
        Tmpfs(p.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Bytes that do not compress.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// 3
#[test]
fn a_full_filesystem_is_refused_and_cleaned_up() {
    let t = tmp();
    let _mnt = Tmpfs::new(&t.path().join("small"), "8m");
    let ctl = Ctl { root: t.path().join("small/store") };
    oci_layout(&t.path().join("good"), &[layer(&[M::File("a", b"a\n", 0o644)])], Comp::Gzip, "example/good:1");
    ctl_load(&ctl, &t.path().join("good"));
    let data: &'static [u8] = Box::leak(noise(12 << 20).into_boxed_slice());
    let big = vec![layer(&[M::File("big", data, 0o644)])];
    // A gzip-wrapped OCI archive whose tar does not fit.
    oci_layout(&t.path().join("big"), &big, Comp::None, "example/big:1");
    tar_dir(&t.path().join("big"), &t.path().join("big.tar"));
    fs::write(t.path().join("big.tar.gz"), gzip(&fs::read(t.path().join("big.tar")).unwrap())).unwrap();
    ctl.must_fail(&t.path().join("big.tar.gz"), "free space");
    assert!(tmp_entries(&ctl).is_empty(), "left in tmp/: {:?}", tmp_entries(&ctl));
    // A layer that does not fit once unpacked.
    ctl.must_fail(&t.path().join("big"), "free space");
    assert!(tmp_entries(&ctl).is_empty(), "left in tmp/: {:?}", tmp_entries(&ctl));
}

// 17
#[test]
fn layer_dirs_without_record_are_discarded_at_open() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let (built, _) = oci_layout(&t.path().join("oci"), &rich_layers(), Comp::Gzip, "example/sync:1");
    ctl_load(&ctl, &t.path().join("oci"));
    // An interrupted load or removal: a directory without its record, with a
    // read-only subdirectory; and a record without its directory.
    let orphan = ctl.root.join("layers").join(sha(b"orphan"));
    fs::create_dir_all(orphan.join("diff/ro/sub")).unwrap();
    fs::write(orphan.join("diff/ro/sub/f"), b"x").unwrap();
    fs::set_permissions(orphan.join("diff/ro"), fs::Permissions::from_mode(0o555)).unwrap();
    let bare = ctl.root.join("layers").join(sha(b"bare"));
    fs::create_dir_all(&bare).unwrap();
    fs::copy(ctl.root.join("layers").join(&built.diff_ids[0]).join("layer.json"), bare.join("layer.json")).unwrap();
    ctl.ok(&["image", "ls"]);
    assert!(!orphan.exists(), "a layer dir without record survived open");
    assert!(!bare.exists(), "a record without its layer dir survived open");
    let mut want = built.diff_ids.clone();
    want.sort();
    assert_eq!(ctl.layers(), want);
}

fn sparse_layer(t: &Path, format: &str, version: Option<&str>) -> Vec<u8> {
    let src = t.join(format!("sparse-src-{format}-{}", version.unwrap_or("")));
    fs::create_dir_all(&src).unwrap();
    let mut f = fs::File::create(src.join("sparse")).unwrap();
    f.write_all(b"head").unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"tail", 100 << 20).unwrap();
    drop(f);
    let out = t.join(format!("sparse-{format}-{}.tar", version.unwrap_or("")));
    let st = Command::new("tar")
        .args(["--sparse", &format!("--format={format}"), "--numeric-owner"])
        .args(version.map(|v| format!("--sparse-version={v}")))
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(&out)
        .arg("sparse")
        .status()
        .unwrap();
    assert!(st.success());
    fs::read(out).unwrap()
}

// 18
#[test]
fn gnu_sparse_members_are_extracted_sparse() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let l = sparse_layer(t.path(), "gnu", None);
    assert!(l.len() < 1 << 20, "tar did not write a sparse member");
    let built = docker_archive(&t.path().join("gnu.tar"), &[l], &["sparse:gnu"], false);
    ctl_load(&ctl, &t.path().join("gnu.tar"));
    let p = ctl.root.join("layers").join(&built.diff_ids[0]).join("diff/sparse");
    let md = fs::metadata(&p).expect("the sparse member was dropped");
    assert_eq!(md.len(), (100 << 20) + 4);
    assert!(md.blocks() * 512 < 1 << 20, "not sparse: {} blocks", md.blocks());
    let mut f = fs::File::open(&p).unwrap();
    let mut head = [0u8; 4];
    f.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"head");
    let mut tail = [0u8; 4];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut tail, 100 << 20).unwrap();
    assert_eq!(&tail, b"tail");
    let mut mid = [1u8; 4096];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut mid, 50 << 20).unwrap();
    assert!(mid.iter().all(|b| *b == 0));
    // PAX format 1.0 (GNU tar's posix default): the same file, not the raw map.
    let l = sparse_layer(t.path(), "posix", None);
    let built = docker_archive(&t.path().join("posix.tar"), &[l], &["sparse:posix"], false);
    ctl_load(&ctl, &t.path().join("posix.tar"));
    let diff = ctl.root.join("layers").join(&built.diff_ids[0]).join("diff");
    let md = fs::metadata(diff.join("sparse")).expect("the PAX sparse member was dropped");
    assert_eq!(md.len(), (100 << 20) + 4);
    assert!(md.blocks() * 512 < 1 << 20);
    let f = fs::File::open(diff.join("sparse")).unwrap();
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut tail, 100 << 20).unwrap();
    assert_eq!(&tail, b"tail");
    assert_eq!(fs::read_dir(&diff).unwrap().count(), 1, "GNUSparseFile.N left in the layer");
    // PAX 0.x sparse: refused, never stored as its raw data.
    let l = sparse_layer(t.path(), "posix", Some("0.1"));
    docker_archive(&t.path().join("pax01.tar"), &[l], &["sparse:pax01"], false);
    ctl.must_fail(&t.path().join("pax01.tar"), "sparse");
}

// 19
#[test]
fn stale_tmp_entries_are_swept_but_live_ones_kept() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    ctl.ok(&["image", "ls"]);
    let leave = || {
        // What a killed load leaves: its work dir (with a read-only dir), a
        // spooled input, lock files.
        let w = ctl.root.join("tmp/layer-999999-0");
        fs::create_dir_all(w.join("diff/ro")).unwrap();
        fs::write(w.join("blob"), vec![7u8; 1 << 20]).unwrap();
        fs::set_permissions(w.join("diff/ro"), fs::Permissions::from_mode(0o555)).unwrap();
        fs::write(ctl.root.join("tmp/stdin-999999-1"), b"partial").unwrap();
        fs::write(ctl.root.join("tmp/locks/layer-999999-0.lock"), b"").unwrap();
        fs::write(ctl.root.join("tmp/locks").join(format!("{}.lock", sha(b"x"))), b"").unwrap();
    };
    leave();
    ctl.ok(&["image", "ls"]);
    assert!(tmp_entries(&ctl).is_empty(), "left in tmp/: {:?}", tmp_entries(&ctl));
    assert_eq!(fs::read_dir(ctl.root.join("tmp/locks")).unwrap().count(), 0, "stale lock files kept");
    leave();
    ctl.ok(&["image", "prune"]);
    assert!(tmp_entries(&ctl).is_empty(), "prune left in tmp/: {:?}", tmp_entries(&ctl));

    // A load in progress (spooling stdin) keeps its entry through other commands.
    let built = docker_archive(&t.path().join("d.tar"), &rich_layers(), &["live:1"], false);
    let mut child = Command::new(env!("CARGO_BIN_EXE_unionctl"))
        .arg("--root")
        .arg(&ctl.root)
        .args(["image", "load", "-i", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&[0u8; 0]).unwrap();
    let mut live = Vec::new();
    for _ in 0..200 {
        live = tmp_entries(&ctl);
        if !live.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!live.is_empty(), "the load made no tmp entry");
    ctl.ok(&["image", "ls"]);
    ctl.ok(&["image", "prune"]);
    assert_eq!(tmp_entries(&ctl), live, "a live load's tmp entry was removed");
    stdin.write_all(&fs::read(t.path().join("d.tar")).unwrap()).unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains(&built.id));
    assert!(tmp_entries(&ctl).is_empty());
}

fn entries_of(archive: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(archive);
    ar.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect()
}

// 20
#[test]
fn save_keeps_symlinks_and_streams() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let (built, _) = oci_layout(&t.path().join("oci"), &rich_layers(), Comp::Gzip, "example/save:1");
    ctl_load(&ctl, &t.path().join("oci"));
    // A symlink to a regular file: the link stays, its target gets the archive.
    fs::write(t.path().join("real.tar"), b"old").unwrap();
    std::os::unix::fs::symlink("real.tar", t.path().join("link.tar")).unwrap();
    ctl.ok(&["image", "save", "-o", &t.path().join("link.tar").display().to_string(), "example/save:1"]);
    assert!(fs::symlink_metadata(t.path().join("link.tar")).unwrap().file_type().is_symlink(), "link replaced");
    assert!(entries_of(&fs::read(t.path().join("real.tar")).unwrap()).contains(&"manifest.json".to_string()));
    // A dangling symlink: its target is created.
    std::os::unix::fs::symlink("new.tar", t.path().join("dangling.tar")).unwrap();
    ctl.ok(&["image", "save", "-o", &t.path().join("dangling.tar").display().to_string(), "example/save:1"]);
    assert!(fs::symlink_metadata(t.path().join("dangling.tar")).unwrap().file_type().is_symlink());
    assert!(t.path().join("new.tar").is_file());
    // Standard output, as "-" and as /dev/stdout (a pipe here).
    for o in ["-", "/dev/stdout"] {
        let out = Command::new(env!("CARGO_BIN_EXE_unionctl"))
            .arg("--root")
            .arg(&ctl.root)
            .args(["image", "save", "--format", "oci-archive", "-o", o, "example/save:1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{o}: {}", String::from_utf8_lossy(&out.stderr));
        let names = entries_of(&out.stdout);
        assert!(names.contains(&"index.json".to_string()), "{o}: {names:?}");
        let f = t.path().join("from-stdout.tar");
        fs::write(&f, &out.stdout).unwrap();
        let other = Ctl { root: t.path().join("store2") };
        assert!(other.ok(&["image", "load", "-i", &f.display().to_string()]).contains(&built.id));
    }
    assert!(!Path::new("-").exists() && !ctl.root.join("-").exists());
}

// 21
#[test]
fn rootless_store_records_owners_and_removes_read_only_trees() {
    let t = tmp();
    let (uid, gid) = test_user();
    let l = [
        raw_dir("./", 0o555),
        layer(&[
            M::Owned("owned", b"by 1000\n", 0o640, 1000, 1000),
            M::Dir("ro", 0o555),
            M::Dir("ro/sub", 0o555),
            M::File("ro/sub/f", b"f\n", 0o444),
        ]),
    ]
    .concat();
    let built = docker_archive(&t.path().join("ro.tar"), &[l], &["example/ro:1"], false);
    let store = t.path().join("userstore");
    fs::create_dir(&store).unwrap();
    std::os::unix::fs::chown(&store, Some(uid), Some(gid)).unwrap();
    let home = t.path().join("home");
    fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
    let run = |args: &[&str]| {
        let o = as_user(env!("CARGO_BIN_EXE_unionctl"))
            .env("HOME", &home)
            .arg("--root")
            .arg(&store)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?} as a user: {}", String::from_utf8_lossy(&o.stderr));
    };
    run(&["image", "load", "-i", &t.path().join("ro.tar").display().to_string()]);
    let diff = store.join("layers").join(&built.diff_ids[0]).join("diff");
    assert_eq!(
        getxattr(&diff.join("owned"), "user.containers.override_stat").as_deref(),
        Some(&b"1000:1000:0640:file"[..])
    );
    assert_eq!(mode(&diff), 0o555, "the layer root keeps its mode");
    assert_eq!(mode(&diff.join("ro/sub")), 0o555);
    run(&["image", "rm", "example/ro:1"]);
    run(&["image", "prune", "-a"]);
    assert_eq!(fs::read_dir(store.join("layers")).unwrap().count(), 0, "layers left");
    assert_eq!(fs::read_dir(store.join("blobs/sha256")).unwrap().count(), 0, "blobs left");
}

// 22
#[test]
fn truncated_legacy_archive_is_refused() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let l = rich_layers();
    let (id1, id2) = ("a".repeat(64), "b".repeat(64));
    let files = vec![
        ("repositories".to_string(), format!(r#"{{"example/old":{{"v0":"{id2}"}}}}"#).into_bytes()),
        (format!("{id1}/json"), format!(r#"{{"id":"{id1}"}}"#).into_bytes()),
        (format!("{id1}/layer.tar"), l[0].clone()),
        (format!("{id2}/json"), format!(r#"{{"id":"{id2}","parent":"{id1}"}}"#).into_bytes()),
        (format!("{id2}/layer.tar"), l[1].clone()),
    ];
    let full = tar_of(&files);
    // Where the last layer's data starts.
    let mut ar = tar::Archive::new(&full[..]);
    let start = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_string_lossy() == format!("{id2}/layer.tar"))
        .unwrap()
        .raw_file_position() as usize;
    // Cut inside the last layer, at a block boundary after its complete members.
    let cut = start + l[1].len() - 1024;
    fs::write(t.path().join("legacy.tar"), &full[..cut]).unwrap();
    ctl.ok(&["image", "ls"]);
    ctl.must_fail(&t.path().join("legacy.tar"), "truncated");
}

// 23
#[test]
fn deep_layer_tree_under_a_small_fd_limit() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let mut b = tar::Builder::new(Vec::new());
    let mut p = String::new();
    for i in 0..3000 {
        if i > 0 {
            p.push('/');
        }
        p.push('d');
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(if i % 500 == 7 { 0o555 } else { 0o755 });
        h.set_size(0);
        b.append_data(&mut h, &p, &[][..]).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(5);
    b.append_data(&mut h, format!("{p}/deep"), &b"deep\n"[..]).unwrap();
    let built = docker_archive(&t.path().join("deep.tar"), &[b.into_inner().unwrap()], &["example/deep:1"], false);
    let limited = |args: &[&str]| {
        let o = Command::new("prlimit")
            .args(["--nofile=256:256", env!("CARGO_BIN_EXE_unionctl"), "--root"])
            .arg(&ctl.root)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    limited(&["image", "load", "-i", &t.path().join("deep.tar").display().to_string()]);
    let ls = limited(&["image", "ls"]);
    assert!(ls.contains("example/deep") && ls.contains("5B"), "{ls}");
    assert_eq!(ctl.layers(), built.diff_ids);
    limited(&["image", "rm", "example/deep:1"]);
    limited(&["image", "prune", "-a"]);
    assert!(ctl.layers().is_empty(), "deep layer left");
}

// 24
#[test]
fn rm_by_id_with_several_names_needs_force() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let (built, _) = oci_layout(&t.path().join("oci"), &rich_layers()[..1], Comp::Gzip, "example/two:1");
    ctl_load(&ctl, &t.path().join("oci"));
    ctl.ok(&["image", "tag", "example/two:1", "example/two:2"]);
    let before = ctl.snapshot();
    let o = ctl.run(&["image", "rm", &built.id[..12]]);
    assert!(!o.ok, "rm by ID of an image with two names went through");
    assert!(o.stderr.contains("must be forced") && o.stderr.contains("multiple repositories"), "{}", o.stderr);
    assert_eq!(o.code, Some(2), "podman's status for a refused rmi");
    assert_eq!(ctl.snapshot(), before);
    let out = ctl.ok(&["image", "rm", "-f", &built.id[..12]]);
    assert!(out.contains("Untagged: example/two:1") && out.contains("Untagged: example/two:2"), "{out}");
    assert!(out.contains(&format!("Deleted: sha256:{}", built.id)), "{out}");
    assert!(ctl.layers().is_empty());
}

// 24
#[test]
fn images_used_by_containers_are_kept() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let (built, _) = oci_layout(&t.path().join("oci"), &rich_layers(), Comp::Gzip, "example/used:1");
    ctl_load(&ctl, &t.path().join("oci"));
    fs::create_dir_all(ctl.root.join("containers")).unwrap();
    let rec = serde_json::json!({"Id": "c0ffee", "ImageID": format!("sha256:{}", built.id)});
    fs::write(ctl.root.join("containers/c0ffee.json"), serde_json::to_vec(&rec).unwrap()).unwrap();
    let o = ctl.run(&["image", "rm", "example/used:1"]);
    assert!(!o.ok && o.stderr.contains("c0ffee"), "{}", o.stderr);
    assert_eq!(o.code, Some(2));
    let v: serde_json::Value = serde_json::from_str(&ctl.ok(&["image", "inspect", "example/used:1"])).unwrap();
    assert_eq!(v[0]["Containers"], serde_json::json!(["c0ffee"]));
    ctl.ok(&["image", "prune", "-a"]);
    assert!(ctl.ok(&["image", "ls", "-q"]).contains(&built.id[..12]), "prune -a removed an image in use");
    assert_eq!(ctl.layers().len(), 3);
    // -f removes the containers that use it first (as podman), then the image.
    let out = ctl.ok(&["image", "rm", "-f", "example/used:1"]);
    assert!(out.contains("Removed container: c0ffee") && out.contains("Untagged: example/used:1"), "{out}");
    assert!(!ctl.root.join("containers/c0ffee.json").exists());
    assert!(ctl.layers().is_empty());
    assert!(ctl.ok(&["image", "ls", "-q"]).trim().is_empty());
}
