//! Open files and their data: open/read/write/flush/fsync/release,
//! fallocate, lseek (SEEK_DATA/SEEK_HOLE), copy_file_range.
//!
//! Opening for write (or with O_TRUNC) copies the file up first; reads of a
//! file never written come straight from its lower layer.

use crate::fs::copy_up::copy_up_with;
use crate::fs::inode::Inode;
use crate::fs::lookup::err;
use crate::fs::UnionFs;
use crate::sys::at;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

/// An open file handle.
#[derive(Debug)]
pub struct OpenFile {
    pub fd: OwnedFd,
    pub inode: Arc<Inode>,
}

/// Flags the real open must not see (the kernel already resolved them).
const STRIP: i32 = libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY;

fn wants_write(flags: i32) -> bool {
    (flags & libc::O_ACCMODE) != libc::O_RDONLY || flags & libc::O_TRUNC != 0
}

/// Open `ino` with `flags`; returns the new handle number.
pub fn open(fs: &UnionFs, ino: &Arc<Inode>, flags: i32) -> io::Result<u64> {
    let fd = if wants_write(flags) {
        fs.check_writable()?;
        // A truncating open needs no data copied.
        let up = copy_up_with(fs, ino, flags & libc::O_TRUNC == 0)?;
        at::reopen(up.as_raw_fd(), flags & !STRIP)?
    } else {
        let top = ino.snapshot().top().ok_or_else(|| err(libc::EIO))?;
        at::reopen(top.as_raw_fd(), flags & !STRIP)?
    };
    Ok(register(fs, ino, fd))
}

/// Enter an open descriptor as a handle.
pub fn register(fs: &UnionFs, ino: &Arc<Inode>, fd: OwnedFd) -> u64 {
    let fh = fs.next_fh();
    fs.files.insert(fh, Arc::new(OpenFile { fd, inode: ino.clone() }));
    fh
}

pub fn handle(fs: &UnionFs, fh: u64) -> io::Result<Arc<OpenFile>> {
    fs.files.get(&fh).map(|f| f.value().clone()).ok_or_else(|| err(libc::EBADF))
}

pub fn read(fs: &UnionFs, fh: u64, off: u64, size: u32) -> io::Result<Vec<u8>> {
    let f = handle(fs, fh)?;
    let mut buf = vec![0u8; size as usize];
    let mut done = 0;
    while done < buf.len() {
        let n = at::pread(f.fd.as_raw_fd(), &mut buf[done..], (off + done as u64) as i64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    buf.truncate(done);
    Ok(buf)
}

pub fn write(fs: &UnionFs, fh: u64, off: u64, data: &[u8]) -> io::Result<u32> {
    let f = handle(fs, fh)?;
    let mut done = 0;
    while done < data.len() {
        let n = at::pwrite(f.fd.as_raw_fd(), &data[done..], (off + done as u64) as i64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done as u32)
}

pub fn release(fs: &UnionFs, fh: u64) {
    fs.files.remove(&fh);
}

pub fn fsync(fs: &UnionFs, fh: u64, datasync: bool) -> io::Result<()> {
    let f = handle(fs, fh)?;
    if fs.opts.fsync {
        at::fsync(f.fd.as_raw_fd(), datasync)?;
    }
    Ok(())
}

pub fn fallocate(fs: &UnionFs, fh: u64, off: u64, len: u64, mode: i32) -> io::Result<()> {
    let f = handle(fs, fh)?;
    at::fallocate(f.fd.as_raw_fd(), mode, off as i64, len as i64)
}

pub fn lseek(fs: &UnionFs, fh: u64, off: i64, whence: i32) -> io::Result<i64> {
    let f = handle(fs, fh)?;
    at::lseek(f.fd.as_raw_fd(), off, whence)
}

pub fn copy_file_range(fs: &UnionFs, fh_in: u64, off_in: u64, fh_out: u64, off_out: u64, len: u64) -> io::Result<u32> {
    let fi = handle(fs, fh_in)?;
    let fo = handle(fs, fh_out)?;
    let (mut oi, mut oo) = (off_in as i64, off_out as i64);
    let len = len.min(u32::MAX as u64 & !0xfff) as usize;
    at::copy_file_range(fi.fd.as_raw_fd(), &mut oi, fo.fd.as_raw_fd(), &mut oo, len).map(|n| n as u32)
}
