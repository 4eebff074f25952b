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

    // Again: a manifest request and nothing else.
    let gets = reg.all_blob_gets();
    assert!(gets >= 4, "the access log counts blob GETs ({gets})");
    let o = pull(&ctl, &name, &[]);
    assert_eq!(pulled_id(&o), built.id);
    assert!(o.stderr.contains("0 new layers, 3 already stored"), "{}", o.stderr);
    assert_eq!(reg.all_blob_gets(), gets, "no blob is fetched again");
    // `image pull` is the same verb.
    let o = ctl.run(&["image", "pull", "-q", "--tls-verify=false", &name]);
    assert!(o.ok && o.stderr.is_empty(), "{}", o.stderr);
    assert_eq!(o.stdout.trim(), built.id);

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
        if id == &docker_id {
            // podman accepts what we pushed, with the same image ID.
            let pr = t.path().join("podman");
            let (root, run) = (pr.join("root").display().to_string(), pr.join("run").display().to_string());
            let o = Command::new("podman")
                .args([
                    "--root",
                    &root,
                    "--runroot",
                    &run,
                    "--storage-driver",
                    "vfs",
                    "pull",
                    "-q",
                    "--tls-verify=false",
                    &dest,
                ])
                .output()
                .unwrap();
            assert!(o.status.success(), "podman pull: {}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id);
            let _ = Command::new("podman")
                .args(["--root", &root, "--runroot", &run, "--storage-driver", "vfs", "rmi", "-a", "-f"])
                .output();
        }
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
    one_line_error(
        &run_env(&ctl, &home, &["pull", "--creds", "alice:nope", &name], None),
        "invalid username or password",
    );
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

#[test]
fn bearer_token_flow() {
    let t = tmp();
    let reg = Registry::start(
        t.path(),
        Auth::Token(vec![("alice", "secret", "pull,push"), ("bob", "reader", "pull"), ("late", "pw", "expired")]),
    );
    let (built, _) = oci_layout(&t.path().join("oci"), &rich_layers(), Comp::Gzip, "v1");
    skopeo_push(&t.path().join("oci"), "v1", &format!("{}/tok/rich:v1", reg.host), &["--dest-creds", "alice:secret"]);
    let home = t.path().join("home");
    fs::create_dir_all(home.join("run")).unwrap();
    let ctl = Ctl::new(&t.path().join("s"));
    ctl.ok(&["image", "ls"]);
    let name = format!("{}/tok/rich:v1", reg.host);
    let before = ctl.snapshot();
    one_line_error(&run_env(&ctl, &home, &["pull", "--tls-verify=false", &name], None), "authentication required");
    one_line_error(
        &run_env(&ctl, &home, &["pull", "--tls-verify=false", "--creds", "bob:wrong", &name], None),
        "invalid username or password",
    );
    let late = ["pull", "--tls-verify=false", "--creds", "late:pw", name.as_str()];
    one_line_error(&run_env(&ctl, &home, &late, None), "expired or invalid");
    assert_eq!(ctl.snapshot(), before);
    let o = run_env(&ctl, &home, &["pull", "--tls-verify=false", "--creds", "bob:reader", &name], None);
    assert_eq!(pulled_id(&o), built.id);
    // A pull-only token on a push.
    let o = run_env(
        &ctl,
        &home,
        &["push", "--tls-verify=false", "--creds", "bob:reader", &name, &format!("{}/tok/bob:1", reg.host)],
        None,
    );
    one_line_error(&o, "insufficient_scope");
    // login through the token server, then push with the stored credentials.
    let o = run_env(
        &ctl,
        &home,
        &["login", "--tls-verify=false", "-u", "alice", "--password-stdin", &reg.host],
        Some("bad"),
    );
    one_line_error(&o, "invalid username or password");
    let o = run_env(
        &ctl,
        &home,
        &["login", "--tls-verify=false", "-u", "alice", "--password-stdin", &reg.host],
        Some("secret"),
    );
    assert!(o.ok, "{}", o.stderr);
    let o = run_env(&ctl, &home, &["push", "--tls-verify=false", &name, &format!("{}/tok/alice:1", reg.host)], None);
    assert!(o.ok, "{}", o.stderr);
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "alice:secret",
        "--raw",
        &format!("docker://{}/tok/alice:1", reg.host),
    ]);
    assert_eq!(format!("sha256:{}", sha(raw.as_bytes())), o.stdout.trim());
}

fn partials(ctl: &Ctl) -> Vec<(String, u64)> {
    fs::read_dir(ctl.root.join("downloads"))
        .map(|rd| {
            rd.flatten().map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len())).collect()
        })
        .unwrap_or_default()
}

/// A 3 MiB uncompressed layer pushed as `res/big:v1`; returns the image ID.
fn push_big(t: &Path, reg: &Registry) -> String {
    let layers = vec![layer(&[M::File("small", b"small\n", 0o644)]), big_layer("big.bin", 3 << 20, 7)];
    let (built, _) = oci_layout(&t.join("big"), &layers, Comp::None, "v1");
    skopeo_push(&t.join("big"), "v1", &format!("{}/res/big:v1", reg.host), &[]);
    built.id
}

#[test]
fn cut_connections_resume_with_range() {
    let t = tmp();
    let reg = Registry::start(t.path(), Auth::None);
    let id = push_big(t.path(), &reg);
    let proxy = Proxy::start(reg.port, Mode::CutOnce(1 << 20));
    let name = format!("127.0.0.1:{}/res/big:v1", proxy.port);

    // No retries: the pull fails, the bytes received stay for the next one.
    let ctl = Ctl::new(&t.path().join("s"));
    let o = pull(&ctl, &name, &["--retry", "0"]);
    assert!(!o.ok, "{}", o.stdout);
    assert_eq!(o.stderr.lines().filter(|l| l.starts_with("unionctl: error")).count(), 1, "{}", o.stderr);
    assert!(ctl.ok(&["image", "ls", "-q"]).trim().is_empty());
    let p = partials(&ctl);
    assert!(p.len() == 1 && p[0].1 > 512 << 10, "partial download kept: {p:?}");
    let o = pull(&ctl, &name, &[]);
    assert_eq!(pulled_id(&o), id);
    let ranges = proxy.ranges();
    assert!(
        ranges.iter().any(|r| r.contains(&format!("range: bytes={}-", p[0].1))),
        "resumed where it stopped: {ranges:?}"
    );
    assert!(partials(&ctl).is_empty());

    // With retries: one pull gets through the cut on its own.
    proxy.cuts.store(0, std::sync::atomic::Ordering::SeqCst);
    proxy.seen.lock().unwrap().clear();
    let ctl = Ctl::new(&t.path().join("s2"));
    let o = pull(&ctl, &name, &["--retry", "2"]);
    assert_eq!(pulled_id(&o), id);
    assert_eq!(proxy.cuts.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(!proxy.ranges().is_empty(), "the retry asked for the rest only");

    // A server that ignores Range (answers 200): the pull still ends right.
    proxy.cuts.store(0, std::sync::atomic::Ordering::SeqCst);
    let ctl = Ctl::new(&t.path().join("s3"));
    assert!(!pull(&ctl, &name, &["--retry", "0"]).ok);
    proxy.set(Mode::StripRange);
    let o = pull(&ctl, &name, &[]);
    assert_eq!(pulled_id(&o), id);

    // image prune removes what a pull that never finished left.
    proxy.cuts.store(0, std::sync::atomic::Ordering::SeqCst);
    proxy.set(Mode::CutOnce(1 << 20));
    let ctl = Ctl::new(&t.path().join("s4"));
    assert!(!pull(&ctl, &name, &["--retry", "0"]).ok);
    assert_eq!(partials(&ctl).len(), 1);
    ctl.ok(&["image", "prune"]);
    assert!(partials(&ctl).is_empty());
}

#[test]
fn killed_pull_resumes() {
    let t = tmp();
    let reg = Registry::start(t.path(), Auth::None);
    let id = push_big(t.path(), &reg);
    let proxy = Proxy::start(reg.port, Mode::Slow(16 << 10));
    let name = format!("127.0.0.1:{}/res/big:v1", proxy.port);
    let ctl = Ctl::new(&t.path().join("s"));
    let mut child = Proc(
        Command::new(env!("CARGO_BIN_EXE_unionctl"))
            .arg("--root")
            .arg(&ctl.root)
            .args(["pull", "--tls-verify=false", &name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = std::time::Instant::now();
    // SIGKILL somewhere in the middle of the big layer.
    let stop_at = 400_000 + (std::process::id() as u64 % 7) * 200_000;
    while partials(&ctl).iter().all(|(_, n)| *n < stop_at) {
        assert!(t0.elapsed().as_secs() < 30, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let have = partials(&ctl).iter().map(|(_, n)| *n).max().unwrap();
    proxy.set(Mode::Pass);
    let o = pull(&ctl, &name, &[]);
    assert_eq!(pulled_id(&o), id);
    let ranges = proxy.ranges();
    assert!(ranges.iter().any(|r| r.contains("range: bytes=") && !r.contains("bytes=0-")), "{ranges:?} (had {have})");
    assert!(partials(&ctl).is_empty());
    assert!(fs::read_dir(ctl.root.join("tmp")).unwrap().flatten().all(|e| e.file_name() == "locks"), "tmp/ swept");
}

#[test]
fn bad_cases_fail_in_one_line_and_change_nothing() {
    let t = tmp();
    let reg = Registry::start(t.path(), Auth::None);
    let h = &reg.host;
    let plain = layer(&[M::File("data.txt", b"the original contents of this file\n", 0o644)]);
    let other = layer(&[M::File("gone.txt", b"this blob will be removed\n", 0o644)]);
    // Pushed by unionctl, which sends the blobs as stored (skopeo would gzip them).
    let loader = Ctl::new(&t.path().join("loader"));
    for (dir, l, repo) in [("c", &plain, "corrupt"), ("m", &other, "missing")] {
        oci_layout(&t.path().join(dir), std::slice::from_ref(l), Comp::None, "v1");
        loader.ok(&["image", "load", "-i", &t.path().join(dir).display().to_string()]);
        loader.ok(&["push", "--tls-verify=false", &format!("localhost/{dir}:v1"), &format!("{h}/bad/{repo}:v1")]);
    }
    // A store with something in it.
    let ctl = Ctl::new(&t.path().join("s"));
    let (ok, _) = oci_layout(&t.path().join("ok"), &rich_layers(), Comp::Gzip, "v1");
    skopeo_push(&t.path().join("ok"), "v1", &format!("{h}/bad/ok:v1"), &[]);
    assert_eq!(pulled_id(&pull(&ctl, &format!("{h}/bad/ok:v1"), &[])), ok.id);

    let tv = ["--tls-verify=false"];
    pull_fails(&ctl, &format!("{h}/bad/nosuchrepo:v1"), &tv, "not found");
    pull_fails(&ctl, &format!("{h}/bad/ok:nosuchtag"), &tv, "not found");
    pull_fails(&ctl, &format!("{h}/bad/ok@sha256:{}", "0".repeat(64)), &tv, "not found");
    pull_fails(&ctl, &format!("{h}/bad/ok:v1"), &[], "--tls-verify=false");
    pull_fails(&ctl, "127.0.0.1:1/bad/ok:v1", &tv, "127.0.0.1:1");
    pull_fails(&ctl, &format!("{h}/Bad/Upper:v1"), &tv, "invalid image reference");
    // The registry serves a corrupted blob (same size, one byte changed).
    let blob = reg.blob_data(&sha(&plain));
    let mut data = fs::read(&blob).unwrap();
    let at = data.windows(8).position(|w| w == b"original").unwrap();
    data[at] ^= 0x20;
    fs::write(&blob, &data).unwrap();
    pull_fails(&ctl, &format!("{h}/bad/corrupt:v1"), &tv, "mismatch");
    // The manifest names a blob the registry lost.
    fs::remove_dir_all(reg.blob_data(&sha(&other)).parent().unwrap()).unwrap();
    pull_fails(&ctl, &format!("{h}/bad/missing:v1"), &tv, "BLOB_UNKNOWN");
}

#[test]
fn concurrent_pulls_store_each_layer_once() {
    let t = tmp();
    let reg = Registry::start(t.path(), Auth::None);
    let base = big_layer("base.bin", 1 << 20, 3);
    let mut ids = Vec::new();
    for (i, extra) in [&b"one\n"[..], &b"two\n"[..]].iter().enumerate() {
        let l = vec![base.clone(), layer(&[M::File("which", extra, 0o644)])];
        let (b, _) = oci_layout(&t.path().join(format!("o{i}")), &l, Comp::Gzip, "v1");
        skopeo_push(&t.path().join(format!("o{i}")), "v1", &format!("{}/conc/img{i}:v1", reg.host), &[]);
        ids.push(b.id);
    }
    let ctl = Ctl::new(&t.path().join("s"));
    ctl.ok(&["image", "ls"]);
    // Two processes at once on one store.
    let hs: Vec<_> = (0..2)
        .map(|i| {
            let (root, name) = (ctl.root.clone(), format!("{}/conc/img{i}:v1", reg.host));
            std::thread::spawn(move || {
                Command::new(env!("CARGO_BIN_EXE_unionctl"))
                    .arg("--root")
                    .arg(root)
                    .args(["pull", "--tls-verify=false", &name])
                    .output()
                    .unwrap()
            })
        })
        .collect();
    let outs: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    for (o, id) in outs.iter().zip(&ids) {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id);
    }
    assert_eq!(ctl.layers().len(), 3, "base stored once: {:?}", ctl.layers());
    let base_blob = sha(&gzip(&base));
    assert_eq!(reg.blob_gets(&base_blob), 1, "the base layer was downloaded once");
}

#[test]
fn redirect_to_another_host_gets_no_credentials() {
    let t = tmp();
    let reg = Registry::start(t.path(), Auth::None);
    let (built, _) = oci_layout(&t.path().join("oci"), &rich_layers(), Comp::Gzip, "v1");
    skopeo_push(&t.path().join("oci"), "v1", &format!("{}/redir/rich:v1", reg.host), &[]);
    // The "storage" host the blobs are redirected to, and the registry in front.
    let storage = Proxy::start(reg.port, Mode::Pass);
    let front = Proxy::start(reg.port, Mode::Redirect(storage.port));
    let ctl = Ctl::new(&t.path().join("s"));
    let o = pull(&ctl, &format!("127.0.0.1:{}/redir/rich:v1", front.port), &["--creds", "user:secret"]);
    assert_eq!(pulled_id(&o), built.id);
    let front_seen = front.seen.lock().unwrap().clone();
    assert!(front_seen.iter().any(|l| l.contains("/manifests/") && l.ends_with(" authorization")), "{front_seen:?}");
    let seen = storage.seen.lock().unwrap().clone();
    assert!(seen.iter().filter(|l| l.contains("/blobs/")).count() >= 3, "{seen:?}");
    assert!(seen.iter().all(|l| !l.contains("authorization")), "credentials went to another host: {seen:?}");
}

#[test]
fn push_recompresses_on_request() {
    let t = tmp();
    let reg = Registry::start(t.path(), Auth::None);
    let (built, _) = oci_layout(&t.path().join("g"), &rich_layers(), Comp::Gzip, "v1");
    let ctl = Ctl::new(&t.path().join("s"));
    ctl.ok(&["image", "load", "-i", &t.path().join("g").display().to_string()]);
    let dest = format!("{}/comp/rich:zstd", reg.host);
    let o = ctl.run(&["push", "--tls-verify=false", "--compression-format", "zstd", "localhost/g:v1", &dest]);
    assert!(o.ok, "{}", o.stderr);
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &format!("docker://{dest}")]);
    assert_eq!(raw.matches("application/vnd.oci.image.layer.v1.tar+zstd").count(), 3, "{raw}");
    assert_eq!(format!("sha256:{}", sha(raw.as_bytes())), o.stdout.trim());
    let fresh = Ctl::new(&t.path().join("fresh"));
    assert_eq!(pulled_id(&pull(&fresh, &dest, &[])), built.id, "same image ID in another compression");
    // Chunked upload (PATCH pieces, then PUT), seen in the registry's log.
    let big = vec![big_layer("big.bin", 300 << 10, 9)];
    let (b2, _) = oci_layout(&t.path().join("b"), &big, Comp::Gzip, "v1");
    ctl.ok(&["image", "load", "-i", &t.path().join("b").display().to_string()]);
    let dest2 = format!("{}/comp/chunked:1", reg.host);
    let o = ctl.run(&["push", "--tls-verify=false", "--chunk-size", "65536", "localhost/b:v1", &dest2]);
    assert!(o.ok, "{}", o.stderr);
    let log = reg.log_text();
    let patches = log.lines().filter(|l| l.contains("\"PATCH /v2/comp/chunked/blobs/uploads/")).count();
    assert!(patches >= 5, "{patches} chunks");
    let fresh = Ctl::new(&t.path().join("fresh2"));
    assert_eq!(pulled_id(&pull(&fresh, &dest2, &[])), b2.id);
    // A 503 on an upload is retried (--retry 0: reported).
    let proxy = Proxy::start(reg.port, Mode::FailUploadOnce);
    let via = format!("127.0.0.1:{}/comp/retried:1", proxy.port);
    let o = ctl.run(&["push", "-q", "--tls-verify=false", "--retry", "0", "localhost/b:v1", &via]);
    one_line_error(&o, "HTTP 503");
    let o = ctl.run(&["push", "--tls-verify=false", "localhost/b:v1", &via]);
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(proxy.cuts.load(std::sync::atomic::Ordering::SeqCst), 3, "one 503, then the uploads went through");
    assert_eq!(pulled_id(&pull(&Ctl::new(&t.path().join("fresh3")), &via, &[])), b2.id);
    let o = ctl.run(&["push", "--tls-verify=false", "--compression-format", "lz4", "localhost/g:v1", &dest]);
    one_line_error(&o, "unknown compression format");
}

#[test]
fn committed_container_pushes_and_pulls_back() {
    let t = tmp();
    let reg = Registry::start(t.path(), Auth::None);
    let (built, _) = oci_layout(&t.path().join("oci"), &rich_layers(), Comp::Gzip, "v1");
    let ctl = Ctl::new(&t.path().join("a"));
    ctl.ok(&["image", "load", "-i", &t.path().join("oci").display().to_string()]);
    let image = ctl.ok(&["image", "ls", "-q"]).trim().to_string();
    assert!(built.id.starts_with(&image) || image.starts_with(&built.id[..12]), "{image} vs {}", built.id);
    ctl.ok(&["create", "--name", "c", &built.id]);
    let merged = std::path::PathBuf::from(ctl.ok(&["mount", "c"]).trim());
    fs::write(merged.join("committed.txt"), b"from a container\n").unwrap();
    ctl.ok(&["unmount", "c"]);
    let id = ctl.ok(&["commit", "c", "test/committed:1"]).trim().to_string();
    let dest = format!("{}/test/committed:1", reg.host);
    ctl.ok(&["push", "--tls-verify=false", "test/committed:1", &dest]);
    // Pulled into another store: the same image, the change in its top layer.
    let other = Ctl::new(&t.path().join("b"));
    let o = pull(&other, &dest, &[]);
    assert_eq!(pulled_id(&o), id);
    let v: serde_json::Value = serde_json::from_str(&other.ok(&["image", "inspect", &dest])).unwrap();
    let top = std::path::PathBuf::from(v[0]["LayerDirs"][0].as_str().unwrap());
    assert_eq!(fs::read(top.join("committed.txt")).unwrap(), b"from a container\n");
    ctl.ok(&["rm", "c"]);
}
