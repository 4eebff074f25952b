//! `image save`: write an image as an OCI archive or a docker-archive tar
//! that skopeo, podman and docker load. The config bytes are the stored ones,
//! so loading the archive again gives the same image ID.
//!
//! Where it goes (`-o`): `-` is standard output; anything that is not a
//! regular file (a pipe, `/dev/stdout`, a device) is written as a stream. A
//! regular file, or a path that does not exist yet, gets a temp file in its
//! directory renamed over it: never a partial file. A symlink is followed
//! (also a dangling one) and stays: its target receives the archive.

use crate::store::compress::decompress;
use crate::store::digest::Digest;
use crate::store::error::{err, Context, Result};
use crate::store::images::ImageRecord;
use crate::store::limits::{Checked, Space};
use crate::store::spec::{self, Descriptor, DockerEntry, Index, Manifest};
use crate::store::Store;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OciArchive,
    DockerArchive,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        match s {
            "oci-archive" => Ok(Format::OciArchive),
            "docker-archive" => Ok(Format::DockerArchive),
            _ => err(format!("unknown format {s:?} (oci-archive or docker-archive)")),
        }
    }
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn add_bytes<W: Write>(b: &mut tar::Builder<W>, path: &str, data: &[u8]) -> Result<()> {
    let mut h = header(data.len() as u64);
    b.append_data(&mut h, path, data).ctx(path)
}

fn add_file<W: Write>(b: &mut tar::Builder<W>, path: &str, src: &Path) -> Result<()> {
    let f = File::open(src).ctx(src.display())?;
    let len = f.metadata().ctx(src.display())?.len();
    let mut h = header(len);
    b.append_data(&mut h, path, f).ctx(path)
}

/// The manifest to write: the one loaded, else one made from the record.
pub(crate) fn manifest_of(store: &Store, img: &ImageRecord, config_len: u64) -> Result<(Vec<u8>, Digest)> {
    if let Some(d) = &img.manifest_digest {
        let d = Digest::parse(d)?;
        if let Ok(bytes) = fs::read(store.blob_path(&d)) {
            return Ok((bytes, d));
        }
    }
    let m = Manifest::oci(
        &img.config_digest,
        config_len,
        img.layer_blobs
            .iter()
            .map(|b| Descriptor {
                media_type: Some(b.media_type.clone()),
                digest: b.digest.clone(),
                size: b.size as i64,
                annotations: None,
                platform: None,
            })
            .collect(),
    );
    let bytes = serde_json::to_vec(&m)?;
    let d = Digest::of(&bytes);
    Ok((bytes, d))
}

/// Save `img` to `out` in `format` under `names` (an OCI archive takes the
/// first only: one index entry, as skopeo and podman expect).
pub fn save(store: &Store, img: &ImageRecord, names: &[String], out: &Path, format: Format) -> Result<()> {
    let write = |f: File| -> Result<File> {
        let mut b = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, f));
        match format {
            Format::OciArchive => write_oci(store, img, names.first(), &mut b)?,
            Format::DockerArchive => write_docker(store, img, names, &mut b)?,
        }
        let w = b.into_inner().ctx(out.display())?;
        w.into_inner().map_err(|e| e.into_error()).ctx(out.display())
    };
    let target = match destination(out)? {
        Dest::Stream(f) => return write(f).map(drop),
        Dest::Replace(target) => target,
    };
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp_out = dir.join(format!(
        ".{}.partial-{}",
        target.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        let f = File::create(&tmp_out).ctx(tmp_out.display())?;
        if let Ok(md) = fs::metadata(&target) {
            // The file replaced keeps its permissions.
            f.set_permissions(md.permissions()).ctx(tmp_out.display())?;
        }
        write(f)?.sync_all().ctx(out.display())?;
        fs::rename(&tmp_out, &target).ctx(out.display())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp_out);
    }
    result
}

/// Where an archive is written.
enum Dest {
    /// Written in order as it is made (stdout, pipes, devices).
    Stream(File),
    /// A regular file (existing or not), replaced through a temp file.
    Replace(PathBuf),
}

fn destination(out: &Path) -> Result<Dest> {
    if out.as_os_str() == "-" {
        if io::stdout().is_terminal() {
            return err("refusing to write an image archive to a terminal (redirect standard output or use -o FILE)");
        }
        let fd = io::stdout().as_fd().try_clone_to_owned().ctx("standard output")?;
        return Ok(Dest::Stream(File::from(fd)));
    }
    match fs::metadata(out) {
        Ok(md) if md.is_dir() => err(format!("{}: is a directory", out.display())),
        Ok(md) if !md.is_file() => Ok(Dest::Stream(fs::OpenOptions::new().write(true).open(out).ctx(out.display())?)),
        // Through any symlinks (/dev/stdout redirected to a file too).
        Ok(_) => Ok(Dest::Replace(fs::canonicalize(out).ctx(out.display())?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Dest::Replace(dangling_target(out)?)),
        Err(e) => Err(e).ctx(out.display()),
    }
}

/// The path a chain of (dangling) symlinks ends at; `out` itself when it is none.
fn dangling_target(out: &Path) -> Result<PathBuf> {
    let mut p = out.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(md) if md.file_type().is_symlink() => {
                let t = fs::read_link(&p).ctx(p.display())?;
                p = match p.parent() {
                    Some(dir) if t.is_relative() => dir.join(t),
                    _ => t,
                };
            }
            _ => return Ok(p),
        }
    }
    err(format!("{}: too many levels of symbolic links", out.display()))
}

fn write_oci<W: Write>(store: &Store, img: &ImageRecord, name: Option<&String>, b: &mut tar::Builder<W>) -> Result<()> {
    let (config, _) = img.config(store)?;
    let (manifest, mdigest) = manifest_of(store, img, config.len() as u64)?;
    add_bytes(b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let descs = vec![Descriptor {
        media_type: Some(spec::OCI_MANIFEST.into()),
        digest: mdigest.to_string(),
        size: manifest.len() as i64,
        annotations: name.map(|n| BTreeMap::from([(spec::REF_NAME.to_string(), n.clone())])),
        platform: None,
    }];
    let index = Index { schema_version: 2, media_type: Some(spec::OCI_INDEX.into()), manifests: descs };
    add_bytes(b, "index.json", &serde_json::to_vec(&index)?)?;
    add_bytes(b, &format!("blobs/sha256/{}", mdigest.hex()), &manifest)?;
    add_bytes(b, &format!("blobs/sha256/{}", img.id), &config)?;
    let mut seen = std::collections::HashSet::new();
    for blob in &img.layer_blobs {
        let d = Digest::parse(&blob.digest)?;
        if seen.insert(d.clone()) {
            add_file(b, &format!("blobs/sha256/{}", d.hex()), &store.blob_path(&d))
                .ctx(format!("layer blob {}", d.short()))?;
        }
    }
    Ok(())
}

fn write_docker<W: Write>(store: &Store, img: &ImageRecord, names: &[String], b: &mut tar::Builder<W>) -> Result<()> {
    let (config, _) = img.config(store)?;
    let config_name = format!("{}.json", img.id);
    add_bytes(b, &config_name, &config)?;
    let tmp = store.temp_dir("save")?;
    let mut layer_paths = Vec::new();
    for (blob, diff_id) in img.layer_blobs.iter().zip(&img.layers) {
        let d = Digest::parse(&blob.digest)?;
        let diff = Digest::parse(diff_id)?;
        let path = format!("{}/layer.tar", diff.hex());
        if !layer_paths.contains(&path) {
            // docker-archive layers are plain tars: decompress the stored blob.
            let plain = tmp.path.join(diff.hex());
            let (_, mut r) = decompress(File::open(store.blob_path(&d)).ctx(format!("layer blob {}", d.short()))?)?;
            let space = Space::new(&tmp.path).ctx(tmp.path.display())?;
            let mut f = Checked::new(File::create(&plain).ctx(plain.display())?, space);
            io::copy(&mut r, &mut f).ctx(format!("layer blob {}", d.short()))?;
            drop(f);
            add_file(b, &path, &plain)?;
            fs::remove_file(&plain).ctx(plain.display())?;
        }
        layer_paths.push(path);
    }
    let entry = DockerEntry { config: config_name, repo_tags: Some(names.to_vec()), layers: layer_paths };
    add_bytes(b, "manifest.json", &serde_json::to_vec(&[entry])?)?;
    Ok(())
}
