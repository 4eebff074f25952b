//! File handles (`name_to_handle_at`, `open_by_handle_at`) and a
//! filesystem's UUID (`FS_IOC_GETFSUUID`): what the kernel overlay's inode
//! index records about a lower object.

use super::cvt;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The kernel's MAX_HANDLE_SZ.
const MAX_HANDLE_SZ: usize = 128;

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
struct RawHandle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; MAX_HANDLE_SZ],
}

/// A file handle as the kernel encodes it (the exportfs type and bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHandle {
    pub kind: i32,
    pub bytes: Vec<u8>,
}

/// The handle of the object `fd` refers to (an `O_PATH` descriptor will do).
pub fn name_to_handle(fd: RawFd) -> io::Result<FileHandle> {
    let mut h = RawHandle { handle_bytes: MAX_HANDLE_SZ as u32, handle_type: 0, f_handle: [0; MAX_HANDLE_SZ] };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `h` has room for MAX_HANDLE_SZ bytes as handle_bytes says; the
    // empty path with AT_EMPTY_PATH names `fd` itself.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            fd,
            c"".as_ptr(),
            &mut h as *mut RawHandle,
            &mut mount_id as *mut libc::c_int,
            libc::AT_EMPTY_PATH,
        )
    })?;
    let n = (h.handle_bytes as usize).min(MAX_HANDLE_SZ);
    Ok(FileHandle { kind: h.handle_type, bytes: h.f_handle[..n].to_vec() })
}

/// Open the object a handle names on the filesystem `mount_fd` is on
/// (`O_PATH`; needs CAP_DAC_READ_SEARCH).
pub fn open_by_handle(mount_fd: RawFd, h: &FileHandle) -> io::Result<OwnedFd> {
    if h.bytes.len() > MAX_HANDLE_SZ {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut raw = RawHandle { handle_bytes: h.bytes.len() as u32, handle_type: h.kind, f_handle: [0; MAX_HANDLE_SZ] };
    raw.f_handle[..h.bytes.len()].copy_from_slice(&h.bytes);
    // SAFETY: `raw` is a valid file_handle of handle_bytes bytes.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount_fd,
            &mut raw as *mut RawHandle,
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `struct fsuuid2`.
#[repr(C)]
struct FsUuid2 {
    len: u8,
    uuid: [u8; 16],
}

/// `FS_IOC_GETFSUUID`: `_IOR(0x15, 0, struct fsuuid2)`.
const FS_IOC_GETFSUUID: libc::c_ulong =
    (2 << 30) | ((std::mem::size_of::<FsUuid2>() as libc::c_ulong) << 16) | (0x15 << 8);

/// The UUID of the filesystem `fd` (an open directory) is on, as the kernel
/// knows it (`s_uuid`); all zeros where it has none.
pub fn fs_uuid(fd: RawFd) -> io::Result<[u8; 16]> {
    let mut u = FsUuid2 { len: 16, uuid: [0; 16] };
    // SAFETY: the ioctl writes at most a struct fsuuid2.
    match cvt(unsafe { libc::ioctl(fd, FS_IOC_GETFSUUID as _, &mut u as *mut FsUuid2) }) {
        Ok(_) => Ok(u.uuid),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL | libc::EOPNOTSUPP)) => Ok([0; 16]),
        Err(e) => Err(e),
    }
}
