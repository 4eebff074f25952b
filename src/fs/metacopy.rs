//! Metadata-only copy-up (`metacopy=on`, the kernel's feature and format).
//!
//! With `metacopy=on`, a chmod/chown/utimes/setxattr/link/rename of a lower
//! regular file copies up its metadata alone (see `copy_up.rs`): an upper file
//! of the same size holding no data (sparse), marked with the kernel's
//! `overlay.metacopy` xattr (empty, as the kernel writes it without
//! fs-verity; the newer value with a digest is read too). Its data stays in
//! the lower file that lookup finds below it: by the same path, or through the
//! file's redirect record (written, as the kernel writes it, when a metacopy
//! file is renamed or hard-linked). Reads come from that lower file; the
//! attributes from the upper, except `st_blocks`, which are the data's (the
//! kernel's rule).
//!
//! The first open for write or truncate copies the data into the upper file
//! in place (the upper inode keeps its number and its hard links, as in the
//! kernel) and only then removes the mark: a crash leaves the metacopy state
//! (the retry starts over) or the complete file, never a partial one shown as
//! data.
//!
//! Without `metacopy=on` the kernel refuses to follow a metacopy file (lookup
//! fails with EPERM; with no data found below, EIO); so does unionfs.

use crate::fs::copy_up::copy_data;
use crate::fs::inode::{Inode, InodeState};
use crate::fs::layers::Layers;
use crate::fs::lookup::err;
use crate::fs::real::Real;
use crate::fs::whiteout::valid_redirect;
use crate::fs::UnionFs;
use crate::sys::{at, xattr};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStringExt;

/// Suffix of the kernel's metacopy mark (`trusted.overlay.metacopy`).
pub const METACOPY_XATTR: &str = "metacopy";

/// The file capability a data write would clear.
const CAPS_XATTR: &str = "security.capability";

/// A metacopy value the kernel accepts: empty (no digest), or its versioned
/// record: version 0, the record's length, flags, digest algorithm, then a
/// digest of at most 64 bytes.
fn valid_value(v: &[u8]) -> bool {
    v.is_empty() || ((4..=4 + 64).contains(&v.len()) && v[0] == 0 && usize::from(v[1]) == v.len())
}

/// Does the regular file `f` (just found) carry the metacopy mark?
/// A malformed mark is EIO, as in the kernel.
pub fn is_metacopy(layers: &Layers, f: &Real) -> io::Result<bool> {
    match f.xattr(&layers.xattr_name(METACOPY_XATTR))? {
        None => Ok(false),
        Some(v) if valid_value(&v) => Ok(true),
        Some(_) => Err(err(libc::EIO)),
    }
}

/// A metacopy file's redirect record (where its data is), if the mount
/// follows redirects and the record is one the kernel accepts.
pub fn redirect(layers: &Layers, f: &Real) -> Option<OsString> {
    if !layers.follow_redirects {
        return None;
    }
    let v = f.xattr(&layers.xattr_name("redirect")).ok()??;
    valid_redirect(&v).then(|| OsString::from_vec(v))
}

/// Mark a staged copy as holding metadata only (the kernel's empty value).
pub fn mark(layers: &Layers, t: xattr::Target) -> io::Result<()> {
    xattr::set(t, &layers.xattr_name(METACOPY_XATTR), b"", 0)
}

/// `st` of a metacopy file's upper object shows its data's blocks.
pub fn show_blocks(s: &InodeState, st: &mut at::Stat) {
    if let Some(d) = &s.data {
        if let Ok(ds) = d.fd().and_then(|fd| at::fstat(fd.as_raw_fd())) {
            st.st_blocks = ds.st_blocks;
        }
    }
}

/// Bring a metacopy file's data into its upper file, then drop the mark.
/// `keep = false`: the caller truncates the file to zero at once, so the file
/// is emptied instead (before the mark goes). Nothing to do once done.
pub fn copy_data_up(fs: &UnionFs, ino: &Inode, keep: bool) -> io::Result<()> {
    let _guard = ino.copy_up_lock.lock();
    let s = ino.snapshot();
    let (Some(up), Some(data)) = (s.upper, s.data) else { return Ok(()) };
    let upfd = up.fd()?;
    let before = at::fstat(upfd.as_raw_fd())?;
    let f = match at::reopen(upfd.as_raw_fd(), libc::O_WRONLY) {
        // Not root, and the file is not writable for its owner (us).
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
            at::fchmod(upfd.as_raw_fd(), (before.st_mode | 0o200) & 0o7777)?;
            at::reopen(upfd.as_raw_fd(), libc::O_WRONLY)
        }
        r => r,
    };
    let f = f.inspect_err(|_| {
        let _ = at::fchmod(upfd.as_raw_fd(), before.st_mode & 0o7777);
    })?;
    let fd = f.as_raw_fd();
    let filled = fill(&fs.layers, fd, &data, &before, keep);
    // Writing clears set-ID bits (not as root); a mode made writable above
    // goes back, also when the copy failed.
    if at::fstat(fd).map_or(true, |st| st.st_mode != before.st_mode) {
        at::fchmod(fd, before.st_mode & 0o7777)?;
    }
    filled?;
    if fs.opts.fsync {
        at::fsync(fd, false)?;
    }
    match xattr::remove(xattr::Target::Fd(fd), &fs.layers.xattr_name(METACOPY_XATTR)) {
        Err(e) if e.raw_os_error() != Some(libc::ENODATA) => return Err(e),
        _ => {}
    }
    ino.state.write().data = None;
    Ok(())
}

/// Write the data of `data` into the upper file `fd` (stat `before`), or
/// empty it (`keep = false`).
fn fill(layers: &Layers, fd: RawFd, data: &Real, before: &at::Stat, keep: bool) -> io::Result<()> {
    if !keep {
        return at::ftruncate(fd, 0);
    }
    if before.st_size == 0 {
        return Ok(());
    }
    let caps = xattr::get(xattr::Target::Fd(fd), OsStr::new(CAPS_XATTR)).ok().flatten();
    // A copy cut short by a crash may have left data where the lower file
    // has holes: start from an empty (sparse) file of the same size.
    let _ = at::fallocate(fd, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 0, before.st_size);
    let src = at::reopen(data.fd()?.as_raw_fd(), libc::O_RDONLY)?;
    copy_data(layers, src.as_raw_fd(), fd, before.st_size as u64)?;
    // Writing clears file capabilities.
    if let Some(c) = caps {
        xattr::set(xattr::Target::Fd(fd), OsStr::new(CAPS_XATTR), &c, 0)?;
    }
    // Bringing the data up is not a change of the file (the kernel's copy
    // leaves the upper file's mtime at the time of the copy, but the FUSE
    // kernel module keeps the attributes it has cached).
    let t = |s: i64, ns: i64| at::Time::At(s, ns);
    at::futimens(fd, t(before.st_atime, before.st_atime_nsec), t(before.st_mtime, before.st_mtime_nsec))
}

#[cfg(test)]
mod tests {
    use super::valid_value;

    #[test]
    fn metacopy_values_the_kernel_accepts() {
        assert!(valid_value(b""));
        let mut v = vec![0u8, 36, 0, 1];
        v.extend_from_slice(&[7u8; 32]);
        assert!(valid_value(&v));
        assert!(valid_value(&[0, 4, 0, 0]));
        assert!(!valid_value(&[1, 4, 0, 0]), "unknown version");
        assert!(!valid_value(&[0, 5, 0, 0]), "length mismatch");
        assert!(!valid_value(b"y"));
        assert!(!valid_value(&[0u8; 70]));
    }
}
