//! `unionctl pull/push/login/logout` against a real registry (Debian's
//! docker-registry) on 127.0.0.1, cross-checked with skopeo: every image
//! form, layer sharing (counted in the registry's access log), TLS + Basic
//! auth, Bearer tokens, resumed and retried downloads, bad cases that leave
//! the store unchanged, and concurrent pulls.

mod fixtures;
mod registry_support;

use fixtures::*;
use registry_support::*;
use std::fs;
use std::path::Path;
use std::process::Command;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("unionctl-reg.").tempdir_in("/tmp").unwrap()
}

fn skopeo(args: &[&str]) -> String {
    let o = Command::new("skopeo").args(args).output().expect("skopeo");
    assert!(o.status.success(), "skopeo {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Copy an OCI layout into the registry with skopeo (extra flags: --format v2s2, --all).
fn skopeo_push(layout: &Path, tag: &str, dest: &str, extra: &[&str]) {
    let src = format!("oci:{}:{tag}", layout.display());
    let dst = format!("docker://{dest}");
    let mut args = vec!["copy", "--quiet", "--dest-tls-verify=false"];
    args.extend_from_slice(extra);
    args.push(&src);
    args.push(&dst);
    skopeo(&args);
}

/// A layer with one incompressible file of `len` bytes (for resume tests).
fn big_layer(name: &'static str, len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let data: &'static [u8] = Box::leak(data.into_boxed_slice());
    layer(&[M::File(name, data, 0o644)])
}

fn pull(ctl: &Ctl, name: &str, extra: &[&str]) -> Out {
    let mut args = vec!["pull", "--tls-verify=false"];
    args.extend_from_slice(extra);
    args.push(name);
    ctl.run(&args)
}

fn pulled_id(o: &Out) -> String {
    assert!(o.ok, "pull failed: {}", o.stderr);
    o.stdout.trim().lines().last().unwrap_or_default().to_string()
}

/// A pull that must fail with `want` in one line and leave the store as it was.
fn pull_fails(ctl: &Ctl, name: &str, extra: &[&str], want: &str) {
    let before = ctl.snapshot();
    let mut args = vec!["pull"];
    args.extend_from_slice(extra);
    args.push(name);
    let o = ctl.run(&args);
    assert!(!o.ok, "pull {name} worked: {}", o.stdout);
    let err: Vec<&str> = o.stderr.lines().filter(|l| !l.starts_with("Trying to pull")).collect();
    eprintln!("{name}: {}", err.join(" / "));
    assert_eq!(err.len(), 1, "not one line: {}", o.stderr);
    assert!(err[0].starts_with("unionctl: error: "), "{}", o.stderr);
    assert!(err[0].to_lowercase().contains(&want.to_lowercase()), "expected {want:?} in {}", o.stderr);
    let after: Vec<_> = ctl.snapshot().into_iter().filter(|(p, _)| !p.starts_with("downloads")).collect();
    let before: Vec<_> = before.into_iter().filter(|(p, _)| !p.starts_with("downloads")).collect();
    assert_eq!(after, before, "pull {name} changed the store");
}

#[test]
fn plain_http_pull_matches_load_and_reuses_layers() {
    let t = tmp();
    let reg = Registry::start(t.path(), Auth::None);
    let layers = rich_layers();
    let (built, _) = oci_layout(&t.path().join("oci"), &layers, Comp::Gzip, "v1");
    // The same image loaded from the layout: the ID to match.
    let loader = Ctl::new(&t.path().join("a"));
    let out = loader.ok(&["image", "load", "-i", &t.path().join("oci").display().to_string()]);
    assert!(out.contains(&built.id), "{out}");
    skopeo_push(&t.path().join("oci"), "v1", &format!("{}/test/rich:v1", reg.host), &[]);

    let ctl = Ctl::new(&t.path().join("b"));
    let name = format!("{}/test/rich:v1", reg.host);
    let o = pull(&ctl, &name, &[]);
    assert_eq!(pulled_id(&o), built.id);
    assert!(o.stderr.contains("3 new layers"), "{}", o.stderr);
    let upper = ctl.root.join("layers").join(&built.diff_ids[1]).join("diff");
    assert_eq!(fs::read(upper.join("etc/added")).unwrap(), b"added\n");
    assert_eq!(ctl.layers(), loader.layers());
    let ls = ctl.ok(&["image", "ls"]);
    assert!(ls.contains(&format!("{}/test/rich", reg.host)), "{ls}");
    let inspect = ctl.ok(&["image", "inspect", &name]);
    assert!(inspect.contains("RepoDigests"), "{inspect}");

    // Again: a manifest and a config request, no layer blob.
    let gets = reg.all_blob_gets();
    assert!(gets >= 4, "the access log counts blob GETs ({gets})");
    let o = pull(&ctl, &name, &[]);
    assert_eq!(pulled_id(&o), built.id);
    assert!(o.stderr.contains("0 new layers, 3 already stored"), "{}", o.stderr);
    assert_eq!(reg.all_blob_gets(), gets + 1, "only the config is fetched again");

    // An image sharing the base layer: only the new layer is downloaded.
    let mut l2 = vec![layers[0].clone()];
    l2.push(layer(&[M::File("new.txt", b"new layer\n", 0o644)]));
    let (b2, _) = oci_layout(&t.path().join("oci2"), &l2, Comp::Gzip, "v2");
    skopeo_push(&t.path().join("oci2"), "v2", &format!("{}/test/other:v2", reg.host), &[]);
    let base_blob = sha(&gzip(&layers[0]));
    let before = reg.blob_gets(&base_blob);
    let o = pull(&ctl, &format!("{}/test/other:v2", reg.host), &["--jobs", "2"]);
    assert_eq!(pulled_id(&o), b2.id);
    assert!(o.stderr.contains("1 new layers, 1 already stored"), "{}", o.stderr);
    assert_eq!(reg.blob_gets(&base_blob), before, "the shared layer was not downloaded");
}

/// An OCI layout whose tag names an index of two images: this machine's and s390x's.
fn multi_arch_layout(dir: &Path, tag: &str) -> String {
    let host = layer(&[M::File("arch.txt", b"host\n", 0o644)]);
    let (host_built, host_md) = oci_layout(dir, &[host], Comp::Gzip, "host");
    let other = layer(&[M::File("arch.txt", b"s390x\n", 0o644)]);
    let diff = sha(&other);
    let mut cfg: serde_json::Value = serde_json::from_slice(&config(&[diff])).unwrap();
    cfg["architecture"] = "s390x".into();
    let cfg = serde_json::to_vec(&cfg).unwrap();
    let put = |data: &[u8]| {
        let d = sha(data);
        fs::write(dir.join("blobs/sha256").join(&d), data).unwrap();
        d
    };
    let blob = gzip(&other);
    let (cd, ld) = (put(&cfg), put(&blob));
    let m = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{cd}"), "size": cfg.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{ld}"), "size": blob.len()}]}))
    .unwrap();
    let md = put(&m);
    let host_len = fs::metadata(dir.join("blobs/sha256").join(&host_md)).unwrap().len();
    let idx = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{md}"), "size": m.len(), "platform": {"os": "linux", "architecture": "s390x"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{host_md}"), "size": host_len, "platform": {"os": "linux", "architecture": host_arch()}},
    ]}))
    .unwrap();
    let id = put(&idx);
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": format!("sha256:{id}"), "size": idx.len(), "annotations": {"org.opencontainers.image.ref.name": tag}}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    host_built.id
}

#[test]
fn every_image_form_pulls_and_pushes_back() {
    let t = tmp();
    let reg = Registry::start(t.path(), Auth::None);
    let ctl = Ctl::new(&t.path().join("s"));
    let h = &reg.host;
    // OCI with zstd layers, Docker schema2, a multi-arch index.
    let (zst, _) = oci_layout(&t.path().join("zst"), &rich_layers(), Comp::Zstd, "z");
    skopeo_push(&t.path().join("zst"), "z", &format!("{h}/forms/zstd:1"), &[]);
    let v2layers = vec![layer(&[M::File("docker.txt", b"schema2\n", 0o644)])];
    let (v2, _) = oci_layout(&t.path().join("v2"), &v2layers, Comp::Gzip, "d");
    skopeo_push(&t.path().join("v2"), "d", &format!("{h}/forms/docker:1"), &["--format", "v2s2"]);
    let host_id = multi_arch_layout(&t.path().join("multi"), "m");
    skopeo_push(&t.path().join("multi"), "m", &format!("{h}/forms/multi:1"), &["--all"]);

    let o = pull(&ctl, &format!("{h}/forms/zstd:1"), &[]);
    assert_eq!(pulled_id(&o), zst.id);
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &format!("docker://{h}/forms/docker:1")]);
    assert!(raw.contains("application/vnd.docker.distribution.manifest.v2+json"), "{raw}");
    let o = pull(&ctl, &format!("{h}/forms/docker:1"), &[]);
    let docker_id = pulled_id(&o);
    assert_eq!(docker_id, v2.id, "skopeo keeps the config bytes");
    let o = pull(&ctl, &format!("{h}/forms/multi:1"), &[]);
    assert_eq!(pulled_id(&o), host_id, "this machine's entry of the index");
    let arch = ctl.root.join("layers").join(
        ctl.layers().iter().find(|l| fs::read(ctl.root.join("layers").join(l).join("diff/arch.txt")).is_ok()).unwrap(),
    );
    assert_eq!(fs::read(arch.join("diff/arch.txt")).unwrap(), b"host\n");
    let o = pull(&ctl, &format!("{h}/forms/multi:1"), &["--platform", "linux/s390x"]);
    assert!(o.ok, "{}", o.stderr);
    let o = ctl.run(&["pull", "--tls-verify=false", "--platform", "linux/mips", &format!("{h}/forms/multi:1")]);
    assert!(!o.ok && o.stderr.contains("no image for linux/mips"), "{}", o.stderr);

    // Push each back under another name: skopeo reads exactly what we sent,
    // and a pull into a fresh store gives the same image ID.
    for (src, id) in [("forms/zstd:1", &zst.id), ("forms/docker:1", &docker_id)] {
        let dest = format!("{h}/back/{}", src.replace("forms/", ""));
        let o = ctl.run(&["push", "--tls-verify=false", &format!("{h}/{src}"), &dest]);
        assert!(o.ok, "push {src}: {}", o.stderr);
        let digest = o.stdout.trim().to_string();
        let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &format!("docker://{dest}")]);
        assert_eq!(format!("sha256:{}", sha(raw.as_bytes())), digest, "the manifest pushed is the one stored");
        let orig = skopeo(&["inspect", "--tls-verify=false", "--raw", &format!("docker://{h}/{src}")]);
        assert_eq!(raw, orig, "pushed back byte for byte");
        let out = t.path().join(format!("copy-{}", sha(dest.as_bytes())));
        skopeo(&[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{dest}"),
            &format!("oci:{}:x", out.display()),
        ]);
        let fresh = Ctl::new(&t.path().join(format!("fresh-{}", &digest[7..19])));
        assert_eq!(&pulled_id(&pull(&fresh, &dest, &[])), id);
        // Pushed again: every blob is already there.
        let o = ctl.run(&["push", "--tls-verify=false", &format!("{h}/{src}"), &dest]);
        assert!(o.stderr.contains("0 blobs uploaded"), "{}", o.stderr);
    }
    // An image loaded from an archive (no manifest kept) pushes with one made up.
    let a = t.path().join("d.tar");
    let built = docker_archive(&a, &[layer(&[M::File("x", b"x\n", 0o644)])], &["example/arch:1"], false);
    ctl.ok(&["image", "load", "-i", &a.display().to_string()]);
    let dest = format!("{h}/back/arch:1");
    let o = ctl.run(&["push", "--tls-verify=false", "example/arch:1", &dest]);
    assert!(o.ok, "{}", o.stderr);
    let cfg = skopeo(&["inspect", "--tls-verify=false", "--config", "--raw", &format!("docker://{dest}")]);
    assert_eq!(sha(cfg.as_bytes()), built.id);
    let fresh = Ctl::new(&t.path().join("fresh-arch"));
    assert_eq!(pulled_id(&pull(&fresh, &dest, &[])), built.id);
}

/// unionctl with its own HOME and XDG_RUNTIME_DIR (auth files, certs.d) and optional stdin.
fn run_env(ctl: &Ctl, home: &Path, args: &[&str], stdin: Option<&str>) -> Out {
    use std::io::Write;
    let mut c = Command::new(env!("CARGO_BIN_EXE_unionctl"));
    c.arg("--root").arg(&ctl.root).args(args);
    c.env("HOME", home).env("XDG_RUNTIME_DIR", home.join("run")).env_remove("REGISTRY_AUTH_FILE");
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(s) = stdin {
        child.stdin.as_mut().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let o = child.wait_with_output().unwrap();
    Out {
        ok: o.status.success(),
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

fn one_line_error(o: &Out, want: &str) {
    assert!(!o.ok, "worked: {}", o.stdout);
    let lines: Vec<&str> = o.stderr.lines().filter(|l| !l.starts_with("Trying to pull")).collect();
    eprintln!("{}", lines.join(" / "));
    assert_eq!(lines.len(), 1, "{}", o.stderr);
    assert!(lines[0].starts_with("unionctl: error: "), "{}", o.stderr);
    assert!(lines[0].to_lowercase().contains(&want.to_lowercase()), "expected {want:?} in {}", o.stderr);
}

#[test]
fn tls_basic_auth_login_logout() {
    use std::os::unix::fs::PermissionsExt;
    let t = tmp();
    let reg = Registry::start(t.path(), Auth::TlsBasic(vec![("alice", "wonderland")]));
    let (built, _) = oci_layout(&t.path().join("oci"), &rich_layers(), Comp::Gzip, "v1");
    skopeo_push(
        &t.path().join("oci"),
        "v1",
        &format!("{}/sec/rich:v1", reg.host),
        &["--dest-creds", "alice:wonderland"],
    );
    let home = t.path().join("home");
    fs::create_dir_all(home.join("run")).unwrap();
    let ctl = Ctl::new(&t.path().join("s"));
    ctl.ok(&["image", "ls"]);
    let name = format!("{}/sec/rich:v1", reg.host);
    let before = ctl.snapshot();

    // Not trusted yet: TLS fails, with the way out named.
    let o = run_env(&ctl, &home, &["pull", &name], None);
    one_line_error(&o, "certificate");
    assert!(o.stderr.contains("--tls-verify=false"), "{}", o.stderr);
    let certs = home.join(".config/containers/certs.d").join(&reg.host);
    fs::create_dir_all(&certs).unwrap();
    fs::copy(reg.ca.as_ref().unwrap(), certs.join("ca.crt")).unwrap();
    // Trusted, but no credentials.
    one_line_error(&run_env(&ctl, &home, &["pull", &name], None), "authentication required");
    one_line_error(&run_env(&ctl, &home, &["pull", "--creds", "alice:nope", &name], None), "authentication required");
    // A wrong password is refused by login and nothing is written.
    let o = run_env(&ctl, &home, &["login", "-u", "alice", "--password-stdin", &reg.host], Some("nope\n"));
    one_line_error(&o, "invalid username or password");
    let authfile = home.join("run/containers/auth.json");
    assert!(!authfile.exists());
    assert_eq!(ctl.snapshot(), before);
    let o = run_env(&ctl, &home, &["login", "-u", "alice", "--password-stdin", &reg.host], Some("wonderland\n"));
    assert!(o.ok && o.stdout.contains("Login Succeeded"), "{}", o.stderr);
    assert_eq!(fs::metadata(&authfile).unwrap().permissions().mode() & 0o777, 0o600);
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(&authfile).unwrap()).unwrap();
    assert!(doc["auths"][&reg.host]["auth"].is_string(), "{doc}");
    // skopeo reads the file we wrote.
    skopeo(&[
        "inspect",
        "--raw",
        "--authfile",
        &authfile.display().to_string(),
        "--cert-dir",
        &certs.display().to_string(),
        &format!("docker://{name}"),
    ]);
    let o = run_env(&ctl, &home, &["pull", &name], None);
    assert_eq!(pulled_id(&o), built.id);
    // --creds and --authfile work without the default file.
    let ctl2 = Ctl::new(&t.path().join("s2"));
    let o = run_env(
        &ctl2,
        &t.path().join("nohome"),
        &["pull", "--cert-dir", &certs.display().to_string(), "--creds", "alice:wonderland", &name],
        None,
    );
    assert_eq!(pulled_id(&o), built.id);
    // Push with the stored login.
    let o = run_env(&ctl, &home, &["push", &name, &format!("{}/sec/copy:1", reg.host)], None);
    assert!(o.ok, "{}", o.stderr);
    assert!(o.stderr.contains("mounted from sec/rich") || o.stderr.contains("0 blobs uploaded"), "{}", o.stderr);
    let o = run_env(&ctl, &home, &["logout", &reg.host], None);
    assert!(o.ok, "{}", o.stderr);
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(&authfile).unwrap()).unwrap();
    assert!(doc["auths"].get(&reg.host).is_none(), "{doc}");
    one_line_error(&run_env(&ctl, &home, &["logout", &reg.host], None), "not logged into");
    one_line_error(
        &run_env(&ctl, &home, &["pull", &format!("{}/sec/copy:1", reg.host)], None),
        "authentication required",
    );
}

#[test]
fn tls_certificate_for_another_name_is_refused() {
    let t = tmp();
    let reg = Registry::start_with(t.path(), Auth::TlsBasic(vec![("u", "p")]), "DNS:other.example");
    let home = t.path().join("home");
    let certs = home.join(".config/containers/certs.d").join(&reg.host);
    fs::create_dir_all(&certs).unwrap();
    fs::copy(reg.ca.as_ref().unwrap(), certs.join("ca.crt")).unwrap();
    let ctl = Ctl::new(&t.path().join("s"));
    ctl.ok(&["image", "ls"]);
    let before = ctl.snapshot();
    let o = run_env(&ctl, &home, &["pull", "--creds", "u:p", &format!("{}/x/y:1", reg.host)], None);
    one_line_error(&o, "certificate");
    assert!(o.stderr.to_lowercase().contains("name"), "{}", o.stderr);
    assert_eq!(ctl.snapshot(), before);
    // --tls-verify=false gets through (to a missing image).
    let o =
        run_env(&ctl, &home, &["pull", "--tls-verify=false", "--creds", "u:p", &format!("{}/x/y:1", reg.host)], None);
    one_line_error(&o, "not found");
}
