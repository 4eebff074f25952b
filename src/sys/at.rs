//! fd-relative file system calls (`*at`), data copy helpers and statfs.

use super::{cstr, cvt, proc_path};
use std::ffi::{CStr, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

pub type Stat = libc::stat;

/// An all-zero `Stat` (for replies that carry no object, e.g. negative entries).
pub fn zeroed_stat() -> Stat {
    // SAFETY: libc::stat is plain data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// `openat(dirfd, name, flags, mode)`, always with O_CLOEXEC.
pub fn openat(dirfd: RawFd, name: &OsStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: valid C string; the returned fd is owned by us.
    let fd = cvt(unsafe { libc::openat(dirfd, c.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    // SAFETY: fd was just returned by openat.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open the object behind an `O_PATH` fd with real access flags.
pub fn reopen(fd: RawFd, flags: i32) -> io::Result<OwnedFd> {
    let p = proc_path(fd);
    // O_NOFOLLOW would stop at the /proc magic link itself (ELOOP).
    let flags = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_NOFOLLOW);
    // SAFETY: valid C string.
    let nfd = cvt(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(nfd) })
}

/// `fstatat(dirfd, name, 0)`: symlinks followed.
pub fn statat(dirfd: RawFd, name: &OsStr) -> io::Result<Stat> {
    let c = cstr(name)?;
    let mut st = MaybeUninit::<Stat>::uninit();
    // SAFETY: valid pointers.
    cvt(unsafe { libc::fstatat(dirfd, c.as_ptr(), st.as_mut_ptr(), 0) })?;
    // SAFETY: fstatat succeeded and filled st.
    Ok(unsafe { st.assume_init() })
}

/// `fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)`.
pub fn lstatat(dirfd: RawFd, name: &OsStr) -> io::Result<Stat> {
    let c = cstr(name)?;
    let mut st = MaybeUninit::<Stat>::uninit();
    // SAFETY: valid pointers.
    cvt(unsafe { libc::fstatat(dirfd, c.as_ptr(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) })?;
    // SAFETY: fstatat succeeded and filled st.
    Ok(unsafe { st.assume_init() })
}

/// Stat the object an fd (also `O_PATH`) refers to.
pub fn fstat(fd: RawFd) -> io::Result<Stat> {
    let mut st = MaybeUninit::<Stat>::uninit();
    // SAFETY: valid pointers; empty path with AT_EMPTY_PATH.
    cvt(unsafe { libc::fstatat(fd, c"".as_ptr(), st.as_mut_ptr(), libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW) })?;
    // SAFETY: filled by fstatat.
    Ok(unsafe { st.assume_init() })
}

pub fn mkdirat(dirfd: RawFd, name: &OsStr, mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::mkdirat(dirfd, c.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub fn mknodat(dirfd: RawFd, name: &OsStr, mode: u32, rdev: u64) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::mknodat(dirfd, c.as_ptr(), mode as libc::mode_t, rdev as libc::dev_t) }).map(drop)
}

pub fn symlinkat(target: &OsStr, dirfd: RawFd, name: &OsStr) -> io::Result<()> {
    let t = cstr(target)?;
    let c = cstr(name)?;
    // SAFETY: valid C strings.
    cvt(unsafe { libc::symlinkat(t.as_ptr(), dirfd, c.as_ptr()) }).map(drop)
}

/// Read a symlink; `name` empty reads the link an `O_PATH` fd refers to.
pub fn readlinkat(dirfd: RawFd, name: &OsStr) -> io::Result<Vec<u8>> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: buf is writable for its length.
    let n = cvt(unsafe { libc::readlinkat(dirfd, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })?;
    buf.truncate(n as usize);
    Ok(buf)
}

pub fn unlinkat(dirfd: RawFd, name: &OsStr, flags: i32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::unlinkat(dirfd, c.as_ptr(), flags) }).map(drop)
}

pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;
pub const RENAME_WHITEOUT: u32 = 4;

pub fn renameat2(olddir: RawFd, oldname: &OsStr, newdir: RawFd, newname: &OsStr, flags: u32) -> io::Result<()> {
    let o = cstr(oldname)?;
    let n = cstr(newname)?;
    // SAFETY: valid C strings.
    cvt(unsafe { libc::renameat2(olddir, o.as_ptr(), newdir, n.as_ptr(), flags) }).map(drop)
}

/// Hard-link the object behind an `O_PATH` fd to `newdir/newname`.
pub fn link_fd(fd: RawFd, newdir: RawFd, newname: &OsStr) -> io::Result<()> {
    let p = proc_path(fd);
    let n = cstr(newname)?;
    // SAFETY: valid C strings.
    cvt(unsafe { libc::linkat(libc::AT_FDCWD, p.as_ptr(), newdir, n.as_ptr(), libc::AT_SYMLINK_FOLLOW) }).map(drop)
}

/// chown the object an fd refers to (works on `O_PATH` and symlinks); -1 keeps a value.
pub fn fchown(fd: RawFd, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    let u = uid.map_or(u32::MAX, |v| v);
    let g = gid.map_or(u32::MAX, |v| v);
    // SAFETY: empty path with AT_EMPTY_PATH.
    cvt(unsafe { libc::fchownat(fd, c"".as_ptr(), u, g, libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

/// chmod the object an fd refers to (not for symlinks).
pub fn fchmod(fd: RawFd, mode: u32) -> io::Result<()> {
    let p = proc_path(fd);
    // SAFETY: valid C string.
    cvt(unsafe { libc::chmod(p.as_ptr(), (mode & 0o7777) as libc::mode_t) }).map(drop)
}

/// chmod through an open (not O_PATH) descriptor.
pub fn fchmod_open(fd: RawFd, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on an fd.
    cvt(unsafe { libc::fchmod(fd, (mode & 0o7777) as libc::mode_t) }).map(drop)
}

/// Truncate the object an fd refers to.
pub fn truncate_fd(fd: RawFd, size: u64) -> io::Result<()> {
    let p = proc_path(fd);
    // SAFETY: valid C string.
    cvt(unsafe { libc::truncate(p.as_ptr(), size as libc::off_t) }).map(drop)
}

/// A timestamp for utimensat: `None` = UTIME_OMIT.
#[derive(Clone, Copy, Debug)]
pub enum Time {
    Omit,
    Now,
    At(i64, i64),
}

fn timespec(t: Time) -> libc::timespec {
    match t {
        Time::Omit => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
        Time::Now => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW },
        Time::At(s, ns) => libc::timespec { tv_sec: s, tv_nsec: ns },
    }
}

/// Set times of `dirfd/name` without following symlinks.
pub fn utimensat(dirfd: RawFd, name: &OsStr, atime: Time, mtime: Time) -> io::Result<()> {
    let c = cstr(name)?;
    let ts = [timespec(atime), timespec(mtime)];
    // SAFETY: valid pointers.
    cvt(unsafe { libc::utimensat(dirfd, c.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

/// Set times of the object an fd refers to (`O_PATH` and symlinks too).
pub fn futimens(fd: RawFd, atime: Time, mtime: Time) -> io::Result<()> {
    let ts = [timespec(atime), timespec(mtime)];
    // SAFETY: valid pointers; empty path with AT_EMPTY_PATH.
    cvt(unsafe { libc::utimensat(fd, c"".as_ptr(), ts.as_ptr(), libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW) })
        .map(drop)
}

pub fn fstatfs(fd: RawFd) -> io::Result<libc::statvfs> {
    let mut st = MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: valid pointers.
    cvt(unsafe { libc::fstatvfs(fd, st.as_mut_ptr()) })?;
    // SAFETY: filled.
    Ok(unsafe { st.assume_init() })
}

/// Clone all data of `src` into `dst` (reflink); fails where unsupported.
pub fn ficlone(dst: RawFd, src: RawFd) -> io::Result<()> {
    // SAFETY: FICLONE takes the source fd as its argument.
    cvt(unsafe { libc::ioctl(dst, libc::FICLONE as _, src) }).map(drop)
}

pub fn copy_file_range(src: RawFd, off_in: &mut i64, dst: RawFd, off_out: &mut i64, len: usize) -> io::Result<usize> {
    // SAFETY: valid pointers to offsets.
    let n = cvt(unsafe { libc::copy_file_range(src, off_in, dst, off_out, len, 0) })?;
    Ok(n as usize)
}

pub fn lseek(fd: RawFd, off: i64, whence: i32) -> io::Result<i64> {
    // SAFETY: no pointers.
    cvt(unsafe { libc::lseek(fd, off, whence) })
}

pub fn fallocate(fd: RawFd, mode: i32, off: i64, len: i64) -> io::Result<()> {
    // SAFETY: no pointers.
    cvt(unsafe { libc::fallocate(fd, mode, off, len) }).map(drop)
}

pub fn fsync(fd: RawFd, datasync: bool) -> io::Result<()> {
    // SAFETY: no pointers.
    cvt(unsafe {
        if datasync {
            libc::fdatasync(fd)
        } else {
            libc::fsync(fd)
        }
    })
    .map(drop)
}

pub fn ftruncate(fd: RawFd, size: u64) -> io::Result<()> {
    // SAFETY: no pointers.
    cvt(unsafe { libc::ftruncate(fd, size as libc::off_t) }).map(drop)
}

/// Read a directory's entries (name, d_type, d_ino) without `.` and `..`.
pub fn read_dir_fd(fd: RawFd) -> io::Result<Vec<(Vec<u8>, u8, u64)>> {
    // A fresh open description so concurrent readers never share an offset.
    let dfd = openat(fd, OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    // One buffer per thread, allocated and zeroed once, not per call.
    thread_local!(static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 64 * 1024]));
    BUF.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => getdents_all(&dfd, &mut buf),
        Err(_) => getdents_all(&dfd, &mut vec![0u8; 64 * 1024]),
    })
}

fn getdents_all(dfd: &OwnedFd, buf: &mut [u8]) -> io::Result<Vec<(Vec<u8>, u8, u64)>> {
    let mut out = Vec::new();
    loop {
        // SAFETY: buf is writable for its length.
        let n =
            cvt(unsafe { libc::syscall(libc::SYS_getdents64, dfd.as_raw_fd(), buf.as_mut_ptr(), buf.len()) })? as usize;
        if n == 0 {
            break;
        }
        let mut pos = 0;
        while pos + 19 <= n {
            let ino = u64::from_ne_bytes(buf[pos..pos + 8].try_into().unwrap_or_default());
            let reclen = u16::from_ne_bytes([buf[pos + 16], buf[pos + 17]]) as usize;
            let dtype = buf[pos + 18];
            if reclen == 0 || pos + reclen > n {
                break;
            }
            let name_bytes = &buf[pos + 19..pos + reclen];
            let name = CStr::from_bytes_until_nul(name_bytes).map(|c| c.to_bytes().to_vec()).unwrap_or_default();
            if name != b"." && name != b".." && !name.is_empty() {
                out.push((name, dtype, ino));
            }
            pos += reclen;
        }
    }
    Ok(out)
}

/// Path of an fd as the kernel reports it (for messages only).
pub fn fd_path(fd: RawFd) -> PathBuf {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default()
}

/// `OsStr` from raw bytes.
pub fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

pub fn pread(fd: RawFd, buf: &mut [u8], off: i64) -> io::Result<usize> {
    // SAFETY: buf is writable for its length.
    cvt(unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), off) }).map(|n| n as usize)
}

/// Up to `len` bytes at `off` (fewer only at the end of the file), read into
/// a new buffer that is never zeroed first (a READ of 1 MiB would otherwise
/// clear 1 MiB it then overwrites).
pub fn pread_vec(fd: RawFd, len: usize, off: i64) -> io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let done = buf.len();
        let spare = buf.spare_capacity_mut();
        // SAFETY: the spare capacity is writable for its length; pread
        // initialises the first n bytes, and only those are added.
        let n = cvt(unsafe { libc::pread(fd, spare.as_mut_ptr().cast(), spare.len(), off + done as i64) })? as usize;
        if n == 0 {
            break;
        }
        // SAFETY: n <= spare.len() bytes after `done` were just written.
        unsafe { buf.set_len(done + n) };
    }
    Ok(buf)
}

pub fn pwrite(fd: RawFd, buf: &[u8], off: i64) -> io::Result<usize> {
    // SAFETY: buf is readable for its length.
    cvt(unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), off) }).map(|n| n as usize)
}

/// Hard-link `olddir/oldname` to `newdir/newname` (never following symlinks).
pub fn linkat(olddir: RawFd, oldname: &OsStr, newdir: RawFd, newname: &OsStr) -> io::Result<()> {
    let o = cstr(oldname)?;
    let n = cstr(newname)?;
    // SAFETY: valid C strings.
    cvt(unsafe { libc::linkat(olddir, o.as_ptr(), newdir, n.as_ptr(), 0) }).map(drop)
}

/// chown `dirfd/name` without following a symlink.
pub fn lchownat(dirfd: RawFd, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::fchownat(dirfd, c.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

/// flock(2): `exclusive` or shared, blocking.
pub fn flock(fd: RawFd, exclusive: bool) -> io::Result<()> {
    let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
    loop {
        // SAFETY: no pointers.
        match cvt(unsafe { libc::flock(fd, op) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map(drop),
        }
    }
}

/// flock(2) without waiting: `Ok(false)` when another open file holds it.
pub fn try_flock(fd: RawFd, exclusive: bool) -> io::Result<bool> {
    let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH } | libc::LOCK_NB;
    loop {
        // SAFETY: no pointers.
        match cvt(unsafe { libc::flock(fd, op) }) {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// syncfs(2): write out everything of the filesystem `fd` is on.
pub fn syncfs(fd: RawFd) -> io::Result<()> {
    // SAFETY: no pointers.
    cvt(unsafe { libc::syncfs(fd) }).map(drop)
}

static UNPRIVILEGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The calling process's effective uid is 0 (and it is root of the host, not
/// of a user namespace it made: see [`set_unprivileged`]).
pub fn is_root() -> bool {
    super::geteuid() == 0 && !UNPRIVILEGED.load(std::sync::atomic::Ordering::Relaxed)
}

/// This process is root only inside a user namespace that maps one id: it
/// records owners as an unprivileged user does.
pub fn set_unprivileged() {
    UNPRIVILEGED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The inode flags of an open file or directory (`FS_IOC_GETFLAGS`, what
/// `lsattr` shows).
pub fn get_flags(fd: RawFd) -> io::Result<u32> {
    let mut flags: libc::c_int = 0;
    // SAFETY: the kernel writes one int through the pointer.
    cvt(unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags as *mut libc::c_int) })?;
    Ok(flags as u32)
}

/// Set the inode flags of an open file or directory (`FS_IOC_SETFLAGS`,
/// what `chattr` does).
pub fn set_flags(fd: RawFd, flags: u32) -> io::Result<()> {
    let v = flags as libc::c_int;
    // SAFETY: the kernel reads one int through the pointer.
    cvt(unsafe { libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &v as *const libc::c_int) }).map(drop)
}

/// `FS_IOC_FSGETXATTR` / `FS_IOC_FSSETXATTR`: `_IOR('X', 31, struct fsxattr)`
/// and `_IOW('X', 32, struct fsxattr)` (a 28-byte struct; not in libc).
pub const FS_IOC_FSGETXATTR: u32 = 0x801c_581f;
pub const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;

/// The extended inode flags (`struct fsxattr`, as raw bytes) of an open file
/// or directory.
pub fn get_fsxattr(fd: RawFd) -> io::Result<[u8; 28]> {
    let mut buf = [0u8; 28];
    // SAFETY: the kernel writes one struct fsxattr (28 bytes) into buf.
    cvt(unsafe { libc::ioctl(fd, FS_IOC_FSGETXATTR as libc::Ioctl, buf.as_mut_ptr()) })?;
    Ok(buf)
}

/// Set the extended inode flags (`struct fsxattr` as raw bytes).
pub fn set_fsxattr(fd: RawFd, fsx: &[u8; 28]) -> io::Result<()> {
    // SAFETY: the kernel reads one struct fsxattr (28 bytes) from fsx.
    cvt(unsafe { libc::ioctl(fd, FS_IOC_FSSETXATTR as libc::Ioctl, fsx.as_ptr()) }).map(drop)
}
