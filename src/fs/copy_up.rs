//! Copy-up: bring a lower object into the upper layer, parents first.
//!
//! The copy is built in the work directory (same filesystem as the upper):
//! object, data (reflink, then copy_file_range, then read/write, holes kept),
//! owner, mode, xattrs, times (the kernel's order: a chown after the xattrs
//! would drop file capabilities); then renamed into place. A crash leaves either
//! nothing or the complete object in the upper; the work dir is emptied at mount.
//! With `metacopy=on` a copy-up for a metadata change stages a regular file
//! without its data (same size, sparse, marked), the same way; its data comes
//! up later (`metacopy.rs`).

use crate::fs::index;
use crate::fs::ino::{self, ORIGIN_XATTR};
use crate::fs::inode::Inode;
use crate::fs::layers::{Fd, Layers};
use crate::fs::lookup::{err, open_dir_at};
use crate::fs::metacopy;
use crate::fs::real::Real;
use crate::fs::whiteout::{self, temp_name};
use crate::fs::UnionFs;
use crate::sys::{at, xattr};
use log::debug;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What a copy-up must bring.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// The object (the kernel's copy-up without open flags): with
    /// `metacopy=on` a regular file's metadata alone.
    Object,
    /// The object with its data.
    Data,
    /// The object without data: the caller truncates it to zero at once.
    Empty,
}

/// Make sure `ino` has an upper object; returns it. With `metacopy=on` a
/// regular file gets its metadata only (see `metacopy.rs`).
pub fn copy_up(fs: &UnionFs, ino: &Arc<Inode>) -> io::Result<Real> {
    copy_up_one(fs, ino, Want::Object)
}

/// Make sure `ino` has an upper object holding its data (open for write,
/// truncate); `keep_data = false` when the caller is about to truncate to 0.
pub fn copy_up_data(fs: &UnionFs, ino: &Arc<Inode>, keep_data: bool) -> io::Result<Real> {
    let up = copy_up_one(fs, ino, if keep_data { Want::Data } else { Want::Empty })?;
    if ino.state.read().data.is_some() {
        metacopy::copy_data_up(fs, ino, keep_data)?;
    }
    Ok(up)
}

fn copy_up_one(fs: &UnionFs, ino: &Arc<Inode>, want: Want) -> io::Result<Real> {
    if let Some(u) = ino.upper() {
        return Ok(u);
    }
    fs.check_writable()?;
    let parent = ino.parent().ok_or_else(|| err(libc::EIO))?;
    let pup = copy_up(fs, &parent)?;
    let _guard = ino.copy_up_lock.lock();
    if let Some(u) = ino.upper() {
        return Ok(u);
    }
    let st = ino.snapshot();
    let lower = st.lowers.first().ok_or_else(|| err(libc::EIO))?.real.clone();
    let src = lower.fd()?;
    // The data: the lower file's, or further down when it is a metacopy file.
    let data = st.data.clone().unwrap_or(lower);
    let data_fd = data.fd()?;
    let sst = at::fstat(src.as_raw_fd())?;
    if index::wanted(&fs.layers, &sst) {
        // A lower hard link with `index=on`: the copy goes to the index,
        // then this name links to it (`index.rs`).
        let (_, entry) = index::ensure_entry(fs, ino, &pup)?;
        if !st.unlinked {
            index::link_up(fs, &entry, &pup, &st.name)?;
        }
        return Ok(entry);
    }
    let meta_only = fs.opts.metacopy && want == Want::Object && sst.st_mode & libc::S_IFMT == libc::S_IFREG;
    let job = Job {
        src: src.as_raw_fd(),
        sst: &sst,
        data: data_fd.as_raw_fd(),
        updir: &pup,
        name: &st.name,
        detached: st.unlinked,
        with_data: want != Want::Empty && !meta_only,
        meta_only,
        nodeid: ino.nodeid,
        keeps_link: false,
    };
    let up = copy_object(fs, &job).inspect_err(|e| debug!("copy-up of {:?} failed: {e}", st.name))?;
    if ino::breaks_link(&sst) {
        let (dev, n) = up.id();
        ino.set_st_ino(fs.layers.ino_for(dev, n));
    }
    let mut w = ino.state.write();
    w.upper = Some(up.clone());
    if !ino.is_dir() {
        w.lowers.clear();
        w.data = meta_only.then_some(data);
    }
    Ok(up)
}

/// One object to copy up.
pub(crate) struct Job<'a> {
    /// The lower object and its stat.
    pub src: RawFd,
    pub sst: &'a at::Stat,
    /// The lower file holding the data (`src` unless that is a metacopy file).
    pub data: RawFd,
    /// The upper parent directory and the name to give the copy.
    pub updir: &'a Real,
    pub name: &'a OsStr,
    /// The name is gone (unlinked but open): the copy stays nameless in the work dir.
    pub detached: bool,
    pub with_data: bool,
    /// Metadata only: a sparse file of the same size, marked metacopy.
    pub meta_only: bool,
    /// The inode's node ID (recorded on a broken hard link's copy).
    pub nodeid: u64,
    /// The copy keeps the lower hard link (`index=on`): its origin is the
    /// lower object's, whatever its link count.
    pub keeps_link: bool,
}

/// Build the complete copy of `job.src` in the work dir; returns its name
/// there (nothing is left behind on failure).
pub(crate) fn stage_in_work(fs: &UnionFs, job: &Job<'_>) -> io::Result<OsString> {
    let work = fs.layers.work_fd()?;
    let sst = job.sst;
    let tmp = temp_name();
    if let Err(e) = stage(&fs.layers, job, sst, work, &tmp, fs.opts.fsync) {
        remove_staged(work, &tmp, sst.st_mode & libc::S_IFMT);
        return Err(e);
    }
    Ok(tmp)
}

/// Copy one real object into `updir/name` via the work dir.
fn copy_object(fs: &UnionFs, job: &Job<'_>) -> io::Result<Real> {
    let layers = &fs.layers;
    let work = layers.work_fd()?;
    let kind = job.sst.st_mode & libc::S_IFMT;
    let tmp = stage_in_work(fs, job)?;
    if job.detached {
        let fd = open_obj(work, &tmp, kind)?;
        remove_staged(work, &tmp, kind);
        return Real::fixed(fd, &layers.cache);
    }
    let upfd = job.updir.fd()?;
    let (updir, name) = (upfd.as_raw_fd(), job.name);
    // A copy-up is not a change of the directory it lands in: its times are
    // put back afterwards, as the kernel does.
    let before = at::fstat(updir)?;
    match at::renameat2(work, &tmp, updir, name, at::RENAME_NOREPLACE) {
        Ok(()) => {
            let t = |s: i64, ns: i64| at::Time::At(s, ns);
            let (a, m) = (t(before.st_atime, before.st_atime_nsec), t(before.st_mtime, before.st_mtime_nsec));
            if let Err(e) = at::futimens(updir, a, m) {
                debug!("cannot restore the times of {:?}'s directory: {e}", name);
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            remove_staged(work, &tmp, kind);
            // Another path copied it up first: use theirs; but a name removed
            // meanwhile (a whiteout, or another object) is gone for us.
            let st = at::lstatat(updir, name)?;
            if whiteout::is_whiteout_stat(&st) || (st.st_mode & libc::S_IFMT) != kind {
                return Err(err(libc::ENOENT));
            }
        }
        Err(e) => {
            remove_staged(work, &tmp, kind);
            return Err(e);
        }
    }
    let fd = open_obj(updir, name, kind)?;
    let st = at::fstat(fd.as_raw_fd())?;
    Ok(Real::at(job.updir, name, fd, &st))
}

fn open_obj(dir: RawFd, name: &OsStr, kind: u32) -> io::Result<Fd> {
    if kind == libc::S_IFDIR {
        open_dir_at(dir, name)
    } else {
        at::openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0).map(Arc::new)
    }
}

pub(crate) fn remove_staged(work: RawFd, tmp: &OsStr, kind: u32) {
    let flags = if kind == libc::S_IFDIR { libc::AT_REMOVEDIR } else { 0 };
    let _ = at::unlinkat(work, tmp, flags);
}

/// Build the complete copy at `work/tmp`.
fn stage(layers: &Layers, job: &Job<'_>, sst: &at::Stat, work: RawFd, tmp: &OsStr, sync: bool) -> io::Result<()> {
    let src = job.src;
    let kind = sst.st_mode & libc::S_IFMT;
    let mode = sst.st_mode & 0o7777;
    // A regular file's copy keeps its write descriptor for the metadata
    // below (no reopen; fchmod and fsetxattr on it, not through /proc).
    let mut file = None;
    match kind {
        libc::S_IFDIR => at::mkdirat(work, tmp, 0o700)?,
        libc::S_IFREG => {
            let dst = at::openat(work, tmp, libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY, 0o600)?;
            if job.meta_only {
                at::ftruncate(dst.as_raw_fd(), sst.st_size as u64)?;
            } else if job.with_data && sst.st_size > 0 {
                let s = at::reopen(job.data, libc::O_RDONLY)?;
                copy_data(layers, s.as_raw_fd(), dst.as_raw_fd(), sst.st_size as u64)?;
            }
            if sync {
                at::fsync(dst.as_raw_fd(), false)?;
            }
            file = Some(dst);
        }
        libc::S_IFLNK => {
            let target = at::readlinkat(src, OsStr::new(""))?;
            at::symlinkat(at::os(&target), work, tmp)?;
        }
        _ => at::mknodat(work, tmp, kind | mode, sst.st_rdev)?,
    }
    let obj = match file {
        Some(f) => f,
        None => at::openat(work, tmp, libc::O_PATH | libc::O_NOFOLLOW, 0)?,
    };
    let ofd = obj.as_raw_fd();
    let (s, d) = if kind == libc::S_IFDIR {
        (xattr::Target::Fd(src), Some(at::openat(work, tmp, libc::O_RDONLY | libc::O_DIRECTORY, 0)?))
    } else {
        (xattr::Target::Path(src), None)
    };
    let dt = match &d {
        Some(d) => xattr::Target::Fd(d.as_raw_fd()),
        None if kind == libc::S_IFREG => xattr::Target::Fd(ofd),
        None => xattr::Target::Path(ofd),
    };
    // Owner first (a chown clears security.capability), then the xattrs while
    // the copy is still private and writable (user.* needs write access when
    // not root), then the mode (which never clears xattrs), then the times.
    set_owner(layers, ofd, dt, sst)?;
    copy_xattrs(layers, s, dt)?;
    // Best effort (user.* xattrs are not allowed on symlinks): without it
    // st_ino changes after remount, nothing else. A broken hard link records
    // its node ID instead (see `ino.rs`).
    let origin = ino::origin_value(sst, job.nodeid, job.keeps_link);
    if let Err(e) = xattr::set(dt, &layers.xattr_name(ORIGIN_XATTR), origin.as_bytes(), 0) {
        debug!("cannot record origin: {e}");
    }
    if job.meta_only {
        metacopy::mark(layers, dt)?;
    }
    if kind == libc::S_IFREG {
        at::fchmod_open(ofd, mode)?;
    } else if kind != libc::S_IFLNK {
        at::fchmod(ofd, mode)?;
    }
    let t = |s: i64, ns: i64| at::Time::At(s, ns);
    at::utimensat(work, tmp, t(sst.st_atime, sst.st_atime_nsec), t(sst.st_mtime, sst.st_mtime_nsec))?;
    Ok(())
}

/// Give the copy the source's owner. An unprivileged daemon cannot give away
/// files: it keeps its own ownership and records the real owner in
/// `user.containers.override_stat` (fuse-overlayfs's and containers/storage's
/// convention), which the mount shows (see `attr::OVERRIDE_XATTR`).
fn set_owner(layers: &Layers, ofd: RawFd, dt: xattr::Target, sst: &at::Stat) -> io::Result<()> {
    match at::fchown(ofd, Some(sst.st_uid), Some(sst.st_gid)) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) && !layers.root_user => {
            if sst.st_mode & libc::S_IFMT == libc::S_IFLNK {
                // No user.* xattrs on symlinks: the link stays ours.
                return Ok(());
            }
            let v = crate::fs::attr::override_value(sst.st_uid, sst.st_gid, sst.st_mode);
            xattr::set(dt, OsStr::new(crate::fs::attr::OVERRIDE_XATTR), v.as_bytes(), 0)
        }
        r => r,
    }
}

/// Copy user-visible xattrs (the private overlay ones stay behind).
pub fn copy_xattrs(layers: &Layers, src: xattr::Target, dst: xattr::Target) -> io::Result<()> {
    for name in xattr::list(src)? {
        let n = at::os(&name);
        if layers.is_private(n) {
            continue;
        }
        if let Some(v) = xattr::get(src, n)? {
            if let Err(e) = xattr::set(dst, n, &v, 0) {
                // security.* or trusted.* the upper filesystem refuses: not user data we can keep.
                if !matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::ENOTSUP)) {
                    return Err(e);
                }
                debug!("xattr {:?} not copied: {e}", n);
            }
        }
    }
    Ok(())
}

/// Copy `size` bytes: reflink, else copy_file_range over data extents (holes
/// stay holes), else read/write. An upper filesystem that cannot reflink
/// (EOPNOTSUPP: ext4, tmpfs) is not asked again.
pub fn copy_data(layers: &Layers, src: RawFd, dst: RawFd, size: u64) -> io::Result<()> {
    if !layers.no_reflink.load(Ordering::Relaxed) {
        match at::ficlone(dst, src) {
            Ok(()) => return Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOTTY)) => {
                layers.no_reflink.store(true, Ordering::Relaxed);
            }
            Err(_) => {}
        }
    }
    let size = size as i64;
    let (mut off, mut written) = (0i64, 0i64);
    while off < size {
        let data = match at::lseek(src, off, libc::SEEK_DATA) {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => break,
            Err(_) => off,
        };
        if data >= size {
            break;
        }
        let hole = at::lseek(src, data, libc::SEEK_HOLE).unwrap_or(size).min(size);
        written = copy_range(src, dst, data, hole - data)?;
        off = hole;
    }
    // A trailing hole (or a source shorter than its stat said): the size.
    if written < size {
        at::ftruncate(dst, size as u64)?;
    }
    Ok(())
}

/// Copy `len` bytes at `start`; returns where the copy ended (short at the
/// source's end).
fn copy_range(src: RawFd, dst: RawFd, start: i64, len: i64) -> io::Result<i64> {
    let (mut oi, mut oo) = (start, start);
    let end = start + len;
    while oi < end {
        let want = (end - oi) as usize;
        match at::copy_file_range(src, &mut oi, dst, &mut oo, want) {
            Ok(0) => return Ok(oo),
            Ok(_) => {}
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)) =>
            {
                return copy_rw(src, dst, oi, end - oi);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(oo)
}

fn copy_rw(src: RawFd, dst: RawFd, start: i64, len: i64) -> io::Result<i64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut off = start;
    let end = start + len;
    while off < end {
        let want = ((end - off) as usize).min(buf.len());
        let n = at::pread(src, &mut buf[..want], off)?;
        if n == 0 {
            break;
        }
        let mut done = 0;
        while done < n {
            done += at::pwrite(dst, &buf[done..n], off + done as i64)?;
        }
        off += n as i64;
    }
    Ok(off)
}
