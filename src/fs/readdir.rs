//! Merged directory listings, built when a reading of the directory starts
//! (stable offsets while it goes on).
//!
//! Upper entries first, then each merged lower's; the first occurrence of a
//! name wins; whiteouts (char 0:0, `.wh.NAME`, and xattr whiteouts in lower
//! directories marked as holding them: the same predicate as lookup) hide
//! names in the layers below theirs (never in their own layer); markers never
//! appear. `d_ino` is the number `stat` shows (see `ino.rs`).

use crate::fs::ino;
use crate::fs::inode::{Inode, InodeState, RealObj};
use crate::fs::layers::Layers;
use crate::fs::names::Names;
use crate::fs::real::Real;
use crate::fs::sweep;
use crate::fs::whiteout::{is_whiteout_stat, is_xattr_whiteout, WH_OPAQUE, WH_PREFIX};
use crate::sys::at;
use dashmap::DashMap;
use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::sync::Arc;

/// One visible entry.
#[derive(Clone, Debug)]
pub struct DirEntry {
    pub name: OsString,
    /// `S_IFMT` bits.
    pub kind: u32,
    pub ino: u64,
}

/// The listings being read, by directory node ID.
///
/// The daemon answers OPENDIR with ENOSYS: the kernel then sends no OPENDIR
/// or RELEASEDIR at all (two round trips fewer per directory read) and keeps
/// the listing in its page cache (`FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE` is its
/// default then; every change of a directory comes through this mount and
/// drops the cached pages). READDIR comes without a handle, so a reading is
/// known by its offsets: offset 0 builds the listing (a rewind shows the
/// directory as it is now), later offsets continue in it, and it goes once
/// its last entry was sent or the kernel forgets the directory. A reading
/// whose listing went meanwhile (another reader finished) continues in a new
/// one: the same entries unless the directory changed.
#[derive(Debug, Default)]
pub struct Listings(DashMap<u64, Arc<Vec<DirEntry>>>);

impl Listings {
    /// The listing of directory `dir` to continue at `offset`.
    pub fn at(&self, layers: &Layers, dir: &Inode, offset: u64) -> io::Result<Arc<Vec<DirEntry>>> {
        if offset != 0 {
            if let Some(l) = self.0.get(&dir.nodeid) {
                return Ok(l.value().clone());
            }
        }
        // Built outside the map's shard lock.
        let l = Arc::new(entries_of(layers, &dir.snapshot())?);
        self.0.insert(dir.nodeid, l.clone());
        Ok(l)
    }

    /// The reading of `nodeid` reached its end, or the kernel forgot it.
    pub fn done(&self, nodeid: u64) {
        self.0.remove(&nodeid);
    }
}

fn dtype_kind(d: u8) -> Option<u32> {
    Some(match d {
        libc::DT_DIR => libc::S_IFDIR,
        libc::DT_REG => libc::S_IFREG,
        libc::DT_LNK => libc::S_IFLNK,
        libc::DT_CHR => libc::S_IFCHR,
        libc::DT_BLK => libc::S_IFBLK,
        libc::DT_FIFO => libc::S_IFIFO,
        libc::DT_SOCK => libc::S_IFSOCK,
        _ => return None,
    })
}

/// (name, S_IFMT kind, d_ino) of one real directory entry.
type RawEntry = (OsString, u32, u64);

/// The entries of one real directory, whiteouts split out; with `learn`,
/// its raw names too (for the names index).
fn read_layer(layers: &Layers, dirfd: RawFd, xwh: bool, learn: bool) -> io::Result<Layer> {
    let mut vis = Vec::new();
    let mut wh = Vec::new();
    let raw = at::read_dir_fd(dirfd)?;
    let names = learn.then(|| raw.iter().map(|(n, _, _)| n.clone().into_boxed_slice()).collect());
    for (name, dtype, ino) in raw {
        if name == WH_OPAQUE {
            continue;
        }
        if let Some(rest) = name.strip_prefix(WH_PREFIX) {
            wh.push(OsString::from_vec(rest.to_vec()));
            continue;
        }
        let os = OsString::from_vec(name);
        let kind = match dtype_kind(dtype) {
            // In a directory holding xattr whiteouts, empty files may be whiteouts.
            Some(libc::S_IFREG) if xwh => {
                let st = match at::lstatat(dirfd, &os) {
                    Ok(st) => st,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                    Err(e) => return Err(e),
                };
                if is_xattr_whiteout(layers, dirfd, &os, &st) {
                    wh.push(os);
                    continue;
                }
                libc::S_IFREG
            }
            Some(k) if k != libc::S_IFCHR => k,
            _ => {
                // Character devices may be whiteouts; unknown types need a stat.
                let st = match at::lstatat(dirfd, &os) {
                    Ok(st) => st,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                    Err(e) => return Err(e),
                };
                if is_whiteout_stat(&st) {
                    wh.push(os);
                    continue;
                }
                st.st_mode & libc::S_IFMT
            }
        };
        vis.push((os, kind, ino));
    }
    Ok(Layer { vis, wh, names })
}

/// What one real directory adds to a listing.
struct Layer {
    vis: Vec<RawEntry>,
    /// Names whited out below this layer.
    wh: Vec<OsString>,
    names: Option<Names>,
}

/// The merged entries of a directory made of `upper` over `lowers`. The
/// layers are read at once when there are many (`sweep`); the names of lower
/// directories feed the names index on the way.
pub fn merged_entries(layers: &Layers, upper: Option<&Real>, lowers: &[RealObj]) -> io::Result<Vec<DirEntry>> {
    let dirs: Vec<(usize, &Real, bool, bool)> = upper
        .map(|u| (0usize, u, false, true))
        .into_iter()
        .chain(lowers.iter().map(|l| (l.layer, &l.real, l.xwh, false)))
        .collect();
    let read = sweep::map(&dirs, |&(_, real, xwh, is_upper)| {
        let fd = real.fd()?;
        let learn = !is_upper && layers.names.wants(real);
        read_layer(layers, fd.as_raw_fd(), xwh, learn).map(|l| (fd, l))
    });
    let mut seen: HashSet<OsString> = HashSet::new();
    let mut out = Vec::new();
    for (&(layer, real, _, _), r) in dirs.iter().zip(read) {
        let (fd, l) = r?;
        if let Some(names) = l.names {
            layers.names.learn(real, names);
        }
        for (name, kind, ino) in l.vis {
            if seen.insert(name.clone()) {
                let ino = ino::d_ino(layers, layer, fd.as_raw_fd(), &name, ino);
                out.push(DirEntry { name, kind, ino });
            }
        }
        seen.extend(l.wh);
    }
    Ok(out)
}

/// The merged entries of an inode's directory.
pub fn entries_of(layers: &Layers, st: &InodeState) -> io::Result<Vec<DirEntry>> {
    merged_entries(layers, st.upper.as_ref(), &st.lowers)
}

/// True when the merged directory shows no entries.
pub fn is_empty(layers: &Layers, upper: Option<&Real>, lowers: &[RealObj]) -> io::Result<bool> {
    Ok(merged_entries(layers, upper, lowers)?.is_empty())
}
