//! `diff`: the changes a container's upper makes to its image, computed the
//! way `docker diff` and `podman diff` compute them for overlay storage
//! (containers/storage and moby `OverlayChanges`), so the lines are the same:
//!
//! - the upper is walked in order (each directory's names sorted, a
//!   directory before what is in it);
//! - a whiteout (char device 0:0, or an overlay whiteout xattr) is `D`; an
//!   opaque directory that hides something of the image is `D` too, and
//!   what it holds now is listed below it;
//! - anything else is `C` when the path exists in one of the image's layers
//!   (a directory only when its size, mode or mtime differ: a directory
//!   copied up only because something below it changed is no change), else `A`;
//! - the parents of an `A` or `D` are `C` (once, before it) unless listed already.

use crate::store::error::{Error, Result};
use crate::sys::{at, xattr};
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Added,
    Changed,
    Deleted,
}

impl Kind {
    pub fn letter(self) -> char {
        match self {
            Kind::Added => 'A',
            Kind::Changed => 'C',
            Kind::Deleted => 'D',
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub kind: Kind,
}

const OPAQUE: [&str; 3] = ["trusted.overlay.opaque", "user.overlay.opaque", "user.fuseoverlayfs.opaque"];
const XATTR_WHITEOUT: [&str; 2] = ["trusted.overlay.whiteout", "user.overlay.whiteout"];

fn has(obj: RawFd, names: &[&str], want: Option<&[u8]>) -> bool {
    names.iter().any(|n| match xattr::get(xattr::Target::Path(obj), OsStr::new(n)) {
        Ok(Some(v)) => want.is_none_or(|w| v == w),
        _ => false,
    })
}

/// stat(2) of `rel` in a layer (symlinks followed, as the reference does).
fn stat_in(layer: RawFd, rel: &[u8]) -> Option<at::Stat> {
    at::statat(layer, OsStr::from_bytes(rel)).ok()
}

fn lstat_in(layer: RawFd, rel: &[u8]) -> Option<at::Stat> {
    at::lstatat(layer, OsStr::from_bytes(rel)).ok()
}

/// The path as the image has it: the top-most layer that has it decides,
/// unless a layer above deleted it (a whiteout of it or of a parent). As in
/// podman, an opaque directory of a layer does not hide what a lower layer
/// has below it here (a path recreated there is `C`). A symlink is followed
/// for the comparison, as the reference does.
fn in_image(layers: &[OwnedFd], rel: &[u8]) -> Option<at::Stat> {
    let comps: Vec<&[u8]> = rel.split(|b| *b == b'/').collect();
    for l in layers {
        let fd = l.as_raw_fd();
        if let Some(st) = lstat_in(fd, rel) {
            if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                return stat_in(fd, rel).or(Some(st));
            }
            return Some(st);
        }
        let mut parent: Vec<u8> = Vec::new();
        for c in &comps {
            let mut wh = parent.clone();
            wh.extend_from_slice(b".wh.");
            wh.extend_from_slice(c);
            if lstat_in(fd, &wh).is_some() {
                return None;
            }
            parent.extend_from_slice(c);
            parent.push(b'/');
        }
    }
    None
}

fn same_time(a: &at::Stat, b: &at::Stat) -> bool {
    a.st_mtime == b.st_mtime && (a.st_mtime_nsec == b.st_mtime_nsec || a.st_mtime_nsec == 0 || b.st_mtime_nsec == 0)
}

/// The changes of `upper` against the layers `lowers` (top-most first).
pub fn changes(upper: &Path, lowers: &[std::path::PathBuf]) -> Result<Vec<Change>> {
    let open = |p: &Path| {
        at::openat(libc::AT_FDCWD, p.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(|e| Error(format!("{}: {}", p.display(), crate::sys::tree::strip_os(&e))))
    };
    let root = open(upper)?;
    let layers: Vec<OwnedFd> = lowers.iter().map(|p| open(p)).collect::<Result<_>>()?;
    let mut out = Vec::new();
    let mut changed_dirs: HashSet<Vec<u8>> = HashSet::new();
    struct Frame {
        path: Vec<u8>,
        id: (u64, u64),
        names: Vec<OsString>,
    }
    let names_of = |fd: RawFd| -> Result<Vec<OsString>> {
        let mut n: Vec<OsString> =
            at::read_dir_fd(fd)?.into_iter().map(|(n, _, _)| at::os(&n).to_os_string()).collect();
        n.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
        Ok(n)
    };
    let id = |fd: RawFd| -> Result<(u64, u64)> {
        let st = at::fstat(fd)?;
        Ok((st.st_dev, st.st_ino))
    };
    let mut stack = vec![Frame { path: Vec::new(), id: id(root.as_raw_fd())?, names: names_of(root.as_raw_fd())? }];
    let mut cur = root;
    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.names.pop() else {
            stack.pop();
            let Some(parent) = stack.last() else { break };
            let up = at::openat(cur.as_raw_fd(), OsStr::new(".."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            if id(up.as_raw_fd())? != parent.id {
                return Err(Error("the upper changed while it was read".into()));
            }
            cur = up;
            continue;
        };
        let mut path = frame.path.clone();
        path.push(b'/');
        path.extend_from_slice(name.as_bytes());
        let st = match at::lstatat(cur.as_raw_fd(), &name) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        let fmt = st.st_mode & libc::S_IFMT;
        let is_dir = fmt == libc::S_IFDIR;
        let obj = at::openat(cur.as_raw_fd(), &name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        let rel = &path[1..];
        let in_lower = || in_image(&layers, rel);
        let deleted = (fmt == libc::S_IFCHR && st.st_rdev == 0)
            || (fmt == libc::S_IFREG && st.st_size == 0 && has(obj.as_raw_fd(), &XATTR_WHITEOUT, None))
            || (is_dir && has(obj.as_raw_fd(), &OPAQUE, Some(b"y")) && in_lower().is_some());
        let mut record = true;
        let kind = if deleted {
            Kind::Deleted
        } else {
            match in_lower() {
                None => Kind::Added,
                Some(l) => {
                    let l_dir = l.st_mode & libc::S_IFMT == libc::S_IFDIR;
                    if l_dir && is_dir && l.st_size == st.st_size && l.st_mode == st.st_mode && same_time(&l, &st) {
                        record = false;
                    }
                    Kind::Changed
                }
            }
        };
        if record {
            if is_dir {
                changed_dirs.insert(path.clone());
            }
            if kind != Kind::Changed {
                // Parents not listed yet, top-most first.
                let mut parents = Vec::new();
                let mut p = path.as_slice();
                while let Some(i) = p.iter().rposition(|b| *b == b'/') {
                    p = &p[..i];
                    if p.is_empty() {
                        break;
                    }
                    if changed_dirs.insert(p.to_vec()) {
                        parents.push(p.to_vec());
                    }
                }
                for p in parents.into_iter().rev() {
                    out.push(Change { path: String::from_utf8_lossy(&p).into_owned(), kind: Kind::Changed });
                }
            }
            out.push(Change { path: String::from_utf8_lossy(&path).into_owned(), kind });
        }
        // Under a whiteout there is nothing; everything else is walked.
        if is_dir {
            let sub = match at::openat(cur.as_raw_fd(), &name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
            {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            let names = names_of(sub.as_raw_fd())?;
            stack.push(Frame { path, id: id(sub.as_raw_fd())?, names });
            cur = sub;
        }
    }
    Ok(out)
}
