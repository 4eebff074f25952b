//! The inode table: nodeid -> inode, lookup counts, per-inode state and locks.
//!
//! The nodeid is the kernel's handle; `st_ino` is the number shown. Both are
//! the origin's inode number except for the names of lower hard links, which
//! share `st_ino` and get a node ID each (see `ino.rs`).
//!
//! The table is a sharded map; nothing blocking runs under a shard lock. Each
//! inode has its own `RwLock` for its real objects and a mutex serialising
//! copy-up.

use crate::fs::layers::Fd;
use crate::fs::real::Real;
use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use std::ffi::{OsStr, OsString};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

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

/// Sharded nodeid -> inode map.
#[derive(Debug, Default)]
pub struct InodeTable {
    map: DashMap<u64, Arc<Inode>>,
}

impl InodeTable {
    pub fn insert_root(&self, inode: Inode) {
        inode.nlookup.store(1 << 40, Ordering::Relaxed);
        self.map.insert(ROOT_ID, Arc::new(inode));
    }

    pub fn get(&self, nodeid: u64) -> Option<Arc<Inode>> {
        self.map.get(&nodeid).map(|r| r.value().clone())
    }

    /// Count one kernel reference to `nodeid`, creating the inode from `make`
    /// if it is not cached (`make` only moves already-opened fds: no syscalls
    /// under the shard lock). Returns the cached inode and whether it was new.
    pub fn reference(&self, nodeid: u64, make: impl FnOnce() -> Inode) -> (Arc<Inode>, bool) {
        use dashmap::mapref::entry::Entry;
        match self.map.entry(nodeid) {
            Entry::Occupied(e) => {
                e.get().nlookup.fetch_add(1, Ordering::Relaxed);
                (e.get().clone(), false)
            }
            Entry::Vacant(v) => {
                let ino = Arc::new(make());
                ino.nlookup.store(1, Ordering::Relaxed);
                v.insert(ino.clone());
                (ino, true)
            }
        }
    }

    /// Drop `n` kernel references; the inode leaves the table at zero.
    pub fn forget(&self, nodeid: u64, n: u64) {
        if nodeid == ROOT_ID {
            return;
        }
        self.map.remove_if(&nodeid, |_, ino| {
            let prev = ino.nlookup.fetch_sub(n.min(ino.nlookup.load(Ordering::Relaxed)), Ordering::Relaxed);
            prev <= n
        });
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
