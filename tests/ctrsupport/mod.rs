//! Shared by tests/containers.rs and tests/volumes.rs: a store in a temp dir
//! whose guard unmounts every container (and detaches anything left under
//! it) on drop, also when the test panics; images from the fixtures.
#![allow(dead_code)]

use crate::fixtures::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct Env {
    pub t: tempfile::TempDir,
    pub ctl: Ctl,
}

impl Env {
    pub fn new() -> Env {
        let t = tempfile::Builder::new().prefix("unionctl-ctr.").tempdir_in("/tmp").unwrap();
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let ctl = Ctl::new(t.path());
        Env { t, ctl }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.t.path().join(p)
    }

    /// Load the rich fixture image (whiteout + opaque dir, Volumes /data) as `example/rich:1`.
    pub fn rich(&self) -> Built {
        let (b, _) = oci_layout(&self.path("rich-oci"), &rich_layers(), Comp::Gzip, "example/rich:1");
        self.ctl.ok(&["image", "load", "-i", &self.path("rich-oci").display().to_string()]);
        b
    }

    /// Load an image of `layers` under `tag` (a full name).
    pub fn image(&self, dir: &str, layers: &[Vec<u8>], tag: &str) -> Built {
        let (b, _) = oci_layout(&self.path(dir), layers, Comp::None, tag);
        self.ctl.ok(&["image", "load", "-i", &self.path(dir).display().to_string()]);
        b
    }

    pub fn ok(&self, args: &[&str]) -> String {
        self.ctl.ok(args)
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.ctl.run(args)
    }

    /// `args` must fail with exit status `code` and one line on stderr containing `want`.
    pub fn fails(&self, args: &[&str], want: &str, code: i32) -> String {
        let o = self.run(args);
        assert!(!o.ok, "unionctl {args:?} succeeded: {}", o.stdout);
        assert!(o.stderr.starts_with("unionctl: error: "), "{args:?}: {}", o.stderr);
        assert_eq!(o.stderr.trim_end().lines().count(), 1, "{args:?}: not one line: {}", o.stderr);
        assert!(o.stderr.to_lowercase().contains(&want.to_lowercase()), "{args:?}: expected {want:?} in {}", o.stderr);
        assert_eq!(o.code, Some(code), "{args:?}: exit status ({})", o.stderr);
        o.stderr
    }

    pub fn create(&self, args: &[&str]) -> String {
        let mut a = vec!["create"];
        a.extend_from_slice(args);
        self.ok(&a).trim().to_string()
    }

    pub fn mount(&self, c: &str) -> PathBuf {
        PathBuf::from(self.ok(&["mount", c]).trim())
    }

    pub fn inspect(&self, c: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", c])).unwrap();
        v[0].clone()
    }

    pub fn upper(&self, c: &str) -> PathBuf {
        PathBuf::from(self.inspect(c)["GraphDriver"]["Data"]["UpperDir"].as_str().unwrap())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.ctl.run(&["unmount", "--all"]);
        // Whatever a failed test left mounted below the temp dir.
        let root = self.t.path().canonicalize().unwrap_or_else(|_| self.t.path().to_path_buf());
        detach_all_under(&root);
        for pid in daemons_under(&root) {
            // SAFETY: a plain signal to a daemon this test started.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
}

/// Mount points at or below `p` (parents first).
pub fn mounts_under(p: &Path) -> Vec<PathBuf> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(p))
        .collect()
}

/// The fstype mounted at exactly `p`.
pub fn fstype(p: &Path) -> Option<String> {
    fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let dash = f.iter().position(|x| *x == "-")?;
        (Path::new(f[4]) == p).then(|| f[dash + 1].to_string())
    })
}

fn cmdline(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn live(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| !s[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}

/// Live unionfs daemons whose mount point is `mnt`.
pub fn daemons_of(mnt: &Path) -> Vec<i32> {
    all_unionfs()
        .into_iter()
        .filter(|(_, args)| args.last().map(PathBuf::from).as_deref() == Some(mnt))
        .map(|(p, _)| p)
        .collect()
}

/// Live unionfs daemons with a mount point below `dir`.
pub fn daemons_under(dir: &Path) -> Vec<i32> {
    all_unionfs()
        .into_iter()
        .filter(|(_, args)| args.last().is_some_and(|a| Path::new(a).starts_with(dir)))
        .map(|(p, _)| p)
        .collect()
}

fn all_unionfs() -> Vec<(i32, Vec<String>)> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim() == "unionfs").unwrap_or(false) && live(pid)
        {
            out.push((pid, cmdline(pid)));
        }
    }
    out
}

/// Wait up to 5 s for `f`.
pub fn eventually(what: &str, f: impl Fn() -> bool) {
    let t0 = std::time::Instant::now();
    while !f() {
        assert!(t0.elapsed() < std::time::Duration::from_secs(5), "timed out waiting: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sorted relative paths of a tree with type letters (`f`, `d`, `l`, ...).
pub fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, p: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = fs::read_dir(p).unwrap().flatten().map(|e| e.path()).collect();
        names.sort();
        for n in names {
            let md = n.symlink_metadata().unwrap();
            let t = if md.is_dir() {
                "d"
            } else if md.file_type().is_symlink() {
                "l"
            } else if md.is_file() {
                "f"
            } else {
                "o"
            };
            out.push(format!("{t} {}", n.strip_prefix(root).unwrap().display()));
            if md.is_dir() {
                walk(root, &n, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Lazily unmount everything at or below `p`, deepest first.
pub fn detach_all_under(p: &Path) {
    let root = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    for _ in 0..3 {
        let left = mounts_under(&root);
        if left.is_empty() {
            break;
        }
        for m in left.iter().rev() {
            let c = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: valid C string.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}
