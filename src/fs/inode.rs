//! The inode table: nodeid -> inode, lookup counts, per-inode state and locks.
//!
//! The nodeid is the kernel's handle; `st_ino` is the number shown. Both are
//! the origin's inode number except for the names of lower hard links, which
//! share `st_ino` and get a node ID each (see `ino.rs`).
//!
//! The table is a sharded map; nothing blocking runs under a shard lock. Each
//! inode has its own `RwLock` for its real objects and a mutex serialising
//! copy-up. It is bounded: past its budget it signals `prune.rs`, which asks
//! the kernel to hand the oldest unused inodes back.

use crate::fs::layers::Fd;
use crate::fs::real::Real;
use dashmap::DashMap;
use parking_lot::Condvar;
use parking_lot::{Mutex, RwLock};
use std::ffi::{OsStr, OsString};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const ROOT_ID: u64 = 1;

/// A real object in one layer.
#[derive(Clone, Debug)]
pub struct RealObj {
    /// Index into `Layers::layers`.
    pub layer: usize,
    pub real: Real,
    /// A lower directory holding xattr whiteouts (see `whiteout::DirMarks`).
    pub xwh: bool,
}

/// What an inode is made of; replaced as a whole on copy-up and rename.
#[derive(Clone, Debug, Default)]
pub struct InodeState {
    /// Parent directory and name (for copy-up of parents; updated on rename).
    pub parent: Option<Arc<Inode>>,
    pub name: OsString,
    /// Further names of a hard-linked non-directory the kernel looked up.
    pub links: Vec<(Arc<Inode>, OsString)>,
    /// The upper object, if any.
    pub upper: Option<Real>,
    /// Lower objects: for a non-directory the top-most lower copy; for a
    /// directory every lower directory merged under it, top first.
    pub lowers: Vec<RealObj>,
    /// The upper directory is opaque (lowers is then empty).
    pub opaque: bool,
    /// The upper directory's redirect record: where its lower parts are.
    pub redirect: Option<OsString>,
    /// The name was removed (the object lives on while open).
    pub unlinked: bool,
    /// The top object is a metacopy file (`metacopy.rs`): its data is this
    /// lower file's.
    pub data: Option<Real>,
    /// The index entry of an indexed copy (`index.rs`): `upper` is that entry.
    pub index: Option<OsString>,
}

impl InodeState {
    /// The object whose attributes and data are shown.
    pub fn top(&self) -> Option<Real> {
        self.upper.clone().or_else(|| self.lowers.first().map(|l| l.real.clone()))
    }

    /// The object the file's data is read from.
    pub fn data_obj(&self) -> Option<Real> {
        self.data.clone().or_else(|| self.top())
    }

    /// The top object's descriptor (ESTALE if there is none).
    pub fn top_fd(&self) -> io::Result<Fd> {
        self.top().ok_or_else(|| io::Error::from_raw_os_error(libc::ESTALE))?.fd()
    }

    /// Record another name the kernel knows this object by.
    pub fn add_alias(&mut self, parent: &Arc<Inode>, name: &OsStr) {
        let same = |p: &Arc<Inode>, n: &OsStr| p.nodeid == parent.nodeid && n == name;
        if self.parent.as_ref().is_some_and(|p| same(p, &self.name)) || self.links.iter().any(|(p, n)| same(p, n)) {
            return;
        }
        if self.unlinked {
            self.parent = Some(parent.clone());
            self.name = name.to_os_string();
            self.unlinked = false;
        } else {
            self.links.push((parent.clone(), name.to_os_string()));
        }
    }

    /// A name of this object went away; `unlinked` once none is left.
    pub fn remove_alias(&mut self, parent: u64, name: &OsStr) {
        if self.parent.as_ref().is_some_and(|p| p.nodeid == parent) && self.name == name {
            match self.links.pop() {
                Some((p, n)) => {
                    self.parent = Some(p);
                    self.name = n;
                }
                None => self.unlinked = true,
            }
        } else {
            self.links.retain(|(p, n)| !(p.nodeid == parent && n == name));
        }
    }

    /// A name of this object was renamed.
    pub fn rename_alias(&mut self, parent: u64, name: &OsStr, newparent: &Arc<Inode>, newname: &OsStr) {
        if self.parent.as_ref().is_some_and(|p| p.nodeid == parent) && self.name == name {
            self.parent = Some(newparent.clone());
            self.name = newname.to_os_string();
        } else if let Some(l) = self.links.iter_mut().find(|(p, n)| p.nodeid == parent && n == name) {
            *l = (newparent.clone(), newname.to_os_string());
        } else {
            self.parent = Some(newparent.clone());
            self.name = newname.to_os_string();
        }
    }

    /// Some lower layer has this object (so removing its name needs a whiteout).
    pub fn has_lower(&self) -> bool {
        !self.lowers.is_empty()
    }
}

#[derive(Debug)]
pub struct Inode {
    /// The kernel's handle for this inode (the table key).
    pub nodeid: u64,
    /// The inode number shown (`st_ino`, see `ino.rs`); the names of a lower
    /// hard link share it while each has its own node ID.
    st_ino: AtomicU64,
    /// `S_IFMT` bits; an inode never changes type.
    pub kind: u32,
    nlookup: AtomicU64,
    pub state: RwLock<InodeState>,
    /// Held for the duration of a copy-up of this inode.
    pub copy_up_lock: Mutex<()>,
    /// Its lower data was handed to the kernel's page cache at an open
    /// (`file::prefetch`): later opens find it there.
    pub prefetched: AtomicBool,
    /// The table's clock when a request last used it (`InodeTable::prune_candidates`).
    used: AtomicU32,
}

impl Inode {
    pub fn new(nodeid: u64, st_ino: u64, kind: u32, state: InodeState) -> Inode {
        Inode {
            nodeid,
            st_ino: AtomicU64::new(st_ino),
            kind,
            nlookup: AtomicU64::new(0),
            state: RwLock::new(state),
            copy_up_lock: Mutex::new(()),
            prefetched: AtomicBool::new(false),
            used: AtomicU32::new(0),
        }
    }

    pub fn st_ino(&self) -> u64 {
        self.st_ino.load(Ordering::Relaxed)
    }

    /// A copy-up gave the object a number of its own (a broken hard link).
    pub fn set_st_ino(&self, n: u64) {
        self.st_ino.store(n, Ordering::Relaxed);
    }

    pub fn is_dir(&self) -> bool {
        self.kind == libc::S_IFDIR
    }

    pub fn is_symlink(&self) -> bool {
        self.kind == libc::S_IFLNK
    }

    pub fn is_regular(&self) -> bool {
        self.kind == libc::S_IFREG
    }

    /// A snapshot of the state (cheap: Arc clones), taken under the read lock.
    pub fn snapshot(&self) -> InodeState {
        self.state.read().clone()
    }

    pub fn parent(&self) -> Option<Arc<Inode>> {
        self.state.read().parent.clone()
    }

    pub fn upper(&self) -> Option<Real> {
        self.state.read().upper.clone()
    }

    /// The upper object, once it holds the file's data (not a metacopy).
    pub fn upper_data(&self) -> Option<Real> {
        let s = self.state.read();
        if s.data.is_some() {
            None
        } else {
            s.upper.clone()
        }
    }

    /// The kernel overlay shows merged directories with nlink 1 (counting
    /// subdirectories across layers is not worth it; `find` copes).
    pub fn fix_nlink(&self, st: &mut libc::stat) {
        if self.is_dir() {
            let s = self.state.read();
            if (s.upper.is_some() && !s.lowers.is_empty()) || s.lowers.len() > 1 {
                st.st_nlink = 1;
            }
        }
    }
}

/// Sharded nodeid -> inode map, bounded (see `prune.rs`).
#[derive(Debug, Default)]
pub struct InodeTable {
    map: DashMap<u64, Arc<Inode>>,
    /// Inodes in the map.
    live: AtomicUsize,
    /// Inodes made since the mount; the clock ticks every [`TICK`] of them.
    made: AtomicU64,
    /// Inodes past which the pruner is woken (0: never).
    budget: usize,
    /// `made` from which the pruner may be woken again (it rests between
    /// rounds, so a table it cannot shrink does not wake it per inode).
    next_round: AtomicU64,
    /// The pruner was signalled and has not looked yet.
    signalled: AtomicBool,
    wake: Mutex<()>,
    cond: Condvar,
}

/// Inodes made per tick of the table's clock: inodes last used within one
/// tick are equally old to the pruner.
const TICK: u64 = 1024;

impl InodeTable {
    /// A table that wakes the pruner past `budget` inodes (0: unbounded).
    pub fn new(budget: usize) -> InodeTable {
        InodeTable { budget, ..Default::default() }
    }

    pub fn insert_root(&self, inode: Inode) {
        inode.nlookup.store(1 << 40, Ordering::Relaxed);
        if self.map.insert(ROOT_ID, Arc::new(inode)).is_none() {
            self.live.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self, nodeid: u64) -> Option<Arc<Inode>> {
        self.map.get(&nodeid).map(|r| {
            self.touch(r.value());
            r.value().clone()
        })
    }

    /// Count one kernel reference to `nodeid`, creating the inode from `make`
    /// if it is not cached (`make` only moves already-opened fds: no syscalls
    /// under the shard lock). Returns the cached inode and whether it was new.
    pub fn reference(&self, nodeid: u64, make: impl FnOnce() -> Inode) -> (Arc<Inode>, bool) {
        use dashmap::mapref::entry::Entry;
        let made = match self.map.entry(nodeid) {
            Entry::Occupied(e) => {
                e.get().nlookup.fetch_add(1, Ordering::Relaxed);
                self.touch(e.get());
                return (e.get().clone(), false);
            }
            Entry::Vacant(v) => {
                let ino = Arc::new(make());
                ino.nlookup.store(1, Ordering::Relaxed);
                self.touch(&ino);
                v.insert(ino.clone());
                ino
            }
        };
        let live = self.live.fetch_add(1, Ordering::Relaxed) + 1;
        let n = self.made.fetch_add(1, Ordering::Relaxed) + 1;
        if self.budget != 0 && live > self.budget && n >= self.next_round.load(Ordering::Relaxed) {
            self.signal();
        }
        (made, true)
    }

    /// Drop `n` kernel references; the inode leaves the table at zero.
    pub fn forget(&self, nodeid: u64, n: u64) {
        if nodeid == ROOT_ID {
            return;
        }
        let gone = self.map.remove_if(&nodeid, |_, ino| {
            let prev = ino.nlookup.fetch_sub(n.min(ino.nlookup.load(Ordering::Relaxed)), Ordering::Relaxed);
            prev <= n
        });
        if gone.is_some() {
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    fn clock(&self) -> u32 {
        (self.made.load(Ordering::Relaxed) / TICK) as u32
    }

    fn touch(&self, ino: &Inode) {
        ino.used.store(self.clock(), Ordering::Relaxed);
    }

    fn signal(&self) {
        if !self.signalled.swap(true, Ordering::AcqRel) {
            let _g = self.wake.lock();
            self.cond.notify_one();
        }
    }

    /// For the pruner: wait until the table is over its budget and done
    /// resting (true), or until `timeout` passes (false). A table the kernel
    /// could not shrink starts no new round until more inodes are made.
    pub fn wait_over_budget(&self, timeout: Duration) -> bool {
        let mut g = self.wake.lock();
        if !self.signalled.load(Ordering::Acquire) {
            self.cond.wait_for(&mut g, timeout);
        }
        self.signalled.store(false, Ordering::Release);
        self.budget != 0
            && self.len() > self.budget
            && self.made.load(Ordering::Relaxed) >= self.next_round.load(Ordering::Relaxed)
    }

    /// For the pruner: a round ended; rest until `gap` more inodes are made.
    pub fn rest(&self, gap: u64) {
        self.next_round.store(self.made.load(Ordering::Relaxed) + gap, Ordering::Relaxed);
    }

    /// Up to `n` node IDs the kernel may be asked to hand back, least recently
    /// used first: not the root, and no directory that inodes below it hold
    /// (its entries go first; the kernel keeps it while they are cached).
    /// One pass over the map, each shard read-locked in turn (no syscalls).
    pub fn prune_candidates(&self, n: usize) -> Vec<u64> {
        let mut c: Vec<(u32, u64)> = Vec::with_capacity(self.len());
        for e in self.map.iter() {
            let ino = e.value();
            if ino.nodeid == ROOT_ID || (ino.is_dir() && Arc::strong_count(ino) > 1) {
                continue;
            }
            c.push((ino.used.load(Ordering::Relaxed), ino.nodeid));
        }
        if c.len() > n {
            c.select_nth_unstable(n);
            c.truncate(n);
        }
        c.into_iter().map(|(_, id)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(table: &InodeTable, nodeid: u64, kind: u32, parent: Option<Arc<Inode>>) -> Arc<Inode> {
        let state = InodeState { parent, ..Default::default() };
        table.reference(nodeid, || Inode::new(nodeid, nodeid, kind, state)).0
    }

    #[test]
    fn prune_candidates_are_the_least_recently_used_leaves() {
        let t = InodeTable::new(2);
        t.insert_root(Inode::new(ROOT_ID, 1, libc::S_IFDIR, InodeState::default()));
        let dir = make(&t, 10, libc::S_IFDIR, None);
        let empty = make(&t, 11, libc::S_IFDIR, None);
        drop(empty);
        // Files made TICK apart, so their clocks differ; 20 is the oldest.
        let mut files = Vec::new();
        for (i, id) in [20u64, 21, 22].into_iter().enumerate() {
            for _ in 0..if i == 0 { 0 } else { TICK } {
                t.made.fetch_add(1, Ordering::Relaxed);
            }
            files.push(make(&t, id, libc::S_IFREG, Some(dir.clone())));
        }
        drop(files);
        // 20 used again now: 21 becomes the oldest.
        t.get(20);
        let c = t.prune_candidates(2);
        assert_eq!(c.len(), 2);
        // Never the root, nor a directory that inodes below it hold.
        assert!(!c.contains(&ROOT_ID) && !c.contains(&10), "{c:?}");
        assert!(c.contains(&11) && c.contains(&21), "{c:?}");
        assert_eq!(t.len(), 6);
        assert!(t.wait_over_budget(Duration::from_millis(1)), "6 inodes over a budget of 2");
        // After a round it rests until more inodes are made.
        t.rest(1);
        assert!(!t.wait_over_budget(Duration::from_millis(1)), "a round while resting");
        make(&t, 30, libc::S_IFREG, None);
        assert!(t.wait_over_budget(Duration::from_millis(1)), "no round after a new inode");
        t.forget(30, 1);
        t.forget(21, 1);
        assert_eq!(t.len(), 5);
        assert!(!InodeTable::new(0).wait_over_budget(Duration::from_millis(1)));
    }
}
