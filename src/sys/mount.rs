//! Mounts a container needs under its merged root: bind mounts, tmpfs,
//! read-only remounts, propagation, unmounting; `/proc/self/mountinfo`; user
//! and mount namespaces (rootless volume mounts).
//!
//! Targets are given as descriptors (resolved inside the container root by
//! [`crate::sys::resolve`]) and reached through `/proc/self/fd/N`, so no path
//! is looked up again between resolution and mount.

use super::{cstr, cvt};
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn fd_target(fd: RawFd) -> CString {
    super::proc_path(fd)
}

fn path_c(p: &Path) -> io::Result<CString> {
    cstr(p.as_os_str())
}

fn mount_raw(
    src: Option<&CString>,
    target: &CString,
    fstype: Option<&CString>,
    flags: libc::c_ulong,
    data: Option<&CString>,
) -> io::Result<()> {
    let p = |c: Option<&CString>| c.map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is a valid C string or null, alive for the call.
    cvt(unsafe { libc::mount(p(src), target.as_ptr(), p(fstype), flags, p(data).cast()) }).map(drop)
}

/// Bind `src` (a path on the host) onto the object `target_fd` refers to;
/// `recursive` takes submounts along (`rbind`). Flags (nosuid, nodev,
/// rdonly) need a remount of the new mount, by path: the descriptor still
/// names what is under it ([`remount_bind`]).
pub fn bind(src: &Path, target_fd: RawFd, recursive: bool) -> io::Result<()> {
    let s = path_c(src)?;
    let t = fd_target(target_fd);
    let mut flags = libc::MS_BIND;
    if recursive {
        flags |= libc::MS_REC;
    }
    mount_raw(Some(&s), &t, None, flags, None)
}

/// Remount a bind mount (a path) with `flags` (MS_RDONLY, MS_NOSUID, ...).
pub fn remount_bind(target: &Path, flags: libc::c_ulong) -> io::Result<()> {
    let t = path_c(target)?;
    mount_raw(None, &t, None, libc::MS_BIND | libc::MS_REMOUNT | flags, None)
}

/// Mount a tmpfs with `data` (`size=64m,mode=1777`) on `target_fd`.
pub fn tmpfs(target_fd: RawFd, flags: libc::c_ulong, data: &str) -> io::Result<()> {
    let t = fd_target(target_fd);
    let src = CString::new("tmpfs").unwrap_or_default();
    let d = cstr(OsStr::new(data))?;
    mount_raw(Some(&src), &t, Some(&src), flags, Some(&d))
}

/// Mount `device` of type `fstype` (the local volume driver's `--opt`s) on a path.
pub fn mount_device(device: &str, target: &Path, fstype: &str, flags: libc::c_ulong, data: &str) -> io::Result<()> {
    let s = cstr(OsStr::new(device))?;
    let t = path_c(target)?;
    let f = cstr(OsStr::new(fstype))?;
    let d = cstr(OsStr::new(data))?;
    mount_raw(Some(&s), &t, Some(&f), flags, Some(&d))
}

/// Make the mount at `target` private (its submounts do not propagate).
pub fn make_private(target: &Path, recursive: bool) -> io::Result<()> {
    let t = path_c(target)?;
    let flags = libc::MS_PRIVATE | if recursive { libc::MS_REC } else { 0 };
    mount_raw(None, &t, None, flags, None)
}

/// umount2(2) with `flags` (0, MNT_DETACH, MNT_EXPIRE).
pub fn umount2(target: &Path, flags: i32) -> io::Result<()> {
    let t = path_c(target)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::umount2(t.as_ptr(), flags) }).map(drop)
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountInfo {
    pub id: u32,
    pub parent: u32,
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
}

/// `\040`-style escapes of mountinfo fields.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The mounts of this process's mount namespace.
pub fn mountinfo() -> Vec<MountInfo> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(dash) = f.iter().position(|x| *x == "-") else { continue };
        if f.len() < 5 || dash + 2 >= f.len() {
            continue;
        }
        out.push(MountInfo {
            id: f[0].parse().unwrap_or(0),
            parent: f[1].parse().unwrap_or(0),
            mount_point: PathBuf::from(OsStr::from_bytes(&unescape(f[4]))),
            fstype: f[dash + 1].to_string(),
            source: String::from_utf8_lossy(&unescape(f[dash + 2])).into_owned(),
        });
    }
    out
}

/// The mounts at `p` or below it (mount order: parents first).
pub fn mounts_under(p: &Path) -> Vec<MountInfo> {
    mountinfo().into_iter().filter(|m| m.mount_point.starts_with(p)).collect()
}

/// The type of the top-most mount at exactly `p`, if any.
pub fn mounted_type(p: &Path) -> Option<String> {
    mountinfo().into_iter().rfind(|m| m.mount_point == p).map(|m| m.fstype)
}

/// unshare(2).
pub fn unshare(flags: i32) -> io::Result<()> {
    // SAFETY: no pointers.
    cvt(unsafe { libc::unshare(flags) }).map(drop)
}

/// setns(2) into the namespace file `path` (`/proc/PID/ns/mnt`, ...).
pub fn setns(path: &Path, nstype: i32) -> io::Result<()> {
    let fd = super::at::openat(libc::AT_FDCWD, path.as_os_str(), libc::O_RDONLY, 0)?;
    // SAFETY: a valid descriptor.
    cvt(unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&fd), nstype) }).map(drop)
}

/// Map the calling user to root in a fresh user namespace (after unshare).
pub fn map_self_to_root(uid: u32, gid: u32) -> io::Result<()> {
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    Ok(())
}
