//! The only implementation of fuser's `Filesystem`: each handler decodes the
//! request, calls one function of the modules beside it and encodes the reply.

use crate::fs::attr::{self, SetAttr};
use crate::fs::dir::{self, Caller, NewObj};
use crate::fs::inode::Inode;
use crate::fs::passthrough::Io;
use crate::fs::readdir::DirEntry;
use crate::fs::{file, fileattr, lookup, xattr, UnionFs};
use crate::sys::at::{self, Time};
use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    IoctlFlags, KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLseek, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use log::debug;
use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The fuser-facing wrapper around [`UnionFs`].
#[derive(Debug)]
pub struct Fuse {
    fs: UnionFs,
    ttl: Duration,
    /// The kernel checks POSIX ACLs and leaves the umask to us.
    posix_acl: bool,
    /// Pushes data to the kernel's page cache (set once the session exists).
    notifier: Arc<OnceLock<Notifier>>,
}

impl Fuse {
    /// `notifier` is filled in once the session exists.
    pub fn new(fs: UnionFs, notifier: Arc<OnceLock<Notifier>>) -> Fuse {
        let ttl = fs.opts.timeout;
        Fuse { fs, ttl, posix_acl: false, notifier }
    }

    /// Hand a small lower file's data to the kernel before the open is
    /// answered (see `file::prefetch`). Errors only cost the saving.
    fn prefetch(&self, ino: INodeNo, fh: u64) {
        let Some(n) = self.notifier.get() else { return };
        let Some(data) = file::prefetch(&self.fs, fh) else { return };
        if let Err(e) = n.store(ino, 0, &data) {
            debug!("prefetch of inode {}: {e}", ino.0);
            return;
        }
        if !file::prefetched(&self.fs, fh) {
            if let Err(e) = n.inval_inode(ino, 0, -1) {
                debug!("dropping the prefetch of inode {}: {e}", ino.0);
            }
        }
    }

    /// The request's credentials as stored ids.
    fn caller(&self, req: &Request) -> io::Result<Caller> {
        let ids = &self.fs.ids;
        Ok(Caller { uid: ids.creator_uid(req.uid()), gid: ids.creator_gid(req.gid()) })
    }

    fn inode(&self, ino: INodeNo) -> io::Result<Arc<Inode>> {
        self.fs.inode(ino.0)
    }

    /// The mode a new object gets: with POSIX ACLs on, the kernel sends the
    /// umask apart; it applies unless the parent has a default ACL (then the
    /// real filesystem applies that ACL when we create the object).
    fn masked(&self, parent: INodeNo, mode: u32, umask: u32) -> u32 {
        if !self.posix_acl || umask == 0 {
            return mode;
        }
        match self.inode(parent).map(|p| xattr::has_default_acl(&p)) {
            Ok(true) => mode,
            _ => mode & !(umask & 0o777),
        }
    }
}

fn errno(op: &str, e: io::Error) -> Errno {
    debug!("{op}: {e}");
    Errno::from(e)
}

fn time_of(t: TimeOrNow) -> Time {
    match t {
        TimeOrNow::Now => Time::Now,
        TimeOrNow::SpecificTime(st) => match st.duration_since(UNIX_EPOCH) {
            Ok(d) => Time::At(d.as_secs() as i64, d.subsec_nanos() as i64),
            Err(e) => {
                let d = e.duration();
                let (mut s, mut ns) = (-(d.as_secs() as i64), -(d.subsec_nanos() as i64));
                if ns < 0 {
                    s -= 1;
                    ns += 1_000_000_000;
                }
                Time::At(s, ns)
            }
        },
    }
}

fn mapped<T>(v: Option<T>) -> io::Result<T> {
    v.ok_or_else(|| lookup::err(libc::EINVAL))
}

fn done(reply: ReplyEmpty, r: io::Result<()>, op: &str) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(op, e)),
    }
}

fn written(reply: ReplyWrite, r: io::Result<u32>, op: &str) {
    match r {
        Ok(n) => reply.written(n),
        Err(e) => reply.error(errno(op, e)),
    }
}

fn data(reply: ReplyData, r: io::Result<Vec<u8>>, op: &str) {
    match r {
        Ok(d) => reply.data(&d),
        Err(e) => reply.error(errno(op, e)),
    }
}

/// The open flags telling the kernel how to serve a handle (see `passthrough`).
fn open_flags(io: &Io) -> FopenFlags {
    match io {
        Io::Cached { keep_cache: true } => FopenFlags::FOPEN_KEEP_CACHE,
        Io::Cached { keep_cache: false } | Io::Passthrough(_) => FopenFlags::empty(),
    }
}

fn reply_xattr(reply: ReplyXattr, data: io::Result<Vec<u8>>, size: u32, op: &str) {
    match data {
        Ok(d) if size == 0 => reply.size(d.len() as u32),
        Ok(d) if d.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(d) => reply.data(&d),
        Err(e) => reply.error(errno(op, e)),
    }
}

impl Fuse {
    fn entry(&self, reply: ReplyEntry, r: io::Result<(Arc<Inode>, at::Stat)>, op: &str) {
        match r {
            Ok((ino, st)) => {
                let attr = self.fs.attr_of(&ino, &st);
                reply.entry_with_nodeid(INodeNo(ino.nodeid), &self.ttl, &self.ttl, &attr, Generation(0))
            }
            Err(e) => reply.error(errno(op, e)),
        }
    }

    /// The listing of directory `ino` to continue at `offset` (see
    /// `readdir::Listings`; a call past its end, `.` and `..` included, ends
    /// the reading), and the parent's st_ino for `..`.
    fn listing(&self, ino: INodeNo, offset: u64) -> io::Result<(Arc<Inode>, Arc<Vec<DirEntry>>, u64)> {
        let inode = self.inode(ino)?;
        if !inode.is_dir() {
            return Err(lookup::err(libc::ENOTDIR));
        }
        let entries = self.fs.dirs.at(&self.fs.layers, &inode, offset)?;
        if offset >= entries.len() as u64 + 2 {
            self.fs.dirs.done(inode.nodeid);
        }
        let parent = inode.parent().map_or(inode.st_ino(), |p| p.st_ino());
        Ok((inode, entries, parent))
    }

    fn make(&self, req: &Request, parent: INodeNo, name: &OsStr, obj: NewObj<'_>, reply: ReplyEntry, op: &str) {
        let r = self.inode(parent).and_then(|p| dir::create(&self.fs, &p, name, obj, self.caller(req)?));
        self.entry(reply, r.map(|(i, st, _)| (i, st)), op);
    }
}

/// The names of `entries` from listing offset `offset` on (`.` and `..`
/// first) that fit in a READDIRPLUS reply.
fn fitting<'a>(reply: &ReplyDirectoryPlus, entries: &'a [DirEntry], offset: u64) -> Vec<&'a OsStr> {
    let dots = (offset..2).count() * ReplyDirectoryPlus::entry_size(OsStr::new(".."));
    let mut room = reply.remaining().saturating_sub(dots);
    entries
        .get(offset.saturating_sub(2) as usize..)
        .unwrap_or_default()
        .iter()
        .map(|e| e.name.as_os_str())
        .take_while(|n| room.checked_sub(ReplyDirectoryPlus::entry_size(n)).map(|r| room = r).is_some())
        .collect()
}

impl Filesystem for Fuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        if self.fs.opts.xattrs && config.capabilities().contains(InitFlags::FUSE_POSIX_ACL) {
            self.posix_acl = config.add_capabilities(InitFlags::FUSE_POSIX_ACL).is_ok();
        }
        for cap in [
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_BIG_WRITES,
            // Every chunk of a listing as READDIRPLUS. With READDIRPLUS_AUTO
            // the kernel asks for attributes only in a listing's first
            // chunk (4 KiB, ~25 names) unless a lookup in the directory came
            // before the next chunk; `find`, `tar` and `rm -r` read a whole
            // directory before they stat its names, so every name past the
            // first chunk cost a LOOKUP (24.5k of 60k in a walk of
            // /usr/share). Measured, fresh mounts, warm lowers, 7 runs
            // alternating: `find -printf '%s %m %n'` 2.16 s -> 1.38 s, a tar
            // of share/doc+man to a pipe 4.48 s -> 3.86 s; a bare `find`
            // (names only) 1.0-1.1 s -> 1.25-1.3 s.
            InitFlags::FUSE_DO_READDIRPLUS,
            // Setuid/setgid clearing is ours (see `attr::kill_suidgid`).
            InitFlags::FUSE_HANDLE_KILLPRIV_V2,
        ] {
            if config.capabilities().contains(cap) {
                let _ = config.add_capabilities(cap);
            }
        }
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_background(64);
        // Passthrough needs root (CAP_SYS_ADMIN in the initial namespace) to
        // register backing files: not asked for otherwise. Stack depth 1:
        // the layers may not be on a stacking filesystem (such a backing
        // file is refused: normal I/O), and this mount may be a kernel
        // overlay's layer.
        if self.fs.passthrough.wanted()
            && crate::sys::geteuid() == 0
            && config.capabilities().contains(InitFlags::FUSE_PASSTHROUGH)
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.fs.passthrough.enable();
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = self.inode(parent).and_then(|p| lookup::lookup(&self.fs, &p, name));
        match r {
            // A negative entry the kernel may cache as long as positive ones:
            // every change of the name comes through this mount.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let attr = attr::to_attr(0, &at::zeroed_stat());
                reply.entry_with_nodeid(INodeNo(0), &self.ttl, &self.ttl, &attr, Generation(0))
            }
            r => self.entry(reply, r, "lookup"),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.inodes.forget(ino.0, nlookup);
        if self.fs.inodes.get(ino.0).is_none() {
            self.fs.passthrough.forget(ino.0);
            self.fs.dirs.done(ino.0);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = self.inode(ino).and_then(|i| {
            let st = match fh.and_then(|fh| file::handle_fd(&self.fs, fh.0).ok()) {
                Some(f) => at::fstat(f.as_raw_fd())?,
                None => attr::getattr(&i)?,
            };
            Ok((i, st))
        });
        match r {
            Ok((i, st)) => reply.attr(&self.ttl, &self.fs.attr_of(&i, &st)),
            Err(e) => reply.error(errno("getattr", e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        kill_suidgid: bool,
        reply: ReplyAttr,
    ) {
        let ids = &self.fs.ids;
        let (uid, gid) = match (
            uid.map(|u| mapped(ids.stored_uid(u))).transpose(),
            gid.map(|g| mapped(ids.stored_gid(g))).transpose(),
        ) {
            (Ok(u), Ok(g)) => (u, g),
            (Err(e), _) | (_, Err(e)) => return reply.error(errno("setattr", e)),
        };
        let a =
            SetAttr { mode, uid, gid, size, atime: atime.map(time_of), mtime: mtime.map(time_of), fh: fh.map(|f| f.0) };
        let r = self.inode(ino).and_then(|i| {
            let st = attr::setattr(&self.fs, &i, &a)?;
            // The kernel asks for a chown by anyone (our real chown already
            // cleared what it clears for root) and for a truncation by a
            // caller without CAP_FSETID.
            if !kill_suidgid || a.mode.is_some() || (a.size.is_none() && req.uid() == 0) {
                return Ok((i, st));
            }
            let st = attr::kill_suidgid(&self.fs, &i, req.gid(), req.pid())?.unwrap_or(st);
            Ok((i, st))
        });
        match r {
            Ok((i, st)) => reply.attr(&self.ttl, &self.fs.attr_of(&i, &st)),
            Err(e) => reply.error(errno("setattr", e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let r = self.inode(ino).and_then(|i| {
            let top = i.snapshot().top_fd()?;
            at::readlinkat(top.as_raw_fd(), OsStr::new(""))
        });
        data(reply, r, "readlink");
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let mode = self.masked(parent, mode, umask);
        self.make(req, parent, name, NewObj::Node { mode, rdev: rdev as u64 }, reply, "mknod");
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let mode = self.masked(parent, mode, umask);
        self.make(req, parent, name, NewObj::Dir { mode }, reply, "mkdir");
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        done(reply, self.inode(parent).and_then(|p| dir::remove(&self.fs, &p, name, false)), "unlink");
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        done(reply, self.inode(parent).and_then(|p| dir::remove(&self.fs, &p, name, true)), "rmdir");
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        self.make(req, parent, link_name, NewObj::Symlink { target: target.as_os_str() }, reply, "symlink");
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = self.inode(parent).and_then(|p| {
            let np = self.inode(newparent)?;
            dir::rename(&self.fs, &p, name, &np, newname, flags.bits())
        });
        done(reply, r, "rename");
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        match self.inode(ino) {
            Ok(src) => self.make(req, newparent, newname, NewObj::Link { src }, reply, "link"),
            Err(e) => reply.error(errno("link", e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, kill_suidgid: bool, reply: ReplyOpen) {
        let r = self.inode(ino).and_then(|i| {
            let opened = file::open(&self.fs, &i, flags.0, &|fd| reply.open_backing(fd))?;
            if kill_suidgid {
                // An O_TRUNC open by a caller without CAP_FSETID.
                if let Err(e) = attr::kill_suidgid(&self.fs, &i, req.gid(), req.pid()) {
                    file::release(&self.fs, opened.0);
                    return Err(e);
                }
            }
            Ok(opened)
        });
        match r {
            Ok((fh, Io::Passthrough(b))) => reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), &b),
            Ok((fh, io)) => {
                if matches!(io, Io::Cached { keep_cache: true }) && flags.0 & libc::O_DIRECT == 0 {
                    self.prefetch(ino, fh);
                }
                reply.opened(FileHandle(fh), open_flags(&io))
            }
            Err(e) => reply.error(errno("open", e)),
        }
    }

    /// `lsattr`/`chattr` (the FUSE module asks for inode flags through these
    /// two ioctls, see `fileattr.rs`); any other ioctl is ENOTTY, what the
    /// kernel answers for an ioctl a file does not know. FUSE sends each one
    /// here and does not remember the answer (Python's `open()` asks `TCGETS`
    /// of every file it opens buffered), so this stays quiet and cheap.
    fn ioctl(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        let set =
            |f: fileattr::Flags| self.inode(ino).and_then(|i| fileattr::set(&self.fs, &i, &f)).map(|()| Vec::new());
        let bad = || io::Error::from_raw_os_error(libc::EINVAL);
        let r = match cmd {
            c if c as libc::Ioctl == libc::FS_IOC_GETFLAGS => {
                self.inode(ino).and_then(|i| fileattr::get_flags(&i)).map(|f| f.to_ne_bytes().to_vec())
            }
            at::FS_IOC_FSGETXATTR => self.inode(ino).and_then(|i| fileattr::get_fsxattr(&i)).map(|x| x.to_vec()),
            c if c as libc::Ioctl == libc::FS_IOC_SETFLAGS => match <[u8; 4]>::try_from(in_data) {
                Ok(b) => set(fileattr::Flags::Int(u32::from_ne_bytes(b))),
                Err(_) => Err(bad()),
            },
            at::FS_IOC_FSSETXATTR => match <[u8; 28]>::try_from(in_data) {
                Ok(x) => set(fileattr::Flags::Fsx(x)),
                Err(_) => Err(bad()),
            },
            _ => Err(io::Error::from_raw_os_error(libc::ENOTTY)),
        };
        match r {
            Ok(data) => reply.ioctl(0, &data),
            Err(e) => reply.error(errno("ioctl", e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        data(reply, file::read(&self.fs, fh.0, offset, size), "read");
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            // A writer without CAP_FSETID (see `attr::kill_suidgid`).
            let kill = |f: Arc<file::OpenFile>| attr::kill_suidgid(&self.fs, &f.inode, req.gid(), req.pid()).map(drop);
            if let Err(e) = file::handle(&self.fs, fh.0).and_then(kill) {
                return reply.error(errno("write", e));
            }
        }
        written(reply, file::write(&self.fs, fh.0, offset, data), "write");
    }

    /// Nothing to do at close (writes reach the real file at once; locks
    /// are the kernel's): ENOSYS makes the kernel stop sending FLUSH, one
    /// round trip fewer per close.
    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        file::release(&self.fs, fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        done(reply, file::fsync(&self.fs, fh.0, datasync), "fsync");
    }

    /// No OPENDIR: the kernel stops sending it (and RELEASEDIR) and caches
    /// listings (see `readdir::Listings`).
    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let (inode, entries, parent) = match self.listing(ino, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(errno("readdir", e)),
        };
        let dots = [(inode.st_ino(), "."), (parent, "..")];
        let total = entries.len() as u64 + 2;
        for off in offset..total {
            let full = if off < 2 {
                let (i, n) = dots[off as usize];
                reply.add(INodeNo(i), off + 1, fuser::FileType::Directory, n)
            } else {
                let e = &entries[(off - 2) as usize];
                reply.add(INodeNo(e.ino), off + 1, attr::kind_of(e.kind), &e.name)
            };
            if full {
                break;
            }
        }
        reply.ok();
    }

    /// READDIRPLUS: each entry comes with its lookup (one round trip instead
    /// of one per name for `ls -l`, `find`); each entry given takes one
    /// kernel reference, `.` and `..` none (node ID 0: no entry).
    fn readdirplus(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let (inode, entries, parent) = match self.listing(ino, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(errno("readdirplus", e)),
        };
        let total = entries.len() as u64 + 2;
        // The entries that fit in this reply, looked up together.
        let names = fitting(&reply, &entries, offset);
        let mut looked = lookup::lookup_many(&self.fs, &inode, &names).into_iter();
        for off in offset..total {
            // An entry without lookup: node ID 0 (the kernel takes no
            // reference and looks the name up itself if it needs to).
            let bare = |st_ino: u64, kind: u32| {
                let mut st = at::zeroed_stat();
                st.st_mode = kind;
                attr::to_attr(st_ino, &st)
            };
            let full = if off < 2 {
                let (i, n) = [(inode.st_ino(), "."), (parent, "..")][off as usize];
                reply.add(INodeNo(0), off + 1, n, &Duration::ZERO, &bare(i, libc::S_IFDIR), Generation(0))
            } else {
                let e = &entries[(off - 2) as usize];
                // A name the listing has but lookup does not (gone since, or
                // an xattr whiteout readdir does not count): listed as plain
                // readdir lists it.
                let r = looked.next().unwrap_or_else(|| lookup::lookup(&self.fs, &inode, &e.name));
                let Ok((child, st)) = r else {
                    let a = bare(e.ino, e.kind);
                    if reply.add(INodeNo(0), off + 1, &e.name, &Duration::ZERO, &a, Generation(0)) {
                        break;
                    }
                    continue;
                };
                let a = self.fs.attr_of(&child, &st);
                let full = reply.add(INodeNo(child.nodeid), off + 1, &e.name, &self.ttl, &a, Generation(0));
                if full {
                    // Not sent: the reference it took goes back.
                    self.fs.inodes.forget(child.nodeid, 1);
                }
                full
            };
            if full {
                break;
            }
        }
        // Looked up but not sent: the references go back.
        for (child, _) in looked.flatten() {
            self.fs.inodes.forget(child.nodeid, 1);
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let r = self.inode(ino).and_then(|i| match i.upper() {
            Some(u) if self.fs.opts.fsync => at::fsync(u.fd()?.as_raw_fd(), datasync),
            _ => Ok(()),
        });
        done(reply, r, "fsyncdir");
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.fs.layers.layers[0].root.fd().and_then(|r| at::fstatfs(r.as_raw_fd())) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                255,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno("statfs", e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        done(reply, self.inode(ino).and_then(|i| xattr::set(&self.fs, &i, name, value, flags)), "setxattr");
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        reply_xattr(reply, self.inode(ino).and_then(|i| xattr::get(&self.fs, &i, name)), size, "getxattr");
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        reply_xattr(reply, self.inode(ino).and_then(|i| xattr::list(&self.fs, &i)), size, "listxattr");
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        done(reply, self.inode(ino).and_then(|i| xattr::remove(&self.fs, &i, name)), "removexattr");
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // default_permissions: the kernel checks modes; only existence is ours.
        match self.inode(ino) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(errno("access", e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let r = self.inode(parent).and_then(|p| {
            let (ino, st, fd) = dir::create(&self.fs, &p, name, NewObj::File { mode, flags }, self.caller(req)?)?;
            let fd = fd.ok_or_else(|| lookup::err(libc::EIO))?;
            Ok((file::register(&self.fs, &ino, fd, flags, &|fd| reply.open_backing(fd))?, ino, st))
        });
        match r {
            Ok(((fh, io), ino, st)) => {
                let (nodeid, attr, fh) = (INodeNo(ino.nodeid), self.fs.attr_of(&ino, &st), FileHandle(fh));
                match io {
                    Io::Passthrough(b) => reply.created_passthrough_with_nodeid(
                        nodeid,
                        &self.ttl,
                        &attr,
                        Generation(0),
                        fh,
                        FopenFlags::empty(),
                        &b,
                    ),
                    io => reply.created_with_nodeid(nodeid, &self.ttl, &attr, Generation(0), fh, open_flags(&io)),
                }
            }
            Err(e) => reply.error(errno("create", e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        done(reply, file::fallocate(&self.fs, fh.0, offset, length, mode), "fallocate");
    }

    fn lseek(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek) {
        match file::lseek(&self.fs, fh.0, offset, whence) {
            Ok(o) => reply.offset(o),
            Err(e) => reply.error(errno("lseek", e)),
        }
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        written(
            reply,
            file::copy_file_range(&self.fs, fh_in.0, offset_in, fh_out.0, offset_out, len),
            "copy_file_range",
        );
    }
}
