//! The layer stack: upper, lowers and the work directory, each held open by fd.
//!
//! Validation of the command line's directories lives here: every check runs
//! before anything is mounted and fails with a one-line message.

use crate::fs::options::Options;
use crate::sys::at;
use crate::sys::tree::{remove_contents, strip_os};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A descriptor shared by inodes and handles (closing when the last user drops it).
pub type Fd = Arc<OwnedFd>;

/// One layer directory.
#[derive(Debug)]
pub struct Layer {
    pub path: PathBuf,
    pub root: Fd,
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
        let mut layers = Vec::new();
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
            work = Some(Arc::new(
                prepare_workdir(&wfd)
                    .map_err(|e| format!("workdir {}: cannot prepare work area: {}", w.display(), strip_os(&e)))?,
            ));
            layers.push(Layer { path: upath, root: Arc::new(ufd), dev: ust.st_dev, fs_index: fs_index(ust.st_dev) });
        }
        for l in &opts.lowerdirs {
            let (lpath, lfd, lst) = check_dir("lowerdir", l)?;
            layers.push(Layer { path: lpath, root: Arc::new(lfd), dev: lst.st_dev, fs_index: fs_index(lst.st_dev) });
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
        Ok(Layers { layers, has_upper, work, xattr_prefix, ino_shift })
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
}

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
