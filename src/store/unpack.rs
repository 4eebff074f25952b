//! Apply a layer tar to an empty directory, safely.
//!
//! Paths are relative and never climb (`..`, absolute paths are rejected);
//! every parent is opened with O_NOFOLLOW, so a symlink in the layer can never
//! be written through; hard links must name a member inside the layer.
//! Owners (numeric ids), modes (after chown, so setuid bits stay), xattrs
//! (PAX `SCHILY.xattr.*`, only those [`xattr_allowed`] lets through) and
//! mtimes are kept. OCI whiteout markers are ordinary files here: they stay in
//! the layer for unionfs to read. Device nodes a non-root user cannot make are
//! recorded as empty files carrying `user.containers.override_stat`.

use crate::store::error::{err, Context, Error, Result};
use crate::store::limits::{HeaderBudget, Space};
use crate::store::sparse;
use crate::sys::{at, xattr};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What one unpack did.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub entries: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Device nodes recorded as files (not root).
    pub devices_recorded: u64,
    /// xattrs this user may not set (trusted.*, security.* when not root).
    pub xattrs_skipped: u64,
}

/// A member path split into components; None when it would escape.
fn components(raw: &[u8]) -> Option<Vec<OsString>> {
    if raw.starts_with(b"/") {
        return None;
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            n => out.push(OsStr::from_bytes(n).to_os_string()),
        }
    }
    Some(out)
}

fn open_dir(parent: RawFd, name: &OsStr) -> io::Result<OwnedFd> {
    at::openat(parent, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
}

struct Unpacker {
    space: Space,
    root: OwnedFd,
    root_user: bool,
    stats: Stats,
    /// The parent directory of the previous member (most members share one).
    last_parent: Option<(Vec<OsString>, OwnedFd)>,
    /// Directory metadata, applied last (children change a dir's mtime).
    /// (member path as in the tar, depth, mode, uid, gid, mtime): the raw
    /// path, not its components, so a deep tree costs bytes, not allocations.
    dirs: Vec<(Vec<u8>, usize, u32, u32, u32, u64)>,
    buf: Vec<u8>,
}

impl Unpacker {
    /// Open (creating missing ones) the directory `comps`, never following symlinks.
    fn dir(&mut self, comps: &[OsString], create: bool) -> Result<RawFd> {
        // Start from the directory of the previous member when it is on the
        // way: the same, an ancestor (members usually come parent first), or
        // a near descendant (`..` inside the tree this unpack made).
        let (mut cur, start) = match self.last_parent.take() {
            Some((p, fd)) if p.as_slice() == comps => {
                let raw = fd.as_raw_fd();
                self.last_parent = Some((p, fd));
                return Ok(raw);
            }
            Some((p, fd)) if comps.starts_with(&p) => (fd, p.len()),
            Some((p, fd)) if p.starts_with(comps) && p.len() - comps.len() <= 16 => {
                match climb(fd, p.len() - comps.len()) {
                    Ok(fd) => (fd, comps.len()),
                    Err(_) => (self.open_root()?, 0),
                }
            }
            _ => (self.open_root()?, 0),
        };
        for c in &comps[start..] {
            let next = match open_dir(cur.as_raw_fd(), c) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                    at::mkdirat(cur.as_raw_fd(), c, 0o755)?;
                    open_dir(cur.as_raw_fd(), c)?
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                    return err(format!(
                        "{} is not a directory (a symlink or file in the layer cannot be a parent)",
                        join(&comps[..=comps.iter().position(|x| x == c).unwrap_or(0)])
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            cur = next;
        }
        let fd = cur.as_raw_fd();
        self.last_parent = Some((comps.to_vec(), cur));
        Ok(fd)
    }

    fn open_root(&self) -> io::Result<OwnedFd> {
        at::openat(self.root.as_raw_fd(), OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)
    }

    /// Make room for a new member at `parent/name` (a later member wins).
    fn clear(&mut self, parent: RawFd, name: &OsStr, keep_dir: bool) -> Result<bool> {
        match at::lstatat(parent, name) {
            Ok(st) if (st.st_mode & libc::S_IFMT) == libc::S_IFDIR => {
                if keep_dir {
                    return Ok(true);
                }
                let d = open_dir(parent, name)?;
                crate::sys::tree::remove_contents(d.as_raw_fd())?;
                at::unlinkat(parent, name, libc::AT_REMOVEDIR)?;
                self.last_parent = None;
            }
            Ok(_) => at::unlinkat(parent, name, 0)?,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(false)
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let h = e.header().clone();
        let kind = h.entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader) {
            // Global PAX records describe nothing we apply (never read them whole).
            return Ok(());
        }
        let pax = pax_records(e)?;
        let sparse = sparse::pax_sparse(&pax)?;
        let raw = match &sparse {
            Some(s) => s.name.clone(),
            None => e.path_bytes().into_owned(),
        };
        let comps = components(&raw).ok_or_else(|| Error("path escapes the layer (absolute or ..)".into()))?;
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let (uid, gid) = (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
        let mtime = h.mtime().unwrap_or(0);
        let Some((name, parents)) = comps.split_last() else {
            // The layer root itself ("./").
            if kind.is_dir() {
                self.dirs.push((Vec::new(), 0, mode, uid, gid, mtime));
            }
            return Ok(());
        };
        let parent = self.dir(parents, true)?;
        let xattrs = allowed_xattrs(&pax);
        // Not root: a device node recorded as a file (its type), or the type
        // to record when the owner cannot be set.
        let mut recorded: Option<String> = None;
        let mut overridden: Option<String> = None;
        match kind {
            tar::EntryType::Directory => {
                if !self.clear(parent, name, true)? {
                    at::mkdirat(parent, name, 0o700)?;
                }
                self.dirs.push((raw.clone(), comps.len(), mode, uid, gid, mtime));
                if !self.root_user && (uid, gid) != (0, 0) {
                    let d = at::openat(parent, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
                    set_override(d.as_raw_fd(), uid, gid, mode, "dir")?;
                }
                self.set_xattrs(parent, name, &xattrs)?;
                return Ok(());
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.clear(parent, name, false)?;
                let f =
                    at::openat(parent, name, libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW, 0o600)?;
                let fd = f.as_raw_fd();
                let size = match &sparse {
                    Some(s) => {
                        // PAX 1.0: the map, then the data segments in order.
                        for (off, len) in sparse::read_map(e, s.real_size)? {
                            let got = self.copy(&mut e.take(len), fd, off, false)?;
                            if got != len {
                                return err("GNU sparse member: data shorter than its map");
                            }
                        }
                        s.real_size
                    }
                    // Old GNU sparse: the reader gives holes as zeros; they stay holes.
                    None => self.copy(e, fd, 0, kind == tar::EntryType::GNUSparse)?,
                };
                if sparse.is_some() || kind == tar::EntryType::GNUSparse {
                    at::ftruncate(fd, size)?;
                }
                self.stats.bytes += size;
            }
            tar::EntryType::Symlink => {
                let target = e.link_name_bytes().ok_or_else(|| Error("symlink without a target".into()))?;
                self.clear(parent, name, false)?;
                at::symlinkat(OsStr::from_bytes(&target), parent, name)?;
            }
            tar::EntryType::Link => {
                let target = e.link_name_bytes().ok_or_else(|| Error("hard link without a target".into()))?;
                let tcomps = components(&target).filter(|c| !c.is_empty()).ok_or_else(|| {
                    Error(format!("hard link to {:?} escapes the layer", String::from_utf8_lossy(&target)))
                })?;
                let (tname, tparents) = tcomps.split_last().ok_or_else(|| Error("empty hard link target".into()))?;
                if tcomps == comps {
                    return Ok(());
                }
                let tparent = self.dir(tparents, false).ctx(format!("hard link target {}", join(&tcomps)))?;
                let tparent = at::openat(tparent, OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                let parent = self.dir(parents, true)?;
                self.clear(parent, name, false)?;
                at::linkat(tparent.as_raw_fd(), tname, parent, name).ctx(format!("hard link to {}", join(&tcomps)))?;
                self.stats.entries += 1;
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                self.clear(parent, name, false)?;
                overridden = Some(match kind {
                    tar::EntryType::Fifo => "pipe".to_string(),
                    _ => format!(
                        "{}-{}-{}",
                        if kind == tar::EntryType::Char { "char" } else { "block" },
                        h.device_major().ok().flatten().unwrap_or(0),
                        h.device_minor().ok().flatten().unwrap_or(0)
                    ),
                });
                let (major, minor) =
                    (h.device_major().ok().flatten().unwrap_or(0), h.device_minor().ok().flatten().unwrap_or(0));
                let ftype = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let rdev = libc::makedev(major, minor);
                match at::mknodat(parent, name, ftype | 0o600, rdev) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) && !self.root_user => {
                        // Record it: an empty file that says what it stands for.
                        drop(at::openat(parent, name, libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY, 0o600)?);
                        recorded = overridden.clone();
                        self.stats.devices_recorded += 1;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            // PAX/GNU headers are consumed by the tar reader; others carry nothing to apply.
            _ => return Ok(()),
        }
        self.stats.entries += 1;
        let obj = at::openat(parent, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        let fd = obj.as_raw_fd();
        if self.root_user {
            at::fchown(fd, Some(uid), Some(gid))?;
        }
        if kind != tar::EntryType::Symlink {
            // xattrs before the mode: a read-only file takes no user.* xattr
            // from a non-root owner afterwards.
            if let Some(t) = recorded {
                set_override(fd, uid, gid, mode, &t)?;
            } else if !self.root_user && (uid, gid) != (0, 0) {
                set_override(fd, uid, gid, mode, overridden.as_deref().unwrap_or("file"))?;
            }
            self.set_xattrs(parent, name, &xattrs)?;
            at::fchmod(fd, mode)?;
        }
        at::futimens(fd, at::Time::At(mtime as i64, 0), at::Time::At(mtime as i64, 0))?;
        Ok(())
    }

    /// Copy `r` into `fd` from offset `start`; returns the bytes read. With
    /// `holes`, 4 KiB blocks of zeros are not written (the caller sets the size).
    fn copy<R: Read>(&mut self, r: &mut R, fd: RawFd, start: u64, holes: bool) -> Result<u64> {
        const BLOCK: usize = 4096;
        let mut total = 0u64;
        loop {
            let n = r.read(&mut self.buf)?;
            if n == 0 {
                break;
            }
            let off = start + total;
            let mut i = 0;
            while i < n {
                let end = if holes { (i + BLOCK).min(n) } else { n };
                let chunk = &self.buf[i..end];
                if !(holes && chunk.iter().all(|b| *b == 0)) {
                    self.space.wrote(chunk.len() as u64)?;
                    let mut done = 0;
                    while done < chunk.len() {
                        done += at::pwrite(fd, &chunk[done..], (off + (i + done) as u64) as i64)?;
                    }
                }
                i = end;
            }
            total += n as u64;
        }
        Ok(total)
    }

    fn set_xattrs(&mut self, parent: RawFd, name: &OsStr, xattrs: &[(OsString, Vec<u8>)]) -> Result<()> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let obj = at::openat(parent, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        for (k, v) in xattrs {
            match xattr::set(xattr::Target::Path(obj.as_raw_fd()), k, v, 0) {
                Ok(()) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOTSUP)) && !self.root_user => {
                    self.stats.xattrs_skipped += 1;
                }
                Err(e) => return Err(Error(format!("xattr {}: {}", k.to_string_lossy(), e))),
            }
        }
        Ok(())
    }

    /// Directory modes, owners and times, deepest first.
    fn finish_dirs(&mut self) -> Result<()> {
        let mut dirs = std::mem::take(&mut self.dirs);
        self.last_parent = None;
        // Deepest first (a parent's mode may shut its children); a stable
        // sort, so of a repeated entry the last one wins.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.1));
        for (raw, _, mode, uid, gid, mtime) in &dirs {
            let comps = components(raw).unwrap_or_default();
            let fd = self.dir(&comps, false)?;
            let d = at::openat(fd, OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            if self.root_user {
                at::fchown(d.as_raw_fd(), Some(*uid), Some(*gid))?;
            }
            at::fchmod(d.as_raw_fd(), *mode)?;
            at::futimens(d.as_raw_fd(), at::Time::At(*mtime as i64, 0), at::Time::At(*mtime as i64, 0))?;
        }
        Ok(())
    }
}

/// Record the owner and mode a non-root unpack cannot give (or the device it
/// cannot make) as containers/storage does: `user.containers.override_stat`
/// = `UID:GID:0MODE:TYPE` (type `file`, `dir`, `pipe`, `char-MAJ-MIN`,
/// `block-MAJ-MIN`), read by fuse-overlayfs with `xattr_permissions=2`.
/// Owner 0:0 is the unpacking user itself and is not recorded.
fn set_override(path_fd: RawFd, uid: u32, gid: u32, mode: u32, kind: &str) -> Result<()> {
    let v = format!("{uid}:{gid}:0{mode:o}:{kind}");
    xattr::set(xattr::Target::Path(path_fd), OsStr::new("user.containers.override_stat"), v.as_bytes(), 0)
        .ctx("user.containers.override_stat")
}

/// The directory `n` levels above `fd`.
fn climb(mut fd: OwnedFd, n: usize) -> io::Result<OwnedFd> {
    for _ in 0..n {
        fd = at::openat(fd.as_raw_fd(), OsStr::new(".."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    }
    Ok(fd)
}

fn join(c: &[OsString]) -> String {
    c.iter().map(|s| s.to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// The xattrs a layer may put on disk; every other one is skipped (a debug
/// log line, not an error), as root too:
///
/// - `user.*`, except the namespaces a union reads as its own metadata:
///   `user.overlay.*` (overlayfs with `userxattr`: opaque, redirect,
///   metacopy, origin, whiteout), `user.fuseoverlayfs.*` and
///   `user.containers.*` (fuse-overlayfs and containers/storage, e.g.
///   `override_stat`);
/// - `security.capability` (file capabilities);
/// - `system.posix_acl_access`, `system.posix_acl_default` (ACLs).
///
/// So `trusted.*` (`trusted.overlay.*` would make a directory opaque or
/// redirect it in the union) and other `security.*` labels never come from a
/// layer.
pub fn xattr_allowed(name: &[u8]) -> bool {
    const UNION_OWNED: [&[u8]; 3] = [b"user.overlay.", b"user.fuseoverlayfs.", b"user.containers."];
    if name.starts_with(b"user.") {
        return !UNION_OWNED.iter().any(|p| name.starts_with(p));
    }
    matches!(name, b"security.capability" | b"system.posix_acl_access" | b"system.posix_acl_default")
}

/// The member's PAX records (already bounded in size by the reader).
fn pax_records<R: Read>(e: &mut tar::Entry<'_, R>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = e.pax_extensions().ctx("PAX header")? {
        for ext in exts {
            let ext = ext.ctx("PAX header")?;
            out.push((ext.key_bytes().to_vec(), ext.value_bytes().to_vec()));
        }
    }
    Ok(out)
}

fn allowed_xattrs(pax: &[(Vec<u8>, Vec<u8>)]) -> Vec<(OsString, Vec<u8>)> {
    let mut out = Vec::new();
    for (k, v) in pax {
        if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
            if xattr_allowed(name) {
                out.push((OsStr::from_bytes(name).to_os_string(), v.clone()));
            } else {
                log::debug!("skipping xattr {} (not allowed in a layer)", String::from_utf8_lossy(name));
            }
        }
    }
    out
}

/// Unpack the tar stream `r` into the (empty) directory `dest`.
pub fn unpack(r: impl Read, dest: &Path) -> Result<Stats> {
    let root =
        at::openat(libc::AT_FDCWD, dest.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0).ctx(dest.display())?;
    let space = Space::new(dest).ctx(dest.display())?;
    let mut u = Unpacker {
        space,
        root,
        root_user: at::is_root(),
        stats: Stats::default(),
        last_parent: None,
        dirs: Vec::new(),
        buf: vec![0u8; 1 << 20],
    };
    let budget = HeaderBudget::default();
    let mut ar = tar::Archive::new(budget.reader(r));
    let mut entries = ar.entries().ctx("reading the layer")?;
    // A tar that ends without its end-of-archive blocks is accepted when its
    // last member is complete (older umoci wrote such layers).
    while let Some(e) = budget.next(|| entries.next()) {
        let mut e = e.ctx("reading the layer")?;
        let p = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        u.entry(&mut e).ctx(&p)?;
        // What the member did not use is read now, so that moving to the next
        // member reads headers only (and is bounded).
        io::copy(&mut e, &mut io::sink()).ctx(&p)?;
    }
    u.finish_dirs()?;
    Ok(u.stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths() {
        assert_eq!(components(b"./etc/passwd").unwrap(), vec![OsString::from("etc"), OsString::from("passwd")]);
        assert!(components(b"/etc/passwd").is_none());
        assert!(components(b"a/../../b").is_none());
        assert!(components(b"./").unwrap().is_empty());
    }

    #[test]
    fn xattr_allow_list() {
        for ok in ["user.mime", "user.overlayx", "security.capability", "system.posix_acl_access"] {
            assert!(xattr_allowed(ok.as_bytes()), "{ok}");
        }
        for no in ["trusted.overlay.opaque", "trusted.foo", "user.overlay.opaque", "user.containers.override_stat"] {
            assert!(!xattr_allowed(no.as_bytes()), "{no}");
        }
        assert!(!xattr_allowed(b"security.selinux") && !xattr_allowed(b"user.fuseoverlayfs.opaque"));
    }
}
