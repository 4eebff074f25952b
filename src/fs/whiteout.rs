//! Whiteouts and opaque directories: every on-disk form is read, the kernel's
//! form is written (char 0:0 whiteouts, `overlay.opaque=y`).

use crate::fs::layers::Layers;
use crate::sys::{at, xattr};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::atomic::{AtomicU64, Ordering};

/// OCI whiteout marker prefix (`.wh.NAME`).
pub const WH_PREFIX: &[u8] = b".wh.";
/// OCI opaque-directory marker.
pub const WH_OPAQUE: &[u8] = b".wh..wh..opq";

/// A name reserved for markers: never visible, never creatable.
pub fn is_marker_name(name: &OsStr) -> bool {
    name.as_bytes().starts_with(WH_PREFIX)
}

/// The OCI marker that whites out `name`.
pub fn oci_marker(name: &OsStr) -> OsString {
    let mut v = WH_PREFIX.to_vec();
    v.extend_from_slice(name.as_bytes());
    OsString::from(std::ffi::OsStr::from_bytes(&v))
}

/// A kernel whiteout: a char device 0:0.
pub fn is_whiteout_stat(st: &at::Stat) -> bool {
    (st.st_mode & libc::S_IFMT) == libc::S_IFCHR && st.st_rdev == 0
}

/// A zero-size regular file carrying this mount's whiteout xattr (the one
/// predicate for the xattr form). Where it counts is the kernel's (6.7+)
/// rule: lookup counts it in every directory, readdir only in a lower
/// directory marked as holding xattr whiteouts ([`DirMarks::xwhiteouts`]).
pub fn is_xattr_whiteout(layers: &Layers, dirfd: RawFd, name: &OsStr, st: &at::Stat) -> bool {
    (st.st_mode & libc::S_IFMT) == libc::S_IFREG
        && st.st_size == 0
        && matches!(xattr::get_at(dirfd, name, &layers.xattr_name("whiteout")), Ok(Some(_)))
}

/// What a real directory's markers say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirMarks {
    /// Hides the layers below it: an opaque xattr (this mount's or
    /// fuse-overlayfs's) with value `y`, or an OCI `.wh..wh..opq` marker.
    pub opaque: bool,
    /// This mount's opaque xattr with value `x` (kernel 6.7+): the directory
    /// holds xattr whiteouts; it is not opaque. Honoured in lower layers.
    pub xwhiteouts: bool,
    /// The directory's redirect record (the kernel's `redirect_dir`): where
    /// its lower parts are, relative to its parent (a name) or to the layers'
    /// roots (`/a/b`). Read only when the mount follows redirects.
    pub redirect: Option<std::ffi::OsString>,
    /// A redirect record is there but the mount does not follow them
    /// (`redirect_dir=nofollow`): the kernel refuses such a directory (EPERM).
    pub refused_redirect: bool,
}

/// The markers of a real directory (held open O_RDONLY).
pub fn dir_marks(layers: &Layers, dirfd: RawFd) -> DirMarks {
    let t = xattr::Target::Fd(dirfd);
    let mut m = DirMarks::default();
    if let Ok(names) = xattr::list(t) {
        let redirect = layers.xattr_name("redirect");
        if names.iter().any(|x| x.as_slice() == redirect.as_bytes()) {
            if layers.follow_redirects {
                m.redirect =
                    xattr::get(t, &redirect).ok().flatten().filter(|v| valid_redirect(v)).map(OsString::from_vec);
            } else {
                m.refused_redirect = true;
            }
        }
        for (i, n) in layers.opaque_names().iter().enumerate() {
            if !names.iter().any(|x| x.as_slice() == n.as_bytes()) {
                continue;
            }
            if xattr::has_value(t, n, b"y") {
                m.opaque = true;
            } else if i == 0 && xattr::has_value(t, n, b"x") {
                m.xwhiteouts = true;
            }
        }
    }
    if !m.opaque {
        m.opaque = at::lstatat(dirfd, OsStr::from_bytes(WH_OPAQUE)).is_ok();
    }
    m
}

/// A redirect record the kernel would accept: a name, or an absolute path of
/// names (no empty, `.` or `..` components, no NUL).
pub fn valid_redirect(v: &[u8]) -> bool {
    let rest = v.strip_prefix(b"/").unwrap_or(v);
    !rest.is_empty()
        && !v.contains(&0)
        && rest.split(|b| *b == b'/').all(|c| !c.is_empty() && c != b"." && c != b"..")
        && (v.starts_with(b"/") || !rest.contains(&b'/'))
}

/// Mark an upper directory opaque (kernel form: the xattr alone).
pub fn set_opaque(layers: &Layers, dirfd: RawFd) -> io::Result<()> {
    xattr::set(xattr::Target::Fd(dirfd), &layers.xattr_name("opaque"), b"y", 0)
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh, unique name for staging an object in the work directory.
pub fn temp_name() -> OsString {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    OsString::from(format!("#{:x}-{:x}", PID.get_or_init(std::process::id), n))
}

/// Create a whiteout object named `name` in `dirfd` (no replacement).
/// Kernel form (char 0:0); OCI marker only where mknod is not permitted.
pub fn create_whiteout(dirfd: RawFd, name: &OsStr) -> io::Result<()> {
    match at::mknodat(dirfd, name, libc::S_IFCHR, 0) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let fd = at::openat(dirfd, &oci_marker(name), libc::O_CREAT | libc::O_WRONLY, 0)?;
            drop(fd);
            Ok(())
        }
        r => r,
    }
}

/// The work dir's shared whiteout: every whiteout made is a hard link of it,
/// as the kernel overlay makes them (one 0:0 inode; `rm -rf` of a lower tree
/// allocates no inode per name). Made when first needed, replaced when it
/// has as many links as the filesystem allows; the mount empties the work
/// dir, so it never outlives the next mount.
pub const SHARED_WHITEOUT: &str = "#whiteout";

/// A whiteout named `tmp` in the work dir: a link of the shared one, else
/// (hard links refused) a device of its own.
fn work_whiteout(work: RawFd, tmp: &OsStr) -> io::Result<()> {
    let shared = OsStr::new(SHARED_WHITEOUT);
    for _ in 0..3 {
        match at::linkat(work, shared, work, tmp) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => match at::mknodat(work, shared, libc::S_IFCHR, 0) {
                // EEXIST: another thread made it meanwhile.
                Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
                _ => {}
            },
            Err(e) if e.raw_os_error() == Some(libc::EMLINK) => {
                let fresh = temp_name();
                at::mknodat(work, &fresh, libc::S_IFCHR, 0)?;
                at::renameat2(work, &fresh, work, shared, 0)?;
            }
            Err(_) => break,
        }
    }
    at::mknodat(work, tmp, libc::S_IFCHR, 0)
}

/// Put a whiteout at `upperdir/name`, where the upper layer has no entry:
/// a link of the shared whiteout made in place (one syscall; a link is
/// atomic, so nothing is staged), else as `whiteout_over` makes it.
pub fn whiteout_at(layers: &Layers, upperdir: RawFd, name: &OsStr) -> io::Result<()> {
    let work = layers.work_fd()?;
    match at::linkat(work, OsStr::new(SHARED_WHITEOUT), upperdir, name) {
        Ok(()) => Ok(()),
        // No shared whiteout yet, full, links refused (or an entry after
        // all: replaced, as before).
        Err(_) => whiteout_over(layers, upperdir, name, false).map(drop),
    }
}

/// Put a whiteout at `upperdir/name`, atomically replacing what is there
/// (`exchange`: swap with an existing directory, which the caller then removes
/// from the work dir; the returned name is that staged entry).
pub fn whiteout_over(layers: &Layers, upperdir: RawFd, name: &OsStr, exchange: bool) -> io::Result<Option<OsString>> {
    let work = layers.work_fd()?;
    let tmp = temp_name();
    work_whiteout(work, &tmp)?;
    let flags = if exchange { at::RENAME_EXCHANGE } else { 0 };
    if let Err(e) = at::renameat2(work, &tmp, upperdir, name, flags) {
        let _ = at::unlinkat(work, &tmp, 0);
        return Err(e);
    }
    Ok(exchange.then_some(tmp))
}
