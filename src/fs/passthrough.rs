//! FUSE passthrough: the kernel reads, writes and maps a regular file's real
//! object itself, without a round trip through the daemon.
//!
//! The kernel's rules (fs/fuse/iomode.c, passthrough.c) decide the design:
//! - registering a backing file needs CAP_SYS_ADMIN in the initial user
//!   namespace: a rootless daemon gets EPERM and every open takes the normal
//!   path (the first EPERM turns passthrough off for the session);
//! - a kernel inode is either in cached mode (opens with the page cache) or
//!   in passthrough mode (opens on one backing file); an open that does not
//!   fit the inode's current mode fails with EIO, except a direct-I/O open,
//!   which fits both. So each inode has a [`Slot`]: its backing file (one
//!   `BackingId` shared by all its passthrough opens, dropped with the last
//!   one) and its count of cached opens; an open joins the mode the inode is
//!   in, and only an inode without opens changes mode;
//! - the kernel opens its own backing file per open with that open's flags,
//!   and never updates them: a later `fcntl(F_SETFL)` clearing O_APPEND
//!   would not reach the backing file, so O_APPEND opens take the normal path;
//! - passthrough I/O bypasses the inode's page cache: the first cached open
//!   after passthrough I/O drops the pages (no FOPEN_KEEP_CACHE).
//!
//! Which files: with `passthrough=on`, those whose data is in the upper layer
//! (and all files of a mount without writable upper). A lower file opened
//! read-only stays on the normal path there: such a descriptor must follow a
//! copy-up made through another one (the kernel overlay's behaviour), and a
//! backing file cannot be switched under an open file. `passthrough=all` also
//! serves those from their lower file; an open that needs the upper copy
//! while lower-backed opens are still there is then served with direct I/O.

use crate::fs::options::PassthroughMode;
use dashmap::DashMap;
use fuser::BackingId;
use log::debug;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How the kernel serves one open handle.
#[derive(Clone, Debug)]
pub enum Io {
    /// Through the daemon and the page cache; `keep_cache`: the inode's
    /// cached pages are still valid.
    Cached { keep_cache: bool },
    /// Straight from the backing file.
    Passthrough(Arc<BackingId>),
    /// Through the daemon without page cache (an open that fits neither mode).
    Direct,
}

/// What a handle holds for its release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    Cached,
    Passthrough,
    Direct,
}

impl Io {
    pub fn held(&self) -> Held {
        match self {
            Io::Cached { .. } => Held::Cached,
            Io::Passthrough(_) => Held::Passthrough,
            Io::Direct => Held::Direct,
        }
    }
}

/// Identity of a real file: (st_dev, st_ino).
pub type FileId = (u64, u64);

/// The kernel I/O mode state of one inode.
#[derive(Debug, Default)]
struct Slot {
    /// The backing file of the passthrough opens, and its identity.
    backing: Option<(Arc<BackingId>, FileId)>,
    passthrough: u32,
    cached: u32,
    /// Passthrough I/O since the last cached open without keep-cache.
    stale_pages: bool,
}

impl Slot {
    fn idle(&self) -> bool {
        self.passthrough == 0 && self.cached == 0 && !self.stale_pages
    }
}

/// Per-mount passthrough state: a slot per inode with open handles (sharded).
#[derive(Debug)]
pub struct Passthrough {
    mode: PassthroughMode,
    /// The kernel agreed at INIT and no registration was refused for lack of
    /// privilege.
    enabled: AtomicBool,
    slots: DashMap<u64, Slot>,
}

/// What an open would like.
pub struct Want<'a> {
    /// The real descriptor to register, and the real file's identity.
    pub fd: &'a OwnedFd,
    pub id: FileId,
    /// The data comes from a lower layer.
    pub on_lower: bool,
    /// The open asked for O_APPEND.
    pub append: bool,
    /// The mount can copy up (has a writable upper layer).
    pub writable: bool,
}

impl Passthrough {
    pub fn new(mode: PassthroughMode) -> Passthrough {
        Passthrough { mode, enabled: AtomicBool::new(false), slots: DashMap::new() }
    }

    /// Whether INIT should ask the kernel for passthrough.
    pub fn wanted(&self) -> bool {
        self.mode != PassthroughMode::Off
    }

    /// The kernel accepted passthrough at INIT.
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    fn eligible(&self, w: &Want) -> bool {
        self.enabled()
            && !w.append
            && match self.mode {
                PassthroughMode::Off => false,
                PassthroughMode::On => !w.on_lower || !w.writable,
                PassthroughMode::All => true,
            }
    }

    /// Decide how the kernel serves a new open of inode `nodeid` and count
    /// it. `register` makes a backing id of a descriptor (through the reply).
    pub fn attach(&self, nodeid: u64, w: &Want, register: &dyn Fn(&OwnedFd) -> io::Result<BackingId>) -> Io {
        let eligible = self.eligible(w);
        {
            let mut s = self.slots.entry(nodeid).or_default();
            if let Some(io) = Self::join(&mut s, eligible, w.id) {
                return io;
            }
        }
        // No open on the inode: register outside the shard lock.
        let new = match register(w.fd) {
            Ok(b) => Some(Arc::new(b)),
            Err(e) => {
                debug!("passthrough: backing file for inode {nodeid}: {e}; normal I/O");
                if e.raw_os_error() == Some(libc::EPERM) {
                    self.enabled.store(false, Ordering::Relaxed);
                }
                None
            }
        };
        let mut s = self.slots.entry(nodeid).or_default();
        match new {
            Some(b) => {
                if let Some(io) = Self::join(&mut s, true, w.id) {
                    // Another open settled the mode meanwhile (ours is dropped).
                    return io;
                }
                s.backing = Some((b.clone(), w.id));
                s.passthrough = 1;
                s.stale_pages = true;
                Io::Passthrough(b)
            }
            None => Self::join(&mut s, false, w.id).unwrap_or(Io::Direct),
        }
    }

    /// Join the inode's current mode; `None` when the open is eligible for
    /// passthrough and the inode has no open yet (a backing file is needed).
    fn join(s: &mut Slot, eligible: bool, id: FileId) -> Option<Io> {
        match &s.backing {
            Some((b, bid)) if eligible && *bid == id => {
                s.passthrough += 1;
                Some(Io::Passthrough(b.clone()))
            }
            // Passthrough mode on another file, or an open that must not
            // pass through: fits only as direct I/O.
            Some(_) => Some(Io::Direct),
            None if eligible && s.cached == 0 => None,
            None => {
                s.cached += 1;
                let keep_cache = !s.stale_pages;
                s.stale_pages = false;
                Some(Io::Cached { keep_cache })
            }
        }
    }

    /// A handle of `nodeid` that held `held` was released.
    pub fn detach(&self, nodeid: u64, held: Held) {
        if held == Held::Direct {
            return;
        }
        let dropped = {
            let Some(mut s) = self.slots.get_mut(&nodeid) else { return };
            let mut dropped = None;
            match held {
                Held::Cached => s.cached = s.cached.saturating_sub(1),
                Held::Passthrough => {
                    s.passthrough = s.passthrough.saturating_sub(1);
                    if s.passthrough == 0 {
                        dropped = s.backing.take();
                    }
                }
                Held::Direct => {}
            }
            dropped
        };
        // BACKING_CLOSE outside the shard lock.
        drop(dropped);
        self.slots.remove_if(&nodeid, |_, s| s.idle());
    }

    /// The kernel forgot inode `nodeid` (its page cache went with it).
    pub fn forget(&self, nodeid: u64) {
        self.slots.remove_if(&nodeid, |_, s| s.passthrough == 0 && s.cached == 0);
    }
}
