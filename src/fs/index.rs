//! The inode index (`index=on`): copying up one name of a lower hard link
//! keeps every name linked to the one upper copy, in the kernel overlay's
//! on-disk format.
//!
//! - The copy lives in `workdir/index/`, named by the lower object's file
//!   handle as the kernel encodes it (`struct ovl_fb`: version 0, magic 0xfb,
//!   length, flags, handle type, the lower filesystem's UUID, then the
//!   `name_to_handle_at` bytes), in lowercase hex. Each name copied up is a
//!   hard link to it; names not copied up find it through their lower
//!   object's handle.
//! - The copy records its origin (`overlay.origin`, the same handle) and the
//!   number of names the union shows relative to its own link count
//!   (`overlay.nlink` = `U+N`, or `L+N` relative to the lower's while a name
//!   is being linked up), as the kernel does.
//! - A copy-up creates the entry (staged in the work dir, renamed in), then
//!   links the name up; removing or renaming a name not yet copied up links
//!   it up first (so the count stays right at every step), and the entry
//!   goes when the last name does.
//! - At mount the upper root must record the first lower root as its origin
//!   and the index dir the upper root (`overlay.upper`); both are written
//!   when absent and a mismatch refuses the mount, as the kernel does.
//!   Leftover temp entries and orphans are removed.

use crate::fs::inode::Inode;
use crate::fs::layers::Layers;
use crate::fs::lookup::{err, Found};
use crate::fs::real::Real;
use crate::fs::UnionFs;
use crate::sys::handle::{self, FileHandle};
use crate::sys::{at, xattr};
use log::debug;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

const FH_VERSION: u8 = 0;
const FH_MAGIC: u8 = 0xfb;
/// The handle belongs to the upper layer.
const FLAG_PATH_UPPER: u8 = 1 << 2;
/// Big endian (1), any endian (2), upper (4): anything else is unknown.
const FLAG_ALL: u8 = 0b111;
/// version, magic, len, flags, type, uuid.
const FB_HEADER: usize = 5 + 16;

/// The index of a mount with `index=on`.
#[derive(Debug)]
pub struct Index {
    /// `workdir/index`.
    pub dir: Real,
    /// Each layer's filesystem UUID (indexes as `Layers::layers`).
    uuids: Vec<[u8; 16]>,
}

/// What lookup learnt about an indexed name.
#[derive(Clone, Debug)]
pub struct Hit {
    /// The index entry's name.
    pub name: OsString,
    /// The index entry: the one upper copy.
    pub entry: Real,
    /// The name itself is a link to it in the upper layer.
    pub aliased: bool,
}

fn encode(h: &FileHandle, uuid: &[u8; 16], upper: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(FB_HEADER + h.bytes.len());
    let len = (FB_HEADER + h.bytes.len()) as u8;
    v.extend_from_slice(&[FH_VERSION, FH_MAGIC, len, if upper { FLAG_PATH_UPPER } else { 0 }, h.kind as u8]);
    v.extend_from_slice(uuid);
    v.extend_from_slice(&h.bytes);
    v
}

/// The UUID and handle in a recorded `ovl_fb` (None: not one we can read).
fn decode(v: &[u8]) -> Option<([u8; 16], FileHandle)> {
    if v.len() < FB_HEADER || v[1] != FH_MAGIC || v[0] > FH_VERSION || v[3] & !FLAG_ALL != 0 {
        return None;
    }
    let len = usize::from(v[2]);
    if len < FB_HEADER || len > v.len() || (v[3] & 2 == 0 && v[3] & 1 != 0) {
        return None;
    }
    let uuid: [u8; 16] = v[5..FB_HEADER].try_into().ok()?;
    Some((uuid, FileHandle { kind: i32::from(v[4]), bytes: v[FB_HEADER..len].to_vec() }))
}

/// The index entry name for a handle: its bytes in lowercase hex.
pub fn entry_name(fb: &[u8]) -> OsString {
    use std::fmt::Write;
    let mut s = String::with_capacity(fb.len() * 2);
    for b in fb {
        let _ = write!(s, "{b:02x}");
    }
    s.into()
}

impl Index {
    /// The handle of the object `fd` refers to in layer `layer`.
    pub fn fb_of(&self, layer: usize, fd: RawFd, upper: bool) -> io::Result<Vec<u8>> {
        let uuid = self.uuids.get(layer).ok_or_else(|| err(libc::EIO))?;
        Ok(encode(&handle::name_to_handle(fd)?, uuid, upper))
    }

    /// The entry `name`, if there is one (a whiteout or a directory is a bad
    /// index: EIO, as the kernel answers).
    fn entry(&self, name: &OsStr) -> io::Result<Option<(Real, at::Stat)>> {
        match Real::open_at(&self.dir, name) {
            Ok((r, st)) => {
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR || crate::fs::whiteout::is_whiteout_stat(&st) {
                    return Err(err(libc::EIO));
                }
                Ok(Some((r, st)))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn xget(fd: RawFd, name: &OsStr) -> Option<Vec<u8>> {
    xattr::get(xattr::Target::Path(fd), name).ok().flatten()
}

/// Check or record `value` in the private xattr `suffix` of the directory
/// `fd` (what the kernel's verification at mount does).
fn verify_set(layers: &Layers, fd: RawFd, suffix: &str, value: &[u8]) -> io::Result<bool> {
    let name = layers.xattr_name(suffix);
    match xattr::get(xattr::Target::Fd(fd), &name)? {
        Some(v) => Ok(v == value),
        None => xattr::set(xattr::Target::Fd(fd), &name, value, 0).map(|_| true),
    }
}

/// Set up the index of a mount with `index=on`: verify (or record) the
/// upper root's origin and the index dir's upper, then clean the index.
pub fn setup(layers: &Layers, workdir: RawFd, wpath: &Path) -> Result<Index, String> {
    let msg = |what: &str, e: io::Error| format!("index=on: {what}: {}", crate::sys::tree::strip_os(&e));
    let mut uuids = Vec::new();
    for l in &layers.layers {
        let fd = l.root.fd().map_err(|e| msg("layer root", e))?;
        uuids.push(handle::fs_uuid(fd.as_raw_fd()).map_err(|e| msg(&format!("uuid of {}", l.path.display()), e))?);
    }
    let upper = layers.upper().ok_or("index=on needs an upper layer")?;
    let lower = layers.layers.get(layers.first_lower()).ok_or("index=on needs a lower layer")?;
    let (ufd, lfd) = (upper.root.fd().map_err(|e| msg("upper", e))?, lower.root.fd().map_err(|e| msg("lower", e))?);
    let lfb = handle::name_to_handle(lfd.as_raw_fd())
        .map(|h| encode(&h, &uuids[layers.first_lower()], false))
        .map_err(|e| msg(&format!("file handle of lowerdir {}", lower.path.display()), e))?;
    if !verify_set(layers, ufd.as_raw_fd(), "origin", &lfb).map_err(|e| msg("upper root origin", e))? {
        return Err(format!(
            "index=on: upperdir {} was made over other lower layers (its origin is not lowerdir {}); \
             the kernel refuses it too: mount with index=off or use a new upper and work dir",
            upper.path.display(),
            lower.path.display()
        ));
    }
    match at::mkdirat(workdir, OsStr::new("index"), 0o700) {
        Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(msg("cannot create workdir/index", e)),
        _ => {}
    }
    let ifd = crate::fs::lookup::open_dir_at(workdir, OsStr::new("index")).map_err(|e| msg("workdir/index", e))?;
    let ufb = handle::name_to_handle(ufd.as_raw_fd())
        .map(|h| encode(&h, &uuids[0], true))
        .map_err(|e| msg("file handle of upperdir", e))?;
    if !verify_set(layers, ifd.as_raw_fd(), "upper", &ufb).map_err(|e| msg("index dir", e))? {
        return Err(format!(
            "index=on: {} belongs to another upper dir than {}: mount with index=off or use a new work dir",
            wpath.join("index").display(),
            upper.path.display()
        ));
    }
    let dir = Real::fixed(ifd, &layers.cache).map_err(|e| msg("workdir/index", e))?;
    let ix = Index { dir, uuids };
    clean(layers, &ix, &wpath.join("index"));
    Ok(ix)
}

/// Remove what a crash left in the index (temp entries) and orphans (an
/// entry no name shows any more), as the kernel does at mount.
fn clean(layers: &Layers, ix: &Index, path: &Path) {
    let Ok(rd) = std::fs::read_dir(path) else { return };
    let Ok(dfd) = ix.dir.fd() else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        let Ok(st) = at::lstatat(dfd.as_raw_fd(), &name) else { continue };
        let dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let orphan = || -> bool {
            let Ok(fd) = at::openat(dfd.as_raw_fd(), &name, libc::O_PATH | libc::O_NOFOLLOW, 0) else { return false };
            st.st_nlink == 1 && shown_nlink(layers, fd.as_raw_fd(), 1) == Some(0)
        };
        if name.as_bytes().starts_with(b"#") {
            if dir {
                if let Ok(d) = crate::fs::lookup::open_dir_at(dfd.as_raw_fd(), &name) {
                    let _ = crate::sys::tree::remove_contents(d.as_raw_fd());
                }
            }
            let _ = at::unlinkat(dfd.as_raw_fd(), &name, if dir { libc::AT_REMOVEDIR } else { 0 });
        } else if !dir && orphan() {
            debug!("removing orphan index entry {name:?}");
            let _ = at::unlinkat(dfd.as_raw_fd(), &name, 0);
        }
    }
}

/// The number of names the union shows for an indexed copy whose own link
/// count is `upper_nlink`; `None` without a valid record.
pub fn shown_nlink(layers: &Layers, fd: RawFd, upper_nlink: u64) -> Option<u64> {
    let v = xget(fd, &layers.xattr_name("nlink"))?;
    let s = std::str::from_utf8(&v).ok()?;
    let (base, diff) = match s.as_bytes().first()? {
        b'U' => (upper_nlink as i64, &s[1..]),
        b'L' => (origin_stat(layers, fd)?.st_nlink as i64, &s[1..]),
        _ => return None,
    };
    if !diff.starts_with(['+', '-']) {
        return None;
    }
    let d: i64 = diff.parse().ok()?;
    Some((base + d).max(0) as u64)
}

fn set_nlink(layers: &Layers, fd: RawFd, form: char, diff: i64) -> io::Result<()> {
    let v = format!("{form}{diff:+}");
    xattr::set(xattr::Target::Path(fd), &layers.xattr_name("nlink"), v.as_bytes(), 0)
}

/// Show an indexed inode's link count: the names the union has.
pub fn fix_nlink(layers: &Layers, ino: &Inode, st: &mut at::Stat) {
    let s = ino.state.read();
    if s.index.is_none() {
        return;
    }
    let Some(up) = s.upper.clone() else { return };
    drop(s);
    if let Ok(fd) = up.fd() {
        if let Some(n) = shown_nlink(layers, fd.as_raw_fd(), st.st_nlink) {
            st.st_nlink = n;
        }
    }
}

/// The lower object an upper copy's `overlay.origin` names (needs
/// CAP_DAC_READ_SEARCH to open by handle; None otherwise).
fn origin_stat(layers: &Layers, fd: RawFd) -> Option<at::Stat> {
    origin_stat_of(layers, &xget(fd, &layers.xattr_name("origin"))?)
}

/// The lower object a recorded `overlay.origin` value names.
fn origin_stat_of(layers: &Layers, v: &[u8]) -> Option<at::Stat> {
    let ix = layers.index.as_ref()?;
    let (uuid, h) = decode(v)?;
    for (i, l) in layers.layers.iter().enumerate().skip(layers.first_lower()) {
        if ix.uuids.get(i) != Some(&uuid) {
            continue;
        }
        let root = l.root.fd().ok()?;
        if let Ok(o) = handle::open_by_handle(root.as_raw_fd(), &h) {
            return at::fstat(o.as_raw_fd()).ok();
        }
    }
    None
}

/// The origin number of an upper copy the kernel indexed (it records no
/// `unionfs.origin`): its lower object's, by handle.
pub fn origin_number(layers: &Layers, v: &[u8]) -> Option<u64> {
    let st = origin_stat_of(layers, v)?;
    layers.layers.iter().any(|l| l.dev == st.st_dev).then(|| layers.ino_for(st.st_dev, st.st_ino))
}

/// A found non-directory whose copy is (or would be) indexed: a lower hard
/// link, or an upper name linked to an index entry.
pub fn attach(layers: &Layers, f: &mut Found) -> io::Result<()> {
    let Some(ix) = &layers.index else { return Ok(()) };
    if f.st.st_mode & libc::S_IFMT == libc::S_IFDIR || f.st.st_nlink < 2 {
        return Ok(());
    }
    if let Some(up) = &f.upper {
        let fd = up.fd()?;
        let Some(v) = xget(fd.as_raw_fd(), &layers.xattr_name("origin")) else { return Ok(()) };
        if decode(&v).is_none() {
            return Ok(());
        }
        let name = entry_name(&v);
        if let Ok(Some((entry, _))) = ix.entry(&name) {
            if entry.same(up) {
                f.index = Some(Hit { name, entry, aliased: true });
            }
        }
        return Ok(());
    }
    let Some(low) = f.lowers.first() else { return Ok(()) };
    let fd = low.real.fd()?;
    let name = entry_name(&ix.fb_of(low.layer, fd.as_raw_fd(), false)?);
    if let Some((entry, st)) = ix.entry(&name)? {
        if st.st_mode & libc::S_IFMT != f.st.st_mode & libc::S_IFMT {
            return Err(err(libc::EIO));
        }
        f.st = st;
        f.data = None;
        f.index = Some(Hit { name, entry, aliased: false });
    }
    Ok(())
}

/// Does a copy-up of the lower object with `lower` attributes go to the index?
pub fn wanted(layers: &Layers, lower: &at::Stat) -> bool {
    layers.index.is_some() && lower.st_mode & libc::S_IFMT != libc::S_IFDIR && lower.st_nlink > 1
}

/// The index entry of `ino` (a lower hard link), created if there is none:
/// the copy is staged in the work dir with its origin and link count, then
/// renamed in. The caller holds `ino.copy_up_lock`. Updates the inode.
pub fn ensure_entry(fs: &UnionFs, ino: &Inode, pup: &Real) -> io::Result<(OsString, Real)> {
    let ix = fs.layers.index.as_ref().ok_or_else(|| err(libc::EIO))?;
    let st = ino.snapshot();
    if let (Some(up), Some(name)) = (&st.upper, &st.index) {
        return Ok((name.clone(), up.clone()));
    }
    let lower = st.lowers.first().ok_or_else(|| err(libc::EIO))?;
    let src = lower.real.fd()?;
    let sst = at::fstat(src.as_raw_fd())?;
    let fb = ix.fb_of(lower.layer, src.as_raw_fd(), false)?;
    let name = entry_name(&fb);
    let entry = match ix.entry(&name)? {
        Some((e, _)) => e,
        None => create_entry(fs, ix, ino, &st, src.as_raw_fd(), &sst, &fb, &name, pup)?,
    };
    let mut w = ino.state.write();
    w.upper = Some(entry.clone());
    w.lowers.clear();
    w.data = None;
    w.index = Some(name.clone());
    Ok((name, entry))
}

#[allow(clippy::too_many_arguments)]
fn create_entry(
    fs: &UnionFs,
    ix: &Index,
    ino: &Inode,
    st: &crate::fs::inode::InodeState,
    src: RawFd,
    sst: &at::Stat,
    fb: &[u8],
    name: &OsStr,
    pup: &Real,
) -> io::Result<Real> {
    let data = st.data.as_ref().map(|d| d.fd()).transpose()?;
    let job = crate::fs::copy_up::Job {
        src,
        sst,
        data: data.as_ref().map_or(src, |d| d.as_raw_fd()),
        updir: pup,
        name: &st.name,
        detached: false,
        with_data: true,
        meta_only: false,
        nodeid: ino.nodeid,
        keeps_link: true,
    };
    let work = fs.layers.work_fd()?;
    let tmp = crate::fs::copy_up::stage_in_work(fs, &job)?;
    let finish = || -> io::Result<()> {
        let obj = at::openat(work, &tmp, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        let t = xattr::Target::Path(obj.as_raw_fd());
        xattr::set(t, &fs.layers.xattr_name("origin"), fb, 0)?;
        // Only the entry links to it yet: every lower name is still shown.
        set_nlink(&fs.layers, obj.as_raw_fd(), 'U', sst.st_nlink as i64 - 1)?;
        let dfd = ix.dir.fd()?;
        at::renameat2(work, &tmp, dfd.as_raw_fd(), name, at::RENAME_NOREPLACE)
    };
    match finish() {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            crate::fs::copy_up::remove_staged(work, &tmp, sst.st_mode & libc::S_IFMT);
        }
        Err(e) => {
            crate::fs::copy_up::remove_staged(work, &tmp, sst.st_mode & libc::S_IFMT);
            return Err(e);
        }
    }
    ix.entry(name)?.map(|(r, _)| r).ok_or_else(|| err(libc::EIO))
}

/// Link the name `pup/name` to the index entry (the kernel's link-up): the
/// count is first recorded relative to the lower object (which the link does
/// not change), then relative to the copy again. The directory's times stay.
pub fn link_up(fs: &UnionFs, entry: &Real, pup: &Real, name: &OsStr) -> io::Result<Real> {
    let layers = &fs.layers;
    let efd = entry.fd()?;
    let e = efd.as_raw_fd();
    let est = at::fstat(e)?;
    let shown = shown_nlink(layers, e, est.st_nlink).unwrap_or(est.st_nlink) as i64;
    if let Some(l) = origin_stat(layers, e) {
        set_nlink(layers, e, 'L', shown - l.st_nlink as i64)?;
    }
    let pfd = pup.fd()?;
    let p = pfd.as_raw_fd();
    let before = at::fstat(p)?;
    if let Err(e) = xattr::set(xattr::Target::Fd(p), &layers.xattr_name("impure"), b"y", 0) {
        debug!("cannot mark {name:?}'s directory impure: {e}");
    }
    match at::link_fd(e, p, name) {
        Ok(()) => {}
        Err(x) if x.raw_os_error() == Some(libc::EEXIST) => {
            let st = at::lstatat(p, name)?;
            if (st.st_dev, st.st_ino) != (est.st_dev, est.st_ino) {
                return Err(x);
            }
        }
        Err(x) => return Err(x),
    }
    let t = |s: i64, ns: i64| at::Time::At(s, ns);
    let _ = at::futimens(p, t(before.st_atime, before.st_atime_nsec), t(before.st_mtime, before.st_mtime_nsec));
    let now = at::fstat(e)?;
    set_nlink(layers, e, 'U', shown - now.st_nlink as i64)?;
    let fd = at::openat(p, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
    let st = at::fstat(fd.as_raw_fd())?;
    Ok(Real::at(pup, name, Arc::new(fd), &st))
}

/// Before a name of an indexed (or indexable) file is removed or replaced:
/// make sure it is a link in the upper layer (creating the index entry if
/// needed), so that its removal leaves the count right. `ino` is the name's
/// inode; `f` is updated.
pub fn prepare_name(fs: &UnionFs, ino: &Arc<Inode>, pup: &Real, name: &OsStr, f: &mut Found) -> io::Result<()> {
    if fs.layers.index.is_none() || f.st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Ok(());
    }
    let entry = match &f.index {
        Some(h) if h.aliased => return Ok(()),
        Some(h) => h.entry.clone(),
        None => {
            let Some(low) = f.lowers.first() else { return Ok(()) };
            if f.upper.is_some() || !wanted(&fs.layers, &at::fstat(low.real.fd()?.as_raw_fd())?) {
                return Ok(());
            }
            let _guard = ino.copy_up_lock.lock();
            let (n, e) = ensure_entry(fs, ino, pup)?;
            f.index = Some(Hit { name: n, entry: e.clone(), aliased: false });
            e
        }
    };
    let alias = link_up(fs, &entry, pup, name)?;
    f.upper = Some(alias);
    if let Some(h) = &mut f.index {
        h.aliased = true;
    }
    Ok(())
}

/// After a name of an indexed file went away: the entry goes with the last
/// name (the kernel's cleanup: only the entry links to the copy and the union
/// shows no name).
pub fn name_removed(fs: &UnionFs, hit: &Hit) {
    let Some(ix) = &fs.layers.index else { return };
    let Ok(fd) = hit.entry.fd() else { return };
    let Ok(st) = at::fstat(fd.as_raw_fd()) else { return };
    if st.st_nlink == 1 && shown_nlink(&fs.layers, fd.as_raw_fd(), 1) == Some(0) {
        if let Ok(d) = ix.dir.fd() {
            if let Err(e) = at::unlinkat(d.as_raw_fd(), &hit.name, 0) {
                debug!("cannot remove index entry {:?}: {e}", hit.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_encoding_round_trips() {
        // What the kernel wrote for an ext4 file (ino 10330193) with a null uuid.
        let h = FileHandle { kind: 1, bytes: vec![0x51, 0xa0, 0x9d, 0x00, 0x00, 0xc3, 0x84, 0x3a] };
        let fb = encode(&h, &[0; 16], false);
        assert_eq!(entry_name(&fb), "00fb1d00010000000000000000000000000000000051a09d0000c3843a");
        assert_eq!(decode(&fb), Some(([0; 16], h.clone())));
        assert_eq!(encode(&h, &[0; 16], true)[3], 4);
        assert!(decode(&fb[..10]).is_none());
        let mut bad = fb.clone();
        bad[1] = 0;
        assert!(decode(&bad).is_none());
    }
}
