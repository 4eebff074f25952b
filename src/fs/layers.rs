//! The layer stack: upper, lowers and the work directory, each held open by fd.
//!
//! Validation of the command line's directories lives here: every check runs
//! before anything is mounted and fails with a one-line message.

use crate::fs::options::Options;
use crate::fs::real::{FdCache, Real};
use crate::sys::at;
use crate::sys::tree::{remove_contents, strip_os};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A descriptor shared by inodes and handles (closing when the last user drops it).
pub type Fd = Arc<OwnedFd>;

/// One layer directory.
#[derive(Debug)]
pub struct Layer {
    pub path: PathBuf,
    /// The layer's root directory (always open).
    pub root: Real,
    pub dev: u64,
    /// Index of this layer's filesystem (high bits of st_ino when layers span filesystems).
    pub fs_index: u64,
}

/// The stack. `layers[0]` is the upper when there is one; the rest are lowers, top first.
#[derive(Debug)]
pub struct Layers {
    pub layers: Vec<Layer>,
    pub has_upper: bool,
    /// `workdir/work`: staging area for copy-up, whiteouts and atomic replacement.
    pub work: Option<Fd>,
    /// Private xattr namespace: `trusted.overlay.` or `user.overlay.`.
    pub xattr_prefix: &'static str,
    /// Shift applied to fs_index when composing inode numbers (0 = all on one fs).
    pub ino_shift: u32,
    /// Descriptors kept open for real objects (see `real.rs`).
    pub cache: Arc<FdCache>,
    /// The daemon runs as root (else: userxattr, owners kept in xattrs).
    pub root_user: bool,
    /// The work dir itself, held (with the upper root) for its flock.
    pub workdir_lock: Option<OwnedFd>,
    /// Follow directories' redirect records (`redirect_dir=` not `nofollow`).
    pub follow_redirects: bool,
    /// Follow metacopy files to their data (`metacopy=on`); without it a
    /// metacopy file is refused at lookup, as the kernel refuses it.
    pub metacopy: bool,
    /// Lower directories' names, read once (see `names.rs`).
    pub names: crate::fs::names::NameIndex,
    /// The inode index (`index=on`, see `index.rs`).
    pub index: Option<crate::fs::index::Index>,
    /// The upper filesystem answered a reflink with EOPNOTSUPP: copy-ups no
    /// longer try one (see `copy_up::copy_data`).
    pub no_reflink: std::sync::atomic::AtomicBool,
}

fn open_dir(p: &Path) -> io::Result<OwnedFd> {
    at::openat(libc::AT_FDCWD, p.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

fn check_dir(what: &str, p: &Path) -> Result<(PathBuf, OwnedFd, at::Stat), String> {
    let canon = p.canonicalize().map_err(|e| format!("{what} {}: {}", p.display(), strip_os(&e)))?;
    let fd = open_dir(&canon).map_err(|e| format!("{what} {}: {}", p.display(), strip_os(&e)))?;
    let st = at::fstat(fd.as_raw_fd()).map_err(|e| format!("{what} {}: {e}", p.display()))?;
    Ok((canon, fd, st))
}

fn inside(a: &Path, b: &Path) -> bool {
    a.starts_with(b)
}

impl Layers {
    /// Validate and open every directory named by the options.
    pub fn open(opts: &Options, mountpoint: &Path) -> Result<Layers, String> {
        if opts.nfs_export {
            return Err("nfs_export=on is not supported: the mount's file handles cannot be exported".into());
        }
        let mut layers = Vec::new();
        // The daemon raises its soft limit to the hard one before serving.
        let cache = FdCache::new(FdCache::cap_for_limit(crate::sys::nofile_limit().1));
        let mut devs: Vec<u64> = Vec::new();
        let mut fs_index = |dev: u64| -> u64 {
            match devs.iter().position(|d| *d == dev) {
                Some(i) => i as u64,
                None => {
                    devs.push(dev);
                    (devs.len() - 1) as u64
                }
            }
        };
        let (mnt, _, _) = check_dir("mountpoint", mountpoint)?;
        let mut work = None;
        let mut workdir_lock = None;
        let has_upper = opts.upperdir.is_some();
        if let (Some(u), Some(w)) = (&opts.upperdir, &opts.workdir) {
            let (upath, ufd, ust) = check_dir("upperdir", u)?;
            let (wpath, wfd, wst) = check_dir("workdir", w)?;
            if ust.st_dev != wst.st_dev {
                return Err(format!(
                    "workdir {} and upperdir {} must be on the same filesystem",
                    w.display(),
                    u.display()
                ));
            }
            if inside(&upath, &wpath) || inside(&wpath, &upath) {
                return Err("upperdir and workdir must be separate subtrees".into());
            }
            // One mount per upper and work dir: a second one would empty the
            // first one's staged copy-ups. The locks live as long as the
            // descriptors (the daemon's whole life; fork keeps them).
            // A daemon whose mount just ended may still be on its way out:
            // give it a moment before calling the directory busy.
            for (what, d, fd) in [("upperdir", u, &ufd), ("workdir", w, &wfd)] {
                let mut tries = 0;
                loop {
                    match at::try_flock(fd.as_raw_fd(), true) {
                        Ok(true) => break,
                        Ok(false) if tries < 100 => {
                            tries += 1;
                            std::thread::sleep(std::time::Duration::from_millis(20));
                        }
                        Ok(false) => return Err(format!("{what} {} is in use by another mount", d.display())),
                        Err(e) => return Err(format!("{what} {}: cannot lock: {}", d.display(), strip_os(&e))),
                    }
                }
            }
            work = Some(Arc::new(
                prepare_workdir(&wfd)
                    .map_err(|e| format!("workdir {}: cannot prepare work area: {}", w.display(), strip_os(&e)))?,
            ));
            workdir_lock = Some(wfd);
            let root = Real::fixed(Arc::new(ufd), &cache).map_err(|e| format!("upperdir {}: {e}", u.display()))?;
            layers.push(Layer { path: upath, root, dev: ust.st_dev, fs_index: fs_index(ust.st_dev) });
        }
        for l in &opts.lowerdirs {
            let (lpath, lfd, lst) = check_dir("lowerdir", l)?;
            let root = Real::fixed(Arc::new(lfd), &cache).map_err(|e| format!("lowerdir {}: {e}", l.display()))?;
            layers.push(Layer { path: lpath, root, dev: lst.st_dev, fs_index: fs_index(lst.st_dev) });
        }
        if has_upper {
            let up = &layers[0].path;
            for l in &layers[1..] {
                if inside(up, &l.path) || inside(&l.path, up) {
                    return Err(format!("upperdir {} and lowerdir {} overlap", up.display(), l.path.display()));
                }
            }
        }
        if let Some(w) = &opts.workdir {
            let wc = w.canonicalize().unwrap_or_else(|_| w.clone());
            for l in &layers[usize::from(has_upper)..] {
                if inside(&wc, &l.path) || inside(&l.path, &wc) {
                    return Err(format!("workdir {} and lowerdir {} overlap", w.display(), l.path.display()));
                }
            }
            if inside(&mnt, &wc) {
                return Err(format!("mountpoint {} is inside workdir", mountpoint.display()));
            }
        }
        for l in &layers {
            if inside(&mnt, &l.path) {
                return Err(format!("mountpoint {} is inside layer {}", mountpoint.display(), l.path.display()));
            }
        }
        let root_user = crate::sys::geteuid() == 0;
        let xattr_prefix = if opts.userxattr || !root_user { "user.overlay." } else { "trusted.overlay." };
        let ino_shift = if devs.len() > 1 { 48 } else { 0 };
        let mut l = Layers {
            layers,
            has_upper,
            work,
            xattr_prefix,
            ino_shift,
            cache,
            root_user,
            workdir_lock,
            follow_redirects: opts.redirect_dir.follows(),
            metacopy: opts.metacopy,
            names: crate::fs::names::NameIndex::new(opts.lowerdirs.len() >= 4),
            index: None,
            no_reflink: Default::default(),
        };
        if let (true, Some(wfd), Some(w)) = (opts.index, &l.workdir_lock, &opts.workdir) {
            l.index = Some(crate::fs::index::setup(&l, wfd.as_raw_fd(), w)?);
        }
        Ok(l)
    }

    pub fn upper(&self) -> Option<&Layer> {
        if self.has_upper {
            self.layers.first()
        } else {
            None
        }
    }

    /// Index of the first lower layer in `layers`.
    pub fn first_lower(&self) -> usize {
        usize::from(self.has_upper)
    }

    pub fn is_upper(&self, idx: usize) -> bool {
        self.has_upper && idx == 0
    }

    pub fn work_fd(&self) -> io::Result<RawFd> {
        self.work.as_ref().map(|w| w.as_raw_fd()).ok_or_else(|| io::Error::from_raw_os_error(libc::EROFS))
    }

    /// The inode number shown for a real object: its ino, tagged with its
    /// filesystem's index when the layers span several filesystems.
    pub fn ino_for(&self, dev: u64, ino: u64) -> u64 {
        let idx = self.layers.iter().find(|l| l.dev == dev).map_or(0, |l| l.fs_index);
        let v = if self.ino_shift == 0 { ino } else { (idx << self.ino_shift) | (ino & ((1 << self.ino_shift) - 1)) };
        // nodeid 1 is the root; never hand it to another object.
        if v <= 1 {
            v | (1 << 62)
        } else {
            v
        }
    }

    /// Full name of a private xattr (`trusted.overlay.opaque`, ...).
    pub fn xattr_name(&self, suffix: &str) -> std::ffi::OsString {
        format!("{}{}", self.xattr_prefix, suffix).into()
    }

    /// The xattr namespaces the union owns. Names in them are never shown or
    /// set as they are: a name given through the mount is stored with
    /// `overlay.` inserted after the prefix and shown back without it (the
    /// kernel's escaping for its own prefix, 6.7+), so nobody can change the
    /// union's structure through the mount. They are: `trusted.overlay.`
    /// (the kernel's, always), this mount's prefix (`user.overlay.` with
    /// userxattr or when not root) and `user.fuseoverlayfs.` (fuse-overlayfs's
    /// opaque marker, which the union reads).
    fn private_prefixes(&self) -> [&[u8]; 3] {
        [TRUSTED_PREFIX, self.xattr_prefix.as_bytes(), FUSE_OVERLAYFS_PREFIX]
    }

    fn private_prefix(&self, name: &[u8]) -> Option<&[u8]> {
        self.private_prefixes().into_iter().find(|p| name.starts_with(p))
    }

    /// A private xattr as stored in a layer (escaped user data excluded).
    pub fn is_private(&self, name: &OsStr) -> bool {
        let b = name.as_bytes();
        match self.private_prefix(b) {
            Some(p) => !b[p.len()..].starts_with(b"overlay."),
            None => false,
        }
    }

    /// The stored name for a name given through the mount.
    pub fn escape(&self, name: &OsStr) -> std::ffi::OsString {
        let b = name.as_bytes();
        match self.private_prefix(b) {
            Some(p) => {
                let mut v = p.to_vec();
                v.extend_from_slice(b"overlay.");
                v.extend_from_slice(&b[p.len()..]);
                std::ffi::OsString::from_vec(v)
            }
            None => name.to_os_string(),
        }
    }

    /// The name shown for a stored name (None: private, hidden).
    pub fn unescape(&self, stored: &[u8]) -> Option<Vec<u8>> {
        match self.private_prefix(stored) {
            Some(p) => {
                let rest = stored[p.len()..].strip_prefix(b"overlay.")?;
                let mut v = p.to_vec();
                v.extend_from_slice(rest);
                Some(v)
            }
            None => Some(stored.to_vec()),
        }
    }

    /// The opaque-directory xattrs this mount reads (value `y`; `x` on a
    /// lower directory means "holds xattr whiteouts", not opaque).
    pub fn opaque_names(&self) -> [std::ffi::OsString; 2] {
        [
            self.xattr_name("opaque"),
            format!("{}opaque", std::str::from_utf8(FUSE_OVERLAYFS_PREFIX).unwrap_or("")).into(),
        ]
    }
}

/// The kernel overlay's xattr namespace as root.
pub const TRUSTED_PREFIX: &[u8] = b"trusted.overlay.";
/// fuse-overlayfs's namespace for unprivileged markers.
pub const FUSE_OVERLAYFS_PREFIX: &[u8] = b"user.fuseoverlayfs.";

/// Create `workdir/work` and remove anything a crash left in it.
fn prepare_workdir(wfd: &OwnedFd) -> io::Result<OwnedFd> {
    let name = OsStr::new("work");
    match at::mkdirat(wfd.as_raw_fd(), name, 0o700) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(e),
    }
    let work = at::openat(wfd.as_raw_fd(), name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)?;
    remove_contents(work.as_raw_fd())?;
    Ok(work)
}
