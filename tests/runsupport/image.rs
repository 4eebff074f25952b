//! Test images made on the spot from the host's static busybox (OCI layouts).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The host's static busybox.
pub fn busybox_bin() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        let ok =
            Command::new("file").arg(p).output().map(|o| String::from_utf8_lossy(&o.stdout).contains("statically"));
        if Path::new(p).exists() && ok.unwrap_or(true) {
            return PathBuf::from(p);
        }
    }
    panic!("no static busybox: apt-get install busybox-static");
}

pub fn hdr(kind: tar::EntryType, mode: u32, size: u64, uid: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_600_000_000);
    h.set_uid(uid);
    h.set_gid(uid);
    h
}

/// A layer with the host's static busybox in /bin with a link per applet,
/// users root, app (1234, also in extra and more) and daemon (4321: not
/// the host's daemon), /www/index.html, /bin/notexec (mode 0644), and the
/// usual empty directories.
pub fn busybox_layer() -> Vec<u8> {
    let bb = fs::read(busybox_bin()).unwrap();
    let list = Command::new(busybox_bin()).arg("--list").output().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, p: &str, mode: u32, uid: u64| {
        let mut h = hdr(tar::EntryType::Directory, mode, 0, uid);
        b.append_data(&mut h, p, &[][..]).unwrap();
    };
    let file = |b: &mut tar::Builder<Vec<u8>>, p: &str, data: &[u8], mode: u32| {
        let mut h = hdr(tar::EntryType::Regular, mode, data.len() as u64, 0);
        b.append_data(&mut h, p, data).unwrap();
    };
    for (d, mode, uid) in [
        ("bin", 0o755, 0),
        ("etc", 0o755, 0),
        ("proc", 0o555, 0),
        ("sys", 0o555, 0),
        ("dev", 0o755, 0),
        ("tmp", 0o1777, 0),
        ("root", 0o700, 0),
        ("home", 0o755, 0),
        ("home/app", 0o755, 1234),
        ("mnt", 0o755, 0),
        ("www", 0o755, 0),
        ("usr", 0o755, 0),
        ("usr/bin", 0o755, 0),
        ("var", 0o755, 0),
    ] {
        dir(&mut b, d, mode, uid);
    }
    file(&mut b, "bin/busybox", &bb, 0o755);
    for a in String::from_utf8_lossy(&list.stdout).lines().map(str::trim) {
        if a.is_empty() || a == "busybox" || a.contains('/') {
            continue;
        }
        let mut h = hdr(tar::EntryType::Symlink, 0o777, 0, 0);
        b.append_link(&mut h, format!("bin/{a}"), "busybox").unwrap();
    }
    file(
        &mut b,
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\ndaemon:x:4321:4321:daemon:/:/bin/sh\napp:x:1234:1234:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        0o644,
    );
    file(
        &mut b,
        "etc/group",
        b"root:x:0:\ndaemon:x:4321:\napp:x:1234:\nextra:x:2000:app\nmore:x:2001:daemon,app\nnogroup:x:65534:\n",
        0o644,
    );
    file(&mut b, "www/index.html", b"hello from the image\n", 0o644);
    file(&mut b, "bin/notexec", b"#!/bin/sh\necho should not run\n", 0o644);
    b.into_inner().unwrap()
}

/// An OCI layout at `dir`: one uncompressed layer, config `cfg`, tag `name`.
pub fn write_oci(dir: &Path, layer: &[u8], cfg: &serde_json::Value, name: &str) {
    use crate::fixtures::{host_arch, sha};
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = sha(data);
        fs::write(blobs.join(&d), data).unwrap();
        d
    };
    let ld = put(layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "created": "2024-01-02T03:04:05Z",
        "architecture": host_arch(),
        "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{ld}")]},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": "busybox"}],
    }))
    .unwrap();
    let cd = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{cd}"), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{ld}"), "size": layer.len()}],
    }))
    .unwrap();
    let md = put(&manifest);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{md}"), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": name}}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}
