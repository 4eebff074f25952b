//! `unionctl pull`: manifest (any of the four types), this machine's entry of
//! an index, the config (verified), then the missing layers through the
//! store's verifying unpack, a few at a time. Layers the store has are never
//! requested; the image is recorded as `image load` records it.

use super::blob::BlobReader;
use super::client::{Client, Options};
use super::reference::Reference;
use crate::store::digest::Digest;
use crate::store::error::{err, Context, Error, Result};
use crate::store::formats::ImagePlan;
use crate::store::layers::LayerPlan;
use crate::store::load::{self, NoProgress};
use crate::store::source::Source;
use crate::store::spec::{self, ImageConfig, Index, Manifest, Platform};
use crate::store::Store;
use std::collections::HashMap;
use std::io::Read;
use ureq::http::Method;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const JSON_LIMIT: u64 = 4 << 20;

#[derive(Clone, Debug)]
pub struct PullOptions {
    pub registry: Options,
    pub jobs: usize,
    pub retry: u32,
    /// `os/arch[/variant]`; this machine's when None.
    pub platform: Option<String>,
}

#[derive(Debug)]
pub struct Pulled {
    pub id: String,
    pub name: Option<String>,
    /// The digest of what the reference named (an index or a manifest).
    pub digest: Digest,
    pub new_layers: usize,
    pub reused_layers: usize,
}

/// GET a manifest with every type we read in Accept; returns it, its media type and digest.
pub fn get_manifest(c: &Client, reference: &str) -> Result<(Vec<u8>, String, Digest)> {
    let accept = [spec::OCI_INDEX, spec::OCI_MANIFEST, spec::DOCKER_LIST, DOCKER_MANIFEST].join(", ");
    let what = format!("manifest {}/{}:{reference}", c.registry, c.repository).replace(":sha256:", "@sha256:");
    let mut r = c.call(Method::GET, &c.url(&format!("manifests/{reference}")), &[("Accept", accept)], true)?;
    if r.status().as_u16() == 404 {
        let text = super::client::error_text(&mut r);
        return err(format!("{what}: not found ({text})"));
    }
    if !r.status().is_success() {
        return Err(c.fail(&what, &mut r));
    }
    let ct = Client::header(&r, "content-type").unwrap_or_default();
    let bytes =
        r.body_mut().with_config().limit(JSON_LIMIT).read_to_vec().map_err(|e| Error(format!("{what}: {e}")))?;
    let d = Digest::of(&bytes);
    let v: serde_json::Value = serde_json::from_slice(&bytes).ctx(&what)?;
    let mt = v.get("mediaType").and_then(|m| m.as_str()).map(str::to_string).unwrap_or_else(|| {
        if v.get("manifests").is_some() {
            spec::OCI_INDEX.into()
        } else {
            ct.split(';').next().unwrap_or("").trim().to_string()
        }
    });
    Ok((bytes, mt, d))
}

/// A small blob (the config), verified against its digest.
fn get_small_blob(c: &Client, d: &Digest) -> Result<Vec<u8>> {
    let what = format!("config {}", d.short());
    let mut r = c.call(Method::GET, &c.url(&format!("blobs/{d}")), &[], true)?;
    if !r.status().is_success() {
        return Err(c.fail(&what, &mut r));
    }
    let mut data = Vec::new();
    r.body_mut().as_reader().take(JSON_LIMIT + 1).read_to_end(&mut data).ctx(&what)?;
    if data.len() as u64 > JSON_LIMIT {
        return err(format!("{what}: larger than {JSON_LIMIT} bytes"));
    }
    let got = Digest::of(&data);
    if got != *d {
        return err(format!("{what}: digest mismatch: expected {d}, got {got}"));
    }
    Ok(data)
}

fn parse_platform(s: &str) -> Result<Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [os, arch] => Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: None }),
        [os, arch, v] => {
            Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: Some(v.to_string()) })
        }
        _ => err(format!("invalid --platform {s:?} (OS/ARCH[/VARIANT])")),
    }
}

/// The layer blobs, read from the registry.
struct RegistrySource<'a> {
    client: &'a Client,
    store: &'a Store,
    sizes: HashMap<String, u64>,
    retry: u32,
    bars: Option<&'a indicatif::MultiProgress>,
}

impl Source for RegistrySource<'_> {
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>> {
        let d = Digest::parse(path)?;
        let size = self.size(path).ok_or_else(|| Error(format!("blob {}: size unknown", d.short())))?;
        Ok(Box::new(BlobReader::open(self.client, self.store, &d, size, self.retry, self.bars)?))
    }
    fn exists(&self, path: &str) -> bool {
        self.sizes.contains_key(path)
    }
    fn size(&self, path: &str) -> Option<u64> {
        self.sizes.get(path).copied()
    }
}

pub fn pull(store: &Store, name: &str, o: &PullOptions, bars: Option<&indicatif::MultiProgress>) -> Result<Pulled> {
    let r = Reference::parse(name)?;
    let c = Client::connect(&r.registry, &r.repository, &o.registry, "pull")?;
    let (mut bytes, mut mt, top) = get_manifest(&c, &r.reference())?;
    if let Some(want) = &r.digest {
        if *want != top {
            return err(format!("manifest {r}: digest mismatch: got {top}"));
        }
    }
    let mut mdigest = top.clone();
    if mt == spec::OCI_INDEX || mt == spec::DOCKER_LIST {
        let idx: Index = serde_json::from_slice(&bytes).ctx(format!("index {}", top.short()))?;
        let want = match &o.platform {
            Some(p) => parse_platform(p)?,
            None => spec::host_platform(),
        };
        let fits = |p: &Option<Platform>| {
            p.as_ref().is_some_and(|p| {
                p.os == want.os
                    && p.architecture == want.architecture
                    && (want.variant.is_none() || p.variant == want.variant)
            })
        };
        let Some(child) = idx.manifests.iter().find(|m| fits(&m.platform)) else {
            let have: Vec<String> = idx
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref().map(|p| format!("{}/{}", p.os, p.architecture)))
                .collect();
            return err(format!(
                "{r}: no image for {}/{} (the index has: {})",
                want.os,
                want.architecture,
                have.join(", ")
            ));
        };
        let cd = Digest::parse(&child.digest)?;
        let (b, m, d) = get_manifest(&c, cd.as_str())?;
        if d != cd {
            return err(format!("manifest {}: digest mismatch: got {d}", cd.short()));
        }
        (bytes, mt, mdigest) = (b, m, d);
    }
    if mt != spec::OCI_MANIFEST && mt != DOCKER_MANIFEST {
        return err(format!("manifest {}: unsupported media type {mt:?}", mdigest.short()));
    }
    let m: Manifest = serde_json::from_slice(&bytes).ctx(format!("manifest {}", mdigest.short()))?;
    let config_digest = Digest::parse(&m.config.digest).ctx(format!("manifest {}", mdigest.short()))?;
    // A config the store has (verified when stored) is not asked for again.
    let config = match std::fs::read(store.blob_path(&config_digest)) {
        Ok(b) if Digest::of(&b) == config_digest => b,
        _ => get_small_blob(&c, &config_digest)?,
    };
    let cfg: ImageConfig = serde_json::from_slice(&config).ctx(format!("config {}", config_digest.short()))?;
    if cfg.rootfs.diff_ids.len() != m.layers.len() {
        return err(format!(
            "config {}: lists {} diff_ids for {} layers",
            config_digest.short(),
            cfg.rootfs.diff_ids.len(),
            m.layers.len()
        ));
    }
    let mut layers = Vec::new();
    let mut sizes = HashMap::new();
    for (l, id) in m.layers.iter().zip(&cfg.rootfs.diff_ids) {
        let d = Digest::parse(&l.digest).ctx(format!("manifest {}", mdigest.short()))?;
        if l.size < 0 {
            return err(format!("manifest {}: negative size for {}", mdigest.short(), d.short()));
        }
        sizes.insert(d.to_string(), l.size as u64);
        let diff_id = Digest::parse(id).ctx(format!("config {}", config_digest.short()))?;
        layers.push(LayerPlan { path: d.to_string(), digest: Some(d), media_type: l.media_type.clone(), diff_id });
    }
    let plan = ImagePlan {
        names: r.store_name().into_iter().collect(),
        config,
        config_digest,
        layers,
        manifest: Some((bytes, mdigest)),
    };
    let src = RegistrySource { client: &c, store, sizes, retry: o.retry, bars };
    let l = load::load_plan(store, &src, plan, &NoProgress, o.jobs.max(1))?;
    Ok(Pulled { id: l.id, name: r.store_name(), digest: top, new_layers: l.new_layers, reused_layers: l.reused_layers })
}
