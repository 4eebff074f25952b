//! FUSE passthrough: the kernel reads, writes and maps a regular file's real
//! object itself, without a round trip through the daemon.
//!
//! The kernel's rules (fs/fuse/iomode.c, passthrough.c) decide the design:
//! - registering a backing file needs CAP_SYS_ADMIN in the initial user
//!   namespace: a rootless daemon gets EPERM and every open takes the normal
//!   path (the first EPERM turns passthrough off for the session);
//! - a kernel inode is either in cached mode (opens with the page cache) or
//!   in passthrough mode (every open on its one backing file, even direct-I/O
//!   ones); an open that does not fit the inode's current mode fails with
//!   EIO. So each inode has a [`Slot`]: its backing file (one `BackingId`
//!   shared by all its passthrough opens, dropped with the last one) and its
//!   count of cached opens; an open joins the mode the inode is in, and only
//!   an inode without opens changes mode;
//! - the kernel opens its own backing file per open with that open's flags,
//!   and never updates them: a later `fcntl(F_SETFL)` clearing O_APPEND does
//!   not reach the backing file (writes keep appending), so an O_APPEND open
//!   takes the normal path unless the inode is already in passthrough mode;
//! - passthrough I/O bypasses the inode's page cache: the first cached open
//!   after passthrough I/O drops the pages (no FOPEN_KEEP_CACHE).
//!
//! Which files: with `passthrough=on`, those whose data is in the upper layer
//! (and all files of a mount without writable upper). A lower file opened
//! read-only stays on the normal path there: such a descriptor must follow a
//! copy-up made through another one (the kernel overlay's behaviour), and a
//! backing file cannot be switched under an open file. `passthrough=all` also
//! serves those from their lower file; an open that needs the upper copy
//! while lower-backed opens are still there then fails with ETXTBSY (as a
//! write open of a running program does): the kernel has no mode for it.

use crate::fs::options::PassthroughMode;
use crate::sys::at;
use dashmap::DashMap;
use fuser::BackingId;
use log::debug;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How long an open for write waits for the releases of lower passthrough
/// opens already closed (`check_write`): 20 x 5 ms.
const RELEASE_WAIT_STEPS: u32 = 20;
const RELEASE_WAIT_STEP: std::time::Duration = std::time::Duration::from_millis(5);

/// How the kernel serves one open handle.
#[derive(Clone, Debug)]
pub enum Io {
    /// Through the daemon and the page cache; `keep_cache`: the inode's
    /// cached pages are still valid.
    Cached { keep_cache: bool },
    /// Straight from the backing file.
    Passthrough(Arc<BackingId>),
}

/// What a handle holds for its release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    Cached,
    Passthrough,
}

impl Io {
    pub fn held(&self) -> Held {
        match self {
            Io::Cached { .. } => Held::Cached,
            Io::Passthrough(_) => Held::Passthrough,
        }
    }
}

/// Identity of a real file: (st_dev, st_ino).
pub type FileId = (u64, u64);

/// The kernel I/O mode state of one inode.
#[derive(Debug, Default)]
struct Slot {
    /// The backing file of the passthrough opens, its identity, and whether
    /// it is in a lower layer.
    backing: Option<(Arc<BackingId>, FileId, bool)>,
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
    /// The open is for writing.
    pub write: bool,
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
            && match self.mode {
                PassthroughMode::Off => false,
                PassthroughMode::On => !w.on_lower || !w.writable,
                PassthroughMode::All => true,
            }
    }

    /// Decide how the kernel serves a new open of inode `nodeid` and count
    /// it. `register` makes a backing id of a descriptor (through the reply).
    pub fn attach(
        &self,
        nodeid: u64,
        w: &Want,
        register: &dyn Fn(&OwnedFd) -> io::Result<BackingId>,
    ) -> io::Result<Io> {
        if !self.enabled() {
            // Rootless, `off`, or a kernel without passthrough: no modes to
            // keep apart, nothing to count.
            return Ok(Io::Cached { keep_cache: true });
        }
        let eligible = self.eligible(w);
        // A setuid or setgid file starts its inode in cached mode (it joins a
        // passthrough mode already there): its writes must reach the daemon,
        // which clears the bits for callers without CAP_FSETID (a passthrough
        // write keeps them: the kernel leaves the clearing to us, and the
        // backing file is written with our credentials). Checked before the
        // shard lock, and only for an open that could start passthrough.
        let cached_first =
            w.append || (eligible && at::fstat(w.fd.as_raw_fd())?.st_mode & (libc::S_ISUID | libc::S_ISGID) != 0);
        {
            let mut s = self.slots.entry(nodeid).or_default();
            if let Some(io) = Self::join(&mut s, eligible, cached_first, w)? {
                return Ok(io);
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
                if let Some(io) = Self::join(&mut s, true, false, w)? {
                    // Another open settled the mode meanwhile (ours is dropped).
                    return Ok(io);
                }
                s.backing = Some((b.clone(), w.id, w.on_lower));
                s.passthrough = 1;
                s.stale_pages = true;
                Ok(Io::Passthrough(b))
            }
            // Cached, or passthrough on the backing file another open made
            // meanwhile.
            None => Ok(Self::join(&mut s, eligible, true, w)?.unwrap_or(Io::Cached { keep_cache: false })),
        }
    }

    /// Join the inode's current mode; `None` when the open is eligible for
    /// passthrough and the inode has no open yet (a backing file is needed).
    /// `cached`: the open prefers the cached mode when the inode has no mode.
    fn join(s: &mut Slot, eligible: bool, cached: bool, w: &Want) -> io::Result<Option<Io>> {
        Ok(match &s.backing {
            // A read-only open of a file copied up (metadata only: no open
            // for write while the lower file is open) reads the same data.
            Some((b, bid, _)) if eligible && (*bid == w.id || !w.write) => {
                s.passthrough += 1;
                Some(Io::Passthrough(b.clone()))
            }
            // Passthrough mode on another file (`passthrough=all`: a lower
            // file open while this open needs its upper copy): no kernel mode
            // fits this open.
            Some(_) => return Err(io::Error::from_raw_os_error(libc::ETXTBSY)),
            None if eligible && !cached && s.cached == 0 => None,
            None => {
                s.cached += 1;
                let keep_cache = !s.stale_pages;
                s.stale_pages = false;
                Some(Io::Cached { keep_cache })
            }
        })
    }

    /// Before an open for write copies `nodeid` up: refused while its lower
    /// file is open in passthrough (`passthrough=all`), as the copy could
    /// never be shown to those opens.
    /// The kernel sends RELEASE in the background after `close` returned:
    /// releases in flight get a moment (only with `passthrough=all`, only
    /// while a lower file of the inode is open in passthrough).
    pub fn check_write(&self, nodeid: u64) -> io::Result<()> {
        for step in 0..=RELEASE_WAIT_STEPS {
            let busy = self.slots.get(&nodeid).is_some_and(|s| matches!(s.backing, Some((_, _, true))));
            if !busy {
                return Ok(());
            }
            if step < RELEASE_WAIT_STEPS {
                std::thread::sleep(RELEASE_WAIT_STEP);
            }
        }
        Err(io::Error::from_raw_os_error(libc::ETXTBSY))
    }

    /// A handle of `nodeid` that held `held` was released.
    pub fn detach(&self, nodeid: u64, held: Held) {
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
