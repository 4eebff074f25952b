//! `unionctl image ...` against images built in the test: every input form,
//! sharing of layers, the unpacked contents, bad and malicious inputs (the
//! store stays as it was), concurrent loads, tag/rm/prune/save round trips.

mod fixtures;

use fixtures::*;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("unionctl-test.").tempdir_in("/tmp").unwrap()
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let o = std::process::Command::new("getfattr").args(["--only-values", "-h", "-n", name]).arg(p).output().ok()?;
    o.status.success().then_some(o.stdout)
}

#[test]
fn oci_layout_unpacks_every_member_kind() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let (built, _) = oci_layout(&t.path().join("oci"), &rich_layers(), Comp::Gzip, "example/rich:1.0");
    let out = ctl.ok(&["image", "load", "-i", &t.path().join("oci").display().to_string()]);
    assert!(out.contains(&format!("sha256:{}", built.id)), "{out}");
    assert!(out.contains("Loaded image: example/rich:1.0"), "{out}");
    let base = ctl.root.join("layers").join(&built.diff_ids[0]).join("diff");
    let bb = fs::metadata(base.join("bin/busybox")).unwrap();
    assert_eq!(bb.nlink(), 3, "hard links kept");
    assert_eq!(fs::metadata(base.join("bin/sh")).unwrap().ino(), bb.ino());
    assert_eq!(fs::metadata(base.join("bin/su")).unwrap().mode() & 0o7777, 0o4755, "setuid kept");
    let owned = fs::metadata(base.join("etc/owned")).unwrap();
    assert_eq!((owned.uid(), owned.gid(), owned.mode() & 0o777), (1000, 1000, 0o640));
    assert_eq!(xattr(&base.join("etc/passwd"), "user.note").as_deref(), Some(&b"hello"[..]));
    assert_eq!(fs::read_link(base.join("etc/link")).unwrap().to_str(), Some("passwd"));
    let null = fs::symlink_metadata(base.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert!(fs::symlink_metadata(base.join("dev/fifo")).unwrap().file_type().is_fifo());
    assert_eq!(fs::metadata(base.join("etc/passwd")).unwrap().mtime(), 1_600_000_000);
    // Whiteout markers stay as OCI markers in the layer directories.
    let l1 = ctl.root.join("layers").join(&built.diff_ids[1]).join("diff");
    assert!(l1.join("etc/.wh.gone").exists());
    let l2 = ctl.root.join("layers").join(&built.diff_ids[2]).join("diff");
    assert!(l2.join("opt/.wh..wh..opq").exists());
    // Metadata
    let inspect: serde_json::Value = serde_json::from_str(&ctl.ok(&["image", "inspect", "example/rich:1.0"])).unwrap();
    let i = &inspect[0];
    assert_eq!(i["Id"], built.id);
    assert_eq!(i["Architecture"], host_arch());
    assert_eq!(i["Os"], "linux");
    assert_eq!(i["Config"]["Cmd"][0], "/bin/sh");
    let want: Vec<String> = built.diff_ids.iter().map(|d| format!("sha256:{d}")).collect();
    assert_eq!(i["RootFS"]["Layers"], serde_json::json!(want));
    let dirs = i["LayerDirs"].as_array().unwrap();
    assert_eq!(dirs.len(), 3);
    assert!(dirs[0].as_str().unwrap().contains(&built.diff_ids[2]), "top-most layer first");
    let ls = ctl.ok(&["image", "ls"]);
    assert!(ls.contains("example/rich") && ls.contains("1.0") && ls.contains(&built.id[..12]), "{ls}");
    let history = ctl.ok(&["image", "history", "example/rich:1.0"]);
    assert!(history.contains("step 2") && history.contains("step 0"), "{history}");
    assert!(fs::read_dir(ctl.root.join("tmp")).unwrap().flatten().all(|e| e.file_name() == "locks"), "tmp left dirty");
}

#[test]
fn every_input_form_gives_the_same_image_and_no_new_layer() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let layers = rich_layers();
    let (built, _) = oci_layout(&t.path().join("oci-gz"), &layers, Comp::Gzip, "latest");
    oci_layout(&t.path().join("oci-zstd"), &layers, Comp::Zstd, "zstd");
    oci_layout(&t.path().join("oci-plain"), &layers, Comp::None, "plain");
    tar_dir(&t.path().join("oci-gz"), &t.path().join("oci.tar"));
    let wrapped = gzip(&fs::read(t.path().join("oci.tar")).unwrap());
    fs::write(t.path().join("oci.tar.gz"), wrapped).unwrap();
    let zw = zstd(&fs::read(t.path().join("oci.tar")).unwrap());
    fs::write(t.path().join("oci.tar.zst"), zw).unwrap();
    let d = docker_archive(&t.path().join("docker.tar"), &layers, &["example/img:v1"], false);
    docker_archive(&t.path().join("skopeo.tar"), &layers, &["example/img:v2"], true);
    docker25_archive(&t.path().join("d25"), &t.path().join("docker25.tar"), &layers, "example/img:v3");
    assert_eq!(d.id, built.id);
    ctl.ok(&["image", "load", "-i", &t.path().join("oci-gz").display().to_string()]);
    let layers_after_first = ctl.layers();
    assert_eq!(layers_after_first.len(), 3);
    for input in
        ["oci-zstd", "oci-plain", "oci.tar", "oci.tar.gz", "oci.tar.zst", "docker.tar", "skopeo.tar", "docker25.tar"]
    {
        let before = ctl.snapshot();
        let out = ctl.ok(&["image", "load", "-i", &t.path().join(input).display().to_string()]);
        assert!(out.contains(&built.id), "{input}: {out}");
        assert!(out.contains("0 new layers"), "{input}: {out}");
        assert_eq!(ctl.layers(), layers_after_first, "{input} added a layer");
        // Only names change: no new blob, no new layer file.
        let after: Vec<String> =
            ctl.snapshot().into_iter().map(|(p, _)| p).filter(|p| !p.starts_with("images/")).collect();
        let before: Vec<String> = before.into_iter().map(|(p, _)| p).filter(|p| !p.starts_with("images/")).collect();
        assert_eq!(after, before, "{input} stored something new");
    }
    let ls = ctl.ok(&["image", "ls"]);
    for n in ["example/img", "v1", "v2", "v3"] {
        assert!(ls.contains(n), "{n} missing from\n{ls}");
    }
    // Standard input works too.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_unionctl"))
        .arg("--root")
        .arg(&ctl.root)
        .args(["image", "load", "-i", "-"])
        .stdin(fs::File::open(t.path().join("docker.tar")).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn overlapping_images_share_base_layers() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let mut l = rich_layers();
    oci_layout(&t.path().join("a"), &l, Comp::Gzip, "example/a:1");
    l.push(layer(&[M::File("extra", b"only in b\n", 0o644)]));
    oci_layout(&t.path().join("b"), &l, Comp::Gzip, "example/b:1");
    ctl.ok(&["image", "load", "-i", &t.path().join("a").display().to_string()]);
    let out = ctl.ok(&["image", "load", "-i", &t.path().join("b").display().to_string()]);
    assert!(out.contains("1 new layers, 3 already stored"), "{out}");
    assert_eq!(ctl.layers().len(), 4);
}

#[test]
fn multi_arch_index_picks_this_machine() {
    let t = tmp();
    let dir = t.path().join("multi");
    let (built, md) = oci_layout(&dir, &rich_layers(), Comp::Gzip, "x");
    // Wrap the manifest in a nested index with other platforms around it.
    let msize = fs::metadata(dir.join("blobs/sha256").join(&md)).unwrap().len();
    let other = if host_arch() == "arm64" { "amd64" } else { "arm64" };
    let idx = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", sha(b"nothing")), "size": 7, "platform": {"architecture": other, "os": "linux"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{md}"), "size": msize, "platform": {"architecture": host_arch(), "os": "linux"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", sha(b"att")), "size": 3, "platform": {"architecture": "unknown", "os": "unknown"}},
    ]}))
    .unwrap();
    let idx_d = sha(&idx);
    fs::write(dir.join("blobs/sha256").join(&idx_d), &idx).unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": format!("sha256:{idx_d}"), "size": idx.len(), "annotations": {"org.opencontainers.image.ref.name": "example/multi:1"}}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let out = ctl_load(&Ctl::new(t.path()), &dir);
    assert!(out.contains(&built.id), "{out}");
}

fn ctl_load(ctl: &Ctl, p: &Path) -> String {
    ctl.ok(&["image", "load", "-i", &p.display().to_string()])
}

#[test]
fn bad_input_is_refused_and_the_store_stays_as_it_was() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let good = rich_layers();
    // Something stored already, so "as it was" is not just "empty".
    oci_layout(&t.path().join("good"), &good[..1], Comp::Gzip, "example/good:1");
    ctl_load(&ctl, &t.path().join("good"));
    let p = |n: &str| t.path().join(n);

    // diff_id mismatch: the config names other diff_ids.
    let (b, _) = oci_layout(&p("diffid"), &good, Comp::Gzip, "x");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(p("diffid/blobs/sha256").join(&b.id)).unwrap()).unwrap();
    cfg["rootfs"]["diff_ids"][2] = serde_json::json!(format!("sha256:{}", sha(b"other")));
    let docker_bad = p("diffid.tar");
    let cfg_bytes = serde_json::to_vec(&cfg).unwrap();
    let id = sha(&cfg_bytes);
    let mut files = vec![(format!("{id}.json"), cfg_bytes)];
    let paths: Vec<String> = good.iter().map(|l| format!("{}/layer.tar", sha(l))).collect();
    files.extend(paths.iter().cloned().zip(good.iter().cloned()));
    let manifest = serde_json::json!([{"Config": format!("{id}.json"), "RepoTags": ["x:1"], "Layers": paths}]);
    files.push(("manifest.json".into(), serde_json::to_vec(&manifest).unwrap()));
    fs::write(&docker_bad, tar_of(&files)).unwrap();
    ctl.must_fail(&docker_bad, "diff_id mismatch");

    // Compressed digest mismatch: a blob replaced by other (valid) data.
    let (_, _) = oci_layout(&p("digest"), &good, Comp::Gzip, "x");
    let blob = p("digest/blobs/sha256").join(sha(&gzip(&good[2])));
    // The same tar compressed differently: right diff_id, wrong blob digest.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut e, &good[2]).unwrap();
    fs::write(&blob, e.finish().unwrap()).unwrap();
    ctl.must_fail(&p("digest"), "digest mismatch");

    // A truncated gzip stream.
    oci_layout(&p("trunc"), &good, Comp::Gzip, "x");
    // (layer 0 is stored already and would be reused unread: break layer 1)
    let gz = gzip(&good[1]);
    let blob = p("trunc/blobs/sha256").join(sha(&gz));
    fs::write(&blob, &gz[..gz.len() / 2]).unwrap();
    ctl.must_fail(&p("trunc"), "layer");

    // Malformed JSON.
    oci_layout(&p("json"), &good, Comp::Gzip, "x");
    fs::write(p("json/index.json"), b"{\"schemaVersion\": 2, \"manifests\": [").unwrap();
    ctl.must_fail(&p("json"), "json");

    // A missing blob.
    oci_layout(&p("missing"), &good, Comp::Gzip, "x");
    fs::remove_file(p("missing/blobs/sha256").join(sha(&gzip(&good[1])))).unwrap();
    ctl.must_fail(&p("missing"), "missing");

    // Unknown formats.
    fs::create_dir_all(p("emptydir")).unwrap();
    ctl.must_fail(&p("emptydir"), "unknown image format");
    fs::write(p("random.bin"), vec![7u8; 4096]).unwrap();
    ctl.must_fail(&p("random.bin"), "");
    ctl.must_fail(&p("does-not-exist"), "no such file");
}

#[test]
fn malicious_layers_never_write_outside_the_store() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let victim = t.path().join("victim");
    fs::create_dir_all(&victim).unwrap();
    ctl.ok(&["image", "ls"]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("dotdot", raw_layer(&[raw_member("../../escaped", tar::EntryType::Regular, "", b"x")]), "escapes"),
        ("absolute", raw_layer(&[raw_member("/tmp/escaped-abs", tar::EntryType::Regular, "", b"x")]), "escapes"),
        (
            "symlink-then-write",
            raw_layer(&[
                raw_member("etc", tar::EntryType::Symlink, victim.to_str().unwrap(), b""),
                raw_member("etc/passwd", tar::EntryType::Regular, "", b"pwned"),
            ]),
            "not a directory",
        ),
        (
            "hardlink-outside",
            raw_layer(&[raw_member("passwd", tar::EntryType::Link, "../../../etc/passwd", b"")]),
            "escapes",
        ),
        (
            "hardlink-through-symlink",
            raw_layer(&[
                raw_member("up", tar::EntryType::Symlink, "/etc", b""),
                raw_member("stolen", tar::EntryType::Link, "up/passwd", b""),
            ]),
            "not a directory",
        ),
    ];
    for (name, tarball, want) in cases {
        let dir = t.path().join(name);
        docker_archive(&dir.with_extension("tar"), &[tarball], &["evil:1"], false);
        ctl.must_fail(&dir.with_extension("tar"), want);
    }
    assert!(fs::read_dir(&victim).unwrap().next().is_none(), "something was written through the symlink");
    assert!(!Path::new("/tmp/escaped-abs").exists());
    assert!(!t.path().parent().unwrap().join("escaped").exists());
}

#[test]
fn tar_without_end_blocks_is_accepted() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let mut l = layer(&[M::File("a", b"complete\n", 0o644)]);
    // Drop the two zero blocks at the end (older umoci wrote layers so).
    while l.len() > 512 && l[l.len() - 512..].iter().all(|b| *b == 0) {
        l.truncate(l.len() - 512);
    }
    let b = docker_archive(&t.path().join("noeoa.tar"), &[l], &["noeoa:1"], false);
    ctl_load(&ctl, &t.path().join("noeoa.tar"));
    let f = ctl.root.join("layers").join(&b.diff_ids[0]).join("diff/a");
    assert_eq!(fs::read_to_string(f).unwrap(), "complete\n");
}

#[test]
fn concurrent_loads_of_overlapping_images() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let mut base = rich_layers();
    for i in 0..3 {
        base.push(layer(&[
            M::File("big", &[b'x'; 1 << 20], 0o644),
            M::File("n", if i == 0 { b"0" } else { b"1" }, 0o644),
        ]));
    }
    let a = base[..4].to_vec();
    let mut b = base[..3].to_vec();
    b.push(base[4].clone());
    oci_layout(&t.path().join("a"), &a, Comp::Gzip, "example/a:1");
    oci_layout(&t.path().join("b"), &b, Comp::Gzip, "example/b:1");
    let procs: Vec<_> = ["a", "b", "a", "b"]
        .iter()
        .map(|n| {
            std::process::Command::new(env!("CARGO_BIN_EXE_unionctl"))
                .arg("--root")
                .arg(&ctl.root)
                .args(["image", "load", "-q", "-i"])
                .arg(t.path().join(n))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut p in procs {
        assert!(p.wait().unwrap().success());
    }
    assert_eq!(ctl.layers().len(), 5, "layers duplicated or lost");
    let ls = ctl.ok(&["image", "ls"]);
    assert!(ls.contains("example/a") && ls.contains("example/b"), "{ls}");
    for l in ctl.layers() {
        assert!(ctl.root.join("layers").join(&l).join("layer.json").exists());
    }
}

#[test]
fn tag_rm_prune_and_save_round_trips() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let (built, _) = oci_layout(&t.path().join("oci"), &rich_layers(), Comp::Gzip, "example/app:1");
    ctl_load(&ctl, &t.path().join("oci"));
    ctl.ok(&["image", "tag", "example/app:1", "example/app:stable", "other"]);
    let ls = ctl.ok(&["image", "ls"]);
    assert!(ls.contains("stable") && ls.contains("other"), "{ls}");
    // rm of one name keeps the image.
    let out = ctl.ok(&["image", "rm", "other"]);
    assert!(out.contains("Untagged: other:latest"), "{out}");
    assert!(ctl.ok(&["image", "ls", "-q"]).contains(&built.id[..12]));
    // Save in both formats; loading them into a fresh store gives the same ID.
    for (fmt, file) in [("oci-archive", "out-oci.tar"), ("docker-archive", "out-docker.tar")] {
        let out = t.path().join(file);
        ctl.ok(&["image", "save", "--format", fmt, "-o", &out.display().to_string(), "example/app:stable"]);
        let other = Ctl { root: t.path().join(format!("store-{fmt}")) };
        let o = other.ok(&["image", "load", "-i", &out.display().to_string()]);
        assert!(o.contains(&built.id) && o.contains("example/app:stable"), "{fmt}: {o}");
        if which("skopeo") {
            let st = std::process::Command::new("skopeo")
                .args(["inspect", &format!("{fmt}:{}", out.display())])
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(st.success(), "skopeo inspect {fmt} failed");
        }
        if which("podman") {
            let o = std::process::Command::new("podman")
                .args(["--storage-driver", "vfs", "--root"])
                .arg(t.path().join("podman-root"))
                .arg("--runroot")
                .arg(t.path().join("podman-run"))
                .args(["load", "-i"])
                .arg(&out)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success() && text.contains("example/app:stable"),
                "podman load {fmt}: {text} {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let ids = std::process::Command::new("podman")
                .args(["--storage-driver", "vfs", "--root"])
                .arg(t.path().join("podman-root"))
                .arg("--runroot")
                .arg(t.path().join("podman-run"))
                .args(["images", "-q", "--no-trunc"])
                .output()
                .unwrap();
            assert!(String::from_utf8_lossy(&ids.stdout).contains(&built.id), "podman sees another image ID");
        }
    }
    assert!(!ctl.run(&["image", "save", "--format", "bogus", "-o", "/tmp/x.tar", "example/app:1"]).ok);
    // A dangling image goes with prune; -a takes the rest; layers and blobs follow.
    let (b2, _) = oci_layout(&t.path().join("dangling"), &[layer(&[M::File("d", b"d", 0o644)])], Comp::Gzip, "latest");
    ctl_load(&ctl, &t.path().join("dangling"));
    ctl.ok(&["image", "rm", "localhost/dangling:latest"]).contains("Deleted");
    assert!(!ctl.ok(&["image", "ls", "-q"]).contains(&b2.id[..12]));
    ctl.ok(&["image", "prune", "-a"]);
    assert!(ctl.ok(&["image", "ls", "-q"]).trim().is_empty());
    assert!(ctl.layers().is_empty(), "layers left after prune -a");
    assert_eq!(fs::read_dir(ctl.root.join("blobs/sha256")).unwrap().count(), 0, "blobs left after prune -a");
    // Errors for unknown images.
    let o = ctl.run(&["image", "inspect", "nope"]);
    assert!(!o.ok && o.stderr.contains("image not known: nope"));
}

fn which(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn ambiguous_and_json_listing() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    oci_layout(&t.path().join("a"), &rich_layers()[..1], Comp::Gzip, "example/a:1");
    ctl_load(&ctl, &t.path().join("a"));
    let v: serde_json::Value = serde_json::from_str(&ctl.ok(&["image", "ls", "--format", "json"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["Names"][0], "example/a:1");
    let o = ctl.run(&["image", "inspect", "zz"]);
    assert!(!o.ok);
}

#[test]
fn rootless_load_records_device_nodes() {
    use std::os::unix::fs::PermissionsExt;
    let t = tmp();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let (built, _) = oci_layout(&t.path().join("oci"), &rich_layers(), Comp::Gzip, "example/rootless:1");
    let store = t.path().join("userstore");
    fs::create_dir(&store).unwrap();
    std::os::unix::fs::chown(&store, Some(65534), Some(65534)).unwrap();
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_unionctl"), "--root"])
        .arg(&store)
        .args(["image", "load", "-i"])
        .arg(t.path().join("oci"))
        .output()
        .unwrap();
    assert!(o.status.success(), "rootless load failed: {}", String::from_utf8_lossy(&o.stderr));
    let base = store.join("layers").join(&built.diff_ids[0]).join("diff");
    let null = fs::symlink_metadata(base.join("dev/null")).unwrap();
    assert!(null.file_type().is_file(), "a user cannot mknod: recorded as a file");
    assert_eq!(
        xattr(&base.join("dev/null"), "user.containers.override_stat").as_deref(),
        Some(&b"0:0:0666:char-1-3"[..])
    );
    assert_eq!(fs::metadata(base.join("bin/su")).unwrap().mode() & 0o7777, 0o4755);
    assert_eq!(fs::metadata(base.join("bin/busybox")).unwrap().nlink(), 3);
}

#[test]
fn legacy_docker_save_before_1_10() {
    let t = tmp();
    let ctl = Ctl::new(t.path());
    let l = rich_layers();
    let (id1, id2) = ("a".repeat(64), "b".repeat(64));
    let files = vec![
        ("repositories".to_string(), format!(r#"{{"example/old":{{"v0":"{id2}"}}}}"#).into_bytes()),
        (
            format!("{id1}/json"),
            format!(r#"{{"id":"{id1}","created":"2015-01-01T00:00:00Z","architecture":"amd64","os":"linux"}}"#)
                .into_bytes(),
        ),
        (format!("{id1}/layer.tar"), l[0].clone()),
        (format!("{id2}/json"), format!(r#"{{"id":"{id2}","parent":"{id1}","config":{{"Cmd":["sh"]}}}}"#).into_bytes()),
        (format!("{id2}/layer.tar"), l[1].clone()),
    ];
    let out = t.path().join("legacy.tar");
    fs::write(&out, tar_of(&files)).unwrap();
    let o = ctl_load(&ctl, &out);
    assert!(o.contains("example/old:v0"), "{o}");
    let v: serde_json::Value = serde_json::from_str(&ctl.ok(&["image", "inspect", "example/old:v0"])).unwrap();
    assert_eq!(
        v[0]["RootFS"]["Layers"],
        serde_json::json!([format!("sha256:{}", sha(&l[0])), format!("sha256:{}", sha(&l[1]))])
    );
    assert_eq!(v[0]["Config"]["Cmd"][0], "sh");
    assert!(ctl.root.join("layers").join(sha(&l[1])).join("diff/etc/.wh.gone").exists());
}
