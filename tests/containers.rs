//! `unionctl` containers end to end, against the real binaries: create,
//! mount (one unionfs daemon, counted references, state kept across
//! unionctl runs and dead daemons), content with whiteouts and opaque dirs,
//! the upper kept across unmount/mount until rm, ps/inspect, diff (exact
//! lines, and the same as podman's where podman runs), commit round trip,
//! export/cp, every bad input (one line, exit status), concurrency.

mod ctrsupport;
mod fixtures;

use ctrsupport::*;
use fixtures::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

#[test]
fn create_mount_content_unmount_remount_rm() {
    let e = Env::new();
    let built = e.rich();
    let id = e.create(&["--name", "web", "--label", "tier=front", "example/rich:1"]);
    assert_eq!(id.len(), 64, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    // Nothing copied: the upper is empty until something is written.
    let upper = e.upper("web");
    assert_eq!(fs::read_dir(&upper).unwrap().count(), 0);
    let m = e.mount("web");
    assert_eq!(fstype(&m).as_deref(), Some("fuse.unionfs"));
    assert_eq!(daemons_of(&m).len(), 1);
    // The image's content: whiteout and opaque dir applied, hard links, setuid, xattr.
    assert!(!m.join("etc/gone").exists(), "whiteout not applied");
    assert_eq!(fs::read_to_string(m.join("etc/added")).unwrap(), "added\n");
    assert_eq!(fs::read_to_string(m.join("opt/data/new")).unwrap(), "new\n");
    assert!(!m.join("opt/data/old").exists(), "opaque dir not applied");
    assert!(!m.join("etc/.wh.gone").exists() && !m.join("opt/.wh..wh..opq").exists(), "markers show");
    // (unionfs gives each name of a lower hard link its own st_ino: see fs/ino.rs.)
    assert_eq!(fs::metadata(m.join("bin/sh")).unwrap().nlink(), 3);
    assert_eq!(fs::metadata(m.join("bin/su")).unwrap().mode() & 0o7777, 0o4755);
    let owned = fs::metadata(m.join("etc/owned")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (1000, 1000));
    // A second mount: same path, one daemon, two references.
    assert_eq!(e.mount(&id[..10]), m);
    assert_eq!(daemons_of(&m).len(), 1);
    let v = e.inspect("web");
    assert_eq!(v["State"]["Mounted"], true);
    assert_eq!(v["State"]["MountCount"], 2);
    assert_eq!(v["Id"], id);
    assert_eq!(v["Name"], "web");
    assert_eq!(v["Image"], format!("sha256:{}", built.id));
    assert_eq!(v["ImageName"], "example/rich:1");
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(v["Config"]["Labels"]["tier"], "front");
    assert_eq!(v["GraphDriver"]["Name"], "unionfs");
    assert_eq!(v["GraphDriver"]["Data"]["MergedDir"], m.display().to_string());
    let lower = v["GraphDriver"]["Data"]["LowerDir"].as_str().unwrap();
    assert_eq!(lower.split(':').count(), 3);
    assert!(lower.split(':').next().unwrap().contains(&built.diff_ids[2]), "top layer first: {lower}");
    // The image's Volumes: an anonymous volume at /data.
    let mounts = v["Mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0]["Type"], "volume");
    assert_eq!(mounts[0]["Destination"], "/data");
    assert_eq!(mounts[0]["Name"].as_str().unwrap().len(), 64);
    // Writes land in the upper.
    fs::write(m.join("etc/passwd"), "changed\n").unwrap();
    fs::write(m.join("newfile"), "new").unwrap();
    fs::remove_file(m.join("bin/ls")).unwrap();
    assert!(upper.join("newfile").exists());
    // ps
    let ps = e.ok(&["ps", "-a"]);
    assert!(ps.contains("web") && ps.contains(&id[..12]) && ps.contains("example/rich:1"), "{ps}");
    assert!(ps.lines().next().unwrap().starts_with("CONTAINER ID"), "{ps}");
    let q = e.ok(&["ps", "-aq", "--no-trunc"]);
    assert_eq!(q.trim(), id);
    let j: serde_json::Value = serde_json::from_str(&e.ok(&["ps", "-a", "--format", "json", "-s"])).unwrap();
    assert_eq!(j[0]["Id"], id);
    assert_eq!(j[0]["Names"][0], "web");
    assert_eq!(j[0]["Mounted"], true);
    assert!(j[0]["Size"]["rw"].as_u64().unwrap() >= 11);
    assert!(j[0]["Size"]["rootFsSize"].as_u64().unwrap() > j[0]["Size"]["rw"].as_u64().unwrap());
    assert_eq!(e.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]).trim(), "web created");
    let s = e.ok(&["ps", "-a", "-s"]);
    assert!(s.contains("(virtual "), "{s}");
    assert_eq!(e.ok(&["mount"]).trim(), format!("{}  {}", &id[..12], m.display()));
    // Two references: one unmount keeps it, the second undoes everything.
    assert_eq!(e.ok(&["unmount", "web"]).trim(), "web");
    assert_eq!(fstype(&m).as_deref(), Some("fuse.unionfs"));
    e.ok(&["unmount", "web"]);
    assert!(mounts_under(&m).is_empty(), "still mounted");
    eventually("daemon gone", || daemons_of(&m).is_empty());
    assert!(e.ok(&["mount"]).trim().is_empty());
    assert_eq!(e.inspect("web")["State"]["Mounted"], false);
    // Unmounting what is not mounted is no error (podman prints the name).
    assert_eq!(e.ok(&["unmount", "web"]).trim(), "web");
    // The upper persists across unmount/mount.
    let m = e.mount("web");
    assert_eq!(fs::read_to_string(m.join("etc/passwd")).unwrap(), "changed\n");
    assert_eq!(fs::read_to_string(m.join("newfile")).unwrap(), "new");
    assert!(!m.join("bin/ls").exists());
    // rm refuses a mounted container; -f unmounts first.
    e.fails(&["rm", "web"], "is mounted", 2);
    let anon = mounts[0]["Name"].as_str().unwrap().to_string();
    assert!(e.ok(&["volume", "ls", "-q"]).contains(&anon));
    assert_eq!(e.ok(&["rm", "-f", "-v", "web"]).trim(), id);
    assert!(mounts_under(&m).is_empty());
    eventually("daemon gone", || daemons_of(&m).is_empty());
    assert!(!upper.exists(), "upper left behind");
    assert!(!e.ok(&["volume", "ls", "-q"]).contains(&anon), "rm -v kept the anonymous volume");
    assert!(e.ok(&["ps", "-aq"]).trim().is_empty());
    // The image is free again.
    e.ok(&["image", "rm", "example/rich:1"]);
}

#[test]
fn names_prefixes_filters_and_guards() {
    let e = Env::new();
    let built = e.rich();
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(e.create(&["--name", &format!("c{i}"), "--label", &format!("n={i}"), "example/rich:1", "echo", "hi"]));
    }
    // A generated name.
    let anon = e.create(&["example/rich:1"]);
    let name = e.inspect(&anon)["Name"].as_str().unwrap().to_string();
    assert!(name.contains('_'), "{name}");
    // Some one-hex-digit prefix is shared by two of 13 containers.
    let all: Vec<String> = ids.iter().chain([&anon]).cloned().collect();
    let shared = "0123456789abcdef"
        .chars()
        .map(|c| c.to_string())
        .find(|p| all.iter().filter(|i| i.starts_with(p.as_str())).count() > 1)
        .unwrap();
    let err = e.fails(&["inspect", &shared], "ambiguous", 1);
    for i in all.iter().filter(|i| i.starts_with(&shared)) {
        assert!(err.contains(&i[..12]), "candidates not listed: {err}");
    }
    // Full ID, unique prefix, name.
    assert_eq!(e.inspect(&ids[3])["Name"], "c3");
    assert_eq!(e.inspect("c3")["Id"], ids[3]);
    assert_eq!(e.inspect("c3")["Config"]["Cmd"], serde_json::json!(["echo", "hi"]));
    // Filters.
    assert_eq!(e.ok(&["ps", "-aq", "--no-trunc", "--filter", "name=c11"]).trim(), ids[11]);
    assert_eq!(e.ok(&["ps", "-aq", "--no-trunc", "--filter", "label=n=4"]).trim(), ids[4]);
    assert_eq!(e.ok(&["ps", "-aq", "--filter", "ancestor=example/rich:1"]).lines().count(), 13);
    assert_eq!(e.ok(&["ps", "-aq", "--filter", &format!("ancestor={}", &built.id[..12])]).lines().count(), 13);
    assert_eq!(e.ok(&["ps", "-aq", "--no-trunc", "--filter", &format!("id={}", &ids[5][..20])]).trim(), ids[5]);
    assert_eq!(e.ok(&["container", "ls", "-aq", "--filter", "name=^c1$"]).lines().count(), 1);
    // Images and containers together.
    e.fails(&["image", "rm", "example/rich:1"], "in use by container", 2);
    e.ok(&["image", "prune", "-a"]);
    assert!(e.ok(&["image", "ls", "-q"]).contains(&built.id[..12]), "prune -a removed an image in use");
    let out = e.ok(&["image", "rm", "-f", "example/rich:1"]);
    assert!(out.contains(&format!("Deleted: sha256:{}", built.id)), "{out}");
    assert!(e.ok(&["ps", "-aq"]).trim().is_empty(), "image rm -f left its containers");
    assert!(e.ctl.layers().is_empty());
}

#[test]
fn diff_gives_exact_lines() {
    let e = Env::new();
    e.rich();
    e.create(&["--name", "d", "example/rich:1"]);
    let m = e.mount("d");
    change_tree(&m);
    let want = "C /bin\nD /bin/su\nA /data\nC /etc/passwd\nA /new\nA /new/f\nC /opt\nD /opt/data\nA /opt/data/x\n";
    assert_eq!(e.ok(&["diff", "d"]), want);
    let j: serde_json::Value = serde_json::from_str(&e.ok(&["diff", "--format", "json", "d"])).unwrap();
    assert_eq!(j["added"], serde_json::json!(["/data", "/new", "/new/f", "/opt/data/x"]));
    assert_eq!(j["deleted"], serde_json::json!(["/bin/su", "/opt/data"]));
    assert_eq!(j["changed"], serde_json::json!(["/bin", "/etc/passwd", "/opt"]));
    // Unmounted: the same.
    e.ok(&["unmount", "d"]);
    assert_eq!(e.ok(&["diff", "d"]), want);
}

/// The changes diff_gives_exact_lines and the podman comparison make.
fn change_tree(m: &Path) {
    let mut f = fs::OpenOptions::new().append(true).open(m.join("etc/passwd")).unwrap();
    std::io::Write::write_all(&mut f, b"more\n").unwrap();
    drop(f);
    fs::remove_file(m.join("bin/su")).unwrap();
    fs::create_dir(m.join("new")).unwrap();
    fs::write(m.join("new/f"), "f").unwrap();
    fs::remove_dir_all(m.join("opt/data")).unwrap();
    fs::create_dir(m.join("opt/data")).unwrap();
    fs::write(m.join("opt/data/x"), "x").unwrap();
}

/// A podman with its own store under `dir`.
fn podman(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args(["--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "none"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn diff_matches_podman() {
    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("podman not installed: skipped");
        return;
    }
    let e = Env::new();
    e.rich();
    let archive = e.path("rich.tar");
    e.ok(&["image", "save", "-o", &archive.display().to_string(), "example/rich:1"]);
    let pd = e.path("podman");
    let o = podman(&pd, &["load", "-i", &archive.display().to_string()]);
    assert!(o.status.success(), "podman load: {}", String::from_utf8_lossy(&o.stderr));
    let o = podman(&pd, &["create", "--name", "p", "example/rich:1"]);
    assert!(o.status.success(), "podman create: {}", String::from_utf8_lossy(&o.stderr));
    struct Cleanup<'a>(&'a Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = podman(self.0, &["umount", "-a"]);
            let _ = podman(self.0, &["rm", "-af"]);
            let _ = podman(self.0, &["rmi", "-af"]);
            for m in mounts_under(self.0).iter().rev() {
                let _ = Command::new("umount").arg("-l").arg(m).status();
            }
        }
    }
    let _c = Cleanup(&pd);
    let o = podman(&pd, &["mount", "p"]);
    assert!(o.status.success(), "podman mount: {}", String::from_utf8_lossy(&o.stderr));
    let pm = std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    e.create(&["--name", "u", "example/rich:1"]);
    let um = e.mount("u");
    for m in [&pm, &um] {
        change_tree(m);
        // More: a file deleted by the image made again, names sorting around '/',
        // a changed directory mode, a copied-up file deep down, a hard link.
        fs::write(m.join("etc/gone"), "back").unwrap();
        fs::create_dir_all(m.join("etc/a.d/z")).unwrap();
        fs::write(m.join("etc/a.d/z/f"), "").unwrap();
        fs::create_dir(m.join("etc/a")).unwrap();
        fs::set_permissions(m.join("etc/owned"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::hard_link(m.join("etc/added"), m.join("etc/added2")).unwrap();
        fs::remove_file(m.join("etc/link")).unwrap();
        std::os::unix::fs::symlink("added", m.join("etc/link")).unwrap();
    }
    let o = podman(&pd, &["diff", "p"]);
    assert!(o.status.success(), "podman diff: {}", String::from_utf8_lossy(&o.stderr));
    // podman mount does not make the image's volume mount point; ours does.
    let theirs: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect();
    let ours: Vec<String> = e.ok(&["diff", "u"]).lines().filter(|l| *l != "A /data").map(str::to_string).collect();
    assert_eq!(ours, theirs, "ours:\n{}\npodman:\n{}", ours.join("\n"), theirs.join("\n"));
}

#[test]
fn commit_round_trip() {
    let e = Env::new();
    let built = e.rich();
    e.create(&["--name", "src", "--env", "MODE=prod", "example/rich:1"]);
    let m = e.mount("src");
    change_tree(&m);
    fs::hard_link(m.join("new/f"), m.join("new/f2")).unwrap();
    let id = e
        .ok(&[
            "commit",
            "-m",
            "my change",
            "--author",
            "me",
            "-c",
            "CMD [\"/bin/true\"]",
            "-c",
            "LABEL stage=2",
            "src",
            "example/committed:2",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["image", "inspect", "example/committed:2"])).unwrap();
    let v = &v[0];
    assert_eq!(v["Id"], id);
    assert_eq!(v["RepoTags"], serde_json::json!(["localhost/example/committed:2"]));
    assert_eq!(v["RootFS"]["Layers"].as_array().unwrap().len(), 4);
    assert_eq!(v["RootFS"]["Layers"][0], format!("sha256:{}", built.diff_ids[0]));
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["/bin/true"]));
    assert_eq!(v["Config"]["Labels"]["stage"], "2");
    assert!(v["Config"]["Env"].as_array().unwrap().contains(&serde_json::json!("MODE=prod")));
    let hist = v["History"].as_array().unwrap();
    assert_eq!(hist.last().unwrap()["comment"], "my change");
    // The new layer: OCI markers, no private xattrs, hard links kept.
    let top = std::path::PathBuf::from(v["LayerDirs"][0].as_str().unwrap());
    assert!(top.join("bin/.wh.su").exists());
    assert!(top.join("opt/data/.wh..wh..opq").exists());
    assert_eq!(fs::metadata(top.join("new/f")).unwrap().ino(), fs::metadata(top.join("new/f2")).unwrap().ino());
    let xattrs = Command::new("getfattr").args(["-R", "-d", "-m", "-", "--absolute-names"]).arg(&top).output().unwrap();
    let x = String::from_utf8_lossy(&xattrs.stdout);
    assert!(!x.contains("overlay") && !x.contains("containers."), "private xattrs in the layer: {x}");
    // A container of the committed image shows exactly the committed tree.
    e.create(&["--name", "dst", "example/committed:2"]);
    let m2 = e.mount("dst");
    assert_eq!(tree(&m2), tree(&m));
    assert_eq!(fs::read_to_string(m2.join("etc/passwd")).unwrap(), fs::read_to_string(m.join("etc/passwd")).unwrap());
    assert!(!m2.join("bin/su").exists() && !m2.join("opt/data/new").exists());
    assert_eq!(e.ok(&["diff", "dst"]), "", "a fresh container of the committed image has changes");
    // Committing again without changes: same layers, a new config (new history entry).
    // Saved, the image is accepted by skopeo and podman.
    let out = e.path("committed.tar");
    e.ok(&["image", "save", "-o", &out.display().to_string(), "example/committed:2"]);
    if Command::new("skopeo").arg("--version").output().is_ok() {
        let o =
            Command::new("skopeo").arg("inspect").arg(format!("docker-archive:{}", out.display())).output().unwrap();
        assert!(o.status.success(), "skopeo: {}", String::from_utf8_lossy(&o.stderr));
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(s["Layers"].as_array().unwrap().len(), 4);
    }
    if Command::new("podman").arg("--version").output().is_ok() {
        let pd = e.path("podman");
        let o = podman(&pd, &["load", "-i", &out.display().to_string()]);
        assert!(o.status.success(), "podman load: {}", String::from_utf8_lossy(&o.stderr));
        let _ = podman(&pd, &["rmi", "-af"]);
    }
    // And it loads back into a fresh store with the same ID.
    let other = Ctl::new(&e.path("other"));
    let o = other.ok(&["image", "load", "-i", &out.display().to_string()]);
    assert!(o.contains(&id), "{o}");
}

#[test]
fn export_and_cp() {
    let e = Env::new();
    e.rich();
    e.create(&["--name", "x", "-v", "vol:/data", "example/rich:1"]);
    let m = e.mount("x");
    fs::write(m.join("etc/new.conf"), "conf").unwrap();
    fs::write(m.join("data/in-volume"), "v").unwrap();
    e.ok(&["unmount", "x"]);
    // export works unmounted, has the merged tree, not the volume.
    let tarp = e.path("x.tar");
    e.ok(&["export", "-o", &tarp.display().to_string(), "x"]);
    let list = Command::new("tar").arg("tf").arg(&tarp).output().unwrap();
    let names = String::from_utf8_lossy(&list.stdout).to_string();
    for want in ["etc/new.conf", "etc/added", "bin/busybox", "opt/data/new"] {
        assert!(names.lines().any(|l| l == want), "{want} missing from export:\n{names}");
    }
    for absent in ["etc/gone", "opt/data/old", "etc/.wh.gone", "data/in-volume"] {
        assert!(!names.lines().any(|l| l == absent), "{absent} in export:\n{names}");
    }
    // cp out (unmounted), a file and a directory.
    let out = e.path("out");
    fs::create_dir(&out).unwrap();
    e.ok(&["cp", "x:/etc/new.conf", &out.display().to_string()]);
    assert_eq!(fs::read_to_string(out.join("new.conf")).unwrap(), "conf");
    e.ok(&["cp", "x:/etc", &out.join("etc-copy").display().to_string()]);
    assert_eq!(fs::read_to_string(out.join("etc-copy/added")).unwrap(), "added\n");
    assert!(!out.join("etc-copy/gone").exists());
    // cp in, then the file is in the upper.
    let src = e.path("host.txt");
    fs::write(&src, "from host").unwrap();
    e.ok(&["cp", &src.display().to_string(), "x:/etc/"]);
    e.ok(&["cp", &src.display().to_string(), "x:/etc/renamed.txt"]);
    assert_eq!(fs::read_to_string(e.upper("x").join("etc/host.txt")).unwrap(), "from host");
    assert_eq!(fs::read_to_string(e.upper("x").join("etc/renamed.txt")).unwrap(), "from host");
    assert!(e.ok(&["mount"]).trim().is_empty(), "cp left the container mounted");
    // A symlink of the container never leads cp out of its root.
    let m = e.mount("x");
    std::os::unix::fs::symlink("/", m.join("toroot")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../tmp", m.join("up")).unwrap();
    fs::create_dir(m.join("tmp")).unwrap();
    e.ok(&["unmount", "x"]);
    e.ok(&["cp", &src.display().to_string(), "x:/toroot/escaped.txt"]);
    assert!(!Path::new("/escaped.txt").exists());
    assert!(e.upper("x").join("escaped.txt").exists());
    e.ok(&["cp", &src.display().to_string(), "x:/up/"]);
    assert!(!Path::new("/tmp/host.txt").exists());
    // ... it went to the container's /tmp, and comes back from there.
    e.ok(&["cp", "x:/up/host.txt", &out.join("h").display().to_string()]);
    assert_eq!(fs::read_to_string(out.join("h")).unwrap(), "from host");
    assert!(e.upper("x").join("tmp/host.txt").exists());
}

#[test]
fn bad_inputs_one_line_each() {
    let e = Env::new();
    e.rich();
    let id = e.create(&["--name", "one", "example/rich:1"]);
    e.fails(&["create", "no/such:image"], "image not known", 1);
    e.fails(&["inspect", "nosuch"], "no such container", 1);
    e.fails(&["mount", "nosuch"], "no such container", 1);
    e.fails(&["rm", "nosuch"], "no such container", 1);
    e.fails(&["diff", "nosuch"], "no such container", 1);
    e.fails(&["create", "--name", "one", "example/rich:1"], "already in use", 2);
    e.fails(&["create", "--name", "bad name", "example/rich:1"], "invalid container name", 1);
    e.fails(&["create", "-v", "/nonexistent/host/dir:/x", "example/rich:1"], "bind source path does not exist", 1);
    e.fails(&["create", "-v", "vol:../../etc", "example/rich:1"], "absolute", 1);
    e.fails(&["create", "-v", "vol:/x/../../etc", "example/rich:1"], "..", 1);
    e.fails(&["create", "--tmpfs", "/t:size=lots", "example/rich:1"], "invalid tmpfs size", 1);
    e.fails(&["create", "--mount", "type=nfs,target=/x", "example/rich:1"], "unsupported mount type", 1);
    e.fails(&["create", "--mount", "type=bind,target=/x", "example/rich:1"], "source", 1);
    e.fails(&["create", "-v", "a:/x", "-v", "b:/x", "example/rich:1"], "duplicate mount destination", 1);
    e.fails(&["create", "-v", "bad$name:/x", "example/rich:1"], "invalid volume name", 1);
    e.fails(&["volume", "inspect", "nosuch"], "no such volume", 1);
    e.fails(&["volume", "rm", "nosuch"], "no such volume", 1);
    e.fails(&["commit", "-c", "FROB x", "one"], "invalid change", 1);
    e.fails(&["cp", "/etc/hostname", "/tmp/x"], "CONTAINER:PATH", 1);
    // Nothing of the failed creates stayed.
    assert_eq!(e.ok(&["ps", "-aq", "--no-trunc"]).trim(), id);
    assert!(e.ok(&["volume", "ls", "-q"]).lines().count() == 1, "{}", e.ok(&["volume", "ls"]));
    assert_eq!(fs::read_dir(e.ctl.root.join("tmp")).unwrap().flatten().filter(|x| x.file_name() != "locks").count(), 0);
    // A busy mount: EBUSY reported (exit status 2), the state kept.
    let m = e.mount("one");
    let mut child = Command::new("sleep").arg("30").current_dir(m.join("etc")).spawn().unwrap();
    e.fails(&["unmount", "one"], "busy", 2);
    assert_eq!(fstype(&m).as_deref(), Some("fuse.unionfs"));
    assert_eq!(e.inspect("one")["State"]["MountCount"], 1);
    let _ = child.kill();
    let _ = child.wait();
    e.ok(&["unmount", "one"]);
    assert!(mounts_under(&m).is_empty());
}

#[test]
fn a_dead_daemon_is_cleaned_up() {
    let e = Env::new();
    e.rich();
    e.create(&["--name", "d", "--tmpfs", "/scratch", "example/rich:1"]);
    let m = e.mount("d");
    fs::write(m.join("kept"), "k").unwrap();
    let pids = daemons_of(&m);
    assert_eq!(pids.len(), 1);
    // SAFETY: the daemon this test started.
    unsafe {
        libc::kill(pids[0], libc::SIGKILL);
    }
    eventually("daemon dead", || daemons_of(&m).is_empty());
    // Not mounted any more as far as unionctl can tell; the next mount cleans and carries on.
    assert_eq!(e.inspect("d")["State"]["Mounted"], false);
    let m2 = e.mount("d");
    assert_eq!(m2, m);
    assert_eq!(fs::read_to_string(m.join("kept")).unwrap(), "k");
    assert_eq!(fstype(&m.join("scratch")).as_deref(), Some("tmpfs"));
    assert_eq!(e.inspect("d")["State"]["MountCount"], 1);
    // Killed again: unmount still cleans up.
    let pids = daemons_of(&m);
    // SAFETY: as above.
    unsafe {
        libc::kill(pids[0], libc::SIGKILL);
    }
    eventually("daemon dead", || daemons_of(&m).is_empty());
    e.ok(&["unmount", "d"]);
    assert!(mounts_under(&m).is_empty(), "{:?}", mounts_under(&m));
    // A state from another boot names no live process: cleaned, then mounted anew.
    let m = e.mount("d");
    let id = e.inspect("d")["Id"].as_str().unwrap().to_string();
    let state = e.ctl.root.join("containers").join(&id).join("mount.json");
    let mut s: serde_json::Value = serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
    s["BootId"] = serde_json::json!("00000000-0000-0000-0000-000000000000");
    fs::write(&state, serde_json::to_vec(&s).unwrap()).unwrap();
    assert_eq!(e.inspect("d")["State"]["Mounted"], false);
    assert_eq!(e.mount("d"), m);
    assert_eq!(daemons_of(&m).len(), 1, "the old daemon was not stopped");
    assert_eq!(e.inspect("d")["State"]["MountCount"], 1);
    // A mount without any state (a unionctl killed before it wrote one): cleaned too.
    fs::remove_file(&state).unwrap();
    assert_eq!(e.ok(&["mount"]).trim(), "");
    assert_eq!(e.mount("d"), m);
    assert_eq!(daemons_of(&m).len(), 1);
    fs::remove_file(&state).unwrap();
    e.ok(&["unmount", "d"]);
    assert!(mounts_under(&m).is_empty());
    eventually("daemon gone", || daemons_of(&m).is_empty());
    e.ok(&["rm", "d"]);
}

#[test]
fn read_only_root_size_and_status() {
    let e = Env::new();
    e.rich();
    e.create(&["--name", "ro", "--read-only", "--tmpfs", "/run", "example/rich:1"]);
    e.create(&["--name", "rw", "example/rich:1"]);
    let m = e.mount("ro");
    assert_eq!(fs::write(m.join("etc/x"), "x").unwrap_err().raw_os_error(), Some(libc::EROFS));
    fs::write(m.join("run/ok"), "tmpfs stays writable").unwrap();
    fs::write(m.join("data/ok"), "volumes stay writable").unwrap();
    assert_eq!(e.inspect("ro")["HostConfig"]["ReadonlyRootfs"], true);
    assert_eq!(e.ok(&["ps", "--format", "{{.Names}}", "--filter", "status=mounted"]).trim(), "ro");
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "-s", "rw"])).unwrap();
    assert_eq!(v[0]["SizeRw"], 0);
    assert!(v[0]["SizeRootFs"].as_u64().unwrap() > 0);
    e.ok(&["unmount", "ro"]);
}

#[test]
fn a_symlink_at_a_destination_stays_inside_the_root() {
    let e = Env::new();
    let layers = vec![layer(&[
        M::Dir("etc", 0o755),
        M::File("etc/hostname", b"image\n", 0o644),
        M::Sym("escape", "/etc"),
        M::Sym("up", "../../../../../../../../tmp"),
    ])];
    e.image("sym", &layers, "example/sym:1");
    let host = e.path("hostdir");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("marker"), "m").unwrap();
    let before_tmp: Vec<_> = fs::read_dir("/tmp").unwrap().flatten().map(|x| x.file_name()).collect();
    e.create(&["--name", "s", "-v", &format!("{}:/escape/sub", host.display()), "--tmpfs", "/up/t", "example/sym:1"]);
    let m = e.mount("s");
    // /escape -> /etc resolves to the container's /etc; /up climbs no higher than its root.
    assert_eq!(fs::read_to_string(m.join("etc/sub/marker")).unwrap(), "m");
    assert!(!Path::new("/etc/sub").exists(), "mounted on the host's /etc");
    assert_eq!(fstype(&m.join("tmp/t")).as_deref(), Some("tmpfs"));
    let after_tmp: Vec<_> = fs::read_dir("/tmp").unwrap().flatten().map(|x| x.file_name()).collect();
    assert!(!after_tmp.iter().any(|n| n == "t" && !before_tmp.contains(n)), "made /tmp/t on the host");
    for mi in mounts_under(Path::new("/")) {
        assert!(!mi.starts_with("/etc") && mi != Path::new("/tmp/t"), "host mount {}", mi.display());
    }
    e.ok(&["unmount", "s"]);
    assert!(mounts_under(&m).is_empty());
}

#[test]
fn concurrent_unionctl_processes() {
    let e = Env::new();
    e.rich();
    let id = e.create(&["--name", "shared", "example/rich:1"]);
    let bin = env!("CARGO_BIN_EXE_unionctl");
    let root = e.ctl.root.display().to_string();
    // Eight processes mount one container at once: one daemon, one path, eight references.
    let kids: Vec<_> = (0..8)
        .map(|_| {
            Command::new(bin)
                .args(["--root", &root, "mount", "shared"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<String> = kids
        .into_iter()
        .map(|k| {
            let o = k.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        })
        .collect();
    assert!(outs.iter().all(|o| *o == outs[0]), "{outs:?}");
    let m = Path::new(&outs[0]).to_path_buf();
    assert_eq!(daemons_of(&m).len(), 1);
    assert_eq!(e.inspect("shared")["State"]["MountCount"], 8);
    // Eight unmounts at once: the last one unmounts.
    let kids: Vec<_> =
        (0..8).map(|_| Command::new(bin).args(["--root", &root, "unmount", "shared"]).spawn().unwrap()).collect();
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    assert!(mounts_under(&m).is_empty());
    // Creating, mounting, committing and removing different containers at once.
    let kids: Vec<_> = (0..6)
        .map(|i| {
            let script = format!(
                "set -e; U='{bin} --root {root}'; $U create --name w{i} -v shared-vol:/srv example/rich:1 >/dev/null; \
                 M=$($U mount w{i}); echo {i} > $M/file{i}; echo {i} > $M/srv/from{i}; \
                 $U commit w{i} example/w{i}:1 >/dev/null; $U unmount w{i} >/dev/null; \
                 $U create --name v{i} example/w{i}:1 >/dev/null; $U rm w{i} >/dev/null"
            );
            Command::new("sh").args(["-c", &script]).spawn().unwrap()
        })
        .collect();
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    let names = e.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, vec!["shared", "v0", "v1", "v2", "v3", "v4", "v5"]);
    let vol = e.ok(&["volume", "inspect", "shared-vol"]);
    let v: serde_json::Value = serde_json::from_str(&vol).unwrap();
    let data = Path::new(v[0]["Mountpoint"].as_str().unwrap());
    for i in 0..6 {
        assert_eq!(fs::read_to_string(data.join(format!("from{i}"))).unwrap(), format!("{i}\n"));
    }
    for i in 0..6 {
        let m = e.mount(&format!("v{i}"));
        assert_eq!(fs::read_to_string(m.join(format!("file{i}"))).unwrap(), format!("{i}\n"));
        e.ok(&["unmount", &format!("v{i}")]);
    }
    // Every record is readable.
    for c in e.ok(&["ps", "-aq", "--no-trunc"]).lines() {
        e.inspect(c);
    }
    assert!(e.ok(&["ps", "-aq", "--no-trunc"]).contains(&id));
}

#[test]
fn a_store_that_cannot_hold_an_upper_is_refused_clearly() {
    let e = Env::new();
    let rf = e.path("ramfs");
    fs::create_dir(&rf).unwrap();
    let ok =
        Command::new("mount").args(["-t", "ramfs", "ramfs"]).arg(&rf).status().map(|s| s.success()).unwrap_or(false);
    if !ok {
        eprintln!("cannot mount ramfs here: skipped");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _u = Unmount(rf.clone());
    let ctl = Ctl::new(&rf);
    let (_, _) = oci_layout(&e.path("oci"), &rich_layers(), Comp::None, "example/rich:1");
    // ramfs has no xattrs: the image's xattr-free layers load, a container cannot be made.
    let plain = vec![layer(&[M::Dir("etc", 0o755), M::File("etc/f", b"f", 0o644)])];
    oci_layout(&e.path("plain"), &plain, Comp::None, "example/plain:1");
    ctl.ok(&["image", "load", "-i", &e.path("plain").display().to_string()]);
    let o = ctl.run(&["create", "example/plain:1"]);
    assert!(!o.ok);
    assert_eq!(o.stderr.trim_end().lines().count(), 1, "{}", o.stderr);
    assert!(
        o.stderr.contains("cannot hold a container's writable layer") && o.stderr.contains("ramfs"),
        "{}",
        o.stderr
    );
    assert!(ctl.ok(&["ps", "-aq"]).trim().is_empty());
}

#[test]
fn system_df_prune_and_info() {
    let e = Env::new();
    e.rich();
    e.create(&["--name", "a", "-v", "named:/srv", "example/rich:1"]);
    e.create(&["--name", "b", "example/rich:1"]);
    let m = e.mount("a");
    fs::write(m.join("big"), vec![7u8; 100_000]).unwrap();
    let df = e.ok(&["system", "df"]);
    let lines: Vec<&str> = df.lines().collect();
    assert!(lines[0].starts_with("TYPE") && lines[0].contains("RECLAIMABLE"), "{df}");
    assert!(
        lines[1].starts_with("Images") && lines[2].starts_with("Containers") && lines[3].starts_with("Local Volumes"),
        "{df}"
    );
    let j: serde_json::Value = serde_json::from_str(&e.ok(&["system", "df", "--format", "json"])).unwrap();
    assert_eq!(j[1]["Total"], 2);
    assert_eq!(j[1]["Active"], 1);
    assert!(j[1]["Size"].as_u64().unwrap() >= 100_000);
    assert_eq!(j[2]["Total"], 3, "named + two anonymous /data volumes");
    let v = e.ok(&["system", "df", "-v"]);
    assert!(v.contains("Containers space usage") && v.contains("named"), "{v}");
    let info: serde_json::Value = serde_json::from_str(&e.ok(&["info", "--format", "json"])).unwrap();
    assert_eq!(info["store"]["graphDriverName"], "unionfs");
    assert_eq!(info["store"]["containerStore"]["number"], 2);
    assert_eq!(info["store"]["imageStore"]["number"], 1);
    assert_eq!(info["store"]["volumeStore"]["number"], 3);
    assert_eq!(info["store"]["layerStore"]["number"], 3);
    assert!(info["store"]["graphStatus"]["Backing Filesystem"].as_str().is_some());
    assert!(info["store"]["graphDriverVersion"].as_str().unwrap().starts_with("0."), "{info}");
    // prune: b (not mounted) goes, a (mounted) stays; --volumes takes unused anonymous ones.
    let out = e.ok(&["system", "prune", "-f", "--volumes"]);
    assert!(out.contains("Deleted Containers") && out.contains("Total reclaimed space"), "{out}");
    let names = e.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(names.trim(), "a");
    assert_eq!(e.ok(&["volume", "ls", "-q"]).lines().count(), 2, "named and a's anonymous volume stay");
    e.ok(&["rm", "-f", "a"]);
}

/// The unprivileged test user (created when absent): (uid, gid).
fn test_user() -> (u32, u32) {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "unionfs-test"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok().filter(|_| out.status.success())
    };
    if id("-u").is_none() {
        let _ = Command::new("useradd").args(["-M", "-s", "/usr/sbin/nologin", "unionfs-test"]).status();
    }
    (id("-u").expect("uid of unionfs-test"), id("-g").expect("gid of unionfs-test"))
}

#[test]
fn rootless_as_a_real_user() {
    if Command::new("fusermount3").arg("-V").output().is_err() {
        eprintln!("fusermount3 not installed: skipped");
        return;
    }
    let e = Env::new();
    let (uid, gid) = test_user();
    oci_layout(&e.path("oci"), &rich_layers(), Comp::Gzip, "example/rich:1");
    let home = e.path("home");
    let host = e.path("hostdir");
    for d in [&home, &host] {
        fs::create_dir(d).unwrap();
        std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
    }
    fs::write(host.join("f"), "host file").unwrap();
    std::os::unix::fs::chown(host.join("f"), Some(uid), Some(gid)).unwrap();
    let bin = env!("CARGO_BIN_EXE_unionctl");
    // The user's own store, by default under $XDG_DATA_HOME.
    let script = format!(
        r#"set -e
export HOME={home} XDG_DATA_HOME={home}/share
U={bin}
$U image load -i {oci} >/dev/null
$U create --name r -v rv:/data -v {host}:/hd:ro --tmpfs /tt example/rich:1 >/dev/null
M=$($U mount r)
echo "merged=$M"
test -e $M/etc/added && test ! -e $M/etc/gone && test ! -e $M/opt/data/old
echo "owned=$(stat -c %u:%g $M/etc/owned)"
echo "dev=$(stat -c %F:%t:%T $M/dev/null)"
echo changed > $M/etc/passwd
rm $M/bin/su
echo "hostmounts=$(grep -c "$M/" /proc/self/mountinfo || true)"
echo "fstype=$(grep " $M " /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1)"
$U unshare r sh -c 'cat $UNIONCTL_MERGED/hd/f; echo; echo in-volume > $UNIONCTL_MERGED/data/v; grep -c " $UNIONCTL_MERGED/" /proc/self/mountinfo; touch $UNIONCTL_MERGED/hd/x 2>/dev/null || echo ro-ok'
echo "volume=$(cat $($U volume inspect --format '{{{{.Mountpoint}}}}' rv)/v)"
$U inspect r | grep -q '"MountNamespace"' && echo ns-reported
$U diff r | tr '\n' ' '; echo
$U unmount r >/dev/null
echo "after=$(grep -c "$M" /proc/self/mountinfo || true)"
$U commit r example/rootless:1 >/dev/null
$U create --name r2 example/rootless:1 >/dev/null
M2=$($U mount r2)
echo "committed=$(cat $M2/etc/passwd) owned2=$(stat -c %u:%g $M2/etc/owned) su=$(test -e $M2/bin/su && echo yes || echo no)"
$U unmount r2 >/dev/null
$U rm r r2 >/dev/null
$U volume rm rv >/dev/null
echo done
"#,
        home = home.display(),
        oci = e.path("oci").display(),
        host = host.display(),
    );
    let o = Command::new("setpriv")
        .args([&format!("--reuid={uid}"), &format!("--regid={gid}"), "--clear-groups", "sh", "-c", &script])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    // Whatever happened, nothing of the user's stays mounted.
    for m in mounts_under(&home).iter().rev() {
        let _ = Command::new("umount").arg("-l").arg(m).status();
    }
    assert!(o.status.success(), "as {uid}:{gid}:\n{out}\n{err}");
    let get = |k: &str| out.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or_default().to_string();
    assert!(get("merged").starts_with(&home.join("share/unionctl/containers").display().to_string()), "{out}");
    assert_eq!(get("owned"), "1000:1000", "override_stat owners not shown:\n{out}");
    assert_eq!(get("dev"), "character special file:1:3", "{out}");
    assert_eq!(get("fstype"), "fuse.unionfs", "{out}");
    assert_eq!(get("hostmounts"), "0", "volume mounts made on the host:\n{out}");
    assert!(out.contains("host file\n3\nro-ok\n"), "{out}");
    assert_eq!(get("volume"), "in-volume");
    assert!(out.contains("ns-reported"));
    assert!(out.contains("C /bin D /bin/su A /data C /etc/passwd A /hd A /tt"), "{out}");
    assert_eq!(get("after"), "0");
    assert_eq!(get("committed"), "changed owned2=1000:1000 su=no", "{out}");
    assert!(out.ends_with("done\n"), "{out}");
}
