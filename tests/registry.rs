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
