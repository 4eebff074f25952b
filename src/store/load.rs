//! `image load`: read the source, unpack its layers (in parallel, verified
//! in one streaming pass each), then record the images under the store lock.
//! A failed load leaves the store as it was.

use crate::store::digest::Digest;
use crate::store::error::{err, Context, Result};
use crate::store::formats::{plans, ImagePlan};
use crate::store::images::{self, ImageRecord};
use crate::store::layers::{self, LayerRecord};
use crate::store::source::{open_input, Source};
use crate::store::util::{now_secs, rfc3339, write_atomic};
use crate::store::Store;
use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What was loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: String,
    pub names: Vec<String>,
    pub new_layers: usize,
    pub reused_layers: usize,
}

/// Progress callbacks (a terminal bar, or nothing).
pub trait Progress: Sync {
    fn start(&self, _total_bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

/// Load every image found at `input` (a directory or an archive file).
pub fn load(store: &Store, input: &Path, progress: &dyn Progress) -> Result<Vec<Loaded>> {
    let tmp = store.temp_dir("load")?;
    let label = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    let label = label.trim_end_matches(".tar").to_lowercase();
    let src = open_input(input, &tmp.path)?;
    let plans = plans(src.as_ref(), &label)?;
    let mut out = Vec::new();
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    for p in plans {
        out.push(load_plan(store, src.as_ref(), p, progress, jobs)?);
    }
    Ok(out)
}

/// Unpack the layers not in the store yet (a few at a time); on failure the
/// layers this call added and no image uses are removed again.
fn unpack_all(
    store: &Store,
    src: &dyn Source,
    todo: &[&layers::LayerPlan],
    progress: &dyn Progress,
    jobs: usize,
) -> Result<HashMap<Digest, (LayerRecord, bool)>> {
    let total: u64 = todo.iter().filter_map(|l| src.size(&l.path)).sum();
    progress.start(total);
    let done: Mutex<HashMap<Digest, (LayerRecord, bool)>> = Mutex::new(HashMap::new());
    let first_err: Mutex<Option<crate::store::error::Error>> = Mutex::new(None);
    let next = AtomicU64::new(0);
    let workers = jobs.min(todo.len()).max(1);
    let advance = |n: u64| progress.advance(n);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= todo.len() || first_err.lock().map_or(true, |e| e.is_some()) {
                    break;
                }
                match layers::ensure(store, src, todo[i], &advance) {
                    Ok(r) => {
                        if let Ok(mut d) = done.lock() {
                            d.insert(todo[i].diff_id.clone(), r);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = first_err.lock() {
                            f.get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    progress.finish();
    let done = done.into_inner().unwrap_or_default();
    if let Some(e) = first_err.into_inner().ok().flatten() {
        drop_new_layers(store, &done);
        return Err(e);
    }
    Ok(done)
}

/// Load one planned image from `src`, unpacking up to `jobs` layers at once
/// (also used by `pull`, whose source is a registry).
pub fn load_plan(
    store: &Store,
    src: &dyn Source,
    plan: ImagePlan,
    progress: &dyn Progress,
    jobs: usize,
) -> Result<Loaded> {
    // Unique layers, each unpacked once.
    let mut todo: Vec<&layers::LayerPlan> = Vec::new();
    for l in &plan.layers {
        if !todo.iter().any(|t| t.diff_id == l.diff_id) {
            todo.push(l);
        }
    }
    let mut done = HashMap::new();
    let mut attempts = 0;
    // The image is recorded under the store lock, which every layer removal
    // also takes: a layer that another process's failed load or prune
    // removed since we saw it is unpacked again before we record.
    let _lock = loop {
        let missing: Vec<&layers::LayerPlan> = todo
            .iter()
            .copied()
            .filter(|l| layers::read_record(store, &l.diff_id).is_none() || !done.contains_key(&l.diff_id))
            .collect();
        if !missing.is_empty() {
            attempts += 1;
            if attempts > 3 {
                return err("layers keep disappearing while loading (another process is removing them)");
            }
            for (k, v) in unpack_all(store, src, &missing, progress, jobs)? {
                done.insert(k, v);
            }
        }
        let lock = store.lock()?;
        if todo.iter().all(|l| layers::read_record(store, &l.diff_id).is_some()) {
            break lock;
        }
    };
    let mut recs = Vec::new();
    for l in &plan.layers {
        let (r, _) = done.get(&l.diff_id).ok_or_else(|| crate::store::error::Error("layer lost during load".into()))?;
        recs.push(r.clone());
    }
    let new_layers = done.values().filter(|(_, new)| *new).count();
    let id = plan.config_digest.hex().to_string();
    let cfg_path = store.blob_path(&plan.config_digest);
    if !cfg_path.exists() {
        write_atomic(&cfg_path, &plan.config)?;
    }
    // Keep a manifest only when it lists exactly the blobs the store holds
    // (a layer already stored may have come in another compression).
    let blobs: Vec<String> = recs.iter().map(|r| r.blob.digest.clone()).collect();
    let manifest_digest = match &plan.manifest {
        Some((bytes, d)) if manifest_layers(bytes) == blobs => {
            let p = store.blob_path(d);
            if !p.exists() {
                write_atomic(&p, bytes)?;
            }
            Some(d.to_string())
        }
        _ => None,
    };
    let existing = images::list(store)?.into_iter().find(|i| i.id == id);
    let rec = ImageRecord {
        id: id.clone(),
        names: existing.as_ref().map(|e| e.names.clone()).unwrap_or_default(),
        config_digest: plan.config_digest.to_string(),
        layers: plan.layers.iter().map(|l| l.diff_id.to_string()).collect(),
        layer_blobs: recs.iter().map(|r| r.blob.clone()).collect(),
        manifest_digest: existing.as_ref().and_then(|e| e.manifest_digest.clone()).or(manifest_digest),
        size: recs.iter().map(|r| r.size).sum(),
        loaded: existing.as_ref().map_or_else(|| rfc3339(now_secs()), |e| e.loaded.clone()),
    };
    images::save(store, &rec)?;
    for n in &plan.names {
        images::add_name(store, &id, n)?;
    }
    let names = images::resolve(store, &id).map(|r| r.names).unwrap_or_default();
    Ok(Loaded { id, names, new_layers, reused_layers: done.len() - new_layers })
}

fn manifest_layers(bytes: &[u8]) -> Vec<String> {
    serde_json::from_slice::<crate::store::spec::Manifest>(bytes)
        .map(|m| m.layers.into_iter().map(|l| l.digest).collect())
        .unwrap_or_default()
}

fn drop_new_layers(store: &Store, done: &HashMap<Digest, (LayerRecord, bool)>) {
    let Ok(_lock) = store.lock() else { return };
    let used: std::collections::HashSet<String> =
        images::list(store).unwrap_or_default().iter().flat_map(|i| i.layers.clone()).collect();
    for (d, (rec, new)) in done {
        if *new && !used.contains(d.as_str()) {
            let _ = layers::remove(store, d);
            if let Ok(b) = Digest::parse(&rec.blob.digest) {
                let _ = fs::remove_file(store.blob_path(&b));
            }
        }
    }
}

/// Read everything of the given input into a temp file (for `load -i -`).
pub fn spool_stdin(store: &Store) -> Result<(crate::store::TempDir, std::path::PathBuf)> {
    let tmp = store.temp_dir("stdin")?;
    let p = tmp.path.join("input");
    let space = crate::store::limits::Space::new(&tmp.path).ctx(tmp.path.display())?;
    let mut f = crate::store::limits::Checked::new(fs::File::create(&p).ctx(p.display())?, space);
    let n = std::io::copy(&mut std::io::stdin().lock(), &mut f).ctx("standard input")?;
    if n == 0 {
        return err("standard input is empty");
    }
    Ok((tmp, p))
}
