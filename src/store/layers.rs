//! Layers: one extracted directory per diff ID, shared by every image.
//!
//! A layer is unpacked into tmp/, its compressed digest and diff ID verified
//! in the same streaming pass, then renamed into place; a per-layer lock
//! makes a concurrent loader of the same layer wait and reuse it.

use crate::store::compress::{decompress, Compression};
use crate::store::digest::{Digest, HashingReader};
use crate::store::error::{err, Context, Result};
use crate::store::limits::{Checked, Space};
use crate::store::source::Source;
use crate::store::unpack;
use crate::store::util::{now_secs, rfc3339, write_json};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Read, Write};

/// A blob as stored in blobs/sha256.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BlobRef {
    pub digest: String,
    pub size: u64,
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

/// layers/<hex>/layer.json
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerRecord {
    pub diff_id: String,
    /// Bytes of file data in the layer.
    pub size: u64,
    pub entries: u64,
    pub blob: BlobRef,
    pub created: String,
    #[serde(default)]
    pub devices_recorded: u64,
}

/// What to load for one layer.
#[derive(Clone, Debug)]
pub struct LayerPlan {
    /// Path of the blob inside the source.
    pub path: String,
    /// Digest the blob must have, when the source says.
    pub digest: Option<Digest>,
    pub media_type: Option<String>,
    pub diff_id: Digest,
}

/// Passes what it reads through and writes it to a file.
struct Tee<R> {
    inner: R,
    out: io::BufWriter<Checked<File>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

pub fn read_record(store: &Store, diff_id: &Digest) -> Option<LayerRecord> {
    crate::store::util::read_json(&store.layer_dir(diff_id).join("layer.json")).ok()
}

fn media_type_for(c: Compression, given: Option<&str>) -> String {
    if let Some(m) = given {
        return m.to_string();
    }
    match c {
        Compression::None => crate::store::spec::OCI_LAYER,
        Compression::Gzip => crate::store::spec::OCI_LAYER_GZIP,
        Compression::Zstd => crate::store::spec::OCI_LAYER_ZSTD,
    }
    .to_string()
}

/// Make sure the layer is in the store; returns its record and whether it
/// was new. `progress` is told how many blob bytes were read.
pub fn ensure(
    store: &Store,
    src: &dyn Source,
    plan: &LayerPlan,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(LayerRecord, bool)> {
    let _lock = store.layer_lock(&plan.diff_id)?;
    if let Some(rec) = read_record(store, &plan.diff_id) {
        if store.blob_path(&Digest::parse(&rec.blob.digest)?).exists() {
            return Ok((rec, false));
        }
    }
    let work = store.temp_dir("layer")?;
    let diff = work.path.join("diff");
    fs::create_dir(&diff).ctx(diff.display())?;
    let blob_tmp = work.path.join("blob");
    let what = format!("layer {}", plan.diff_id.short());
    let raw = src.open(&plan.path)?;
    let counted = Counting { inner: raw, progress };
    let tee = Tee {
        inner: HashingReader::new(counted),
        out: io::BufWriter::with_capacity(
            1 << 20,
            Checked::new(File::create(&blob_tmp).ctx(blob_tmp.display())?, Space::new(&work.path).ctx(&what)?),
        ),
    };
    let mut tee = tee;
    let (comp, stats, diff_got, diff_size) = {
        let (comp, plain) = decompress(&mut tee).ctx(&what)?;
        let mut plain = HashingReader::new(plain);
        let stats = unpack::unpack(&mut plain, &diff).ctx(&what)?;
        let (d, n) = plain.finish().ctx(format!("{what}: corrupt or truncated stream"))?;
        (comp, stats, d, n)
    };
    // Whatever follows the compressed stream belongs to the blob too.
    io::copy(&mut tee, &mut io::sink()).ctx(&what)?;
    let Tee { inner, out } = tee;
    out.into_inner().map_err(|e| e.into_error()).and_then(|f| f.into_inner().sync_all()).ctx(&what)?;
    let (blob_digest, blob_size) = inner.finish().ctx(&what)?;
    if diff_got != plan.diff_id {
        return err(format!("{what}: diff_id mismatch: the config says {}, the layer is {diff_got}", plan.diff_id));
    }
    if let Some(want) = &plan.digest {
        if *want != blob_digest {
            return err(format!("{what}: digest mismatch: expected {want}, got {blob_digest}"));
        }
    }
    let _ = diff_size;
    let rec = LayerRecord {
        diff_id: plan.diff_id.to_string(),
        size: stats.bytes,
        entries: stats.entries,
        blob: BlobRef {
            digest: blob_digest.to_string(),
            size: blob_size,
            media_type: media_type_for(comp, plan.media_type.as_deref()),
        },
        created: rfc3339(now_secs()),
        devices_recorded: stats.devices_recorded,
    };
    let blob_final = store.blob_path(&blob_digest);
    let blob_new = !blob_final.exists();
    if blob_new {
        fs::rename(&blob_tmp, &blob_final).ctx(blob_final.display())?;
    }
    let placed = place(store, plan, &work, rec);
    if placed.is_err() && blob_new {
        // Only this layer (whose lock we hold) has this blob.
        let _ = fs::remove_file(&blob_final);
    }
    placed
}

/// Record the verified layer in `work` and move it into place.
fn place(
    store: &Store,
    plan: &LayerPlan,
    work: &crate::store::TempDir,
    rec: LayerRecord,
) -> Result<(LayerRecord, bool)> {
    // The files reach the disk before the record that says they are complete
    // (a layer dir without record is discarded when the store is opened).
    crate::store::recover::sync_dir(&work.path).ctx(format!("layer {}: sync", plan.diff_id.short()))?;
    write_json(&work.path.join("layer.json"), &rec)?;
    let dest = store.layer_dir(&plan.diff_id);
    if let Some(mut existing) = read_record(store, &plan.diff_id) {
        // Only its blob was missing: the layer in use (maybe mounted) stays,
        // and now points at the blob just verified.
        existing.blob = rec.blob;
        write_json(&dest.join("layer.json"), &existing)?;
        return Ok((existing, false));
    }
    if dest.exists() {
        // A layer dir without its record (an interrupted removal): replace it.
        crate::sys::tree::remove_tree(&dest).ctx(dest.display())?;
    }
    fs::rename(&work.path, &dest).ctx(dest.display())?;
    Ok((rec, true))
}

struct Counting<'a, R> {
    inner: R,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// Remove a layer directory (its blob is removed by blob GC).
pub fn remove(store: &Store, diff_id: &Digest) -> Result<()> {
    let _lock = store.layer_lock(diff_id)?;
    let dir = store.layer_dir(diff_id);
    // Drop the record first: a half-removed layer is then seen as absent.
    let _ = fs::remove_file(dir.join("layer.json"));
    // Iterative, and read-only directories of the layer (0555 trees, its root
    // too) are made writable: works at any depth and as a non-root user.
    crate::sys::tree::remove_tree(&dir).ctx(dir.display())
}

/// All layers in the store.
pub fn list(store: &Store) -> Vec<Digest> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(store.root.join("layers")) {
        for e in rd.flatten() {
            if let Ok(d) = Digest::from_hex(&e.file_name().to_string_lossy()) {
                out.push(d);
            }
        }
    }
    out
}
