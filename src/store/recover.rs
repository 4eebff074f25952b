//! What an interrupted command leaves behind, cleaned when the store is
//! opened: layer directories without their record (an unpack or removal
//! cut short) and records without their directory.

use crate::store::digest::Digest;
use crate::store::Store;
use crate::sys::{at, tree};
use std::fs;
use std::os::fd::AsRawFd;

/// Drop incomplete layers. A layer is complete when `layers/<hex>` holds
/// both `layer.json` and `diff/`: it is renamed into place with both (after
/// a syncfs), and removal drops the record first. A layer whose lock is held
/// (being loaded or removed right now) is left alone.
pub fn layers(store: &Store) {
    let Ok(rd) = fs::read_dir(store.root.join("layers")) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        let Ok(d) = Digest::from_hex(&name.to_string_lossy()) else { continue };
        let dir = e.path();
        if dir.join("layer.json").is_file() && dir.join("diff").is_dir() {
            continue;
        }
        let Ok(lock) = store.try_layer_lock(&d) else { continue };
        let Some(_lock) = lock else { continue };
        // Checked again under the lock: a loader may have just finished.
        if dir.join("layer.json").is_file() && dir.join("diff").is_dir() {
            continue;
        }
        let _ = fs::remove_file(dir.join("layer.json"));
        if let Err(e) = tree::remove_tree(&dir) {
            log::warn!("cannot remove incomplete layer {}: {}", d.short(), tree::strip_os(&e));
        }
    }
}

/// Sync the filesystem of `dir` (a layer's files) before its record is written.
pub fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let fd = at::openat(libc::AT_FDCWD, dir.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    at::syncfs(fd.as_raw_fd())
}
