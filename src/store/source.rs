//! Where an image is read from: a directory (OCI layout) or a tar archive
//! (OCI archive, `docker save`), addressed by the paths inside it.
//!
//! Archives are indexed once (headers only) and their members read in place;
//! symlinked members (skopeo's `layer.tar`) resolve inside the archive only.
//! Compressed archives are first decompressed into the store's tmp dir.

use crate::store::compress::{decompress, Compression};
use crate::store::error::{err, Context, Result};
use crate::store::limits::{Checked, HeaderBudget, Space};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

/// A path inside the source: relative, no `..`, no `.` components.
pub fn clean(p: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

pub trait Source: Sync {
    /// Open a member for reading; errors name the member.
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>>;
    fn exists(&self, path: &str) -> bool;
    /// Size of a member, when known.
    fn size(&self, path: &str) -> Option<u64>;

    fn read_all(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.open(path)?.take(limit + 1).read_to_end(&mut v).ctx(path)?;
        if v.len() as u64 > limit {
            return err(format!("{path}: larger than {limit} bytes"));
        }
        Ok(v)
    }
}

/// An OCI layout directory.
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    pub fn new(root: &Path) -> DirSource {
        DirSource { root: root.to_path_buf() }
    }

    fn path(&self, p: &str) -> Result<PathBuf> {
        let c = clean(p).ok_or_else(|| crate::store::error::Error(format!("invalid path {p:?} in the image")))?;
        let full = self.root.join(c);
        // Never leave the layout through a symlink.
        let canon = full.canonicalize().ctx(p)?;
        let root = self.root.canonicalize().ctx(self.root.display())?;
        if !canon.starts_with(&root) {
            return err(format!("{p}: points outside the image directory"));
        }
        Ok(canon)
    }
}

impl Source for DirSource {
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>> {
        let p = self.path(path)?;
        Ok(Box::new(File::open(&p).ctx(path)?))
    }

    fn exists(&self, path: &str) -> bool {
        self.path(path).is_ok_and(|p| p.is_file())
    }

    fn size(&self, path: &str) -> Option<u64> {
        self.path(path).ok()?.metadata().ok().map(|m| m.len())
    }
}

#[derive(Clone, Debug)]
enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

/// A tar archive, indexed.
pub struct TarSource {
    path: PathBuf,
    members: HashMap<String, Member>,
}

impl TarSource {
    /// Index a plain (uncompressed) tar file.
    pub fn open(path: &Path) -> Result<TarSource> {
        let f = File::open(path).ctx(path.display())?;
        let len = f.metadata().ctx(path.display())?.len();
        let budget = HeaderBudget::default();
        let mut ar = tar::Archive::new(budget.reader(f));
        let mut members = HashMap::new();
        let mut entries = ar.entries_with_seek().ctx("reading the archive")?;
        while let Some(e) = budget.next(|| entries.next()) {
            let e = e.ctx("reading the archive")?;
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let Some(name) = clean(&name) else { continue };
            let h = e.header();
            let m = match h.entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let (offset, size) = (e.raw_file_position(), e.size());
                    // The reader seeks over data: a cut archive (its last
                    // member short) would otherwise read as a shorter member.
                    if offset.checked_add(size).is_none_or(|end| end > len) {
                        return err(format!(
                            "{name}: truncated archive (the member needs {size} bytes, {} are there)",
                            len.saturating_sub(offset)
                        ));
                    }
                    Member::File { offset, size }
                }
                tar::EntryType::Symlink => {
                    let target =
                        e.link_name().ctx(&name)?.map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
                    // Relative to the member's directory.
                    let base = Path::new(&name).parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
                    match resolve_rel(&base, &target) {
                        Some(t) => Member::Link(t),
                        None => continue,
                    }
                }
                tar::EntryType::Link => {
                    let target =
                        e.link_name().ctx(&name)?.map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
                    match clean(&target) {
                        Some(t) => Member::Link(t),
                        None => continue,
                    }
                }
                _ => continue,
            };
            members.insert(name, m);
        }
        Ok(TarSource { path: path.to_path_buf(), members })
    }

    fn resolve(&self, path: &str) -> Result<(u64, u64)> {
        let mut p = clean(path).ok_or_else(|| crate::store::error::Error(format!("invalid path {path:?}")))?;
        for _ in 0..16 {
            match self.members.get(&p) {
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Link(t)) => p = t.clone(),
                None => return err(format!("{path}: missing from the archive")),
            }
        }
        err(format!("{path}: too many levels of links in the archive"))
    }
}

/// `base/target` with `..` resolved, refusing to climb above the archive root.
fn resolve_rel(base: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            n => parts.push(n),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

impl Source for TarSource {
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>> {
        let (offset, size) = self.resolve(path)?;
        let mut f = File::open(&self.path).ctx(self.path.display())?;
        f.seek(SeekFrom::Start(offset)).ctx(path)?;
        Ok(Box::new(f.take(size)))
    }

    fn exists(&self, path: &str) -> bool {
        self.resolve(path).is_ok()
    }

    fn size(&self, path: &str) -> Option<u64> {
        self.resolve(path).ok().map(|(_, size)| size)
    }
}

/// Open what `image load` was given: a directory, or an archive file
/// (decompressed into `tmp` first when it is gzip/zstd-wrapped).
pub fn open_input(input: &Path, tmp: &Path) -> Result<Box<dyn Source>> {
    if input.is_dir() {
        return Ok(Box::new(DirSource::new(input)));
    }
    let f = File::open(input).ctx(input.display())?;
    let (c, mut r) = decompress(f).ctx(input.display())?;
    if c == Compression::None {
        return Ok(Box::new(TarSource::open(input)?));
    }
    let plain = tmp.join("archive.tar");
    let space = Space::new(tmp).ctx(tmp.display())?;
    let mut out = Checked::new(File::create(&plain).ctx(plain.display())?, space);
    io::copy(&mut r, &mut out).ctx(format!("{}: cannot decompress", input.display()))?;
    Ok(Box::new(TarSource::open(&plain)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        assert_eq!(clean("./blobs/sha256/ab").as_deref(), Some("blobs/sha256/ab"));
        assert_eq!(clean("../x"), None);
        assert_eq!(clean("/etc/passwd"), None);
        assert_eq!(resolve_rel("abc", "../def/layer.tar").as_deref(), Some("def/layer.tar"));
        assert_eq!(resolve_rel("abc", "../../x"), None);
        assert_eq!(resolve_rel("", "/abs"), None);
    }
}
