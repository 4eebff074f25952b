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
//!   written. The copy then shows its upper inode's number, again as the
//!   kernel does, and records its node ID (`n:NODEID`) so that every name of
//!   it, now and after a remount, is one kernel inode. Two live objects with
//!   one origin get an alternate node ID too.
//!   (fuser's entry replies take the node ID apart from `st_ino` through a
//!   small patch: `vendor/README.md`.)
//! - A recorded origin is validated: an unknown device, a reserved number or
//!   garbage falls back to the real inode number.
//! - `d_ino` in a listing is the `st_ino` that `stat` gives: upper entries are
//!   translated through their origin record.

use crate::fs::index;
use crate::fs::inode::Inode;
use crate::fs::layers::Layers;
use crate::fs::lookup::Found;
use crate::fs::UnionFs;
use crate::sys::{at, xattr};
use std::ffi::OsStr;
use std::os::fd::RawFd;

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

/// The origin value recorded on a copy of `lower` made for node `nodeid`:
/// `DEV:INO` of the lower object, or `n:NODEID` for a broken hard link (its
/// `st_ino` is its own; every name of the copy must keep that node ID, or two
/// kernel inodes would cache one object's attributes apart).
pub fn origin_value(lower: &at::Stat, nodeid: u64, keeps_link: bool) -> String {
    if breaks_link(lower) && !keeps_link {
        format!("n:{nodeid}")
    } else {
        format!("{}:{}", lower.st_dev, lower.st_ino)
    }
}

/// What an origin record says.
enum Origin {
    /// `st_ino` (and node ID) of the origin.
    Number(u64),
    /// The node ID of a broken hard link's copy; its `st_ino` is its own.
    Node(u64),
}

fn parse_origin(layers: &Layers, v: &[u8]) -> Option<Origin> {
    let s = std::str::from_utf8(v).ok()?;
    if let Some(n) = s.strip_prefix("n:") {
        let n: u64 = n.parse().ok()?;
        return (n & ALT_BIT != 0).then_some(Origin::Node(n));
    }
    from_origin(layers, v).map(Origin::Number)
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
    let real = fs.layers.ino_for(f.st.st_dev, f.st.st_ino);
    let kind = f.st.st_mode & libc::S_IFMT;
    if fs.layers.index.is_some() && kind != libc::S_IFDIR {
        if let Some(n) = indexed_number(fs, f) {
            return (n, n);
        }
    }
    if f.upper.is_none() {
        if kind != libc::S_IFDIR && f.st.st_nlink > 1 {
            return (alt_nodeid(parent.nodeid, name), real);
        }
        return (real, real);
    }
    match if f.new { None } else { origin_of(fs, f) } {
        Some(Origin::Number(n)) => (n, n),
        Some(Origin::Node(n)) => (n, real),
        None => (real, real),
    }
}

/// With `index=on` every name of a lower hard link is one inode (see
/// `index.rs`): the origin's number, also for the names copied up (recorded
/// by us, or by the kernel as a file handle).
fn indexed_number(fs: &UnionFs, f: &Found) -> Option<u64> {
    if f.upper.is_none() {
        let (dev, ino) = f.lowers.first()?.real.id();
        return Some(fs.layers.ino_for(dev, ino));
    }
    f.index.as_ref()?;
    if let Some(Origin::Number(n)) = origin_of(fs, f) {
        return Some(n);
    }
    let v = f.upper.as_ref()?.xattr(&fs.layers.xattr_name("origin")).ok()??;
    index::origin_number(&fs.layers, &v)
}

/// The node ID of the object found at `parent/name`.
pub fn nodeid_for(fs: &UnionFs, parent: &Inode, name: &OsStr, f: &Found) -> u64 {
    numbers(fs, parent, name, f).0
}

/// The origin record of a found upper object.
fn origin_of(fs: &UnionFs, f: &Found) -> Option<Origin> {
    let v = f.upper.as_ref()?.xattr(&fs.layers.xattr_name(ORIGIN_XATTR)).ok()??;
    parse_origin(&fs.layers, &v)
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
        } else if layers.index.is_some() {
            // A copy the kernel indexed records only its lower's handle.
            if let Ok(Some(v)) = xattr::get_at(dirfd, name, &layers.xattr_name("origin")) {
                if let Some(n) = index::origin_number(layers, &v) {
                    return n;
                }
            }
        }
    }
    layers.ino_for(dev, real_ino)
}
