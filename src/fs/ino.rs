//! The inode number rule, in one place: `st_ino` (which fuser also uses as
//! the nodeid), `d_ino` in listings, the origin record and alternate numbers.
//!
//! - An object's number is its origin's: the lower object it was copied up
//!   from (recorded at copy-up in the private xattr `unionfs.origin` as
//!   `DEV:INO`), or the real object itself. So it is stable across copy-up
//!   and remount. Layers on several filesystems put the filesystem's index in
//!   the high bits (`Layers::ino_for`).
//! - A lower file with several names gets one number per name (alternate
//!   numbers, `ALT_BIT` set, hashed from parent and name): the kernel overlay
//!   breaks such links at copy-up and a request carries no name to tell which
//!   one is written. Its copy records the number as `n:NUMBER`.
//! - A recorded origin is validated: an unknown device, a reserved number or
//!   garbage falls back to the real inode number (never 0 or the root's 1).
//! - `d_ino` in a listing is the same number `stat` gives: upper entries are
//!   translated through their origin record.

use crate::fs::inode::Inode;
use crate::fs::layers::Layers;
use crate::fs::lookup::Found;
use crate::fs::UnionFs;
use crate::sys::{at, xattr};
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, RawFd};

/// Suffix of the private xattr recording a copied-up object's origin inode.
pub const ORIGIN_XATTR: &str = "unionfs.origin";

/// Marks numbers handed out for objects whose origin number is taken.
pub const ALT_BIT: u64 = 1 << 63;

/// The origin value recorded on a copy: the lower object, or a number kept as it is.
pub fn origin_value(keep_nodeid: Option<u64>, lower: &at::Stat) -> String {
    match keep_nodeid {
        Some(n) => format!("n:{n}"),
        None => format!("{}:{}", lower.st_dev, lower.st_ino),
    }
}

/// The number an origin record gives, if it is valid for these layers.
pub fn from_origin(layers: &Layers, v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    let (d, i) = s.split_once(':')?;
    if d == "n" {
        // Only alternate numbers are recorded as they are.
        let n: u64 = i.parse().ok()?;
        return (n & ALT_BIT != 0).then_some(n);
    }
    let (dev, ino): (u64, u64) = (d.parse().ok()?, i.parse().ok()?);
    if ino == 0 || !layers.layers.iter().any(|l| l.dev == dev) {
        return None;
    }
    Some(layers.ino_for(dev, ino))
}

/// A stable number for `parent/name` (FNV-1a), used when the origin's is taken.
pub fn alt_nodeid(parent: u64, name: &OsStr) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parent.to_le_bytes().iter().chain(name.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ALT_BIT | (h >> 1)
}

/// The st_ino / nodeid of the object found at `parent/name`.
pub fn nodeid_for(fs: &UnionFs, parent: &Inode, name: &OsStr, f: &Found) -> u64 {
    let kind = f.st.st_mode & libc::S_IFMT;
    if f.upper.is_none() && kind != libc::S_IFDIR && f.st.st_nlink > 1 {
        return alt_nodeid(parent.nodeid, name);
    }
    nodeid_of(fs, f)
}

/// The st_ino / nodeid of a found object from its origin.
fn nodeid_of(fs: &UnionFs, f: &Found) -> u64 {
    if let Some(fd) = f.upper.as_ref().and_then(|u| u.fd().ok()) {
        let fd = fd.as_raw_fd();
        let dir = (f.st.st_mode & libc::S_IFMT) == libc::S_IFDIR;
        let t = if dir { xattr::Target::Fd(fd) } else { xattr::Target::Path(fd) };
        if let Ok(Some(v)) = xattr::get(t, &fs.layers.xattr_name(ORIGIN_XATTR)) {
            if let Some(n) = from_origin(&fs.layers, &v) {
                return n;
            }
        }
    }
    fs.layers.ino_for(f.st.st_dev, f.st.st_ino)
}

/// The `d_ino` of an entry of a real directory in layer `layer`: what `stat`
/// of the merged entry shows.
pub fn d_ino(layers: &Layers, layer: usize, dirfd: RawFd, name: &OsStr, real_ino: u64) -> u64 {
    let dev = layers.layers.get(layer).map_or(0, |l| l.dev);
    if layers.is_upper(layer) {
        if let Ok(Some(v)) = xattr::get_at(dirfd, name, &layers.xattr_name(ORIGIN_XATTR)) {
            if let Some(n) = from_origin(layers, &v) {
                return n;
            }
        }
    }
    layers.ino_for(dev, real_ino)
}
