//! The union filesystem, one module per concern (modelled on fs/overlayfs):
//!
//! - [`options`]: `-o` parsing into typed options
//! - [`layers`]: the upper/lower/work directories, validated and held by fd
//! - [`real`]: real objects in the layers and the bounded descriptor cache
//! - [`ino`]: the inode number rule (st_ino, d_ino, origin, alternates)
//! - [`inode`]: the sharded inode table and per-inode state
//! - [`prune`]: the table bounded: the kernel asked to hand inodes back
//! - [`whiteout`]: every whiteout/opaque form read, the kernel form written
//! - [`lookup`]: resolve one name through the layers
//! - [`index`]: `index=on`: lower hard links stay linked across copy-up
//! - [`copy_up`]: bring a lower object (and its parents) into the upper
//! - [`metacopy`]: metadata-only copy-up, data found below, copied on write
//! - [`dir`]: create, link, unlink, rmdir, rename
//! - [`readdir`]: merged directory listings per open handle
//! - [`names`]: lower directories' names read once (lookups skip layers)
//! - [`sweep`]: reads over many lower layers at once
//! - [`file`]: open files and their data operations
//! - [`passthrough`]: FUSE passthrough of regular files (kernel I/O modes)
//! - [`attr`]: getattr and setattr
//! - [`idmap`]: uid/gid mapping and squashing of the owners shown
//! - [`xattr`]: extended attributes, private overlay names hidden
//! - [`fuse`]: the only `fuser::Filesystem` implementation (thin handlers)
//! - [`session`]: mount, daemonize, signals, clean shutdown

pub mod attr;
pub mod copy_up;
pub mod dir;
pub mod file;
pub mod fileattr;
pub mod fuse;
pub mod idmap;
pub mod index;
pub mod ino;
pub mod inode;
pub mod layers;
pub mod lookup;
pub mod metacopy;
pub mod names;
pub mod options;
pub mod passthrough;
pub mod prune;
pub mod readdir;
pub mod real;
pub mod session;
pub mod sweep;
pub mod whiteout;
pub mod xattr;

use crate::sys::{self, at};
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
    pub inodes: Arc<InodeTable>,
    pub files: DashMap<u64, Arc<file::OpenFile>>,
    /// Merged listings being read.
    pub dirs: readdir::Listings,
    /// FUSE passthrough state per inode with open files.
    pub passthrough: passthrough::Passthrough,
    next_fh: AtomicU64,
    /// Show owners and modes recorded in `user.containers.override_stat`.
    pub override_owners: bool,
}

impl UnionFs {
    /// Build the filesystem over validated layers; the root inode is ready.
    pub fn new(layers: Layers, opts: Options) -> io::Result<UnionFs> {
        let mut state = InodeState::default();
        let first_lower = layers.first_lower();
        if let Some(u) = layers.upper() {
            state.opaque = whiteout::dir_marks(&layers, u.root.fd()?.as_raw_fd()).opaque;
            state.upper = Some(u.root.clone());
        }
        if !state.opaque {
            for (i, l) in layers.layers.iter().enumerate().skip(first_lower) {
                let m = whiteout::dir_marks(&layers, l.root.fd()?.as_raw_fd());
                state.lowers.push(RealObj { layer: i, real: l.root.clone(), xwh: m.xwhiteouts });
                if m.opaque {
                    break;
                }
            }
        }
        let pt_mode = opts.passthrough;
        let opts_override = opts.xattr_permissions.unwrap_or(if layers.root_user { 0 } else { 2 }) == 2;
        let fs = UnionFs {
            inodes: Arc::new(InodeTable::new(opts.max_inodes)),
            layers,
            ids: idmap::IdMapper::new(&opts),
            opts,
            files: DashMap::new(),
            dirs: readdir::Listings::default(),
            passthrough: passthrough::Passthrough::new(pt_mode),
            next_fh: AtomicU64::new(1),
            override_owners: opts_override,
        };
        let root_st = at::fstat(state.top_fd()?.as_raw_fd())?;
        let st_ino = fs.layers.ino_for(root_st.st_dev, root_st.st_ino);
        fs.inodes.insert_root(Inode::new(ROOT_ID, st_ino, libc::S_IFDIR, state));
        Ok(fs)
    }

    pub fn next_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    /// The cached inode for a nodeid the kernel sent (ENOENT/ESTALE if unknown).
    pub fn inode(&self, nodeid: u64) -> io::Result<Arc<Inode>> {
        self.inodes.get(nodeid).ok_or_else(|| io::Error::from_raw_os_error(libc::ESTALE))
    }

    /// The attributes the kernel sees for `ino` whose top object has `st`.
    pub fn attr_of(&self, ino: &Inode, st: &libc::stat) -> fuser::FileAttr {
        let mut a = if self.override_owners && !ino.is_symlink() {
            let mut st = *st;
            if let Ok(fd) = ino.snapshot().top_fd() {
                let t = if ino.is_dir() {
                    sys::xattr::Target::Fd(fd.as_raw_fd())
                } else {
                    sys::xattr::Target::Path(fd.as_raw_fd())
                };
                if let Ok(Some(v)) = sys::xattr::get(t, std::ffi::OsStr::new(attr::OVERRIDE_XATTR)) {
                    attr::apply_override(&mut st, &v);
                }
            }
            attr::to_attr(ino.st_ino(), &st)
        } else {
            attr::to_attr(ino.st_ino(), st)
        };
        if !self.ids.is_identity() {
            (a.uid, a.gid) = self.ids.shown(a.uid, a.gid);
        }
        if ino.state.read().index.is_some() {
            let mut st = *st;
            index::fix_nlink(&self.layers, ino, &mut st);
            a.nlink = st.st_nlink as u32;
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
