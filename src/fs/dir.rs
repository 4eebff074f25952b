//! Directory operations: create/mkdir/mknod/symlink/link, unlink/rmdir, rename.
//!
//! Names that exist in a lower layer are removed by a whiteout; objects made
//! where a whiteout stands are staged in the work dir and renamed over it, so
//! the upper never shows a half-made state.

use crate::fs::copy_up::copy_up;
use crate::fs::index;
use crate::fs::ino;
use crate::fs::inode::ROOT_ID;
use crate::fs::inode::{Inode, InodeState};
use crate::fs::layers::Fd;
use crate::fs::lookup::{self, check_name, err, find, lower_visible, probe, Found, Probe};
use crate::fs::readdir;
use crate::fs::real::Real;
use crate::fs::whiteout::{self, is_marker_name, set_opaque, temp_name, whiteout_at, whiteout_over};
use crate::fs::UnionFs;
use crate::sys::tree::remove_contents;
use crate::sys::{at, xattr};
use log::debug;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::Arc;

/// What to make.
pub enum NewObj<'a> {
    File { mode: u32, flags: i32 },
    Dir { mode: u32 },
    Node { mode: u32, rdev: u64 },
    Symlink { target: &'a OsStr },
    Link { src: Arc<Inode> },
}

/// Who makes it (the request's credentials).
#[derive(Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

fn is_dir(st: &at::Stat) -> bool {
    (st.st_mode & libc::S_IFMT) == libc::S_IFDIR
}

/// A name for a new object: not too long, not a marker.
fn check_new_name(name: &OsStr) -> io::Result<()> {
    check_name(name)?;
    if is_marker_name(name) || name.is_empty() || name == "." || name == ".." {
        return Err(err(libc::EINVAL));
    }
    Ok(())
}

/// Create an object; returns its inode (referenced), attributes and, for a
/// regular file, the open descriptor.
pub fn create(
    fs: &UnionFs,
    parent: &Arc<Inode>,
    name: &OsStr,
    obj: NewObj<'_>,
    who: Caller,
) -> io::Result<(Arc<Inode>, at::Stat, Option<OwnedFd>)> {
    check_new_name(name)?;
    if let NewObj::Node { mode, rdev: 0 } = obj {
        if mode & libc::S_IFMT == libc::S_IFCHR {
            // A 0:0 character device is a whiteout: the kernel overlay refuses it.
            return Err(err(libc::EPERM));
        }
    }
    fs.check_writable()?;
    let pstate = parent.snapshot();
    if find(&fs.layers, &pstate, name)?.is_some() {
        return Err(err(libc::EEXIST));
    }
    let pup = copy_up(fs, parent)?;
    let pupfd = pup.fd()?;
    let pfd = pupfd.as_raw_fd();
    let over_whiteout = match probe(&fs.layers, &pup, name)? {
        Probe::Whiteout => at::lstatat(pfd, name).is_ok(),
        Probe::Absent => false,
        Probe::Entry(..) => return Err(err(libc::EEXIST)),
    };
    let src = match &obj {
        NewObj::Link { src } => {
            let up = copy_up(fs, src)?;
            if src.state.read().data.is_some() {
                // A metacopy file's names must all find its data: the
                // kernel records an absolute redirect before linking.
                let r = set_redirect(fs, src, &up, false)?;
                src.state.write().redirect = Some(r);
            }
            Some(up.fd()?)
        }
        _ => None,
    };
    let (dir, tname) = if over_whiteout { (fs.layers.work_fd()?, temp_name()) } else { (pfd, name.to_os_string()) };
    let pst = at::fstat(pfd)?;
    let made = make(fs, dir, &tname, &obj, src.as_ref(), who, &pst, over_whiteout);
    let (file, kept) = match made {
        Ok(f) => f,
        Err(e) => {
            if over_whiteout {
                let flags = if matches!(obj, NewObj::Dir { .. }) { libc::AT_REMOVEDIR } else { 0 };
                let _ = at::unlinkat(dir, &tname, flags);
            }
            return Err(e);
        }
    };
    if over_whiteout {
        // A directory cannot replace a non-directory: swap, then drop the whiteout.
        let is_dir = matches!(obj, NewObj::Dir { .. });
        let flags = if is_dir { at::RENAME_EXCHANGE } else { 0 };
        if let Err(e) = at::renameat2(dir, &tname, pfd, name, flags) {
            let _ = at::unlinkat(dir, &tname, if is_dir { libc::AT_REMOVEDIR } else { 0 });
            return Err(e);
        }
        if is_dir {
            let _ = at::unlinkat(dir, &tname, 0);
        }
    }
    if let NewObj::Link { src } = obj {
        let st = at::fstat(src.upper().ok_or_else(|| err(libc::EIO))?.fd()?.as_raw_fd())?;
        src.state.write().add_alias(parent, name);
        let (ino, _) =
            fs.inodes.reference(src.nodeid, || Inode::new(src.nodeid, src.st_ino(), src.kind, src.snapshot()));
        return Ok((ino, st, None));
    }
    let f = match kept {
        // A new file: its descriptor from the setup (the rename over a
        // whiteout kept the object), no second lookup.
        Some((fd, st)) => {
            let st = if over_whiteout { at::fstat(fd.as_raw_fd())? } else { st };
            Found { upper: Some(Real::at(&pup, name, Arc::new(fd), &st)), new: true, ..Found::of(st) }
        }
        None => match probe(&fs.layers, &pup, name)? {
            Probe::Entry(real, st) => {
                let opaque = is_dir(&st) && whiteout::dir_marks(&fs.layers, real.fd()?.as_raw_fd()).opaque;
                Found { upper: Some(real), opaque, ..Found::of(st) }
            }
            _ => return Err(err(libc::EIO)),
        },
    };
    let (ino, st) = lookup::reference_found(fs, parent, name, f);
    Ok((ino, st, file))
}

/// What `make` made: a new file's open descriptor, and for a new file its
/// `O_PATH` descriptor and attributes once set up (its real object's
/// descriptor, without looking it up again).
type Made = (Option<OwnedFd>, Option<(OwnedFd, at::Stat)>);

/// Make the object at `dir/name` with the caller's ownership.
#[allow(clippy::too_many_arguments)]
fn make(
    fs: &UnionFs,
    dir: RawFd,
    name: &OsStr,
    obj: &NewObj<'_>,
    link_src: Option<&Fd>,
    who: Caller,
    parent_st: &at::Stat,
    opaque: bool,
) -> io::Result<Made> {
    let setgid_parent = parent_st.st_mode & libc::S_ISGID != 0;
    let acl_parent = matches!(xattr::get(xattr::Target::Fd(dir), OsStr::new("system.posix_acl_default")), Ok(Some(_)));
    let mut file = None;
    let mode = match obj {
        NewObj::File { mode, flags } => {
            let acc = flags & libc::O_ACCMODE;
            // O_APPEND and O_DIRECT stay with the kernel (see file.rs).
            let keep = flags & (libc::O_SYNC | libc::O_DSYNC | libc::O_NOATIME);
            let open_flags =
                libc::O_CREAT | libc::O_EXCL | keep | if acc == libc::O_RDONLY { libc::O_RDWR } else { acc };
            file = Some(at::openat(dir, name, open_flags, mode & 0o7777)?);
            mode & 0o7777
        }
        NewObj::Dir { mode } => {
            at::mkdirat(dir, name, mode & 0o7777)?;
            if opaque {
                let d = at::openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                set_opaque(&fs.layers, d.as_raw_fd())?;
            }
            (mode & 0o7777) | if setgid_parent { libc::S_ISGID } else { 0 }
        }
        NewObj::Node { mode, rdev } => {
            at::mknodat(dir, name, *mode, *rdev)?;
            mode & 0o7777
        }
        NewObj::Symlink { target } => {
            at::symlinkat(target, dir, name)?;
            0o777
        }
        NewObj::Link { .. } => {
            let src = link_src.ok_or_else(|| err(libc::EIO))?;
            at::link_fd(src.as_raw_fd(), dir, name)?;
            return Ok((None, None));
        }
    };
    // Made: from here on a failure removes it again (nothing half-made stays).
    let setup = || -> io::Result<Option<(OwnedFd, at::Stat)>> {
        let obj_fd = at::openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        let gid = if setgid_parent { None } else { Some(who.gid) };
        at::fchown(obj_fd.as_raw_fd(), Some(who.uid), gid)?;
        if matches!(obj, NewObj::Symlink { .. }) {
            return Ok(None);
        }
        let mut st = at::fstat(obj_fd.as_raw_fd())?;
        // A default ACL of the parent decided the permission bits; the
        // chown may only have cleared setuid/setgid.
        let want = if acl_parent { (st.st_mode & 0o777) | (mode & 0o7000) } else { mode };
        if st.st_mode & 0o7777 != want {
            at::fchmod(obj_fd.as_raw_fd(), want)?;
            st = at::fstat(obj_fd.as_raw_fd())?;
        }
        Ok(matches!(obj, NewObj::File { .. }).then_some((obj_fd, st)))
    };
    match setup() {
        Ok(kept) => Ok((file, kept)),
        Err(e) => {
            let flags = if matches!(obj, NewObj::Dir { .. }) { libc::AT_REMOVEDIR } else { 0 };
            if let Err(e2) = at::unlinkat(dir, name, flags) {
                debug!("cannot remove {name:?} after a failed setup: {e2}");
            }
            Err(e)
        }
    }
}

/// The cached inode for a found object, or a transient one (not entered in the table).
fn inode_for(fs: &UnionFs, parent: &Arc<Inode>, name: &OsStr, f: &Found) -> Arc<Inode> {
    let (id, st_ino) = ino::numbers(fs, parent, name, f);
    if let Some(i) = fs.inodes.get(id) {
        return i;
    }
    let kind = f.st.st_mode & libc::S_IFMT;
    Arc::new(Inode::new(
        id,
        st_ino,
        kind,
        InodeState {
            parent: Some(parent.clone()),
            name: name.to_os_string(),
            links: Vec::new(),
            upper: f.index.as_ref().map(|h| h.entry.clone()).or_else(|| f.upper.clone()),
            lowers: f.lowers.clone(),
            opaque: f.opaque,
            redirect: f.redirect.clone(),
            unlinked: false,
            data: f.data.clone(),
            index: f.index.as_ref().map(|h| h.name.clone()),
        },
    ))
}

/// The live inode of an object about to lose `parent/name`, if the kernel
/// knows it. Its upper object gets a descriptor (objects are opened lazily,
/// see `real.rs`), kept while the inode lives: the real inode number stays
/// taken until the kernel forgets the inode, so no object made meanwhile gets
/// it (and our node ID for it, where it would look like another name of it).
fn losing_name(fs: &UnionFs, parent: &Inode, name: &OsStr, f: &Found) -> Option<Arc<Inode>> {
    let i = fs.inodes.get(ino::nodeid_for(fs, parent, name, f))?;
    hold_upper(&i);
    Some(i)
}

fn hold_upper(i: &Inode) {
    let up = i.state.read().upper.clone();
    if let Some(u) = up {
        if let Err(e) = u.fd() {
            debug!("holding inode {} before a removal: {e}", i.nodeid);
        }
    }
}

/// `parent/name` of `victim` (from `losing_name`) went away.
fn mark_unlinked(parent: &Inode, name: &OsStr, victim: Option<Arc<Inode>>) {
    if let Some(i) = victim {
        i.state.write().remove_alias(parent.nodeid, name);
    }
}

/// unlink (dir = false) or rmdir (dir = true).
pub fn remove(fs: &UnionFs, parent: &Arc<Inode>, name: &OsStr, dir: bool) -> io::Result<()> {
    check_name(name)?;
    fs.check_writable()?;
    let pstate = parent.snapshot();
    let mut f = find(&fs.layers, &pstate, name)?.ok_or_else(|| err(libc::ENOENT))?;
    let f_is_dir = is_dir(&f.st);
    if dir && !f_is_dir {
        return Err(err(libc::ENOTDIR));
    }
    if !dir && f_is_dir {
        return Err(err(libc::EISDIR));
    }
    if dir && !readdir::is_empty(&fs.layers, f.upper.as_ref(), &f.lowers)? {
        return Err(err(libc::ENOTEMPTY));
    }
    let pup = copy_up(fs, parent)?;
    let pupfd = pup.fd()?;
    let pfd = pupfd.as_raw_fd();
    // Found in a lower layer only: it needs a whiteout (no second search).
    let need_wh = (f.upper.is_none() && !f.lowers.is_empty()) || lower_visible(&fs.layers, &pstate, name)?;
    if fs.layers.index.is_some() && !f_is_dir {
        // A name of an indexed file goes as a link in the upper layer.
        index::prepare_name(fs, &inode_for(fs, parent, name, &f), &pup, name, &mut f)?;
    }
    let victim = losing_name(fs, parent, name, &f);
    match (&f.upper, need_wh) {
        (Some(_), false) if !f_is_dir => at::unlinkat(pfd, name, 0)?,
        (Some(u), false) => {
            remove_contents(u.fd()?.as_raw_fd())?;
            at::unlinkat(pfd, name, libc::AT_REMOVEDIR)?;
        }
        (Some(_), true) if f_is_dir => {
            if let Some(staged) = whiteout_over(&fs.layers, pfd, name, true)? {
                let work = fs.layers.work_fd()?;
                if let Ok(d) = at::openat(work, &staged, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0) {
                    let _ = remove_contents(d.as_raw_fd());
                }
                let _ = at::unlinkat(work, &staged, libc::AT_REMOVEDIR);
            }
        }
        (None, _) => whiteout_at(&fs.layers, pfd, name)?,
        _ => {
            whiteout_over(&fs.layers, pfd, name, false)?;
        }
    }
    mark_unlinked(parent, name, victim);
    if let Some(h) = &f.index {
        index::name_removed(fs, h);
    }
    Ok(())
}

/// Where a directory's lower parts are, as a path from the layers' roots:
/// through its own redirect record, else its parent's path and its name.
fn lower_path(dir: &Arc<Inode>) -> Vec<OsString> {
    let mut rev: Vec<OsString> = Vec::new();
    let mut cur = dir.clone();
    loop {
        let s = cur.snapshot();
        match &s.redirect {
            Some(r) if r.as_bytes().starts_with(b"/") => {
                let abs = &r.as_bytes()[1..];
                rev.extend(abs.rsplit(|b| *b == b'/').map(|c| OsStr::from_bytes(c).to_os_string()));
                break;
            }
            Some(r) => rev.push(r.clone()),
            None if cur.nodeid == ROOT_ID => break,
            None => rev.push(s.name.clone()),
        }
        match s.parent {
            Some(p) if cur.nodeid != ROOT_ID => cur = p,
            _ => break,
        }
    }
    rev.reverse();
    rev
}

/// Record on the upper copy of a directory with lower parts (or of a
/// metacopy file) that is about to move (to the same parent: `samedir`) where
/// those parts (its data) are, as the kernel does: a relative record (a name)
/// while it stays in its parent, else the absolute path. Returns the record.
fn set_redirect(fs: &UnionFs, dir: &Arc<Inode>, up: &Real, samedir: bool) -> io::Result<OsString> {
    let cur = dir.snapshot().redirect;
    let rec = match cur {
        Some(r) if r.as_bytes().starts_with(b"/") => r,
        Some(r) if samedir => r,
        None if samedir => dir.snapshot().name,
        _ => {
            let mut v = Vec::new();
            for c in lower_path(dir) {
                v.push(b'/');
                v.extend_from_slice(c.as_bytes());
            }
            OsString::from_vec(v)
        }
    };
    let fd = up.fd()?;
    let t = if dir.is_dir() { xattr::Target::Fd(fd.as_raw_fd()) } else { xattr::Target::Path(fd.as_raw_fd()) };
    xattr::set(t, &fs.layers.xattr_name("redirect"), rec.as_bytes(), 0)?;
    Ok(rec)
}

fn set_name(ino: &Inode, parent: &Inode, name: &OsStr, newparent: &Arc<Inode>, newname: &OsStr) {
    ino.state.write().rename_alias(parent.nodeid, name, newparent, newname);
}

/// rename(2) with RENAME_NOREPLACE / RENAME_EXCHANGE.
pub fn rename(
    fs: &UnionFs,
    parent: &Arc<Inode>,
    name: &OsStr,
    newparent: &Arc<Inode>,
    newname: &OsStr,
    flags: u32,
) -> io::Result<()> {
    check_name(name)?;
    check_new_name(newname)?;
    if flags & !(at::RENAME_NOREPLACE | at::RENAME_EXCHANGE) != 0 || flags == at::RENAME_NOREPLACE | at::RENAME_EXCHANGE
    {
        return Err(err(libc::EINVAL));
    }
    fs.check_writable()?;
    let exchange = flags & at::RENAME_EXCHANGE != 0;
    let ps = parent.snapshot();
    let nps = newparent.snapshot();
    let mut src = find(&fs.layers, &ps, name)?.ok_or_else(|| err(libc::ENOENT))?;
    let mut dst = find(&fs.layers, &nps, newname)?;
    let src_dir = is_dir(&src.st);
    match &dst {
        None if exchange => return Err(err(libc::ENOENT)),
        Some(_) if flags & at::RENAME_NOREPLACE != 0 => return Err(err(libc::EEXIST)),
        Some(d) if !exchange => {
            // Two names of one object: nothing to do (lower hard links are
            // separate objects here, as in the kernel overlay).
            if ino::nodeid_for(fs, newparent, newname, d) == ino::nodeid_for(fs, parent, name, &src) {
                return Ok(());
            }
            if is_dir(&d.st) && !src_dir {
                return Err(err(libc::EISDIR));
            }
            if !is_dir(&d.st) && src_dir {
                return Err(err(libc::ENOTDIR));
            }
        }
        _ => {}
    }
    // Directories that have lower parts move by a redirect record
    // (`redirect_dir=on`), else not at all (EXDEV: `mv` then copies).
    let src_redirect = src_dir && !src.lowers.is_empty();
    let dst_redirect = exchange && dst.as_ref().is_some_and(|d| is_dir(&d.st) && !d.lowers.is_empty());
    if (src_redirect || dst_redirect) && !fs.opts.redirect_dir.creates() {
        return Err(err(libc::EXDEV));
    }
    // A target directory with lower parts must be logically empty (checked
    // here, after EXDEV, as the kernel does); a purely upper one is left to
    // the real rename, as the kernel leaves it (its ENOTEMPTY comes after the
    // copy-ups, with the real filesystem's side effects).
    let dst_pure = dst.as_ref().is_some_and(|d| d.upper.is_some() && d.lowers.is_empty());
    if let Some(d) = &dst {
        if !exchange && !dst_pure && is_dir(&d.st) && !readdir::is_empty(&fs.layers, d.upper.as_ref(), &d.lowers)? {
            return Err(err(libc::ENOTEMPTY));
        }
    }
    let pup = copy_up(fs, parent)?;
    let npup = copy_up(fs, newparent)?;
    let (pupfd, npupfd) = (pup.fd()?, npup.fd()?);
    let (pfd, npfd) = (pupfd.as_raw_fd(), npupfd.as_raw_fd());
    let src_ino = inode_for(fs, parent, name, &src);
    if fs.layers.index.is_some() {
        // Names of indexed files move as links in the upper layer.
        index::prepare_name(fs, &src_ino, &pup, name, &mut src)?;
        if let Some(d) = &mut dst {
            index::prepare_name(fs, &inode_for(fs, newparent, newname, d), &npup, newname, d)?;
        }
    }
    let src_up = copy_up(fs, &src_ino)?;
    // A metacopy file moves like a directory with lower parts: its record
    // says where its data is.
    let src_redirect = src_redirect || src_ino.state.read().data.is_some();
    let dst_ino = dst.as_ref().map(|d| inode_for(fs, newparent, newname, d));
    let samedir = parent.nodeid == newparent.nodeid;
    if exchange {
        let d = dst_ino.as_ref().ok_or_else(|| err(libc::ENOENT))?;
        let dst_up = copy_up(fs, d)?;
        let dst_redirect = dst_redirect || d.state.read().data.is_some();
        let src_rec = if src_redirect { Some(set_redirect(fs, &src_ino, &src_up, samedir)?) } else { None };
        let dst_rec = if dst_redirect { Some(set_redirect(fs, d, &dst_up, samedir)?) } else { None };
        if src_dir && !src_redirect && lower_visible(&fs.layers, &nps, newname)? {
            set_opaque(&fs.layers, src_up.fd()?.as_raw_fd())?;
        }
        if d.is_dir() && !dst_redirect && lower_visible(&fs.layers, &ps, name)? {
            set_opaque(&fs.layers, dst_up.fd()?.as_raw_fd())?;
        }
        at::renameat2(pfd, name, npfd, newname, at::RENAME_EXCHANGE)?;
        if let Some(r) = src_rec {
            src_ino.state.write().redirect = Some(r);
        }
        if let Some(r) = dst_rec {
            d.state.write().redirect = Some(r);
        }
        // An indexed file's upper object is its index entry: it stays.
        if src_ino.state.read().index.is_none() {
            src_up.relocate(&npup, newname);
        }
        if d.state.read().index.is_none() {
            dst_up.relocate(&pup, name);
        }
        set_name(&src_ino, parent, name, newparent, newname);
        set_name(d, newparent, newname, parent, name);
        return Ok(());
    }
    // The target's inode, if the kernel knows it (not a transient one).
    let victim = dst_ino.as_ref().and_then(|d| fs.inodes.get(d.nodeid).filter(|i| Arc::ptr_eq(i, d)));
    if let Some(v) = &victim {
        hold_upper(v);
    }
    let dst_upper = probe(&fs.layers, &npup, newname)?;
    if let (Some(d), Probe::Entry(dreal, _)) = (&dst, &dst_upper) {
        if is_dir(&d.st) && (!dst_pure || readdir::is_empty(&fs.layers, d.upper.as_ref(), &d.lowers)?) {
            // Logically empty: whatever it holds are whiteouts.
            remove_contents(dreal.fd()?.as_raw_fd())?;
        }
    }
    let src_rec = if src_redirect { Some(set_redirect(fs, &src_ino, &src_up, samedir)?) } else { None };
    if src_dir && !src_redirect && (dst.is_some() || lower_visible(&fs.layers, &nps, newname)?) {
        set_opaque(&fs.layers, src_up.fd()?.as_raw_fd())?;
    }
    let need_wh = lower_visible(&fs.layers, &ps, name)?;
    let dst_is_wh = matches!(dst_upper, Probe::Whiteout) && at::lstatat(npfd, newname).is_ok();
    if dst_is_wh {
        // Swap with the whiteout: the old name keeps it if a lower still has
        // that name, else it goes (a directory cannot replace a whiteout).
        at::renameat2(pfd, name, npfd, newname, at::RENAME_EXCHANGE)?;
        if !need_wh {
            at::unlinkat(pfd, name, 0)?;
        }
    } else if need_wh {
        match at::renameat2(pfd, name, npfd, newname, at::RENAME_WHITEOUT) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EPERM)) => {
                at::renameat2(pfd, name, npfd, newname, 0)?;
                whiteout_over(&fs.layers, pfd, name, false)?;
            }
            Err(e) => return Err(e),
        }
    } else {
        at::renameat2(pfd, name, npfd, newname, 0)?;
    }
    if src_ino.state.read().index.is_none() {
        src_up.relocate(&npup, newname);
    }
    if let Some(r) = src_rec {
        src_ino.state.write().redirect = Some(r);
    }
    if let Some(d) = &dst {
        mark_unlinked(newparent, newname, victim);
        if let Some(h) = &d.index {
            index::name_removed(fs, h);
        }
    }
    set_name(&src_ino, parent, name, newparent, newname);
    Ok(())
}
