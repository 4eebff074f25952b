//! Open files and their data: open/read/write/flush/fsync/release,
//! fallocate, lseek (SEEK_DATA/SEEK_HOLE), copy_file_range.
//!
//! Opening for write (or with O_TRUNC) copies the file up first; reads of a
//! file never written come straight from its lower layer.

use crate::fs::copy_up::copy_up_data;
use crate::fs::inode::Inode;
use crate::fs::layers::Fd;
use crate::fs::lookup::err;
use crate::fs::passthrough::{Held, Io, Want};
use crate::fs::real::{Pin, Real};
use crate::fs::UnionFs;
use crate::sys::at;
use parking_lot::{Mutex, RwLock};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// An open file handle.
///
/// It follows the inode's current real object: a handle opened on a lower
/// file is reopened on the upper copy at its next use once the file has been
/// copied up (the kernel overlay does the same), so readers see what writers
/// wrote and `fstat`/`lseek` see the new size.
#[derive(Debug)]
pub struct OpenFile {
    fd: RwLock<Fd>,
    /// Flags of the real open (for reopening after copy-up).
    flags: i32,
    /// Still reading a lower object.
    on_lower: AtomicBool,
    pub inode: Arc<Inode>,
    /// Keeps the real object reachable (unlinked-but-open files) while open.
    pin: Mutex<Option<Pin>>,
    /// How the kernel serves it (passthrough bookkeeping at release).
    held: Held,
}

impl OpenFile {
    /// The real descriptor to use now.
    pub fn fd(&self) -> io::Result<Fd> {
        if self.on_lower.load(Ordering::Acquire) {
            if let Some(up) = self.inode.upper_data() {
                let mut cur = self.fd.write();
                if self.on_lower.load(Ordering::Acquire) {
                    let fd = at::reopen(up.fd()?.as_raw_fd(), self.flags)?;
                    *cur = Arc::new(fd);
                    *self.pin.lock() = Some(up.pin()?);
                    self.on_lower.store(false, Ordering::Release);
                }
                return Ok(cur.clone());
            }
        }
        Ok(self.fd.read().clone())
    }
}

/// Flags the real open must not see: resolved by the kernel (creation), or
/// kept by it (append offsets come with each write; a later `fcntl(F_SETFL)`
/// never reaches us), or impossible with our buffers (O_DIRECT needs aligned
/// memory; the kernel already bypasses its cache for such opens).
const STRIP: i32 = libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_APPEND | libc::O_DIRECT;

fn wants_write(flags: i32) -> bool {
    (flags & libc::O_ACCMODE) != libc::O_RDONLY || flags & libc::O_TRUNC != 0
}

/// Makes a FUSE passthrough backing id of a descriptor (through the reply).
pub type Register<'a> = &'a dyn Fn(&OwnedFd) -> io::Result<fuser::BackingId>;

/// Open `ino` with `flags`; returns the new handle number and how the kernel
/// is to serve it.
pub fn open(fs: &UnionFs, ino: &Arc<Inode>, flags: i32, register: Register) -> io::Result<(u64, Io)> {
    let append = flags & libc::O_APPEND != 0;
    let flags = flags & !STRIP;
    let (real, on_lower) = if wants_write(flags) {
        fs.check_writable()?;
        fs.passthrough.check_write(ino.nodeid)?;
        // A truncating open needs no data copied.
        (copy_up_data(fs, ino, flags & libc::O_TRUNC == 0)?, false)
    } else {
        // A metacopy file's data is still below its upper object.
        let s = ino.snapshot();
        let data = s.data_obj().ok_or_else(|| err(libc::ESTALE))?;
        (data, s.upper.is_none() || s.data.is_some())
    };
    // A lower object is never removed: an open of it needs no pin, and is
    // opened by name when no descriptor of it is held.
    let (fd, pin) = if on_lower {
        (real.open_io(flags)?, None)
    } else {
        let pin = real.pin()?;
        (at::reopen(real.fd()?.as_raw_fd(), flags)?, Some(pin))
    };
    let io = io_mode(fs, ino, &real, &fd, (on_lower, append, wants_write(flags)), register)?;
    Ok((insert(fs, ino, fd, flags & !libc::O_TRUNC, on_lower, pin, io.held()), io))
}

/// Enter a descriptor just created on the upper object of `ino` as a handle.
pub fn register(fs: &UnionFs, ino: &Arc<Inode>, fd: OwnedFd, flags: i32, register: Register) -> io::Result<(u64, Io)> {
    let up = ino.upper().ok_or_else(|| err(libc::EIO))?;
    let pin = up.pin()?;
    let append = flags & libc::O_APPEND != 0;
    let flags = flags & !(STRIP | libc::O_TRUNC);
    let io = io_mode(fs, ino, &up, &fd, (false, append, true), register)?;
    Ok((insert(fs, ino, fd, flags, false, Some(pin), io.held()), io))
}

/// How the kernel serves a new open of `ino` on `real` (see `passthrough`).
fn io_mode(
    fs: &UnionFs,
    ino: &Inode,
    real: &Real,
    fd: &OwnedFd,
    (on_lower, append, write): (bool, bool, bool),
    register: Register,
) -> io::Result<Io> {
    let want = Want { fd, id: real.id(), on_lower, append, write, writable: fs.check_writable().is_ok() };
    fs.passthrough.attach(ino.nodeid, &want, register)
}

fn insert(
    fs: &UnionFs,
    ino: &Arc<Inode>,
    fd: OwnedFd,
    flags: i32,
    on_lower: bool,
    pin: Option<Pin>,
    held: Held,
) -> u64 {
    let fh = fs.next_fh();
    let f = OpenFile {
        fd: RwLock::new(Arc::new(fd)),
        flags,
        on_lower: AtomicBool::new(on_lower),
        inode: ino.clone(),
        pin: Mutex::new(pin),
        held,
    };
    fs.files.insert(fh, Arc::new(f));
    fh
}

pub fn handle(fs: &UnionFs, fh: u64) -> io::Result<Arc<OpenFile>> {
    fs.files.get(&fh).map(|f| f.value().clone()).ok_or_else(|| err(libc::EBADF))
}

/// The current real descriptor of handle `fh`.
pub fn handle_fd(fs: &UnionFs, fh: u64) -> io::Result<Fd> {
    handle(fs, fh)?.fd()
}

pub fn read(fs: &UnionFs, fh: u64, off: u64, size: u32) -> io::Result<Vec<u8>> {
    let f = handle_fd(fs, fh)?;
    at::pread_vec(f.as_raw_fd(), size as usize, off as i64)
}

/// Largest file whose data an open hands to the kernel (one read-ahead
/// window: what the first READ would have asked for anyway).
const PREFETCH_MAX: i64 = 128 << 10;

/// The data of a small file just opened read-only on its lower layer, for
/// the kernel's page cache (`FUSE_NOTIFY_STORE` before the open's reply).
/// Its reads then need no READ round trip, and no GETATTR after them (a READ
/// makes the kernel drop the cached atime). Once per inode: the kernel keeps
/// the pages for later opens (`FOPEN_KEEP_CACHE`), and reads them again
/// through READ if it evicted them. None when not worth it or not safe.
pub fn prefetch(fs: &UnionFs, fh: u64) -> Option<Vec<u8>> {
    let f = handle(fs, fh).ok()?;
    if !f.on_lower.load(Ordering::Acquire)
        || f.flags & libc::O_ACCMODE != libc::O_RDONLY
        || f.inode.kind != libc::S_IFREG
        || f.inode.prefetched.load(Ordering::Relaxed)
    {
        return None;
    }
    let fd = f.fd().ok()?;
    let st = at::fstat(fd.as_raw_fd()).ok()?;
    if st.st_size <= 0 || st.st_size > PREFETCH_MAX {
        return None;
    }
    let data = at::pread_vec(fd.as_raw_fd(), st.st_size as usize, 0).ok()?;
    (data.len() as i64 == st.st_size).then_some(data)
}

/// After the data of `prefetch` went to the kernel: true if it still is the
/// file's data. A copy-up meanwhile (a write open, a truncate) may have
/// changed the file before the pages arrived: the caller then drops them.
pub fn prefetched(fs: &UnionFs, fh: u64) -> bool {
    let Ok(f) = handle(fs, fh) else { return false };
    let fresh = f.inode.upper_data().is_none();
    f.inode.prefetched.store(fresh, Ordering::Relaxed);
    fresh
}

pub fn write(fs: &UnionFs, fh: u64, off: u64, data: &[u8]) -> io::Result<u32> {
    let f = handle_fd(fs, fh)?;
    let mut done = 0;
    while done < data.len() {
        let n = at::pwrite(f.as_raw_fd(), &data[done..], (off + done as u64) as i64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done as u32)
}

pub fn release(fs: &UnionFs, fh: u64) {
    if let Some((_, f)) = fs.files.remove(&fh) {
        fs.passthrough.detach(f.inode.nodeid, f.held);
    }
}

pub fn fsync(fs: &UnionFs, fh: u64, datasync: bool) -> io::Result<()> {
    let f = handle_fd(fs, fh)?;
    if fs.opts.fsync {
        at::fsync(f.as_raw_fd(), datasync)?;
    }
    Ok(())
}

pub fn fallocate(fs: &UnionFs, fh: u64, off: u64, len: u64, mode: i32) -> io::Result<()> {
    let f = handle_fd(fs, fh)?;
    at::fallocate(f.as_raw_fd(), mode, off as i64, len as i64)
}

pub fn lseek(fs: &UnionFs, fh: u64, off: i64, whence: i32) -> io::Result<i64> {
    let f = handle_fd(fs, fh)?;
    at::lseek(f.as_raw_fd(), off, whence)
}

pub fn copy_file_range(fs: &UnionFs, fh_in: u64, off_in: u64, fh_out: u64, off_out: u64, len: u64) -> io::Result<u32> {
    let fi = handle_fd(fs, fh_in)?;
    let fo = handle_fd(fs, fh_out)?;
    let (mut oi, mut oo) = (off_in as i64, off_out as i64);
    let len = len.min(u32::MAX as u64 & !0xfff) as usize;
    at::copy_file_range(fi.as_raw_fd(), &mut oi, fo.as_raw_fd(), &mut oo, len).map(|n| n as u32)
}
