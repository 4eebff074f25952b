//! Merged directory listings, built once per open handle (stable offsets).
//!
//! Upper entries first, then each merged lower's; the first occurrence of a
//! name wins; whiteouts (char 0:0 and `.wh.NAME`) hide names in the layers
//! below theirs (never in their own layer); markers never appear.

use crate::fs::inode::{InodeState, RealObj};
use crate::fs::layers::{Fd, Layers};
use crate::fs::whiteout::{is_whiteout_stat, WH_OPAQUE, WH_PREFIX};
use crate::sys::at;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStringExt;

/// One visible entry.
#[derive(Clone, Debug)]
pub struct DirEntry {
    pub name: OsString,
    /// `S_IFMT` bits.
    pub kind: u32,
    pub ino: u64,
}

/// An open directory: its entries, built at opendir and at rewind.
#[derive(Debug)]
pub struct DirHandle {
    pub entries: Mutex<std::sync::Arc<Vec<DirEntry>>>,
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

/// Entries of one real directory, whiteouts split out: (visible, whited-out names).
/// (name, S_IFMT kind, d_ino) of one real directory entry.
type RawEntry = (OsString, u32, u64);

fn read_layer(dirfd: RawFd) -> io::Result<(Vec<RawEntry>, Vec<OsString>)> {
    let mut vis = Vec::new();
    let mut wh = Vec::new();
    for (name, dtype, ino) in at::read_dir_fd(dirfd)? {
        if name == WH_OPAQUE {
            continue;
        }
        if let Some(rest) = name.strip_prefix(WH_PREFIX) {
            wh.push(OsString::from_vec(rest.to_vec()));
            continue;
        }
        let os = OsString::from_vec(name);
        let kind = match dtype_kind(dtype) {
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
    Ok((vis, wh))
}

/// The merged entries of a directory made of `upper` over `lowers`.
pub fn merged_entries(layers: &Layers, upper: Option<&Fd>, lowers: &[RealObj]) -> io::Result<Vec<DirEntry>> {
    let mut seen: HashSet<OsString> = HashSet::new();
    let mut out = Vec::new();
    let dev_of = |idx: usize| layers.layers.get(idx).map_or(0, |l| l.dev);
    let iter =
        upper.map(|u| (0usize, u.as_raw_fd())).into_iter().chain(lowers.iter().map(|l| (l.layer, l.fd.as_raw_fd())));
    for (layer, fd) in iter {
        let (vis, wh) = read_layer(fd)?;
        for (name, kind, ino) in vis {
            if seen.insert(name.clone()) {
                out.push(DirEntry { name, kind, ino: layers.ino_for(dev_of(layer), ino) });
            }
        }
        seen.extend(wh);
    }
    Ok(out)
}

/// The merged entries of an inode's directory.
pub fn entries_of(layers: &Layers, st: &InodeState) -> io::Result<Vec<DirEntry>> {
    merged_entries(layers, st.upper.as_ref(), &st.lowers)
}

/// True when the merged directory shows no entries.
pub fn is_empty(layers: &Layers, upper: Option<&Fd>, lowers: &[RealObj]) -> io::Result<bool> {
    Ok(merged_entries(layers, upper, lowers)?.is_empty())
}
