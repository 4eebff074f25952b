//! Shared by the end-to-end tests: layouts in temp dirs, and guards that
//! undo every change to the system (mounts, /sbin links, /etc/fstab) in Drop,
//! also when a test fails. Tests touching system paths hold [`system_lock`].
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

pub const HELPER: &str = env!("CARGO_BIN_EXE_mount-unionfs");
pub const USER: &str = "unionfs-test";

/// unionfs, built next to the helper (`cargo build --workspace`).
pub fn unionfs_bin() -> PathBuf {
    let p = Path::new(HELPER).with_file_name("unionfs");
    assert!(p.exists(), "{} is missing: run `cargo build --workspace` first", p.display());
    p
}

pub fn is_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) == 0
}

/// Tests that change system paths run one at a time.
pub fn system_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A symlink at `path`, whatever was there put back on drop.
pub struct Link {
    path: PathBuf,
    backup: Option<PathBuf>,
}

impl Link {
    pub fn new(path: &str, target: &Path) -> Link {
        let path = PathBuf::from(path);
        let backup = path.with_extension("unionfs-test-backup");
        let backup = if fs::symlink_metadata(&path).is_ok() {
            fs::rename(&path, &backup).expect("move the existing file aside");
            Some(backup)
        } else {
            None
        };
        let link = Link { path, backup };
        symlink(target, &link.path).expect("symlink");
        link
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        if let Some(b) = &self.backup {
            let _ = fs::rename(b, &self.path);
        }
    }
}

/// `/sbin/mount.unionfs` -> the built helper, where mount(8) looks.
pub fn install_helper() -> Link {
    Link::new("/sbin/mount.unionfs", Path::new(HELPER))
}

/// Lines appended to /etc/fstab (mount(8) reads only it for user mounts),
/// the file restored on drop.
pub struct EtcFstab {
    saved: Vec<u8>,
}

impl EtcFstab {
    pub fn append(lines: &str) -> EtcFstab {
        let saved = fs::read("/etc/fstab").unwrap_or_default();
        let guard = EtcFstab { saved };
        let mut new = guard.saved.clone();
        if !new.is_empty() && !new.ends_with(b"\n") {
            new.push(b'\n');
        }
        new.extend_from_slice(lines.as_bytes());
        fs::write("/etc/fstab", new).expect("write /etc/fstab");
        guard
    }
}

impl Drop for EtcFstab {
    fn drop(&mut self) {
        let _ = fs::write("/etc/fstab", &self.saved);
    }
}

/// How many mounts sit on `dir`.
pub fn mount_count(dir: &Path) -> usize {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m) == dir)
        .count()
}

/// `findmnt` columns for `dir` (empty when not mounted).
pub fn findmnt(dir: &Path, cols: &str) -> String {
    text(&run(Command::new("findmnt").args(["-n", "-o", cols, "--mountpoint"]).arg(dir)).stdout).trim().to_string()
}

/// Two lowers, upper, work and a mountpoint in a temp dir; unmounts on drop.
pub struct Layout {
    pub dir: tempfile::TempDir,
    pub l1: PathBuf,
    pub l2: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub mnt: PathBuf,
}

impl Layout {
    pub fn new() -> Layout {
        let dir = tempfile::Builder::new().prefix("mount-helper-test.").tempdir_in("/tmp").expect("temp dir");
        let p = |n: &str| {
            let p = dir.path().join(n);
            fs::create_dir(&p).expect("mkdir");
            p
        };
        let l = Layout { l1: p("l1"), l2: p("l2"), upper: p("upper"), work: p("work"), mnt: p("mnt"), dir };
        fs::write(l.l1.join("top"), "from l1\n").expect("write");
        fs::write(l.l2.join("bottom"), "from l2\n").expect("write");
        fs::write(l.l2.join("top"), "hidden\n").expect("write");
        l
    }

    /// Owned by `unionfs-test`, reachable by it.
    pub fn for_user() -> Layout {
        let l = Layout::new();
        let (uid, gid) = test_user();
        let _ = fs::set_permissions(l.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755));
        for e in walk(l.dir.path()) {
            std::os::unix::fs::lchown(&e, Some(uid), Some(gid)).expect("chown");
        }
        l
    }

    pub fn opts(&self) -> String {
        format!(
            "lowerdir={}:{},upperdir={},workdir={}",
            self.l1.display(),
            self.l2.display(),
            self.upper.display(),
            self.work.display()
        )
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Layout {
    fn drop(&mut self) {
        for _ in 0..50 {
            if mount_count(&self.mnt) == 0 {
                return;
            }
            let _ = run(Command::new("umount").arg(&self.mnt));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = run(Command::new("umount").arg("-l").arg(&self.mnt));
    }
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut v = vec![p.to_path_buf()];
    if fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        for e in fs::read_dir(p).expect("read_dir").flatten() {
            v.extend(walk(&e.path()));
        }
    }
    v
}

/// (uid, gid) of `unionfs-test`, created if absent.
pub fn test_user() -> (u32, u32) {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, USER]).output().ok()?;
        text(&out.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        let _ = Command::new("useradd").args(["-M", "-s", "/usr/sbin/nologin", USER]).status();
    }
    (id("-u").expect("uid of unionfs-test"), id("-g").expect("gid of unionfs-test"))
}
