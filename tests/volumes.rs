//! Volumes end to end: named volumes filled from the image exactly once
//! (owners, modes, xattrs, hard links kept), nocopy, anonymous volumes,
//! binds (read-only too), tmpfs, one volume in two containers at once, the
//! local driver's options, export/import byte for byte, rm/prune rules.

mod ctrsupport;
mod fixtures;

use ctrsupport::*;
use fixtures::*;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An image with content at /srv (every kind the fill must keep).
fn srv_image(e: &Env) {
    let layers = vec![layer(&[
        M::Dir("srv", 0o750),
        M::File("srv/app", b"#!app\n", 0o4755),
        M::Hard("srv/app-link", "srv/app"),
        M::Owned("srv/owned", b"by 1000\n", 0o640, 1000, 1000),
        M::Xattr("srv/tagged", b"x", "user.note", b"hello"),
        M::Sym("srv/link", "app"),
        M::Dir("srv/sub", 0o700),
        M::File("srv/sub/deep", b"deep\n", 0o644),
        M::Dir("etc", 0o755),
        M::File("etc/hostname", b"img\n", 0o644),
    ])];
    e.image("srv", &layers, "example/srv:1");
}

fn getxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let o = Command::new("getfattr").args(["--only-values", "-h", "-n", name]).arg(p).output().ok()?;
    o.status.success().then_some(o.stdout)
}

fn mountpoint_of(e: &Env, vol: &str) -> PathBuf {
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["volume", "inspect", vol])).unwrap();
    PathBuf::from(v[0]["Mountpoint"].as_str().unwrap())
}

#[test]
fn named_volume_is_filled_from_the_image_exactly_once() {
    let e = Env::new();
    srv_image(&e);
    e.create(&["--name", "a", "-v", "data:/srv", "example/srv:1"]);
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["volume", "inspect", "data"])).unwrap();
    assert_eq!(v[0]["Name"], "data");
    assert_eq!(v[0]["Driver"], "local");
    assert_eq!(v[0]["Scope"], "local");
    assert_eq!(v[0]["NeedsCopyUp"], true);
    let data = mountpoint_of(&e, "data");
    assert!(data.ends_with("volumes/data/_data"), "{}", data.display());
    assert_eq!(fs::read_dir(&data).unwrap().count(), 0, "filled before the first mount");
    let m = e.mount("a");
    assert!(fstype(&m.join("srv")).is_some(), "the volume is not mounted at /srv");
    // Filled: owners, modes (the directory's too), xattrs, hard links, symlinks.
    assert_eq!(fs::read_to_string(data.join("app")).unwrap(), "#!app\n");
    assert_eq!(fs::metadata(data.join("app")).unwrap().mode() & 0o7777, 0o4755);
    assert_eq!(
        fs::metadata(data.join("app")).unwrap().ino(),
        fs::metadata(data.join("app-link")).unwrap().ino(),
        "hard link lost"
    );
    let o = fs::metadata(data.join("owned")).unwrap();
    assert_eq!((o.uid(), o.gid(), o.mode() & 0o777), (1000, 1000, 0o640));
    assert_eq!(getxattr(&data.join("tagged"), "user.note").as_deref(), Some(&b"hello"[..]));
    assert_eq!(fs::read_link(data.join("link")).unwrap(), Path::new("app"));
    assert_eq!(fs::metadata(data.join("sub")).unwrap().mode() & 0o777, 0o700);
    assert_eq!(fs::metadata(&data).unwrap().mode() & 0o777, 0o750, "the volume root takes the destination's mode");
    // The container sees the volume.
    fs::write(m.join("srv/written"), "w").unwrap();
    assert_eq!(fs::read_to_string(data.join("written")).unwrap(), "w");
    assert!(!e.upper("a").join("srv/written").exists(), "a write to the volume landed in the upper");
    fs::remove_file(m.join("srv/owned")).unwrap();
    e.ok(&["unmount", "a"]);
    assert_eq!(e.ok(&["volume", "inspect", "--format", "{{.NeedsCopyUp}}", "data"]).trim(), "false");
    // Once: neither a remount nor another container fills it again.
    e.mount("a");
    assert!(!data.join("owned").exists(), "filled twice");
    e.ok(&["unmount", "a"]);
    e.create(&["--name", "b", "-v", "data:/srv", "example/srv:1"]);
    let mb = e.mount("b");
    assert!(!mb.join("srv/owned").exists() && mb.join("srv/written").exists());
    e.ok(&["unmount", "b"]);
    // Never into a volume with content, never with nocopy.
    e.ok(&["volume", "create", "full"]);
    fs::write(mountpoint_of(&e, "full").join("mine"), "m").unwrap();
    e.create(&["--name", "c", "-v", "full:/srv", "-v", "empty:/etc:nocopy", "example/srv:1"]);
    let mc = e.mount("c");
    let names: Vec<_> = fs::read_dir(mc.join("srv")).unwrap().flatten().map(|x| x.file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("mine")]);
    assert_eq!(fs::read_dir(mc.join("etc")).unwrap().count(), 0, "nocopy volume filled");
    e.ok(&["unmount", "c"]);
    // rm never removes named volumes, even with -v.
    e.ok(&["rm", "-v", "a", "b", "c"]);
    let ls = e.ok(&["volume", "ls", "-q"]);
    for n in ["data", "full", "empty"] {
        assert!(ls.lines().any(|l| l == n), "{n} removed: {ls}");
    }
}

#[test]
fn anonymous_bind_and_tmpfs_mounts() {
    let e = Env::new();
    srv_image(&e);
    let host = e.path("host");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("h"), "host").unwrap();
    let ro = e.path("ro");
    fs::create_dir(&ro).unwrap();
    fs::write(ro.join("r"), "read only").unwrap();
    let file = e.path("single-file");
    fs::write(&file, "one file").unwrap();
    e.create(&[
        "--name",
        "m",
        "-v",
        "/anon",
        "-v",
        &format!("{}:/host", host.display()),
        "-v",
        &format!("{}:/ro:ro", ro.display()),
        "--mount",
        &format!("type=bind,source={},target=/etc/one", file.display()),
        "--mount",
        "type=volume,source=viamount,target=/vm,readonly",
        "--tmpfs",
        "/scratch:size=2m,mode=1770",
        "--mount",
        "type=tmpfs,target=/t2,tmpfs-size=1m",
        "example/srv:1",
    ]);
    let v = e.inspect("m");
    let mounts = v["Mounts"].as_array().unwrap();
    let by_dst =
        |d: &str| mounts.iter().find(|x| x["Destination"] == d).unwrap_or_else(|| panic!("{d} missing")).clone();
    assert_eq!(by_dst("/anon")["Type"], "volume");
    let anon = by_dst("/anon")["Name"].as_str().unwrap().to_string();
    assert_eq!(anon.len(), 64);
    assert_eq!(by_dst("/host")["Type"], "bind");
    assert_eq!(by_dst("/host")["Source"], host.display().to_string());
    assert_eq!(by_dst("/ro")["RW"], false);
    assert_eq!(by_dst("/vm")["RW"], false);
    assert_eq!(by_dst("/scratch")["Type"], "tmpfs");
    let m = e.mount("m");
    assert_eq!(fs::read_to_string(m.join("host/h")).unwrap(), "host");
    fs::write(m.join("host/from-ctr"), "c").unwrap();
    assert_eq!(fs::read_to_string(host.join("from-ctr")).unwrap(), "c");
    assert_eq!(fs::read_to_string(m.join("ro/r")).unwrap(), "read only");
    let err = fs::write(m.join("ro/x"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    assert_eq!(fs::write(m.join("vm/x"), "x").unwrap_err().raw_os_error(), Some(libc::EROFS));
    assert_eq!(fs::read_to_string(m.join("etc/one")).unwrap(), "one file");
    assert_eq!(fstype(&m.join("scratch")).as_deref(), Some("tmpfs"));
    assert_eq!(fs::metadata(m.join("scratch")).unwrap().mode() & 0o7777, 0o1770);
    let st = nix_statvfs(&m.join("scratch"));
    assert_eq!(st, 2 << 20, "tmpfs size");
    assert_eq!(fstype(&m.join("t2")).as_deref(), Some("tmpfs"));
    fs::write(m.join("scratch/gone-later"), "t").unwrap();
    e.ok(&["unmount", "m"]);
    assert!(mounts_under(&m).is_empty());
    let m = e.mount("m");
    assert!(!m.join("scratch/gone-later").exists(), "tmpfs kept its content across mounts");
    e.ok(&["unmount", "m"]);
    // Anonymous volumes: kept by rm, dangling, pruned (named ones only with -a).
    e.ok(&["rm", "m"]);
    let dangling = e.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]);
    assert!(dangling.contains(&anon) && dangling.contains("viamount"), "{dangling}");
    let out = e.ok(&["volume", "prune", "-f"]);
    assert!(out.contains(&anon) && !out.contains("viamount"), "{out}");
    let out = e.ok(&["volume", "prune", "-af"]);
    assert!(out.contains("viamount"), "{out}");
    assert!(e.ok(&["volume", "ls", "-q"]).trim().is_empty());
}

fn nix_statvfs(p: &Path) -> u64 {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st.f_blocks * st.f_frsize
}

#[test]
fn one_volume_in_two_containers_at_once() {
    let e = Env::new();
    srv_image(&e);
    e.create(&["--name", "w", "-v", "shared:/srv", "example/srv:1"]);
    e.create(&["--name", "r", "-v", "shared:/data:ro", "example/srv:1"]);
    let mw = e.mount("w");
    let mr = e.mount("r");
    fs::write(mw.join("srv/note"), "from w").unwrap();
    assert_eq!(fs::read_to_string(mr.join("data/note")).unwrap(), "from w");
    assert_eq!(fs::read_to_string(mr.join("data/app")).unwrap(), "#!app\n", "filled once, seen by both");
    assert!(fs::write(mr.join("data/x"), "x").is_err(), "read-only in r");
    assert_eq!(e.ok(&["volume", "inspect", "--format", "{{.MountCount}}", "shared"]).trim(), "2");
    e.fails(&["volume", "rm", "shared"], "in use", 2);
    e.ok(&["unmount", "w"]);
    assert_eq!(fs::read_to_string(mr.join("data/note")).unwrap(), "from w");
    e.ok(&["unmount", "r"]);
    // rm -f removes the containers that use it (as podman).
    let out = e.ok(&["volume", "rm", "-f", "shared"]);
    assert_eq!(out.trim(), "shared");
    assert!(e.ok(&["ps", "-aq"]).trim().is_empty());
}

#[test]
fn local_driver_options() {
    let e = Env::new();
    srv_image(&e);
    e.ok(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=10m",
        "--label",
        "k=v",
        "tv",
    ]);
    let dir = e.path("bound");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("b"), "bound").unwrap();
    e.ok(&[
        "volume",
        "create",
        "--opt",
        "type=none",
        "--opt",
        "o=bind",
        "--opt",
        &format!("device={}", dir.display()),
        "bv",
    ]);
    e.fails(
        &["volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", "device=/no/such/dir", "bad"],
        "not an existing directory",
        1,
    );
    e.fails(&["volume", "create", "--opt", "color=red", "bad2"], "invalid option", 1);
    e.fails(&["volume", "create", "--driver", "nfs", "bad3"], "not supported", 1);
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["volume", "inspect", "tv"])).unwrap();
    assert_eq!(v[0]["Options"]["type"], "tmpfs");
    assert_eq!(v[0]["Labels"]["k"], "v");
    assert_eq!(e.ok(&["volume", "ls", "-q", "--filter", "label=k=v"]).trim(), "tv");
    e.create(&["--name", "t1", "-v", "tv:/srv", "-v", "bv:/b", "example/srv:1"]);
    e.create(&["--name", "t2", "-v", "tv:/srv", "example/srv:1"]);
    let data = mountpoint_of(&e, "tv");
    let m1 = e.mount("t1");
    assert_eq!(fstype(&data).as_deref(), Some("tmpfs"), "the driver's tmpfs is not mounted on _data");
    assert_eq!(nix_statvfs(&data), 10 << 20);
    assert_eq!(fs::read_to_string(m1.join("b/b")).unwrap(), "bound");
    fs::write(m1.join("srv/shared"), "s").unwrap();
    let m2 = e.mount("t2");
    assert_eq!(fs::read_to_string(m2.join("srv/shared")).unwrap(), "s");
    e.ok(&["unmount", "t1"]);
    assert_eq!(fstype(&data).as_deref(), Some("tmpfs"), "unmounted while t2 uses it");
    e.ok(&["unmount", "t2"]);
    assert_ne!(fstype(&data).as_deref(), Some("tmpfs"), "the last user leaves it mounted");
}

#[test]
fn export_import_round_trip_is_byte_identical() {
    let e = Env::new();
    e.ok(&["volume", "create", "src"]);
    let d = mountpoint_of(&e, "src");
    fs::write(d.join("plain"), "plain data\n").unwrap();
    fs::hard_link(d.join("plain"), d.join("hard")).unwrap();
    fs::create_dir(d.join("dir")).unwrap();
    fs::write(d.join("dir/owned"), "o").unwrap();
    std::os::unix::fs::chown(d.join("dir/owned"), Some(1234), Some(4321)).unwrap();
    fs::set_permissions(d.join("dir/owned"), fs::Permissions::from_mode(0o4750)).unwrap();
    std::os::unix::fs::symlink("../plain", d.join("dir/link")).unwrap();
    // A sparse file: 1 MiB hole, data, 1 MiB hole.
    let f = fs::File::create(d.join("sparse")).unwrap();
    f.set_len(3 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"in the middle", 1 << 20).unwrap();
    drop(f);
    assert!(Command::new("setfattr")
        .args(["-n", "user.k", "-v", "v"])
        .arg(d.join("plain"))
        .status()
        .unwrap()
        .success());
    assert!(Command::new("mkfifo").arg(d.join("fifo")).status().unwrap().success());
    assert!(Command::new("mknod").arg(d.join("null")).args(["c", "1", "3"]).status().unwrap().success());
    fs::create_dir(d.join("private")).unwrap();
    fs::set_permissions(d.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    let a = e.path("a.tar");
    let b = e.path("b.tar");
    e.ok(&["volume", "export", "-o", &a.display().to_string(), "src"]);
    e.ok(&["volume", "import", "dst", &a.display().to_string()]);
    e.ok(&["volume", "export", "-o", &b.display().to_string(), "dst"]);
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "export of the import differs");
    let d2 = mountpoint_of(&e, "dst");
    assert_eq!(tree(&d), tree(&d2));
    assert_eq!(fs::metadata(d2.join("plain")).unwrap().ino(), fs::metadata(d2.join("hard")).unwrap().ino());
    let o = fs::metadata(d2.join("dir/owned")).unwrap();
    assert_eq!((o.uid(), o.gid(), o.mode() & 0o7777), (1234, 4321, 0o4750));
    let s = fs::metadata(d2.join("sparse")).unwrap();
    assert_eq!(s.len(), 3 << 20);
    assert!(s.blocks() * 512 < 1 << 20, "holes filled: {} blocks", s.blocks());
    assert_eq!(&fs::read(d2.join("sparse")).unwrap()[1 << 20..(1 << 20) + 13], b"in the middle");
    assert_eq!(getxattr(&d2.join("plain"), "user.k").as_deref(), Some(&b"v"[..]));
    assert!(fs::symlink_metadata(d2.join("fifo")).unwrap().file_type().is_fifo());
    assert_eq!(fs::symlink_metadata(d2.join("null")).unwrap().rdev(), libc::makedev(1, 3));
    assert_eq!(fs::metadata(d2.join("private")).unwrap().mode() & 0o777, 0o700);
    // Standard input and output work too; importing into a volume with content does not.
    let o = Command::new(env!("CARGO_BIN_EXE_unionctl"))
        .arg("--root")
        .arg(&e.ctl.root)
        .args(["volume", "export", "src"])
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(o.stdout, fs::read(&a).unwrap());
    let o = Command::new(env!("CARGO_BIN_EXE_unionctl"))
        .arg("--root")
        .arg(&e.ctl.root)
        .args(["volume", "import", "viastdin", "-"])
        .stdin(fs::File::open(&a).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    e.fails(&["volume", "import", "dst", &a.display().to_string()], "not empty", 1);
    // A volume of the import goes into a container with its content (no fill from the image).
    srv_image(&e);
    e.create(&["--name", "c", "-v", "dst:/srv", "example/srv:1"]);
    let m = e.mount("c");
    assert!(m.join("srv/sparse").exists() && !m.join("srv/app").exists());
    e.ok(&["unmount", "c"]);
}
