//! The content-addressed image and layer store used by `unionctl`.
//!
//! Layout under the root (see [`Store`]):
//!
//! ```text
//! lock                        flock(2) around every metadata read-modify-write
//! blobs/sha256/<hex>          configs, manifests, layer blobs as loaded
//! layers/<diff-id hex>/diff   one extracted layer, shared by every image using it
//! layers/<diff-id hex>/layer.json
//! images/<image id>/image.json
//! tmp/NAME                    unpacking happens here, then a rename into place
//! tmp/locks/NAME.lock         held by the owner of tmp/NAME; <hex>.lock: per layer
//! containers/<id>/container.json  container records (see containers.rs), with
//! containers/<id>/{diff,work,merged}  the writable upper, work dir, mount point
//! volumes/<name>/{volume.json,_data}  volumes (see volumes.rs)
//! ```
//!
//! Everything is 0700: no other user reaches a layer's contents.
//!
//! Layers keep OCI whiteout markers (`.wh.NAME`, `.wh..wh..opq`) as plain
//! files: no privilege is needed and unionfs reads them as lower layers.

pub mod archive;
pub mod changes;
pub mod commit;
pub mod compress;
pub mod containers;
pub mod digest;
pub mod error;
pub mod formats;
pub mod images;
pub mod layers;
pub mod limits;
pub mod load;
pub mod mounts;
pub mod recover;
pub mod save;
pub mod source;
pub mod sparse;
pub mod spec;
pub mod unpack;
pub mod userns;
pub mod util;
pub mod volumes;

use crate::sys::at;
use error::{Context, Result};
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// An open store.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

/// Held while metadata is read and rewritten; released on drop.
pub struct Lock {
    _file: File,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A directory under `tmp/` removed (with everything in it) on drop.
///
/// `tmp/NAME` is owned by whoever holds the flock on `tmp/locks/NAME.lock`,
/// taken before the directory is made and kept until it is gone: an entry of
/// tmp/ whose lock is free belongs to no live process (a killed load) and is
/// swept by the next command ([`recover::tmp`]).
pub struct TempDir {
    pub path: PathBuf,
    lock_path: PathBuf,
    _lock: Lock,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = crate::sys::tree::remove_tree(&self.path);
        // Unlinked while still held; the lock goes with the fields.
        let _ = fs::remove_file(&self.lock_path);
    }
}

/// Open and flock `p` (`wait` false: None when another process holds it).
/// Lock files may be removed by the tmp/ sweep once free: a lock that turns
/// out to be on a file no longer at `p` is taken again.
fn take_lock(p: &Path, wait: bool) -> Result<Option<Lock>> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    loop {
        let f = fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(p).ctx(p.display())?;
        if wait {
            at::flock(f.as_raw_fd(), true).ctx(format!("lock {}", p.display()))?;
        } else if !at::try_flock(f.as_raw_fd(), true).ctx(format!("lock {}", p.display()))? {
            return Ok(None);
        }
        let held = f.metadata().ctx(p.display())?;
        match fs::metadata(p) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(Some(Lock { _file: f })),
            _ => continue,
        }
    }
}

/// Take group and other permissions away from a directory (never following a symlink).
fn private(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let md = fs::symlink_metadata(p)?;
    if !md.is_dir() {
        return Err(std::io::Error::other(format!("{} is not a directory", p.display())));
    }
    if md.mode() & 0o077 != 0 {
        fs::set_permissions(p, fs::Permissions::from_mode(md.mode() & 0o7700))?;
    }
    Ok(())
}

impl Store {
    /// The default root: /var/lib/unionctl as root, else under $XDG_DATA_HOME
    /// (or ~/.local/share).
    pub fn default_root() -> PathBuf {
        if at::is_root() {
            return PathBuf::from("/var/lib/unionctl");
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
            return PathBuf::from(x).join("unionctl");
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        home.join(".local/share/unionctl")
    }

    /// Open (creating the layout if needed) the store at `root`.
    ///
    /// The root and every directory under it are private to the store's
    /// owner (0700, as containers/storage keeps its overlay dir): a layer may
    /// hold setuid programs or world-writable device nodes that no other user
    /// may reach (CVE-2021-41091). Stores made with wider modes are fixed here.
    pub fn open(root: &Path) -> Result<Store> {
        let what = || format!("store {}", root.display());
        fs::DirBuilder::new().recursive(true).mode(0o700).create(root).ctx(what())?;
        let root = root.canonicalize().ctx(root.display())?;
        private(&root).ctx(what())?;
        for d in ["blobs", "blobs/sha256", "layers", "images", "tmp", "tmp/locks"] {
            let p = root.join(d);
            match fs::DirBuilder::new().mode(0o700).create(&p) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => private(&p).ctx(what())?,
                r => r.ctx(what())?,
            }
        }
        let store = Store { root };
        recover::layers(&store);
        recover::tmp(&store);
        recover::containers(&store);
        Ok(store)
    }

    pub fn blob_path(&self, d: &digest::Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn layer_dir(&self, diff_id: &digest::Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    pub fn image_dir(&self, id: &str) -> PathBuf {
        self.root.join("images").join(id)
    }

    /// Take the store's metadata lock (blocks while another process holds it).
    pub fn lock(&self) -> Result<Lock> {
        self.lock_file(&self.root.join("lock"))
    }

    /// A lock for one layer, so two loaders never unpack the same layer twice.
    pub fn layer_lock(&self, diff_id: &digest::Digest) -> Result<Lock> {
        self.lock_file(&self.root.join("tmp/locks").join(format!("{}.lock", diff_id.hex())))
    }

    /// The layer's lock when nobody holds it, else None.
    pub fn try_layer_lock(&self, diff_id: &digest::Digest) -> Result<Option<Lock>> {
        take_lock(&self.root.join("tmp/locks").join(format!("{}.lock", diff_id.hex())), false)
    }

    /// A lock of its own for one object (`ctr-<id>`, `vol-<name>`), kept in
    /// tmp/locks (a free lock file may be swept; lockers take it again).
    pub fn named_lock(&self, name: &str) -> Result<Lock> {
        self.lock_file(&self.root.join("tmp/locks").join(format!("{name}.lock")))
    }

    fn lock_file(&self, p: &Path) -> Result<Lock> {
        take_lock(p, true)?.ok_or_else(|| error::Error(format!("lock {}: not taken", p.display())))
    }

    /// A fresh private directory under tmp/, locked as [`TempDir`] says.
    pub fn temp_dir(&self, what: &str) -> Result<TempDir> {
        let n = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        // Never the name of an older entry (pids are reused).
        let name = format!("{what}-{}-{nanos}-{n}", std::process::id());
        let lock_path = self.root.join("tmp/locks").join(format!("{name}.lock"));
        let lock = take_lock(&lock_path, true)?.ok_or_else(|| error::Error(format!("lock {}", lock_path.display())))?;
        let path = self.root.join("tmp").join(&name);
        let made = fs::DirBuilder::new().mode(0o700).create(&path).ctx(path.display());
        if made.is_err() {
            let _ = fs::remove_file(&lock_path);
        }
        made?;
        Ok(TempDir { path, lock_path, _lock: lock })
    }

    /// The lock of `p` when nobody holds it (for the tmp/ sweep).
    pub(crate) fn try_lock_path(&self, p: &Path) -> Result<Option<Lock>> {
        take_lock(p, false)
    }
}
