//! The names of lower directories, read once. Lower layers do not change
//! under a mount (the kernel's rule too), so a lower directory's listing,
//! `.wh.` markers included, answers "is `name` here at all?" from memory:
//! a lookup then probes only the layers that hold the name (or its marker),
//! instead of an `openat` and an `lstat` per layer. A miss through 128
//! layers costs hash probes, not 256 syscalls.
//!
//! Bounded: at most [`NAME_BUDGET`] names are kept in all; past that, new
//! directories are probed as before. Only with four or more lower layers:
//! with fewer, probing is as cheap and the listings cost memory and a
//! warm walk (measured: 2 lowers, walk-warm 6.6x the kernel with the index,
//! 5.4x without).

use crate::fs::real::Real;
use crate::fs::sweep;
use crate::sys::at;
use dashmap::DashMap;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Names kept in all (about 50 bytes each).
pub const NAME_BUDGET: usize = 200_000;

/// The raw names of one directory (`.wh.` markers included).
pub type Names = HashSet<Box<[u8]>>;

#[derive(Debug, Default)]
pub struct NameIndex {
    enabled: bool,
    dirs: DashMap<(u64, u64), Arc<Names>>,
    kept: AtomicUsize,
}

impl NameIndex {
    pub fn new(enabled: bool) -> NameIndex {
        NameIndex { enabled, ..Default::default() }
    }

    /// False when the lower directory `dir` certainly holds neither `name`
    /// nor its whiteout marker `.wh.name`; true when it may (or is unknown).
    pub fn may_hold(&self, dir: &Real, name: &OsStr) -> bool {
        if !self.enabled {
            return true;
        }
        if let Some(names) = self.known(dir) {
            return holds(&names, name);
        }
        // Read outside any map lock; a racing reader just reads it twice.
        let Some(names) = read_names(dir) else { return true };
        self.keep_answering(dir, names, name)
    }

    /// `may_hold` for each of `dirs`: the names not yet known are read at
    /// once (in parallel when many: see `sweep`).
    pub fn holders(&self, dirs: &[&Real], name: &OsStr) -> Vec<bool> {
        if !self.enabled {
            return vec![true; dirs.len()];
        }
        let known: Vec<Option<Arc<Names>>> = dirs.iter().map(|d| self.known(d)).collect();
        let missing: Vec<&Real> = dirs.iter().zip(&known).filter(|(_, k)| k.is_none()).map(|(d, _)| *d).collect();
        let mut read = sweep::map(&missing, |d| read_names(d)).into_iter();
        known
            .into_iter()
            .zip(dirs)
            .map(|(k, d)| match k {
                Some(names) => holds(&names, name),
                None => read.next().flatten().is_none_or(|names| self.keep_answering(d, names, name)),
            })
            .collect()
    }

    /// True when the names of `dir` are yet to be read (and would be kept).
    pub fn wants(&self, dir: &Real) -> bool {
        self.enabled && !self.dirs.contains_key(&dir.id()) && self.kept.load(Ordering::Relaxed) < NAME_BUDGET
    }

    /// Keep the names of the lower directory `dir`, read by a listing.
    pub fn learn(&self, dir: &Real, names: Names) {
        if self.enabled {
            self.keep(dir, names);
        }
    }

    /// Whether `names`, just read from `dir`, hold `name`; they are kept.
    fn keep_answering(&self, dir: &Real, names: Names, name: &OsStr) -> bool {
        let answer = holds(&names, name);
        self.keep(dir, names);
        answer
    }

    fn known(&self, dir: &Real) -> Option<Arc<Names>> {
        self.dirs.get(&dir.id()).map(|e| Arc::clone(e.value()))
    }

    fn keep(&self, dir: &Real, names: Names) {
        let n = names.len().max(1);
        if self.kept.fetch_add(n, Ordering::Relaxed) + n <= NAME_BUDGET {
            if self.dirs.insert(dir.id(), Arc::new(names)).is_some() {
                self.kept.fetch_sub(n, Ordering::Relaxed);
            }
        } else {
            self.kept.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

fn holds(names: &Names, name: &OsStr) -> bool {
    let b = name.as_bytes();
    if names.contains(b) {
        return true;
    }
    let mut marker = Vec::with_capacity(b.len() + 4);
    marker.extend_from_slice(b".wh.");
    marker.extend_from_slice(b);
    names.contains(marker.as_slice())
}

fn read_names(dir: &Real) -> Option<Names> {
    let fd = dir.fd().ok()?;
    let entries = at::read_dir_fd(fd.as_raw_fd()).ok()?;
    Some(entries.into_iter().map(|(n, _, _)| n.into_boxed_slice()).filter(|n| &**n != b"." && &**n != b"..").collect())
}
