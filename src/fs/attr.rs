//! Attributes: getattr/setattr and the FileAttr the kernel sees.
//!
//! st_ino is the inode's nodeid (origin inode number, see `inode.rs`);
//! everything else comes from the top real object. Any attribute change
//! copies the object up first.

use crate::fs::copy_up::{copy_up, copy_up_with};
use crate::fs::file;
use crate::fs::inode::Inode;
use crate::fs::lookup::err;
use crate::fs::UnionFs;
use crate::sys::at::{self, Time};
use fuser::{FileAttr, FileType, INodeNo};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn kind_of(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn time(s: i64, ns: i64) -> SystemTime {
    if s >= 0 {
        UNIX_EPOCH + Duration::new(s as u64, ns as u32)
    } else {
        UNIX_EPOCH - Duration::new(s.unsigned_abs(), 0) + Duration::from_nanos(ns as u64)
    }
}

/// The attributes shown for `nodeid` whose top object has `st`.
pub fn to_attr(nodeid: u64, st: &at::Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(nodeid),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime, st.st_atime_nsec),
        mtime: time(st.st_mtime, st.st_mtime_nsec),
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        crtime: UNIX_EPOCH,
        kind: kind_of(st.st_mode),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

/// Stat the inode's top object (works for unlinked-but-open objects too).
pub fn getattr(ino: &Inode) -> io::Result<at::Stat> {
    let top = ino.snapshot().top().ok_or_else(|| err(libc::ESTALE))?;
    let mut st = at::fstat(top.as_raw_fd())?;
    ino.fix_nlink(&mut st);
    Ok(st)
}

/// The changes one setattr asks for.
#[derive(Default, Debug)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<Time>,
    pub mtime: Option<Time>,
    pub fh: Option<u64>,
}

pub fn setattr(fs: &UnionFs, ino: &Arc<Inode>, a: &SetAttr) -> io::Result<at::Stat> {
    fs.check_writable()?;
    // Truncation to zero needs no data copied.
    let up = if a.size == Some(0) && a.mode.is_none() && a.uid.is_none() && a.gid.is_none() {
        copy_up_with(fs, ino, false)?
    } else {
        copy_up(fs, ino)?
    };
    let fd = up.as_raw_fd();
    if a.uid.is_some() || a.gid.is_some() {
        at::fchown(fd, a.uid, a.gid)?;
    }
    if let Some(mode) = a.mode {
        if !ino.is_symlink() {
            at::fchmod(fd, mode)?;
        }
    }
    if let Some(size) = a.size {
        if ino.is_dir() {
            return Err(err(libc::EISDIR));
        }
        match a.fh.and_then(|fh| file::handle(fs, fh).ok()) {
            Some(f) => at::ftruncate(f.fd.as_raw_fd(), size)?,
            None => at::truncate_fd(fd, size)?,
        }
    }
    if a.atime.is_some() || a.mtime.is_some() {
        let at_ = a.atime.unwrap_or(Time::Omit);
        let mt = a.mtime.unwrap_or(Time::Omit);
        at::futimens(fd, at_, mt)?;
    }
    let mut st = at::fstat(fd)?;
    ino.fix_nlink(&mut st);
    Ok(st)
}
