//! The inode number rule, in one place: `st_ino`, the kernel's node ID,
//! `d_ino` in listings, the origin record and alternate node IDs.
//!
//! - `st_ino` is the origin's inode number: the lower object an upper one was
//!   copied up from (recorded at copy-up in the private xattr
//!   `unionfs.origin` as `DEV:INO`), or the real object itself. So it is
//!   stable across copy-up and remount. Layers on several filesystems put the
//!   filesystem's index in the high bits (`Layers::ino_for`).
//! - The node ID is `st_ino`, except that each name of a lower file with
//!   several names gets its own (alternate, `ALT_BIT` set, hashed from parent
//!   and name) while all show the file's `st_ino`, as the kernel does: a
//!   copy-up through one name breaks the link (the kernel's rule without
//!   `index`), and a FUSE request carries no name to tell which name is
//!   written. The copy then shows its upper inode's number (no origin is
//!   recorded for it), again as the kernel does. Two live objects with one
//!   origin get an alternate node ID too.
//!   (fuser's entry replies take the node ID apart from `st_ino` through a
//!   small patch: `vendor/README.md`.)
//! - A recorded origin is validated: an unknown device, a reserved number or
//!   garbage (or the `n:` records of earlier versions) falls back to the real
//!   inode number.
//! - `d_ino` in a listing is the `st_ino` that `stat` gives: upper entries are
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

/// A copy-up of `lower` breaks a hard link: the copy is a new object with a
/// number of its own (the kernel overlay without `index` does the same: the
/// names left in the lower layer keep the file's number, the copy shows its
/// upper inode's), and no origin is recorded for it.
pub fn breaks_link(lower: &at::Stat) -> bool {
    lower.st_mode & libc::S_IFMT != libc::S_IFDIR && lower.st_nlink > 1
}

/// The origin value recorded on a copy of `lower`.
pub fn origin_value(lower: &at::Stat) -> String {
    format!("{}:{}", lower.st_dev, lower.st_ino)
}

/// The number an origin record gives, if it is valid for these layers.
pub fn from_origin(layers: &Layers, v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    let (d, i) = s.split_once(':')?;
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

/// The node ID and `st_ino` of the object found at `parent/name`.
pub fn numbers(fs: &UnionFs, parent: &Inode, name: &OsStr, f: &Found) -> (u64, u64) {
    let st_ino = st_ino_of(fs, f);
    let kind = f.st.st_mode & libc::S_IFMT;
    if f.upper.is_none() && kind != libc::S_IFDIR && f.st.st_nlink > 1 {
        return (alt_nodeid(parent.nodeid, name), st_ino);
    }
    (st_ino, st_ino)
}

/// The node ID of the object found at `parent/name`.
pub fn nodeid_for(fs: &UnionFs, parent: &Inode, name: &OsStr, f: &Found) -> u64 {
    numbers(fs, parent, name, f).0
}

/// The `st_ino` of a found object, from its origin.
fn st_ino_of(fs: &UnionFs, f: &Found) -> u64 {
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
