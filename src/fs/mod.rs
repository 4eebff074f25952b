//! The union filesystem, one module per concern (modelled on fs/overlayfs):
//!
//! - [`options`]: `-o` parsing into typed options
//! - [`layers`]: the upper/lower/work directories, validated and held by fd
//! - [`inode`]: the sharded inode table and per-inode state
//! - [`whiteout`]: every whiteout/opaque form read, the kernel form written
//! - [`lookup`]: resolve one name through the layers
//! - [`copy_up`]: bring a lower object (and its parents) into the upper
//! - [`dir`]: create, link, unlink, rmdir, rename
//! - [`readdir`]: merged directory listings per open handle
//! - [`file`]: open files and their data operations
//! - [`attr`]: getattr and setattr
//! - [`idmap`]: uid/gid mapping and squashing of the owners shown
//! - [`xattr`]: extended attributes, private overlay names hidden
//! - [`fuse`]: the only `fuser::Filesystem` implementation (thin handlers)
//! - [`session`]: mount, daemonize, signals, clean shutdown

pub mod attr;
pub mod copy_up;
pub mod dir;
pub mod file;
pub mod fuse;
pub mod idmap;
pub mod inode;
pub mod layers;
pub mod lookup;
pub mod options;
pub mod readdir;
pub mod session;
pub mod whiteout;
pub mod xattr;

use dashmap::DashMap;
use inode::{Inode, InodeState, InodeTable, RealObj, ROOT_ID};
use layers::Layers;
use options::Options;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The mounted union: layers, cached inodes and open handles.
#[derive(Debug)]
pub struct UnionFs {
    pub layers: Layers,
    pub opts: Options,
    pub ids: idmap::IdMapper,
    pub inodes: InodeTable,
    pub files: DashMap<u64, Arc<file::OpenFile>>,
    pub dirs: DashMap<u64, Arc<readdir::DirHandle>>,
    next_fh: AtomicU64,
}

impl UnionFs {
    /// Build the filesystem over validated layers; the root inode is ready.
    pub fn new(layers: Layers, opts: Options) -> io::Result<UnionFs> {
        let mut state = InodeState::default();
        let first_lower = layers.first_lower();
        if let Some(u) = layers.upper() {
            state.opaque = whiteout::is_opaque(u.root.as_raw_fd());
            state.upper = Some(u.root.clone());
        }
        if !state.opaque {
            for (i, l) in layers.layers.iter().enumerate().skip(first_lower) {
                state.lowers.push(RealObj { layer: i, fd: l.root.clone() });
                if whiteout::is_opaque(l.root.as_raw_fd()) {
                    break;
                }
            }
        }
        let fs = UnionFs {
            layers,
            ids: idmap::IdMapper::new(&opts),
            opts,
            inodes: InodeTable::default(),
            files: DashMap::new(),
            dirs: DashMap::new(),
            next_fh: AtomicU64::new(1),
        };
        fs.inodes.insert_root(Inode::new(ROOT_ID, libc::S_IFDIR, state));
        Ok(fs)
    }

    pub fn next_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    /// The cached inode for a nodeid the kernel sent (ENOENT/ESTALE if unknown).
    pub fn inode(&self, nodeid: u64) -> io::Result<Arc<Inode>> {
        self.inodes.get(nodeid).ok_or_else(|| io::Error::from_raw_os_error(libc::ESTALE))
    }

    /// The attributes the kernel sees for `nodeid` whose top object has `st`.
    pub fn attr_of(&self, nodeid: u64, st: &libc::stat) -> fuser::FileAttr {
        let mut a = attr::to_attr(nodeid, st);
        if !self.ids.is_identity() {
            (a.uid, a.gid) = self.ids.shown(a.uid, a.gid);
        }
        if self.opts.static_nlink && a.kind == fuser::FileType::Directory {
            a.nlink = 1;
        }
        a
    }

    /// EROFS unless there is an upper layer.
    pub fn check_writable(&self) -> io::Result<()> {
        if self.layers.has_upper && !self.opts.read_only {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::EROFS))
        }
    }
}
