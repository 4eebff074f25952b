//! Walk the layers for one name: precedence, whiteouts, opaque directories.
//!
//! The upper is searched first, then each lower merged under the parent. A
//! whiteout (any form) ends the walk; a non-directory hides everything below
//! it; directories merge until one is opaque or a non-directory interrupts.

use crate::fs::index;
use crate::fs::ino;
use crate::fs::inode::{Inode, InodeState, RealObj};
use crate::fs::layers::{Fd, Layers};
use crate::fs::metacopy;
use crate::fs::real::Real;
use crate::fs::sweep;
use crate::fs::whiteout::{self, is_marker_name, DirMarks};
use crate::fs::UnionFs;
use crate::sys::{self, at};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// What one layer directory says about a name.
pub enum Probe {
    Absent,
    Whiteout,
    Entry(Real, at::Stat),
}

/// The objects that make up one visible name.
pub struct Found {
    pub upper: Option<Real>,
    pub lowers: Vec<RealObj>,
    pub opaque: bool,
    /// The upper directory's (or metacopy file's) redirect record, if any.
    pub redirect: Option<OsString>,
    /// A metacopy file's data (see `metacopy.rs`).
    pub data: Option<Real>,
    /// An indexed file's entry (`index.rs`).
    pub index: Option<index::Hit>,
    /// Attributes of the top object.
    pub st: at::Stat,
    /// Just made by this mount (no origin record to look for).
    pub new: bool,
}

impl Found {
    /// A plain object: nothing below it, no marks.
    pub fn of(st: at::Stat) -> Found {
        Found {
            upper: None,
            lowers: Vec::new(),
            opaque: false,
            redirect: None,
            data: None,
            index: None,
            st,
            new: false,
        }
    }
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

fn is_reg(st: &at::Stat) -> bool {
    (st.st_mode & libc::S_IFMT) == libc::S_IFREG
}

/// Open a real directory for reading (getdents, fxattr) through its O_PATH fd.
pub fn open_dir_at(dirfd: RawFd, name: &OsStr) -> io::Result<Fd> {
    at::openat(dirfd, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0).map(Arc::new)
}

/// Look at `name` in one real directory. Lookup counts xattr whiteouts in
/// every directory, as the kernel's lookup does (its readdir only in marked
/// ones: see `readdir.rs`).
pub fn probe(layers: &Layers, dir: &Real, name: &OsStr) -> io::Result<Probe> {
    let dfd = dir.fd()?;
    let dirfd = dfd.as_raw_fd();
    // A stat by name; only a directory is opened here (its listing and
    // markers are read next), other objects when something needs them.
    let mut tries = 0;
    loop {
        let st = match at::lstatat(dirfd, name) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Ok(if at::lstatat(dirfd, &whiteout::oci_marker(name)).is_ok() {
                    Probe::Whiteout
                } else {
                    Probe::Absent
                });
            }
            Err(e) => return Err(e),
        };
        if whiteout::is_whiteout_stat(&st) || whiteout::is_xattr_whiteout(layers, dirfd, name, &st) {
            return Ok(Probe::Whiteout);
        }
        if !is_dir(&st) {
            return Ok(Probe::Entry(Real::known(dir, name, &st), st));
        }
        match open_dir_at(dirfd, name) {
            Ok(d) => {
                let st = at::fstat(d.as_raw_fd())?;
                return Ok(Probe::Entry(Real::at(dir, name, d, &st), st));
            }
            // Replaced between the stat and the open (an upper directory
            // being copied up or renamed): look again.
            Err(e) if tries == 0 && matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)) => {
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Where the lower layers are searched for a name: in the parent's lower
/// directories (possibly under another name, after a relative redirect), or
/// from each layer's root (after an absolute redirect).
#[derive(Clone)]
enum Target {
    Name(OsString),
    Path(Vec<OsString>),
}

impl Target {
    /// Follow a directory's redirect record.
    fn redirect(self, r: &OsStr) -> Target {
        let b = r.as_bytes();
        match b.strip_prefix(b"/") {
            Some(abs) => Target::Path(abs.split(|c| *c == b'/').map(|c| OsStr::from_bytes(c).to_os_string()).collect()),
            None => match self {
                Target::Name(_) => Target::Name(r.to_os_string()),
                Target::Path(mut p) => {
                    p.pop();
                    p.push(r.to_os_string());
                    Target::Path(p)
                }
            },
        }
    }
}

/// The directory of `layer` to probe for `target`, and the name to probe:
/// the parent's lower directory there, or the path walked from the layer's
/// root (every component a directory, no whiteout).
fn target_dir(
    layers: &Layers,
    parent: &InodeState,
    layer: usize,
    target: &Target,
) -> io::Result<Option<(Real, OsString)>> {
    match target {
        Target::Name(n) => Ok(parent.lowers.iter().find(|l| l.layer == layer).map(|l| (l.real.clone(), n.clone()))),
        Target::Path(p) => {
            let Some((last, dirs)) = p.split_last() else { return Ok(None) };
            let mut cur = layers.layers[layer].root.clone();
            for c in dirs {
                match probe(layers, &cur, c)? {
                    Probe::Entry(r, st) if is_dir(&st) => cur = r,
                    _ => return Ok(None),
                }
            }
            Ok(Some((cur, last.clone())))
        }
    }
}

/// Resolve `name` in the directory described by `parent`. `Ok(None)` = not visible.
///
/// Directories merge down the layers until one is opaque or a non-directory
/// interrupts. A directory's redirect record (upper or lower) changes where
/// the layers below it are searched, as in the kernel: a name in the same
/// parent, or a path from the layers' roots.
/// With `index=on`, a lower hard link (or a name linked to an index entry)
/// carries its entry (`index.rs`).
pub fn find(layers: &Layers, parent: &InodeState, name: &OsStr) -> io::Result<Option<Found>> {
    let mut found = find_in_layers(layers, parent, name)?;
    if let Some(f) = &mut found {
        index::attach(layers, f)?;
    }
    Ok(found)
}

fn find_in_layers(layers: &Layers, parent: &InodeState, name: &OsStr) -> io::Result<Option<Found>> {
    check_name(name)?;
    if is_marker_name(name) {
        return Ok(None);
    }
    let mut found: Option<Found> = None;
    let mut target = Target::Name(name.to_os_string());
    if let Some(u) = &parent.upper {
        match probe(layers, u, name)? {
            Probe::Whiteout => return Ok(None),
            Probe::Entry(fd, st) => {
                if !is_dir(&st) {
                    let mut f = Found { upper: Some(fd.clone()), ..Found::of(st) };
                    if is_reg(&st) {
                        resolve_metacopy(layers, parent, &mut f, &fd, target, layers.first_lower())?;
                    }
                    return Ok(Some(f));
                }
                let m = whiteout::dir_marks(layers, fd.fd()?.as_raw_fd());
                if m.refused_redirect {
                    return Err(err(libc::EPERM));
                }
                if let Some(r) = &m.redirect {
                    target = target.redirect(r);
                }
                let f = Found { upper: Some(fd), opaque: m.opaque, redirect: m.redirect, ..Found::of(st) };
                if m.opaque {
                    return Ok(Some(f));
                }
                found = Some(f);
            }
            Probe::Absent => {}
        }
    }
    let mut pre = match &target {
        Target::Name(t) if t == name => AheadList::new(layers, parent, name),
        _ => AheadList(Vec::new()),
    };
    for layer in layers.first_lower()..layers.layers.len() {
        let Some((dir, n)) = target_dir(layers, parent, layer, &target)? else { continue };
        // Answers found ahead hold for the name in the parent's directories.
        let ahead = if matches!(&target, Target::Name(t) if t == name) { pre.take(layer) } else { Ahead::Unknown };
        let (p, marks) = match ahead {
            Ahead::Absent => continue,
            Ahead::Probed(p) => p?,
            Ahead::Unknown if !layers.names.may_hold(&dir, &n) => continue,
            Ahead::Unknown => (probe(layers, &dir, &n)?, None),
        };
        match p {
            Probe::Whiteout => break,
            Probe::Absent => continue,
            Probe::Entry(real, st) => {
                let dir = is_dir(&st);
                if found.as_ref().is_some_and(|f| !is_dir(&f.st) || !dir) {
                    break;
                }
                let m = match marks {
                    Some(m) => m,
                    None if dir => whiteout::dir_marks(layers, real.fd()?.as_raw_fd()),
                    None => Default::default(),
                };
                if m.refused_redirect {
                    return Err(err(libc::EPERM));
                }
                let obj = RealObj { layer, real: real.clone(), xwh: m.xwhiteouts };
                match &mut found {
                    None => {
                        let mut f = Found { lowers: vec![obj], ..Found::of(st) };
                        if is_reg(&st) {
                            resolve_metacopy(layers, parent, &mut f, &real, target.clone(), layer + 1)?;
                        }
                        found = Some(f);
                    }
                    Some(f) => f.lowers.push(obj),
                }
                if !dir || m.opaque {
                    break;
                }
                if let Some(r) = &m.redirect {
                    target = target.redirect(r);
                }
            }
        }
    }
    Ok(found)
}

/// A lower layer's answer for a name, found before the walk needs it.
enum Ahead {
    /// Not known: the walk asks the names index and probes.
    Unknown,
    /// The names index says the layer's directory holds neither the name
    /// nor its marker.
    Absent,
    /// The probe, and a directory's marks (each a disk read when cold: the
    /// OCI opaque marker is looked up inside it).
    Probed(io::Result<(Probe, Option<DirMarks>)>),
}

/// Per-layer answers, by layer index.
struct AheadList(Vec<Ahead>);

impl AheadList {
    /// Under a parent merged from many lower layers, ask the names index
    /// about every layer at once, and probe the layers that may hold `name`
    /// at once too (see `sweep`): a cold lookup of a directory present in
    /// every layer then waits for the disk once, not once per layer.
    /// Probing has no side effects; answers the walk does not reach (below a
    /// whiteout or an opaque directory) are dropped.
    fn new(layers: &Layers, parent: &InodeState, name: &OsStr) -> AheadList {
        if !sweep::parallel(parent.lowers.len()) {
            return AheadList(Vec::new());
        }
        let dirs: Vec<&Real> = parent.lowers.iter().map(|l| &l.real).collect();
        let held = layers.names.holders(&dirs, name);
        let mut out: Vec<Ahead> = (0..layers.layers.len()).map(|_| Ahead::Unknown).collect();
        let mut cands = Vec::new();
        for (l, h) in parent.lowers.iter().zip(held) {
            match h {
                false => out[l.layer] = Ahead::Absent,
                true => cands.push(l),
            }
        }
        if sweep::parallel(cands.len()) {
            let probed = sweep::map(&cands, |l| {
                let p = probe(layers, &l.real, name)?;
                let marks = match &p {
                    Probe::Entry(r, st) if is_dir(st) => Some(whiteout::dir_marks(layers, r.fd()?.as_raw_fd())),
                    _ => None,
                };
                Ok((p, marks))
            });
            for (l, p) in cands.iter().zip(probed) {
                out[l.layer] = Ahead::Probed(p);
            }
        }
        AheadList(out)
    }

    fn take(&mut self, layer: usize) -> Ahead {
        self.0.get_mut(layer).map_or(Ahead::Unknown, |a| std::mem::replace(a, Ahead::Unknown))
    }
}

/// If the regular file `top` (found as `f`) is a metacopy file, find its
/// data from layer `from` down (by `target`, or its redirect record) and show
/// the data's blocks. No data: EIO; data but no `metacopy=on`: EPERM (the
/// kernel's answers).
fn resolve_metacopy(
    layers: &Layers,
    parent: &InodeState,
    f: &mut Found,
    top: &Real,
    target: Target,
    from: usize,
) -> io::Result<()> {
    if !metacopy::is_metacopy(layers, top)? {
        return Ok(());
    }
    let rec = metacopy::redirect(layers, top);
    let target = match &rec {
        Some(r) => target.redirect(r),
        None => target,
    };
    let (data, st) = find_data(layers, parent, target, from)?.ok_or_else(|| err(libc::EIO))?;
    if !layers.metacopy {
        return Err(err(libc::EPERM));
    }
    if f.upper.is_some() {
        f.redirect = rec;
    }
    f.st.st_blocks = st.st_blocks;
    f.data = Some(data);
    Ok(())
}

/// The data of a metacopy file: the first regular file below it that is not
/// a metacopy file itself (whose redirect records are followed on the way).
/// None when a whiteout, another kind of object or nothing is found.
fn find_data(
    layers: &Layers,
    parent: &InodeState,
    mut target: Target,
    from: usize,
) -> io::Result<Option<(Real, at::Stat)>> {
    for layer in from..layers.layers.len() {
        let Some((dir, n)) = target_dir(layers, parent, layer, &target)? else { continue };
        match probe(layers, &dir, &n)? {
            Probe::Absent => continue,
            Probe::Whiteout => return Ok(None),
            Probe::Entry(real, st) => {
                if !is_reg(&st) {
                    return Ok(None);
                }
                if !metacopy::is_metacopy(layers, &real)? {
                    return Ok(Some((real, st)));
                }
                if let Some(r) = metacopy::redirect(layers, &real) {
                    target = target.redirect(&r);
                }
            }
        }
    }
    Ok(None)
}

/// Does any lower layer under `parent` still show `name`? (Then removing or
/// renaming it away must leave a whiteout.)
pub fn lower_visible(layers: &Layers, parent: &InodeState, name: &OsStr) -> io::Result<bool> {
    let lower_only = InodeState { upper: None, ..parent.clone() };
    Ok(find(layers, &lower_only, name)?.is_some())
}

/// Look up `name` under `parent` and take a kernel reference on the result.
pub fn lookup(fs: &UnionFs, parent: &Arc<Inode>, name: &OsStr) -> io::Result<(Arc<Inode>, at::Stat)> {
    referenced(fs, parent, name, find(&fs.layers, &parent.snapshot(), name))
}

/// What `find` answered for `name`, entered with a kernel reference
/// (nothing visible: ENOENT).
fn referenced(
    fs: &UnionFs,
    parent: &Arc<Inode>,
    name: &OsStr,
    found: io::Result<Option<Found>>,
) -> io::Result<(Arc<Inode>, at::Stat)> {
    let f = found?.ok_or_else(|| err(libc::ENOENT))?;
    Ok(reference_found(fs, parent, name, f))
}

/// Lookups of `names` under `parent`, each as `lookup` (a reference taken
/// per success), for a READDIRPLUS reply. They go one by one while they find
/// everything cached; once one had to read from the disk (a directory whose
/// inodes are not cached: this thread's block reads grew), the rest go at
/// once (see `sweep`): the disk answers several reads together faster than
/// one by one, and a `find` or `ls -l` of the kernel overlay reads them one
/// by one. The block reads are checked after the 1st, 2nd, 4th, 8th...
/// lookup, so a warm reply pays a few `getrusage` calls, not one per name.
pub fn lookup_many(fs: &UnionFs, parent: &Arc<Inode>, names: &[&OsStr]) -> Vec<io::Result<(Arc<Inode>, at::Stat)>> {
    let mut out = Vec::with_capacity(names.len());
    let mut reads = sys::thread_block_reads();
    let mut next_check = 1;
    while out.len() < names.len() {
        if out.len() == next_check {
            next_check *= 2;
            let now = sys::thread_block_reads();
            let cold = now > reads || sweep::always();
            reads = now;
            let rest = &names[out.len()..];
            if cold && sweep::parallel(rest.len()) {
                let pstate = parent.snapshot();
                let found = sweep::map(rest, |n| find(&fs.layers, &pstate, n));
                out.extend(rest.iter().zip(found).map(|(n, f)| referenced(fs, parent, n, f)));
                break;
            }
        }
        out.push(lookup(fs, parent, names[out.len()]));
    }
    out
}

/// Enter a found object into the inode table (or refresh the cached one).
pub fn reference_found(fs: &UnionFs, parent: &Arc<Inode>, name: &OsStr, f: Found) -> (Arc<Inode>, at::Stat) {
    let (mut nodeid, st_ino) = ino::numbers(fs, parent, name, &f);
    let kind = f.st.st_mode & libc::S_IFMT;
    let mut st = f.st;
    // An indexed file's upper object is its index entry, whichever names link to it.
    let upper = f.index.as_ref().map(|h| h.entry.clone()).or(f.upper);
    let lowers = if kind == libc::S_IFDIR || upper.is_none() { f.lowers } else { Vec::new() };
    let state = InodeState {
        parent: Some(parent.clone()),
        name: name.to_os_string(),
        links: Vec::new(),
        upper,
        lowers,
        opaque: f.opaque,
        redirect: f.redirect,
        unlinked: false,
        data: f.data,
        index: f.index.map(|h| h.name),
    };
    let ino = loop {
        let mut fresh = Some(state.clone());
        let (ino, created) =
            fs.inodes.reference(nodeid, || Inode::new(nodeid, st_ino, kind, fresh.take().unwrap_or_default()));
        if created {
            break ino;
        }
        let mut cur = ino.state.write();
        let same = match (cur.top(), state.top()) {
            (Some(a), Some(b)) => a.same(&b),
            _ => false,
        };
        if same {
            cur.add_alias(parent, name);
        } else if cur.unlinked || ino.kind != kind {
            // The name was removed and made again: the number is free.
            *cur = state;
        } else if nodeid & ino::ALT_BIT == 0 {
            // Two live objects with one origin number (lower hard links after
            // one of them was copied up): the later one gets its own number.
            drop(cur);
            fs.inodes.forget(nodeid, 1);
            nodeid = ino::alt_nodeid(parent.nodeid, name);
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
