//! Recognise an image source by its content and plan what to load:
//! `docker save` archives (manifest.json; all generations since 1.10, incl.
//! Docker 25+ OCI-in-docker-save and skopeo's symlinked layer.tar) and OCI
//! layouts (oci-layout + index.json, nested and multi-arch indexes).

use crate::store::digest::Digest;
use crate::store::error::{err, Context, Error, Result};
use crate::store::layers::LayerPlan;
use crate::store::source::Source;
use crate::store::spec::{self, DockerEntry, ImageConfig, Index, Manifest};

const JSON_LIMIT: u64 = 16 << 20;

/// One image to load.
pub struct ImagePlan {
    pub names: Vec<String>,
    pub config: Vec<u8>,
    pub config_digest: Digest,
    pub layers: Vec<LayerPlan>,
    /// The manifest as found (OCI sources), kept for `image save`.
    pub manifest: Option<(Vec<u8>, Digest)>,
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// `blobs/sha256/<hex>` -> its digest.
fn digest_of_blob_path(p: &str) -> Option<Digest> {
    let hex = p.trim_start_matches("./").strip_prefix("blobs/sha256/")?;
    Digest::from_hex(hex).ok()
}

/// Read a blob and check it has the digest it is named by.
fn verified(src: &dyn Source, d: &Digest, what: &str) -> Result<Vec<u8>> {
    let data = src.read_all(&blob_path(d), JSON_LIMIT).ctx(what)?;
    let got = Digest::of(&data);
    if got != *d {
        return err(format!("{what}: digest mismatch: expected {d}, got {got}"));
    }
    Ok(data)
}

fn diff_ids(cfg: &ImageConfig, nlayers: usize, what: &str) -> Result<Vec<Digest>> {
    let ids = cfg.rootfs.diff_ids.iter().map(|d| Digest::parse(d)).collect::<Result<Vec<_>>>().ctx(what)?;
    if ids.len() != nlayers {
        return err(format!("{what}: the config lists {} diff_ids for {nlayers} layers", ids.len()));
    }
    Ok(ids)
}

/// Plan the images in `src`. `label` names the input (for unnamed OCI tags).
pub fn plans(src: &dyn Source, label: &str) -> Result<Vec<ImagePlan>> {
    if src.exists("manifest.json") {
        return docker(src);
    }
    if src.exists("oci-layout") && src.exists("index.json") {
        return oci(src, label);
    }
    if src.exists("repositories") {
        return legacy(src);
    }
    err("unknown image format: expected an OCI layout (oci-layout, index.json) or a docker save archive (manifest.json)")
}

fn docker(src: &dyn Source) -> Result<Vec<ImagePlan>> {
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&src.read_all("manifest.json", JSON_LIMIT)?).ctx("manifest.json")?;
    if entries.is_empty() {
        return err("manifest.json lists no image");
    }
    let mut out = Vec::new();
    for e in entries {
        let config = src.read_all(&e.config, JSON_LIMIT).ctx("image config")?;
        let config_digest = Digest::of(&config);
        // A config named by its digest must match it.
        let stem = e.config.trim_start_matches("./").trim_end_matches(".json");
        let named = digest_of_blob_path(&e.config).or_else(|| Digest::from_hex(stem).ok());
        if let Some(n) = named {
            if n != config_digest {
                return err(format!("config {}: digest mismatch: got {config_digest}", e.config));
            }
        }
        let cfg: ImageConfig = serde_json::from_slice(&config).ctx(format!("config {}", e.config))?;
        let ids = diff_ids(&cfg, e.layers.len(), &format!("config {}", e.config))?;
        let layers = e
            .layers
            .iter()
            .zip(ids)
            .map(|(p, diff_id)| LayerPlan {
                path: p.clone(),
                digest: digest_of_blob_path(p),
                media_type: None,
                diff_id,
            })
            .collect();
        out.push(ImagePlan { names: e.repo_tags.unwrap_or_default(), config, config_digest, layers, manifest: None });
    }
    Ok(out)
}

fn oci(src: &dyn Source, label: &str) -> Result<Vec<ImagePlan>> {
    let layout: serde_json::Value =
        serde_json::from_slice(&src.read_all("oci-layout", JSON_LIMIT)?).ctx("oci-layout")?;
    if layout.get("imageLayoutVersion").and_then(|v| v.as_str()).is_none() {
        return err("oci-layout: imageLayoutVersion missing");
    }
    let index: Index = serde_json::from_slice(&src.read_all("index.json", JSON_LIMIT)?).ctx("index.json")?;
    let mut out = Vec::new();
    for desc in &index.manifests {
        let names = names_of(desc, label);
        for (manifest, mdigest) in manifests_of(src, desc, 0)? {
            // Several tags of one image: one image with several names.
            if let Some(p) =
                out.iter_mut().find(|p: &&mut ImagePlan| p.manifest.as_ref().is_some_and(|(_, d)| *d == mdigest))
            {
                p.names.extend(names.iter().cloned());
                continue;
            }
            out.push(plan_manifest(src, manifest, mdigest, names.clone())?);
        }
    }
    if out.is_empty() {
        return err(format!("index.json has no image for this platform ({})", platform_str(&spec::host_platform())));
    }
    Ok(out)
}

fn platform_str(p: &spec::Platform) -> String {
    format!("{}/{}", p.os, p.architecture)
}

/// Names from an index entry's annotations.
fn names_of(desc: &spec::Descriptor, label: &str) -> Vec<String> {
    let ann = desc.annotations.clone().unwrap_or_default();
    if let Some(n) = ann.get(spec::CONTAINERD_NAME) {
        return vec![n.clone()];
    }
    match ann.get(spec::REF_NAME) {
        // A full reference, or just a tag: then the input's name is the repository.
        Some(r) if r.contains('/') || r.contains(':') => vec![r.clone()],
        Some(tag) => vec![format!("localhost/{label}:{tag}")],
        None => Vec::new(),
    }
}

/// The manifests a descriptor leads to: itself, or this platform's entry of an index.
fn manifests_of(src: &dyn Source, desc: &spec::Descriptor, depth: usize) -> Result<Vec<(Manifest, Digest)>> {
    if depth > 4 {
        return err("indexes nested too deeply");
    }
    let d = Digest::parse(&desc.digest).ctx("index.json")?;
    let data = verified(src, &d, &format!("manifest {}", d.short()))?;
    let v: serde_json::Value = serde_json::from_slice(&data).ctx(format!("manifest {}", d.short()))?;
    let mt = desc.media_type.as_deref().or_else(|| v.get("mediaType").and_then(|m| m.as_str())).unwrap_or("");
    let is_index =
        mt == spec::OCI_INDEX || mt == spec::DOCKER_LIST || (v.get("manifests").is_some() && v.get("config").is_none());
    if !is_index {
        let m: Manifest = serde_json::from_value(v).ctx(format!("manifest {}", d.short()))?;
        return Ok(vec![(m, d)]);
    }
    let idx: Index = serde_json::from_value(v).ctx(format!("index {}", d.short()))?;
    let host = spec::host_platform();
    let mut chosen = Vec::new();
    for m in &idx.manifests {
        let fits = match &m.platform {
            Some(p) => p.os == host.os && p.architecture == host.architecture,
            None => idx.manifests.len() == 1,
        };
        if fits {
            chosen.extend(manifests_of(src, m, depth + 1)?);
            break;
        }
    }
    if chosen.is_empty() {
        let have: Vec<String> = idx.manifests.iter().filter_map(|m| m.platform.as_ref().map(platform_str)).collect();
        return err(format!(
            "no image for {} in index {} (it has: {})",
            platform_str(&host),
            d.short(),
            have.join(", ")
        ));
    }
    Ok(chosen)
}

fn plan_manifest(src: &dyn Source, m: Manifest, mdigest: Digest, names: Vec<String>) -> Result<ImagePlan> {
    let what = format!("manifest {}", mdigest.short());
    let config_digest = Digest::parse(&m.config.digest).ctx(&what)?;
    let config = verified(src, &config_digest, &format!("config {}", config_digest.short()))?;
    let cfg: ImageConfig = serde_json::from_slice(&config).ctx(format!("config {}", config_digest.short()))?;
    let ids = diff_ids(&cfg, m.layers.len(), &format!("config {}", config_digest.short()))?;
    let mut layers = Vec::new();
    for (l, diff_id) in m.layers.iter().zip(ids) {
        let d = Digest::parse(&l.digest).ctx(&what)?;
        if !src.exists(&blob_path(&d)) {
            return Err(Error(format!("layer blob {d} is missing from the image")));
        }
        layers.push(LayerPlan { path: blob_path(&d), digest: Some(d), media_type: l.media_type.clone(), diff_id });
    }
    let manifest_bytes = src.read_all(&blob_path(&mdigest), JSON_LIMIT)?;
    Ok(ImagePlan { names, config, config_digest, layers, manifest: Some((manifest_bytes, mdigest)) })
}

/// A v1 image's `<id>/json`.
#[derive(serde::Deserialize)]
struct V1Json {
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(default)]
    container_config: Option<serde_json::Value>,
}

/// A pre-1.10 `docker save` (repositories + `<id>/json` + `<id>/layer.tar`):
/// the layer chain is followed from each tag's top layer, diff IDs are
/// computed from the layers and a v2 config is made from the top layer's json.
fn legacy(src: &dyn Source) -> Result<Vec<ImagePlan>> {
    let repos: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> =
        serde_json::from_slice(&src.read_all("repositories", JSON_LIMIT)?).ctx("repositories")?;
    let mut by_top: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for (repo, tags) in repos {
        for (tag, id) in tags {
            by_top.entry(id).or_default().push(format!("{repo}:{tag}"));
        }
    }
    let mut out = Vec::new();
    for (top, names) in by_top {
        let mut chain = Vec::new();
        let mut cur = Some(top.clone());
        while let Some(id) = cur {
            if chain.len() > 500 || id.contains('/') || id.contains("..") {
                return err(format!("legacy image {top}: bad layer chain"));
            }
            let j: V1Json =
                serde_json::from_slice(&src.read_all(&format!("{id}/json"), JSON_LIMIT)?).ctx(format!("{id}/json"))?;
            cur = j.parent.clone().filter(|p| !p.is_empty());
            chain.push((id, j));
        }
        chain.reverse();
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        let mut history = Vec::new();
        for (id, j) in &chain {
            let path = format!("{id}/layer.tar");
            let (diff_id, _) = crate::store::digest::HashingReader::new(src.open(&path)?).finish().ctx(&path)?;
            history.push(serde_json::json!({"created": j.created, "created_by": j.container_config.as_ref().and_then(|c| c.get("Cmd")).map(|c| c.to_string())}));
            diff_ids.push(diff_id.to_string());
            layers.push(LayerPlan { path, digest: None, media_type: None, diff_id });
        }
        let Some((_, topj)) = chain.last() else { continue };
        let config = serde_json::to_vec(&serde_json::json!({
            "created": topj.created,
            "architecture": topj.architecture.clone().unwrap_or_else(|| spec::host_platform().architecture),
            "os": topj.os.clone().unwrap_or_else(|| "linux".into()),
            "config": topj.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }))?;
        let config_digest = Digest::of(&config);
        out.push(ImagePlan { names, config, config_digest, layers, manifest: None });
    }
    if out.is_empty() {
        return err("repositories names no image");
    }
    Ok(out)
}
