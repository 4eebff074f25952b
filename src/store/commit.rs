//! `commit`: a container's upper becomes a new layer on top of its image's.
//!
//! The upper is written as an OCI layer tar ([`crate::store::archive`] in
//! layer mode: `.wh.NAME` for whiteouts, `.wh..wh..opq` for opaque
//! directories, no overlay-private xattrs, hard links kept), the image
//! config gets the container's config, the `-c` changes, the new diff ID
//! and a history entry, and the result is an OCI layout in tmp/ (the base
//! layers' blobs hard-linked from the store) that goes through the ordinary
//! `image load` path: verified, digest-addressed, base layers shared.

use crate::store::containers::Container;
use crate::store::digest::{to_hex, Digest};
use crate::store::error::{err, Context, Error, Result};
use crate::store::{images, load, spec, util, Store};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;

#[derive(Debug, Default, Clone)]
pub struct Opts {
    pub message: Option<String>,
    pub author: Option<String>,
    /// Dockerfile instructions (`CMD ...`, `ENV k=v`, ...).
    pub changes: Vec<String>,
    pub name: Option<String>,
}

struct Hashing<W> {
    inner: W,
    h: Sha256,
    n: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.h.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `["a","b"]` or a shell form (`/bin/sh -c ...`).
fn command_form(v: &str) -> Vec<String> {
    let t = v.trim();
    if t.starts_with('[') {
        if let Ok(a) = serde_json::from_str::<Vec<String>>(t) {
            return a;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), t.to_string()]
}

/// `k=v k2="v 2"` or `k v` (the old single form).
fn pairs(v: &str) -> Vec<(String, String)> {
    let t = v.trim();
    if !t.split_whitespace().next().unwrap_or("").contains('=') {
        let (k, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        return vec![(k.to_string(), rest.trim().to_string())];
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut words = Vec::new();
    for ch in t.chars() {
        match (quote, ch) {
            (None, '"' | '\'') => quote = Some(ch),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    for w in words {
        let (k, v) = w.split_once('=').unwrap_or((&w, ""));
        out.push((k.to_string(), v.to_string()));
    }
    out
}

/// Apply one Dockerfile instruction to a config's `config` object.
pub fn apply_change(cfg: &mut Map<String, Value>, change: &str) -> Result<()> {
    let t = change.trim();
    let (ins, arg) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    let arg = arg.trim();
    match ins.to_ascii_uppercase().as_str() {
        "CMD" => {
            cfg.insert("Cmd".into(), json!(command_form(arg)));
        }
        "ENTRYPOINT" => {
            cfg.insert("Entrypoint".into(), json!(command_form(arg)));
        }
        "ENV" => {
            let mut env: Vec<String> = cfg
                .get("Env")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            for (k, v) in pairs(arg) {
                env.retain(|e| e.split('=').next() != Some(k.as_str()));
                env.push(format!("{k}={v}"));
            }
            cfg.insert("Env".into(), json!(env));
        }
        "LABEL" => {
            let labels = cfg.entry("Labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            for (k, v) in pairs(arg) {
                labels[k] = json!(v);
            }
        }
        "WORKDIR" => {
            cfg.insert("WorkingDir".into(), json!(arg));
        }
        "USER" => {
            cfg.insert("User".into(), json!(arg));
        }
        "STOPSIGNAL" => {
            cfg.insert("StopSignal".into(), json!(arg));
        }
        "EXPOSE" => {
            let ports = cfg.entry("ExposedPorts").or_insert_with(|| json!({}));
            for p in arg.split_whitespace() {
                let p = if p.contains('/') { p.to_string() } else { format!("{p}/tcp") };
                ports[p] = json!({});
            }
        }
        "VOLUME" => {
            let vols = cfg.entry("Volumes").or_insert_with(|| json!({}));
            let list: Vec<String> = if arg.starts_with('[') {
                serde_json::from_str(arg).map_err(|_| Error(format!("invalid VOLUME {arg:?}")))?
            } else {
                arg.split_whitespace().map(str::to_string).collect()
            };
            for v in list {
                vols[v] = json!({});
            }
        }
        "ONBUILD" => {}
        _ => {
            return err(format!(
                "invalid change {change:?}: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME or WORKDIR"
            ))
        }
    }
    if arg.is_empty() && !ins.eq_ignore_ascii_case("ONBUILD") {
        return err(format!("invalid change {change:?}: no value"));
    }
    Ok(())
}

/// `name[:tag]` as podman names a committed image (`localhost/` when no registry).
pub fn image_name(n: &str) -> Result<String> {
    let n = util::normalize_name(n);
    let (repo, tag) = util::split_name(&n);
    let ok = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b))
    };
    if !ok(repo) || tag.is_empty() || repo.starts_with('/') || repo.ends_with('/') {
        return err(format!("invalid image name {n:?} (lower case letters, digits, . _ - /)"));
    }
    let first = repo.split('/').next().unwrap_or_default();
    let has_registry = repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    Ok(if has_registry { n.clone() } else { format!("localhost/{n}") })
}

/// Commit the container; returns the new image's ID (hex).
pub fn commit(store: &Store, c: &Container, o: &Opts) -> Result<String> {
    let name = o.name.as_deref().map(image_name).transpose()?;
    let img = c.image(store)?;
    let (config_bytes, _) = img.config(store)?;
    let mut config: Value = serde_json::from_slice(&config_bytes)?;
    // Check the changes before any work.
    let mut inner = config.get("config").and_then(|v| v.as_object()).cloned().unwrap_or_default();
    let set = |m: &mut Map<String, Value>, k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    // The container's own config (create flags included) is the image's.
    if let Some(cmd) = &c.config.cmd {
        set(&mut inner, "Cmd", json!(cmd));
    }
    if let Some(ep) = &c.config.entrypoint {
        set(&mut inner, "Entrypoint", json!(ep));
    }
    if !c.config.env.is_empty() {
        set(&mut inner, "Env", json!(c.config.env));
    }
    if !c.config.working_dir.is_empty() {
        set(&mut inner, "WorkingDir", json!(c.config.working_dir));
    }
    if !c.config.user.is_empty() {
        set(&mut inner, "User", json!(c.config.user));
    }
    if !c.config.labels.is_empty() {
        set(&mut inner, "Labels", json!(c.config.labels));
    }
    for ch in &o.changes {
        apply_change(&mut inner, ch)?;
    }
    crate::store::mounts::sync(store, c);
    let tmp = store.temp_dir("commit")?;
    let layout = tmp.path.join("oci");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).ctx(blobs.display())?;
    // The layer.
    let layer_tmp = tmp.path.join("layer.tar");
    let upper = c.upper(store);
    let ufd = crate::sys::at::openat(libc::AT_FDCWD, upper.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .ctx(upper.display())?;
    let space = crate::store::limits::Space::new(&tmp.path).ctx(tmp.path.display())?;
    let f = crate::store::limits::Checked::new(File::create(&layer_tmp).ctx(layer_tmp.display())?, space);
    let out = Hashing { inner: io::BufWriter::with_capacity(1 << 20, f), h: Sha256::new(), n: 0 };
    let opts = crate::store::archive::Options { layer: true, ..Default::default() };
    let out = crate::store::archive::write_tree(ufd.as_raw_fd(), &opts, out).ctx("writing the layer")?;
    let Hashing { inner: buf, h, n } = out;
    buf.into_inner().map_err(|e| e.into_error()).and_then(|f| f.into_inner().sync_all()).ctx("writing the layer")?;
    let layer_digest = Digest::from_hex(&to_hex(&h.finalize()))?;
    fs::rename(&layer_tmp, blobs.join(layer_digest.hex())).ctx("layer blob")?;
    // The config.
    let now = crate::store::containers::now_rfc3339_nanos();
    let cfg = config.as_object_mut().ok_or_else(|| Error("image config is not an object".into()))?;
    cfg.insert("config".into(), Value::Object(inner));
    cfg.insert("created".into(), json!(now));
    if let Some(a) = &o.author {
        cfg.insert("author".into(), json!(a));
    }
    let rootfs = cfg.entry("rootfs").or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    match rootfs.get_mut("diff_ids").and_then(|d| d.as_array_mut()) {
        Some(ids) => ids.push(json!(layer_digest.to_string())),
        None => rootfs["diff_ids"] = json!([layer_digest.to_string()]),
    }
    let mut h = Map::new();
    h.insert("created".into(), json!(now));
    h.insert("created_by".into(), json!(format!("unionctl commit {}", c.command().join(" ")).trim_end()));
    if let Some(a) = &o.author {
        h.insert("author".into(), json!(a));
    }
    if let Some(m) = &o.message {
        h.insert("comment".into(), json!(m));
    }
    match cfg.get_mut("history").and_then(|x| x.as_array_mut()) {
        Some(hist) => hist.push(Value::Object(h)),
        None => {
            cfg.insert("history".into(), json!([Value::Object(h)]));
        }
    }
    let config_out = serde_json::to_vec(&config)?;
    let config_digest = Digest::of(&config_out);
    fs::write(blobs.join(config_digest.hex()), &config_out).ctx("config blob")?;
    // Base layer blobs, linked from the store.
    let mut layers = Vec::new();
    for b in &img.layer_blobs {
        let d = Digest::parse(&b.digest)?;
        let to = blobs.join(d.hex());
        if !to.exists() {
            let from = store.blob_path(&d);
            if fs::hard_link(&from, &to).is_err() {
                fs::copy(&from, &to).ctx(format!("layer blob {}", d.short()))?;
            }
        }
        layers.push(json!({"mediaType": b.media_type, "digest": b.digest, "size": b.size}));
    }
    layers.push(json!({"mediaType": spec::OCI_LAYER, "digest": layer_digest.to_string(), "size": n}));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": spec::OCI_MANIFEST,
        "config": {"mediaType": spec::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_out.len()},
        "layers": layers,
    }))?;
    let md = Digest::of(&manifest);
    fs::write(blobs.join(md.hex()), &manifest).ctx("manifest blob")?;
    let index = json!({"schemaVersion": 2, "mediaType": spec::OCI_INDEX, "manifests": [
        {"mediaType": spec::OCI_MANIFEST, "digest": md.to_string(), "size": manifest.len()}]});
    fs::write(layout.join("index.json"), serde_json::to_vec(&index)?).ctx("index.json")?;
    fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).ctx("oci-layout")?;
    let loaded = load::load(store, &layout, &load::NoProgress)?;
    let id = loaded.first().map(|l| l.id.clone()).ok_or_else(|| Error("the committed image was not stored".into()))?;
    if let Some(n) = name {
        let _lock = store.lock()?;
        images::add_name(store, &id, &n)?;
    }
    Ok(id)
}
