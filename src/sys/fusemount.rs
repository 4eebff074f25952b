//! Mounting a FUSE filesystem ourselves (fuser then serves the descriptor).
//!
//! As root: open `/dev/fuse` and call mount(2) with type `fuse.SUBTYPE`, so
//! `/proc/mounts`, `findmnt -t fuse.unionfs` and `umount -a -t` see the
//! filesystem's own name. Otherwise: the setuid `fusermount3`, which mounts
//! and hands the descriptor back over a socket (`_FUSE_COMMFD`).
//!
//! We never unmount by path behind the kernel's back: whoever unmounts ends
//! the session, and the daemon then leaves (see `fs/session.rs`).

use super::{cstr, cvt};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// What to mount.
#[derive(Debug, Clone, Default)]
pub struct FuseMount {
    /// The source column of /proc/mounts.
    pub fsname: String,
    /// The type is `fuse.SUBTYPE`.
    pub subtype: String,
    /// Options the kernel's FUSE understands (`default_permissions`,
    /// `allow_other`, `max_read=`, ...), comma separated.
    pub options: Vec<String>,
    /// MS_* flags (nosuid, nodev, ro, noexec, noatime, ...).
    pub flags: libc::c_ulong,
}

impl FuseMount {
    /// Mount with mount(2) (needs CAP_SYS_ADMIN); returns the session descriptor.
    pub fn mount_direct(&self, mnt: &Path) -> io::Result<OwnedFd> {
        let dev = crate::sys::at::openat(libc::AT_FDCWD, OsStr::new("/dev/fuse"), libc::O_RDWR | libc::O_CLOEXEC, 0)?;
        let st = crate::sys::at::lstatat(libc::AT_FDCWD, mnt.as_os_str())?;
        let mut data = format!(
            "fd={},rootmode={:o},user_id={},group_id={}",
            dev.as_raw_fd(),
            st.st_mode & libc::S_IFMT,
            crate::sys::geteuid(),
            // SAFETY: no failure mode.
            unsafe { libc::getegid() }
        );
        for o in &self.options {
            data.push(',');
            data.push_str(o);
        }
        let src = cstr(OsStr::new(&self.fsname))?;
        let target = cstr(mnt.as_os_str())?;
        let fstype = cstr(OsStr::new(&format!("fuse.{}", self.subtype)))?;
        let data = cstr(OsStr::new(&data))?;
        // SAFETY: valid C strings that outlive the call.
        cvt(unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), self.flags, data.as_ptr().cast()) })?;
        Ok(dev)
    }

    /// Mount through the setuid `fusermount3` (unprivileged users).
    pub fn mount_fusermount(&self, mnt: &Path) -> io::Result<OwnedFd> {
        let (ours, theirs) = super::tty::socketpair()?;
        let mut opts = vec![format!("fsname={}", self.fsname), format!("subtype={}", self.subtype)];
        opts.extend(self.options.iter().cloned());
        for (bit, name) in [
            (libc::MS_RDONLY, "ro"),
            (libc::MS_NOSUID, "nosuid"),
            (libc::MS_NODEV, "nodev"),
            (libc::MS_NOEXEC, "noexec"),
            (libc::MS_NOATIME, "noatime"),
            (libc::MS_SYNCHRONOUS, "sync"),
            (libc::MS_DIRSYNC, "dirsync"),
        ] {
            if self.flags & bit != 0 {
                opts.push(name.into());
            }
        }
        let fd = theirs.as_raw_fd();
        let mut cmd = Command::new("fusermount3");
        cmd.arg("-o").arg(opts.join(",")).arg("--").arg(mnt).env("_FUSE_COMMFD", fd.to_string());
        // SAFETY: only async-signal-safe calls between fork and exec: keep
        // the socket end open across exec.
        unsafe {
            cmd.pre_exec(move || {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                cvt(libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC)).map(drop)
            });
        }
        let mut child = cmd.spawn().map_err(|e| io::Error::new(e.kind(), format!("fusermount3: {e}")))?;
        drop(theirs);
        let got = super::tty::recv_fd(ours.as_raw_fd());
        let status = child.wait()?;
        match got {
            Ok(Some(fd)) if status.success() => Ok(fd),
            Ok(_) | Err(_) if !status.success() => Err(io::Error::other(format!("fusermount3 failed ({status})"))),
            Ok(_) => Err(io::Error::other("fusermount3 sent no descriptor")),
            Err(e) => Err(e),
        }
    }
}

/// Whether the kernel offers FUSE over io_uring to new mounts (the fuse
/// module's `enable_uring` parameter, Linux 6.14+).
pub fn uring_enabled() -> bool {
    std::fs::read_to_string("/sys/module/fuse/parameters/enable_uring").is_ok_and(|v| v.trim() == "Y")
}

/// Is `mnt` a mount point right now (its device differs from its parent's)?
pub fn is_mountpoint(mnt: &Path) -> bool {
    let parent = mnt.parent().unwrap_or(Path::new("/"));
    let (Ok(a), Ok(b)) = (
        crate::sys::at::lstatat(libc::AT_FDCWD, mnt.as_os_str()),
        crate::sys::at::lstatat(libc::AT_FDCWD, OsStr::from_bytes(parent.as_os_str().as_bytes())),
    ) else {
        return false;
    };
    a.st_dev != b.st_dev
}
