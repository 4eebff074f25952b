//! Attributes: getattr/setattr and the FileAttr the kernel sees.
//!
//! st_ino is the inode's number (origin inode number, see `ino.rs`);
//! everything else comes from the top real object. Any attribute change
//! copies the object up first.

use crate::fs::copy_up::{copy_up, copy_up_data};
use crate::fs::file;
use crate::fs::inode::Inode;
use crate::fs::lookup::err;
use crate::fs::metacopy;
use crate::fs::UnionFs;
use crate::sys::at::{self, Time};
use crate::sys::xattr;
use fuser::{FileAttr, FileType, INodeNo};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
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

/// The attributes shown for an object numbered `st_ino` whose top object has `st`.
pub fn to_attr(st_ino: u64, st: &at::Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(st_ino),
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

/// Where an unprivileged copy records the owner and mode it could not set
/// (containers/storage's and fuse-overlayfs's name and format).
pub const OVERRIDE_XATTR: &str = "user.containers.override_stat";

/// The override record for an owner and mode: `UID:GID:0MODE`.
pub fn override_value(uid: u32, gid: u32, mode: u32) -> String {
    format!("{uid}:{gid}:0{:o}", mode & 0o7777)
}

/// Apply an override record (`UID:GID:MODE[:char-MAJ-MIN|block-MAJ-MIN|...]`)
/// to `st`; a malformed record changes nothing.
pub fn apply_override(st: &mut at::Stat, v: &[u8]) {
    let Ok(s) = std::str::from_utf8(v) else { return };
    let mut it = s.trim_end_matches('\0').split(':');
    let (Some(u), Some(g), Some(m)) = (it.next(), it.next(), it.next()) else { return };
    let (Ok(uid), Ok(gid), Ok(mode)) = (u.parse::<u32>(), g.parse::<u32>(), u32::from_str_radix(m, 8)) else {
        return;
    };
    st.st_uid = uid;
    st.st_gid = gid;
    st.st_mode = (st.st_mode & libc::S_IFMT) | (mode & 0o7777);
    if let Some(kind) = it.next() {
        let mut parts = kind.split('-');
        let ftype = match parts.next() {
            Some("char") => libc::S_IFCHR,
            Some("block") => libc::S_IFBLK,
            _ => return,
        };
        if let (Some(Ok(ma)), Some(Ok(mi))) = (parts.next().map(str::parse), parts.next().map(str::parse)) {
            if st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_size == 0 {
                st.st_mode = ftype | (mode & 0o7777);
                st.st_rdev = libc::makedev(ma, mi);
            }
        }
    }
}

/// Stat the inode's top object (works for unlinked-but-open objects too).
pub fn getattr(ino: &Inode) -> io::Result<at::Stat> {
    let s = ino.snapshot();
    let mut st = at::fstat(s.top_fd()?.as_raw_fd())?;
    metacopy::show_blocks(&s, &mut st);
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

fn override_target(ino: &Inode, fd: RawFd) -> xattr::Target {
    if ino.is_dir() {
        xattr::Target::Fd(fd)
    } else {
        xattr::Target::Path(fd)
    }
}

/// An owner or mode change of an object whose owner is recorded in
/// [`OVERRIDE_XATTR`] (or that an unprivileged daemon cannot give away):
/// change the record, keep the real object accessible to us. False when the
/// change is for the real object.
fn set_override(ino: &Inode, fd: RawFd, a: &SetAttr) -> io::Result<bool> {
    if (a.uid.is_none() && a.gid.is_none() && a.mode.is_none()) || ino.is_symlink() {
        return Ok(false);
    }
    let t = override_target(ino, fd);
    let mut st = at::fstat(fd)?;
    let name = OsStr::new(OVERRIDE_XATTR);
    match xattr::get(t, name)? {
        Some(v) => apply_override(&mut st, &v),
        None => {
            let foreign = a.uid.is_some_and(|u| u != st.st_uid) || a.gid.is_some_and(|g| g != st.st_gid);
            if !foreign || crate::sys::geteuid() == 0 {
                return Ok(false);
            }
        }
    }
    let (uid, gid) = (a.uid.unwrap_or(st.st_uid), a.gid.unwrap_or(st.st_gid));
    let mode = a.mode.unwrap_or(st.st_mode) & 0o7777;
    xattr::set(t, name, override_value(uid, gid, mode).as_bytes(), 0)?;
    if a.mode.is_some() {
        let keep = if ino.is_dir() { 0o700 } else { 0o600 };
        at::fchmod(fd, (mode | keep) & 0o777)?;
    }
    Ok(true)
}

/// Clear setuid, and setgid when group-executable: what the kernel does when
/// a caller without CAP_FSETID writes, truncates or changes the owner. With
/// HANDLE_KILLPRIV_V2 (asked for at INIT: it spares a GETXATTR round trip per
/// write) the kernel leaves that to us and says when (the KILL_SUIDGID flags
/// of WRITE, SETATTR and OPEN): our own real writes and truncations, made
/// with CAP_FSETID, would keep the bits, and so would a recorded override mode.
/// A setgid file that is not group-executable loses the bit only when the
/// caller (`gid`, process `pid`) is not in its group, as in the kernel.
/// Returns the new attributes when it changed the mode.
pub fn kill_suidgid(fs: &UnionFs, ino: &Arc<Inode>, gid: u32, pid: u32) -> io::Result<Option<at::Stat>> {
    if !ino.is_regular() {
        return Ok(None);
    }
    let a = fs.attr_of(ino, &getattr(ino)?);
    let mode = a.perm as u32;
    let mut kill = libc::S_ISUID;
    if mode & libc::S_ISGID != 0 && (mode & libc::S_IXGRP != 0 || !in_group(gid, pid, a.gid)) {
        kill |= libc::S_ISGID;
    }
    if mode & kill == 0 {
        return Ok(None);
    }
    setattr(fs, ino, &SetAttr { mode: Some(mode & !kill), ..SetAttr::default() }).map(Some)
}

/// Whether a caller with primary group `gid` (process `pid`: its
/// supplementary groups) is in group `group`.
fn in_group(gid: u32, pid: u32, group: u32) -> bool {
    gid == group
        || std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Groups:"))
                .is_some_and(|g| g.split_whitespace().any(|x| x.parse() == Ok(group)))
        })
}

pub fn setattr(fs: &UnionFs, ino: &Arc<Inode>, a: &SetAttr) -> io::Result<at::Stat> {
    fs.check_writable()?;
    // Truncation needs the data (to zero: none); other changes only the
    // object (its metadata alone with `metacopy=on`).
    let up = match a.size {
        Some(0) if a.mode.is_none() && a.uid.is_none() && a.gid.is_none() => copy_up_data(fs, ino, false)?,
        Some(_) => copy_up_data(fs, ino, true)?,
        None => copy_up(fs, ino)?,
    };
    let upfd = up.fd()?;
    let fd = upfd.as_raw_fd();
    if !(fs.override_owners && set_override(ino, fd, a)?) {
        if a.uid.is_some() || a.gid.is_some() {
            at::fchown(fd, a.uid, a.gid)?;
        }
        if let Some(mode) = a.mode {
            if !ino.is_symlink() {
                at::fchmod(fd, mode)?;
            }
        }
    }
    if let Some(size) = a.size {
        if ino.is_dir() {
            return Err(err(libc::EISDIR));
        }
        match a.fh.and_then(|fh| file::handle_fd(fs, fh).ok()) {
            Some(f) => at::ftruncate(f.as_raw_fd(), size)?,
            None => at::truncate_fd(fd, size)?,
        }
    }
    if a.atime.is_some() || a.mtime.is_some() {
        let at_ = a.atime.unwrap_or(Time::Omit);
        let mt = a.mtime.unwrap_or(Time::Omit);
        at::futimens(fd, at_, mt)?;
    }
    let mut st = at::fstat(fd)?;
    metacopy::show_blocks(&ino.snapshot(), &mut st);
    ino.fix_nlink(&mut st);
    Ok(st)
}
