//! Image records: images/<id>/image.json, names, lookup by name or ID prefix,
//! removal and garbage collection of unreferenced layers and blobs.

use crate::store::digest::Digest;
use crate::store::error::{err, Context, Result};
use crate::store::layers::{self, BlobRef};
use crate::store::spec::ImageConfig;
use crate::store::util::{normalize_name, read_json, write_json};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs;

/// images/<id>/image.json
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageRecord {
    /// sha256 of the config blob (hex).
    pub id: String,
    pub names: Vec<String>,
    pub config_digest: String,
    /// Diff IDs, bottom layer first.
    pub layers: Vec<String>,
    /// The layer blobs as loaded, same order.
    pub layer_blobs: Vec<BlobRef>,
    #[serde(default)]
    pub manifest_digest: Option<String>,
    /// Bytes of file data in all layers.
    pub size: u64,
    pub loaded: String,
}

impl ImageRecord {
    pub fn config(&self, store: &Store) -> Result<(Vec<u8>, ImageConfig)> {
        let d = Digest::parse(&self.config_digest)?;
        let bytes =
            fs::read(store.blob_path(&d)).ctx(format!("image {}: config", self.id.get(..12).unwrap_or(&self.id)))?;
        let cfg = serde_json::from_slice(&bytes)?;
        Ok((bytes, cfg))
    }

    /// Lower directories for unionfs, top-most first.
    pub fn layer_dirs(&self, store: &Store) -> Result<Vec<std::path::PathBuf>> {
        self.layers.iter().rev().map(|d| Ok(store.layer_dir(&Digest::parse(d)?).join("diff"))).collect()
    }
}

pub fn list(store: &Store) -> Result<Vec<ImageRecord>> {
    let mut out = Vec::new();
    for e in fs::read_dir(store.root.join("images")).ctx("images")?.flatten() {
        let p = e.path().join("image.json");
        if p.exists() {
            // One unreadable record must not make the whole store unusable.
            match read_json::<ImageRecord>(&p) {
                Ok(r) => out.push(r),
                Err(e) => eprintln!("unionctl: warning: skipping image record: {e}"),
            }
        }
    }
    out.sort_by(|a, b| b.loaded.cmp(&a.loaded).then(a.id.cmp(&b.id)));
    Ok(out)
}

pub fn save(store: &Store, rec: &ImageRecord) -> Result<()> {
    let dir = store.image_dir(&rec.id);
    fs::create_dir_all(&dir).ctx(dir.display())?;
    write_json(&dir.join("image.json"), rec)
}

/// Find an image by name (`name[:tag]`), full ID, `sha256:ID` or a unique ID prefix.
pub fn resolve(store: &Store, what: &str) -> Result<ImageRecord> {
    let all = list(store)?;
    if let Some(i) = all.iter().find(|i| matching_name(i, what).is_some()) {
        return Ok(i.clone());
    }
    let id = what.strip_prefix("sha256:").unwrap_or(what);
    if id.len() >= 3 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hits: Vec<&ImageRecord> = all.iter().filter(|i| i.id.starts_with(id)).collect();
        match hits.len() {
            1 => return Ok(hits[0].clone()),
            0 => {}
            n => return err(format!("image ID prefix {what:?} is ambiguous ({n} images)")),
        }
    }
    err(format!("image not known: {what}"))
}

/// The image's name that `what` designates: exact, with `:latest` added, or
/// short for the registries podman and docker fill in.
pub fn matching_name(img: &ImageRecord, what: &str) -> Option<String> {
    let name = normalize_name(what);
    let candidates = [
        what.to_string(),
        name.clone(),
        format!("localhost/{name}"),
        format!("docker.io/{name}"),
        format!("docker.io/library/{name}"),
    ];
    candidates.into_iter().find(|c| img.names.contains(c))
}

/// Give `name` to image `id`, taking it from any other image.
pub fn add_name(store: &Store, id: &str, name: &str) -> Result<()> {
    let name = normalize_name(name);
    for mut other in list(store)? {
        if other.id != id && other.names.contains(&name) {
            other.names.retain(|n| *n != name);
            save(store, &other)?;
        }
    }
    let mut rec = read_json::<ImageRecord>(&store.image_dir(id).join("image.json"))?;
    if !rec.names.contains(&name) {
        rec.names.push(name);
        save(store, &rec)?;
    }
    Ok(())
}

/// Delete an image record (the caller holds the lock and checked users).
pub fn delete(store: &Store, id: &str) -> Result<()> {
    let dir = store.image_dir(id);
    let _ = fs::remove_file(dir.join("image.json"));
    crate::sys::tree::remove_tree(&dir).ctx(dir.display())
}

/// Remove layers and blobs no image references; returns (layers, blobs, bytes) freed.
pub fn gc(store: &Store) -> Result<(usize, usize, u64)> {
    let imgs = list(store)?;
    let used_layers: HashSet<String> = imgs.iter().flat_map(|i| i.layers.iter().cloned()).collect();
    let mut used_blobs: HashSet<String> = HashSet::new();
    for i in &imgs {
        used_blobs.insert(i.config_digest.clone());
        used_blobs.extend(i.manifest_digest.iter().cloned());
        used_blobs.extend(i.layer_blobs.iter().map(|b| b.digest.clone()));
    }
    let (mut nl, mut nb, mut bytes) = (0, 0, 0);
    for d in layers::list(store) {
        if !used_layers.contains(d.as_str()) {
            bytes += crate::sys::tree::du_path(&store.layer_dir(&d));
            layers::remove(store, &d)?;
            nl += 1;
        }
    }
    for e in fs::read_dir(store.root.join("blobs/sha256")).ctx("blobs")?.flatten() {
        let d = format!("sha256:{}", e.file_name().to_string_lossy());
        if !used_blobs.contains(&d) {
            bytes += e.metadata().map_or(0, |m| m.len());
            fs::remove_file(e.path()).ctx(e.path().display())?;
            nb += 1;
        }
    }
    Ok((nl, nb, bytes))
}
