//! `unionctl push`: HEAD each blob (skip what the registry has; mount it from
//! another repository of the same registry the image came from), upload the
//! rest (POST, then PUT to the latest Location with the digest; with a chunk
//! size, PATCH pieces to the latest Location first), then the
//! manifest with its exact media type. The config and manifest are the
//! stored bytes, so the image pulled back has the same ID.

use super::client::{Client, Options};
use super::reference::Reference;
use crate::store::compress::{decompress, Compression};
use crate::store::digest::Digest;
use crate::store::error::{err, Context, Error, Result};
use crate::store::images;
use crate::store::layers::BlobRef;
use crate::store::spec::{self, Descriptor, Manifest};
use crate::store::Store;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use ureq::http::Method;

#[derive(Debug)]
pub struct Pushed {
    pub dest: String,
    pub digest: Digest,
    pub uploaded: usize,
    pub skipped: usize,
}

fn with_query(url: &str, q: &str) -> String {
    format!("{url}{}{q}", if url.contains('?') { "&" } else { "?" })
}

/// A step of an upload: its error, and whether trying again may help.
type Step<T> = std::result::Result<T, (Error, bool)>;

/// Transport failures may pass.
fn net<T>(r: Result<T>) -> Step<T> {
    r.map_err(|e| (e, true))
}

fn stop<T>(r: Result<T>) -> Step<T> {
    r.map_err(|e| (e, false))
}

/// A refusal: worth another try only for a server error or throttling.
fn status(c: &Client, what: &str, r: &mut ureq::http::Response<ureq::Body>) -> (Error, bool) {
    let s = r.status().as_u16();
    (c.fail(what, r), s >= 500 || s == 429)
}

/// Upload one blob unless the registry has it; true when it was sent.
fn blob(c: &Client, path: &Path, d: &Digest, mount_from: &[String], chunk: u64, say: &dyn Fn(&str)) -> Step<bool> {
    let what = format!("blob {}", d.short());
    let mut r = net(c.call(Method::HEAD, &c.url(&format!("blobs/{d}")), &[], true))?;
    match r.status().as_u16() {
        200 => {
            say(&format!("Copying blob {} skipped: already exists", d.short()));
            return Ok(false);
        }
        404 => {}
        _ => return Err(status(c, &what, &mut r)),
    }
    let f = stop(File::open(path).ctx(format!("{what}: not in the store")))?;
    let mut location = None;
    for from in mount_from {
        let url = c.url(&format!("blobs/uploads/?mount={d}&from={from}"));
        let mut r = net(c.send(Method::POST, &url, &[], &[][..]))?;
        match r.status().as_u16() {
            201 => {
                say(&format!("Copying blob {} mounted from {from}", d.short()));
                return Ok(false);
            }
            // Not there: the answer is a fresh upload.
            202 => {
                location = Client::header(&r, "location");
                break;
            }
            // No access to the other repository (a token scoped to this one): upload.
            401 | 403 => continue,
            _ => return Err(status(c, &what, &mut r)),
        }
    }
    let location = match location {
        Some(l) => l,
        None => {
            let mut r = net(c.send(Method::POST, &c.url("blobs/uploads/"), &[], &[][..]))?;
            if r.status().as_u16() != 202 {
                return Err(status(c, &format!("{what}: starting the upload"), &mut r));
            }
            match Client::header(&r, "location") {
                Some(l) => l,
                None => return stop(err(format!("{what}: the registry gave no upload Location"))),
            }
        }
    };
    say(&format!("Copying blob {}", d.short()));
    let size = stop(f.metadata().ctx(&what))?.len();
    let octets = || ("Content-Type", "application/octet-stream".to_string());
    let mut r = if chunk > 0 && size > chunk {
        // Chunked: PATCH each piece to the latest Location, then PUT the digest.
        let mut loc = c.location(&location);
        let mut f = f;
        let mut off = 0;
        while off < size {
            let n = chunk.min(size - off);
            let mut piece = Vec::with_capacity(n as usize);
            stop((&mut f).take(n).read_to_end(&mut piece).ctx(&what))?;
            if piece.len() as u64 != n {
                return stop(err(format!("{what}: the stored blob changed while it was read")));
            }
            let range = ("Content-Range", format!("{off}-{}", off + n - 1));
            let mut r = net(c.send(Method::PATCH, &loc, &[octets(), range], piece))?;
            if r.status().as_u16() != 202 {
                return Err(status(c, &format!("{what}: upload at byte {off}"), &mut r));
            }
            loc = match Client::header(&r, "location") {
                Some(l) => c.location(&l),
                None => return stop(err(format!("{what}: the registry gave no upload Location"))),
            };
            off += n;
        }
        net(c.send(Method::PUT, &with_query(&loc, &format!("digest={d}")), &[], &[][..]))?
    } else {
        let url = with_query(&c.location(&location), &format!("digest={d}"));
        net(c.send(Method::PUT, &url, &[octets()], f))?
    };
    if r.status().as_u16() != 201 {
        return Err(status(c, &format!("{what}: upload"), &mut r));
    }
    Ok(true)
}

/// Push the stored image `image` to `dest` (its own name when None).
/// `--compression-format`: gzip or zstd.
pub fn parse_compression(s: &str) -> Result<Compression> {
    match s {
        "gzip" => Ok(Compression::Gzip),
        "zstd" => Ok(Compression::Zstd),
        _ => err(format!("unknown compression format {s:?} (gzip or zstd)")),
    }
}

fn compression_of(media_type: &str) -> Compression {
    if media_type.ends_with("gzip") {
        Compression::Gzip
    } else if media_type.ends_with("zstd") {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// A stored layer blob recompressed into `dir`; its digest, size and path.
fn recompress(store: &Store, b: &BlobRef, to: Compression, dir: &Path) -> Result<(Digest, u64, PathBuf)> {
    let d = Digest::parse(&b.digest)?;
    let what = format!("layer blob {}", d.short());
    let (_, mut plain) = decompress(File::open(store.blob_path(&d)).ctx(&what)?).ctx(&what)?;
    let out = dir.join(d.hex());
    let f = io::BufWriter::with_capacity(1 << 20, File::create(&out).ctx(out.display())?);
    let f = match to {
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::default());
            io::copy(&mut plain, &mut e).ctx(&what)?;
            e.finish().ctx(&what)?
        }
        _ => {
            let mut e = zstd::stream::write::Encoder::new(f, 3).ctx(&what)?;
            io::copy(&mut plain, &mut e).ctx(&what)?;
            e.finish().ctx(&what)?
        }
    };
    f.into_inner().map_err(|e| e.into_error()).ctx(&what)?;
    let (digest, size) =
        crate::store::digest::HashingReader::new(File::open(&out).ctx(out.display())?).finish().ctx(&what)?;
    Ok((digest, size, out))
}

/// A manifest, its digest, and the file of each of its layers.
type Converted = (Vec<u8>, Digest, Vec<(Digest, PathBuf)>);

/// The layers as `to` wants them: blobs already in that compression as
/// stored, the others recompressed into `dir`, and an OCI manifest for them.
fn converted(
    store: &Store,
    img: &crate::store::images::ImageRecord,
    config_len: u64,
    to: Compression,
    dir: &Path,
) -> Result<Option<Converted>> {
    if img.layer_blobs.iter().all(|b| compression_of(&b.media_type) == to) {
        return Ok(None);
    }
    let mut layers = Vec::new();
    let mut files = Vec::new();
    for b in &img.layer_blobs {
        let (d, size, path) = if compression_of(&b.media_type) == to {
            let d = Digest::parse(&b.digest)?;
            (d.clone(), b.size, store.blob_path(&d))
        } else {
            recompress(store, b, to, dir)?
        };
        let mt = if to == Compression::Gzip { spec::OCI_LAYER_GZIP } else { spec::OCI_LAYER_ZSTD };
        layers.push(Descriptor {
            media_type: Some(mt.into()),
            digest: d.to_string(),
            size: size as i64,
            annotations: None,
            platform: None,
        });
        files.push((d, path));
    }
    let m = Manifest::oci(&img.config_digest, config_len, layers);
    let bytes = serde_json::to_vec(&m)?;
    let d = Digest::of(&bytes);
    Ok(Some((bytes, d, files)))
}

/// How to push.
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    pub registry: Options,
    /// Recompress layers stored otherwise.
    pub compression: Option<Compression>,
    /// PATCH pieces of this size (0: one PUT per blob).
    pub chunk: u64,
    /// Attempts per blob after a retryable failure.
    pub retry: u32,
}

pub fn push(store: &Store, image: &str, dest: Option<&str>, po: &PushOptions, say: &dyn Fn(&str)) -> Result<Pushed> {
    let (o, compression, chunk, retry) = (&po.registry, po.compression, po.chunk, po.retry);
    let img = images::resolve(store, image)?;
    let dest = match dest {
        Some(d) => d.to_string(),
        None => match images::matching_name(&img, image) {
            Some(n) => n,
            None => return err(format!("{image}: name a destination (REGISTRY/REPOSITORY[:TAG])")),
        },
    };
    let r = Reference::parse(&dest)?;
    let (config, _) = img.config(store)?;
    let (mut manifest, mut mdigest) = crate::store::save::manifest_of(store, &img, config.len() as u64)?;
    let work = store.temp_dir("push")?;
    let mut files: Vec<(Digest, PathBuf)> = Vec::new();
    for b in &img.layer_blobs {
        let d = Digest::parse(&b.digest)?;
        files.push((d.clone(), store.blob_path(&d)));
    }
    if let Some(to) = compression {
        if let Some((m, d, f)) = converted(store, &img, config.len() as u64, to, &work.path)? {
            (manifest, mdigest, files) = (m, d, f);
        }
    }
    let mt = serde_json::from_slice::<serde_json::Value>(&manifest)
        .ok()
        .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| crate::store::spec::OCI_MANIFEST.to_string());
    let c = Client::connect(&r.registry, &r.repository, o, "pull,push")?;
    // Other repositories of this registry the image has names in.
    let mount_from: Vec<String> = img
        .names
        .iter()
        .filter_map(|n| Reference::parse(n).ok())
        .filter(|n| n.registry == r.registry && n.repository != r.repository)
        .map(|n| n.repository)
        .collect();
    let config_digest = Digest::parse(&img.config_digest)?;
    files.push((config_digest.clone(), store.blob_path(&config_digest)));
    let mut seen = Vec::new();
    let (mut uploaded, mut skipped) = (0, 0);
    // Layers first, the config last (as skopeo does).
    for (d, path) in &files {
        if seen.contains(d) {
            continue;
        }
        seen.push(d.clone());
        let mut failures = 0;
        let sent = loop {
            match blob(&c, path, d, &mount_from, chunk, say) {
                Ok(sent) => break sent,
                Err((e, true)) if failures < retry => {
                    failures += 1;
                    let wait = std::time::Duration::from_millis(200u64 << failures.min(5));
                    log::warn!("{e}; retrying in {wait:?}");
                    std::thread::sleep(wait);
                }
                Err((e, _)) => return Err(e),
            }
        };
        if sent {
            uploaded += 1;
        } else {
            skipped += 1;
        }
    }
    let reference = r.tag.clone().unwrap_or_else(|| mdigest.to_string());
    if let Some(want) = &r.digest {
        if *want != mdigest {
            return err(format!("{dest}: the image's manifest is {mdigest}, not {want}"));
        }
    }
    say("Writing manifest to image destination");
    let mut resp = c.send(Method::PUT, &c.url(&format!("manifests/{reference}")), &[("Content-Type", mt)], manifest)?;
    if resp.status().as_u16() != 201 {
        return Err(c.fail(&format!("manifest {dest}"), &mut resp));
    }
    if let Some(theirs) = Client::header(&resp, "docker-content-digest") {
        if theirs != mdigest.as_str() {
            log::warn!("the registry names the manifest {theirs}, we computed {mdigest}");
        }
    }
    Ok(Pushed { dest: r.to_string(), digest: mdigest, uploaded, skipped })
}
