//! What an interrupted command leaves behind, cleaned when the store is
//! opened (and by prune): layer directories without their record (an unpack
//! or removal cut short), records without their directory, and entries of
//! tmp/ and lock files no live process owns.

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

/// Remove what no live process owns in tmp/: an entry `tmp/NAME` whose lock
/// `tmp/locks/NAME.lock` is free (see [`crate::store::TempDir`]), and free
/// lock files (lockers check after locking that the file is still there).
pub fn tmp(store: &Store) {
    let tmp = store.root.join("tmp");
    let locks = tmp.join("locks");
    let Ok(rd) = fs::read_dir(&tmp) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        if name == "locks" {
            continue;
        }
        let mut lock_name = name.clone();
        lock_name.push(".lock");
        let lock_path = locks.join(&lock_name);
        let Ok(Some(_lock)) = store.try_lock_path(&lock_path) else { continue };
        match tree::remove_tree(&e.path()) {
            Ok(()) => log::debug!("removed stale tmp/{}", name.to_string_lossy()),
            Err(err) => log::warn!("cannot remove stale tmp/{}: {}", name.to_string_lossy(), tree::strip_os(&err)),
        }
        let _ = fs::remove_file(&lock_path);
    }
    let Ok(rd) = fs::read_dir(&locks) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if let Ok(Some(_lock)) = store.try_lock_path(&p) {
            let _ = fs::remove_file(&p);
        }
    }
}

/// Sync the filesystem of `dir` (a layer's files) before its record is written.
pub fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let fd = at::openat(libc::AT_FDCWD, dir.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    at::syncfs(fd.as_raw_fd())
}

/// Remove container directories without their record (a removal cut
/// short: the record goes first), unless their lock is held (being removed
/// right now) or something is still mounted in them.
pub fn containers(store: &Store) {
    let Ok(rd) = fs::read_dir(store.root.join("containers")) else { return };
    for e in rd.flatten() {
        let dir = e.path();
        if !dir.is_dir() || dir.join("container.json").exists() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(Some(_lock)) = store.try_lock_path(&store.root.join("tmp/locks").join(format!("ctr-{name}.lock")))
        else {
            continue;
        };
        if dir.join("container.json").exists() || !crate::sys::mount::mounts_under(&dir).is_empty() {
            continue;
        }
        if let Err(e) = tree::remove_tree(&dir) {
            log::warn!("cannot remove the rest of container {name}: {}", tree::strip_os(&e));
        }
    }
}
