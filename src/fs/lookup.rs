//! Walk the layers for one name: precedence, whiteouts, opaque directories.
//!
//! The upper is searched first, then each lower merged under the parent. A
//! whiteout (any form) ends the walk; a non-directory hides everything below
//! it; directories merge until one is opaque or a non-directory interrupts.

use crate::fs::inode::{Inode, InodeState, RealObj};
use crate::fs::layers::Fd;
use crate::fs::whiteout::{self, is_marker_name};
use crate::fs::UnionFs;
use crate::sys::{at, xattr};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

/// What one layer directory says about a name.
pub enum Probe {
    Absent,
    Whiteout,
    Entry(Fd, at::Stat),
}

/// The objects that make up one visible name.
pub struct Found {
    pub upper: Option<Fd>,
    pub lowers: Vec<RealObj>,
    pub opaque: bool,
    /// Attributes of the top object.
    pub st: at::Stat,
}

pub fn err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// ENAMETOOLONG for over-long names, ENOENT for marker names.
pub fn check_name(name: &OsStr) -> io::Result<()> {
    if name.len() > 255 {
        return Err(err(libc::ENAMETOOLONG));
    }
    Ok(())
}

fn is_dir(st: &at::Stat) -> bool {
    (st.st_mode & libc::S_IFMT) == libc::S_IFDIR
}

/// Open a real directory for reading (getdents, fxattr) through its O_PATH fd.
pub fn open_dir_at(dirfd: RawFd, name: &OsStr) -> io::Result<Fd> {
    at::openat(dirfd, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0).map(Arc::new)
}

/// Look at `name` in one real directory.
pub fn probe(dirfd: RawFd, name: &OsStr) -> io::Result<Probe> {
    match at::openat(dirfd, name, libc::O_PATH | libc::O_NOFOLLOW, 0) {
        Ok(fd) => {
            let st = at::fstat(fd.as_raw_fd())?;
            if whiteout::is_whiteout_stat(&st) || whiteout::is_xattr_whiteout(fd.as_raw_fd(), &st) {
                return Ok(Probe::Whiteout);
            }
            if is_dir(&st) {
                let d = open_dir_at(fd.as_raw_fd(), OsStr::new("."))?;
                return Ok(Probe::Entry(d, st));
            }
            Ok(Probe::Entry(Arc::new(fd), st))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            if at::lstatat(dirfd, &whiteout::oci_marker(name)).is_ok() {
                Ok(Probe::Whiteout)
            } else {
                Ok(Probe::Absent)
            }
        }
        Err(e) => Err(e),
    }
}

/// Resolve `name` in the directory described by `parent`. `Ok(None)` = not visible.
pub fn find(parent: &InodeState, name: &OsStr) -> io::Result<Option<Found>> {
    check_name(name)?;
    if is_marker_name(name) {
        return Ok(None);
    }
    let mut found: Option<Found> = None;
    if let Some(u) = &parent.upper {
        match probe(u.as_raw_fd(), name)? {
            Probe::Whiteout => return Ok(None),
            Probe::Entry(fd, st) => {
                if !is_dir(&st) {
                    return Ok(Some(Found { upper: Some(fd), lowers: Vec::new(), opaque: false, st }));
                }
                let opaque = whiteout::is_opaque(fd.as_raw_fd());
                let f = Found { upper: Some(fd), lowers: Vec::new(), opaque, st };
                if opaque {
                    return Ok(Some(f));
                }
                found = Some(f);
            }
            Probe::Absent => {}
        }
    }
    for l in &parent.lowers {
        match probe(l.fd.as_raw_fd(), name)? {
            Probe::Whiteout => break,
            Probe::Absent => continue,
            Probe::Entry(fd, st) => match &mut found {
                None => {
                    let dir = is_dir(&st);
                    let opaque = dir && whiteout::is_opaque(fd.as_raw_fd());
                    found =
                        Some(Found { upper: None, lowers: vec![RealObj { layer: l.layer, fd }], opaque: false, st });
                    if !dir || opaque {
                        break;
                    }
                }
                Some(f) => {
                    if !is_dir(&f.st) || !is_dir(&st) {
                        break;
                    }
                    let opaque = whiteout::is_opaque(fd.as_raw_fd());
                    f.lowers.push(RealObj { layer: l.layer, fd });
                    if opaque {
                        break;
                    }
                }
            },
        }
    }
    Ok(found)
}

/// Does any lower layer under `parent` still show `name`? (Then removing or
/// renaming it away must leave a whiteout.)
pub fn lower_visible(parent: &InodeState, name: &OsStr) -> io::Result<bool> {
    for l in &parent.lowers {
        match probe(l.fd.as_raw_fd(), name)? {
            Probe::Whiteout => return Ok(false),
            Probe::Absent => continue,
            Probe::Entry(..) => return Ok(true),
        }
    }
    Ok(false)
}

/// What a copied-up object records about where it came from.
enum Origin {
    /// The lower object's device and inode number.
    Lower(u64, u64),
    /// An inode number given as it is (names of lower hard links).
    Number(u64),
}

/// Read the origin recorded on an upper object at copy-up.
fn origin(fs: &UnionFs, fd: RawFd, st: &at::Stat) -> Option<Origin> {
    let t = if (st.st_mode & libc::S_IFMT) == libc::S_IFDIR { xattr::Target::Fd(fd) } else { xattr::Target::Path(fd) };
    let v = xattr::get(t, &fs.layers.xattr_name(ORIGIN_XATTR)).ok()??;
    let s = std::str::from_utf8(&v).ok()?;
    let (d, i) = s.split_once(':')?;
    if d == "n" {
        return Some(Origin::Number(i.parse().ok()?));
    }
    Some(Origin::Lower(d.parse().ok()?, i.parse().ok()?))
}

/// Suffix of the private xattr recording a copied-up object's origin inode.
pub const ORIGIN_XATTR: &str = "unionfs.origin";

/// The st_ino / nodeid of the object found at `parent/name`.
pub fn nodeid_for(fs: &UnionFs, parent: &Inode, name: &OsStr, f: &Found) -> u64 {
    let kind = f.st.st_mode & libc::S_IFMT;
    if f.upper.is_none() && kind != libc::S_IFDIR && f.st.st_nlink > 1 {
        // A lower file with several names: each name is its own object (the
        // kernel overlay breaks such links at copy-up, and a request carries
        // no name to tell which one is being written), so each gets its own
        // number.
        return alt_nodeid(parent.nodeid, name);
    }
    nodeid_of(fs, f)
}

/// The st_ino / nodeid of a found object from its origin.
fn nodeid_of(fs: &UnionFs, f: &Found) -> u64 {
    if let Some(u) = &f.upper {
        match origin(fs, u.as_raw_fd(), &f.st) {
            Some(Origin::Lower(dev, ino)) => return fs.layers.ino_for(dev, ino),
            Some(Origin::Number(n)) => return n,
            None => {}
        }
    }
    fs.layers.ino_for(f.st.st_dev, f.st.st_ino)
}

/// Look up `name` under `parent` and take a kernel reference on the result.
pub fn lookup(fs: &UnionFs, parent: &Arc<Inode>, name: &OsStr) -> io::Result<(Arc<Inode>, at::Stat)> {
    let f = find(&parent.snapshot(), name)?.ok_or_else(|| err(libc::ENOENT))?;
    Ok(reference_found(fs, parent, name, f))
}

/// Enter a found object into the inode table (or refresh the cached one).
pub fn reference_found(fs: &UnionFs, parent: &Arc<Inode>, name: &OsStr, f: Found) -> (Arc<Inode>, at::Stat) {
    let mut nodeid = nodeid_for(fs, parent, name, &f);
    let kind = f.st.st_mode & libc::S_IFMT;
    let mut st = f.st;
    let lowers = if kind == libc::S_IFDIR || f.upper.is_none() { f.lowers } else { Vec::new() };
    let state = InodeState {
        parent: Some(parent.clone()),
        name: name.to_os_string(),
        links: Vec::new(),
        upper: f.upper,
        lowers,
        opaque: f.opaque,
        unlinked: false,
    };
    let ino = loop {
        let mut fresh = Some(state.clone());
        let (ino, created) = fs.inodes.reference(nodeid, || Inode::new(nodeid, kind, fresh.take().unwrap_or_default()));
        if created {
            break ino;
        }
        let mut cur = ino.state.write();
        let same = match (cur.top_fd(), state.top_fd()) {
            (Some(a), Some(b)) => same_object(a, b),
            _ => false,
        };
        if same {
            cur.add_alias(parent, name);
        } else if cur.unlinked || ino.kind != kind {
            // The name was removed and made again: the number is free.
            *cur = state;
        } else if nodeid & ALT_BIT == 0 {
            // Two live objects with one origin number (lower hard links after
            // one of them was copied up): the later one gets its own number.
            drop(cur);
            fs.inodes.forget(nodeid, 1);
            nodeid = alt_nodeid(parent.nodeid, name);
            continue;
        } else {
            *cur = state;
        }
        drop(cur);
        break ino;
    };
    ino.fix_nlink(&mut st);
    (ino, st)
}

/// Marks numbers handed out for objects whose origin number is taken.
pub const ALT_BIT: u64 = 1 << 63;

/// A stable number for `parent/name` (FNV-1a), used when the origin's is taken.
fn alt_nodeid(parent: u64, name: &OsStr) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parent.to_le_bytes().iter().chain(name.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ALT_BIT | (h >> 1)
}

fn same_object(a: RawFd, b: RawFd) -> bool {
    match (at::fstat(a), at::fstat(b)) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}
