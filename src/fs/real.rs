//! Real objects in the layers, and the bounded cache of descriptors for them.
//!
//! A cached inode does not keep its real objects open. Each [`Real`] knows
//! where it lives (its parent `Real` and its name, or a fixed descriptor for
//! layer roots and detached objects) and its identity (device and inode
//! number). Its descriptor is opened on demand relative to its parent, checked
//! against that identity (ESTALE if the name now holds another object), and
//! kept in a cache of at most [`FdCache::cap`] descriptors.
//!
//! Eviction is CLOCK: a hit sets the object's reference bit (no shared lock);
//! a miss admits the new descriptor to a ring and, over the cap, sweeps the
//! ring, giving referenced objects a second chance and closing the others.
//! Objects pinned by an open file or directory handle are never evicted, so
//! an unlinked object stays reachable while something has it open.
//!
//! Callers always hold an `Arc<OwnedFd>` while they use a descriptor, so an
//! eviction never closes a descriptor under a running syscall.
//!
//! Lock order: the ring lock, then one object's slot lock. The hot path takes
//! only the slot lock; nothing blocking runs under the ring lock.

use crate::fs::layers::Fd;
use crate::sys::{at, xattr};
use parking_lot::{Mutex, RwLock};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

/// The shared cache of open descriptors.
#[derive(Debug)]
pub struct FdCache {
    /// Most descriptors kept open for real objects (pinned ones may exceed it).
    pub cap: usize,
    open: AtomicUsize,
    ring: Mutex<VecDeque<Weak<Inner>>>,
}

impl FdCache {
    pub fn new(cap: usize) -> Arc<FdCache> {
        Arc::new(FdCache { cap: cap.max(16), open: AtomicUsize::new(0), ring: Mutex::new(VecDeque::new()) })
    }

    /// A cap from the process's descriptor limit: half of what is left after
    /// a reserve for FUSE channels, open files and the store's own use.
    pub fn cap_for_limit(nofile: u64) -> usize {
        (nofile.saturating_sub(128) / 2).clamp(16, 1 << 16) as usize
    }

    /// Descriptors currently cached.
    pub fn open_count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn admit(&self, obj: &Arc<Inner>) {
        let mut ring = self.ring.lock();
        ring.push_back(Arc::downgrade(obj));
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        if open > self.cap {
            self.sweep(&mut ring);
        }
        if ring.len() > 2 * self.open.load(Ordering::Relaxed) + 64 {
            ring.retain(|w| w.strong_count() > 0);
        }
    }

    fn sweep(&self, ring: &mut VecDeque<Weak<Inner>>) {
        let mut budget = 2 * ring.len();
        while self.open.load(Ordering::Relaxed) > self.cap && budget > 0 {
            budget -= 1;
            let Some(w) = ring.pop_front() else { break };
            let Some(obj) = w.upgrade() else { continue };
            if obj.pins.load(Ordering::Relaxed) > 0 || obj.referenced.swap(false, Ordering::Relaxed) {
                ring.push_back(w);
                continue;
            }
            if obj.slot.lock().take().is_some() {
                self.open.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// Where a real object is reopened from.
#[derive(Debug, Clone)]
enum Loc {
    /// Always open (layer roots, objects without a name).
    Fixed,
    /// `name` in the directory `parent`.
    At(Real, OsString),
}

#[derive(Debug)]
struct Inner {
    loc: RwLock<Loc>,
    dev: u64,
    ino: u64,
    dir: bool,
    slot: Mutex<Option<Fd>>,
    referenced: AtomicBool,
    pins: AtomicU32,
    cache: Arc<FdCache>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !matches!(*self.loc.get_mut(), Loc::Fixed) && self.slot.get_mut().is_some() {
            self.cache.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One object in one layer (cheap to clone).
#[derive(Debug, Clone)]
pub struct Real(Arc<Inner>);

/// Keeps a real object's descriptor from being evicted while it lives.
#[derive(Debug)]
pub struct Pin(Real);

impl Drop for Pin {
    fn drop(&mut self) {
        self.0 .0.pins.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Real {
    fn make(loc: Loc, st: &at::Stat, fd: Option<Fd>, cache: Arc<FdCache>) -> Real {
        Real(Arc::new(Inner {
            referenced: AtomicBool::new(!matches!(loc, Loc::Fixed)),
            loc: RwLock::new(loc),
            dev: st.st_dev,
            ino: st.st_ino,
            dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR,
            slot: Mutex::new(fd),
            pins: AtomicU32::new(0),
            cache,
        }))
    }

    /// A real object that is always open (a layer root, a detached copy).
    pub fn fixed(fd: Fd, cache: &Arc<FdCache>) -> io::Result<Real> {
        let st = at::fstat(fd.as_raw_fd())?;
        Ok(Real::make(Loc::Fixed, &st, Some(fd), cache.clone()))
    }

    /// `name` in `parent`, just opened as `fd` with attributes `st`.
    pub fn at(parent: &Real, name: &OsStr, fd: Fd, st: &at::Stat) -> Real {
        let r = Real::make(Loc::At(parent.clone(), name.to_os_string()), st, Some(fd), parent.0.cache.clone());
        r.0.cache.admit(&r.0);
        r
    }

    /// `name` in `parent`, just found with attributes `st` and not opened:
    /// its descriptor is opened (and checked against `st`) when first asked
    /// for. A lookup of a file that is never opened costs no descriptor.
    pub fn known(parent: &Real, name: &OsStr, st: &at::Stat) -> Real {
        Real::make(Loc::At(parent.clone(), name.to_os_string()), st, None, parent.0.cache.clone())
    }

    /// An xattr of an object just found (`Ok(None)`: absent): through its
    /// descriptor when it has one, else by its name in its parent, without
    /// opening it.
    pub fn xattr(&self, xname: &OsStr) -> io::Result<Option<Vec<u8>>> {
        let held = self.0.slot.lock().clone();
        if let Some(fd) = held {
            let fd = fd.as_raw_fd();
            let t = if self.0.dir { xattr::Target::Fd(fd) } else { xattr::Target::Path(fd) };
            return match xattr::get(t, xname) {
                Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(None),
                r => r,
            };
        }
        let (pfd, name) = self.parent_and_name()?;
        xattr::get_at(pfd.as_raw_fd(), &name, xname)
    }

    /// The descriptor of the directory holding the object, and its name
    /// there (ESTALE for an object without a name).
    fn parent_and_name(&self) -> io::Result<(Fd, OsString)> {
        let loc = self.0.loc.read().clone();
        let Loc::At(parent, name) = loc else {
            return Err(io::Error::from_raw_os_error(libc::ESTALE));
        };
        Ok((parent.fd()?, name))
    }

    /// Open `name` in `parent` (directories for reading, others `O_PATH`).
    pub fn open_at(parent: &Real, name: &OsStr) -> io::Result<(Real, at::Stat)> {
        let pfd = parent.fd()?;
        let fd = open_obj(pfd.as_raw_fd(), name, None)?;
        let st = at::fstat(fd.as_raw_fd())?;
        Ok((Real::at(parent, name, Arc::new(fd), &st), st))
    }

    /// The descriptor, reopened if it was evicted. Hold it while using it.
    pub fn fd(&self) -> io::Result<Fd> {
        if let Some(fd) = self.0.slot.lock().as_ref() {
            self.0.referenced.store(true, Ordering::Relaxed);
            return Ok(fd.clone());
        }
        self.reopen()
    }

    fn reopen(&self) -> io::Result<Fd> {
        // A rename may move the object between reading its location and
        // opening it: look once more before calling it stale.
        let mut last = io::Error::from_raw_os_error(libc::ESTALE);
        for _ in 0..2 {
            let (pfd, name) = self.parent_and_name()?;
            match open_obj(pfd.as_raw_fd(), &name, Some(self.0.dir)) {
                Ok(fd) => {
                    let st = at::fstat(fd.as_raw_fd())?;
                    if st.st_dev != self.0.dev || st.st_ino != self.0.ino {
                        last = io::Error::from_raw_os_error(libc::ESTALE);
                        continue;
                    }
                    let fd = Arc::new(fd);
                    let mut slot = self.0.slot.lock();
                    if let Some(cur) = slot.as_ref() {
                        return Ok(cur.clone());
                    }
                    *slot = Some(fd.clone());
                    drop(slot);
                    self.0.referenced.store(true, Ordering::Relaxed);
                    self.0.cache.admit(&self.0);
                    return Ok(fd);
                }
                Err(e) => last = e,
            }
        }
        if last.raw_os_error() == Some(libc::ENOENT) {
            // The name is gone: for this object that is a stale handle.
            last = io::Error::from_raw_os_error(libc::ESTALE);
        }
        Err(last)
    }

    /// A new descriptor of the object for I/O with `flags` (no creation
    /// flags): reopened from the held descriptor if there is one, else
    /// opened by name in its parent and checked against its identity
    /// (ESTALE if the name now holds another object).
    pub fn open_io(&self, flags: i32) -> io::Result<OwnedFd> {
        let held = self.0.slot.lock().clone();
        if let Some(fd) = held {
            self.0.referenced.store(true, Ordering::Relaxed);
            return at::reopen(fd.as_raw_fd(), flags);
        }
        let (pfd, name) = self.parent_and_name()?;
        let fd = at::openat(pfd.as_raw_fd(), &name, flags | libc::O_NOFOLLOW, 0)?;
        let st = at::fstat(fd.as_raw_fd())?;
        if (st.st_dev, st.st_ino) != self.id() {
            return Err(io::Error::from_raw_os_error(libc::ESTALE));
        }
        Ok(fd)
    }

    /// The object was renamed to `parent/name` (by us, in the upper layer).
    pub fn relocate(&self, parent: &Real, name: &OsStr) {
        let mut loc = self.0.loc.write();
        if !matches!(*loc, Loc::Fixed) {
            *loc = Loc::At(parent.clone(), name.to_os_string());
        }
    }

    /// Keep the descriptor open while the returned guard lives.
    pub fn pin(&self) -> io::Result<Pin> {
        self.0.pins.fetch_add(1, Ordering::Relaxed);
        let pin = Pin(self.clone());
        self.fd()?;
        Ok(pin)
    }

    /// Device and inode number of the real object.
    pub fn id(&self) -> (u64, u64) {
        (self.0.dev, self.0.ino)
    }

    pub fn is_dir(&self) -> bool {
        self.0.dir
    }

    /// The same real object.
    pub fn same(&self, other: &Real) -> bool {
        self.id() == other.id()
    }

    pub fn cache(&self) -> &Arc<FdCache> {
        &self.0.cache
    }
}

/// Open an object for holding: directories `O_RDONLY` (getdents, fxattrs),
/// everything else `O_PATH`. `dir`: the kind expected, if known.
fn open_obj(dirfd: RawFd, name: &OsStr, dir: Option<bool>) -> io::Result<OwnedFd> {
    match dir {
        Some(true) => at::openat(dirfd, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0),
        Some(false) => at::openat(dirfd, name, libc::O_PATH | libc::O_NOFOLLOW, 0),
        None => {
            let fd = at::openat(dirfd, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
            let st = at::fstat(fd.as_raw_fd())?;
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                at::openat(fd.as_raw_fd(), OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)
            } else {
                Ok(fd)
            }
        }
    }
}
