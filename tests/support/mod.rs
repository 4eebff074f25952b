//! Shared helpers for the integration tests: a layer layout in its own temp
//! dir and mount guards that always unmount (and reap the daemon) in Drop,
//! also when the test panics.
#![allow(dead_code)]

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_unionfs");

/// lower dirs (top first), upper, work, mountpoint, all in one temp dir.
pub struct Layout {
    pub dir: tempfile::TempDir,
    pub lowers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub mnt: PathBuf,
}

impl Layout {
    pub fn new(nlowers: usize) -> Layout {
        let dir = tempfile::Builder::new().prefix("unionfs-test.").tempdir_in("/tmp").expect("temp dir");
        let p = |n: &str| {
            let p = dir.path().join(n);
            fs::create_dir_all(&p).expect("mkdir");
            p
        };
        let lowers = (0..nlowers).map(|i| p(&format!("lower{i}"))).collect();
        Layout { upper: p("upper"), work: p("work"), mnt: p("mnt"), lowers, dir }
    }

    pub fn lower(&self, i: usize, rel: &str) -> PathBuf {
        self.lowers[i].join(rel)
    }

    /// Write a file into lower layer `i`, making parents.
    pub fn lower_file(&self, i: usize, rel: &str, data: &str) -> PathBuf {
        let p = self.lower(i, rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, data).expect("write lower file");
        p
    }

    pub fn m(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    pub fn lowerdir(&self) -> String {
        self.lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")
    }

    pub fn opts(&self) -> String {
        format!("lowerdir={},upperdir={},workdir={}", self.lowerdir(), self.upper.display(), self.work.display())
    }

    /// Mount unionfs in the foreground (as a child we own).
    pub fn mount(&self) -> UnionMount {
        UnionMount::start(&self.opts(), &self.mnt, &[])
    }

    pub fn mount_with(&self, opts: &str, extra_args: &[&str]) -> UnionMount {
        UnionMount::start(opts, &self.mnt, extra_args)
    }
}

pub fn is_mounted(mnt: &Path) -> bool {
    let want = mnt.canonicalize().unwrap_or_else(|_| mnt.to_path_buf());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| Path::new(&m.replace("\\040", " ")) == want)
}

pub fn umount(mnt: &Path) -> bool {
    let c = CString::new(mnt.as_os_str().as_bytes()).expect("path");
    // SAFETY: valid C string.
    unsafe { libc::umount(c.as_ptr()) == 0 }
}

pub fn lazy_umount(mnt: &Path) {
    let c = CString::new(mnt.as_os_str().as_bytes()).expect("path");
    // SAFETY: valid C string.
    unsafe {
        libc::umount2(c.as_ptr(), libc::MNT_DETACH);
    }
}

/// Unmount, retrying while busy, then lazily as a last resort.
pub fn force_umount(mnt: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_mounted(mnt) {
        if umount(mnt) {
            return;
        }
        if Instant::now() > deadline {
            lazy_umount(mnt);
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `unionfs -f` and its mount; unmounted and reaped on drop.
pub struct UnionMount {
    pub child: Option<Child>,
    pub mnt: PathBuf,
}

impl UnionMount {
    pub fn start(opts: &str, mnt: &Path, extra: &[&str]) -> UnionMount {
        UnionMount::spawn(Command::new(BIN), extra, opts, mnt)
    }

    /// `cmd -f EXTRA... -o OPTS MNT`, waited for until mounted.
    fn spawn(mut cmd: Command, extra: &[&str], opts: &str, mnt: &Path) -> UnionMount {
        let mut child = cmd
            .arg("-f")
            .args(extra)
            .arg("-o")
            .arg(opts)
            .arg(mnt)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn unionfs");
        wait_mounted(&mut child, mnt);
        UnionMount { child: Some(child), mnt: mnt.to_path_buf() }
    }

    /// Unmount and wait for the daemon; returns its exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        force_umount(&self.mnt);
        let mut child = self.child.take().expect("child");
        wait_or_kill(&mut child)
    }
}

pub fn wait_or_kill(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for UnionMount {
    fn drop(&mut self) {
        force_umount(&self.mnt);
        if let Some(mut c) = self.child.take() {
            wait_or_kill(&mut c);
        }
    }
}

/// A kernel overlay mount, unmounted on drop.
pub struct KernelMount {
    pub mnt: PathBuf,
}

impl KernelMount {
    pub fn new(lowerdir: &str, upper: &Path, work: &Path, mnt: &Path) -> KernelMount {
        let st = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!("lowerdir={lowerdir},upperdir={},workdir={}", upper.display(), work.display()))
            .arg(mnt)
            .status()
            .expect("mount");
        assert!(st.success(), "kernel overlay mount failed");
        KernelMount { mnt: mnt.to_path_buf() }
    }
}

impl Drop for KernelMount {
    fn drop(&mut self) {
        force_umount(&self.mnt);
    }
}

/// The errno of a failed io::Result (panics on success).
pub fn errno<T: std::fmt::Debug>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.raw_os_error().expect("os error"),
    }
}

pub fn stat(p: &Path) -> libc::stat {
    let c = CString::new(p.as_os_str().as_bytes()).expect("path");
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid pointers.
    let r = unsafe { libc::lstat(c.as_ptr(), st.as_mut_ptr()) };
    assert_eq!(r, 0, "lstat {}: {}", p.display(), std::io::Error::last_os_error());
    // SAFETY: lstat succeeded.
    unsafe { st.assume_init() }
}

pub fn mknod_whiteout(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).expect("path");
    // SAFETY: valid C string.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) };
    assert_eq!(r, 0, "mknod {}", p.display());
}

pub fn getxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let out = Command::new("getfattr").args(["--only-values", "-h", "-n", name]).arg(p).output().ok()?;
    out.status.success().then_some(out.stdout)
}

pub fn setxattr(p: &Path, name: &str, value: &str) -> bool {
    Command::new("setfattr").args(["-h", "-n", name, "-v", value]).arg(p).status().map(|s| s.success()).unwrap_or(false)
}

/// Run a command as uid/gid 65534 (nobody); returns whether it succeeded.
pub fn as_nobody(cmd: &str) -> bool {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", cmd])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

// ---- Helpers added for tests/hardening.rs ----

impl KernelMount {
    /// A kernel overlay mount with the complete option string `opts`.
    pub fn with_opts(opts: &str, mnt: &Path) -> KernelMount {
        let out =
            Command::new("mount").args(["-t", "overlay", "overlay", "-o", opts]).arg(mnt).output().expect("mount");
        assert!(
            out.status.success(),
            "kernel overlay mount -o {opts} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        KernelMount { mnt: mnt.to_path_buf() }
    }
}

/// The kernel overlay's side of a comparison: the same lower dirs as a
/// [`Layout`], its own upper, work and mountpoint.
pub struct Twin {
    pub dir: tempfile::TempDir,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub mnt: PathBuf,
}

impl Layout {
    pub fn twin(&self) -> Twin {
        let dir = tempfile::Builder::new().prefix("unionfs-kernel.").tempdir_in("/tmp").expect("temp dir");
        let p = |n: &str| {
            let p = dir.path().join(n);
            fs::create_dir_all(&p).expect("mkdir");
            p
        };
        Twin { upper: p("upper"), work: p("work"), mnt: p("mnt"), dir }
    }
}

impl Twin {
    pub fn m(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Mount the kernel overlay over `l`'s lowers and this upper.
    pub fn kernel(&self, l: &Layout) -> KernelMount {
        KernelMount::new(&l.lowerdir(), &self.upper, &self.work, &self.mnt)
    }
}

/// Wait until `mnt` is mounted by `child` (panics with its stderr if it exits first).
fn wait_mounted(child: &mut Child, mnt: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_mounted(mnt) {
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("unionfs exited ({st}) before mounting: {err}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unionfs did not mount {} within 10s", mnt.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl UnionMount {
    /// `PREFIX... unionfs -f -o OPTS MNT`; the prefix must exec its command
    /// (prlimit, setpriv), so the child's pid is the daemon's.
    pub fn start_with_prefix(prefix: &[&str], opts: &str, mnt: &Path) -> UnionMount {
        let mut cmd = Command::new(prefix[0]);
        cmd.args(&prefix[1..]).arg(BIN);
        UnionMount::spawn(cmd, &[], opts, mnt)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }
}

/// One run of `unionfs -o OPTS MNT` in daemon mode; whatever it mounted is
/// unmounted on drop (the daemon then exits by itself).
pub struct MountAttempt {
    pub status: std::process::ExitStatus,
    pub stderr: String,
    pub mnt: PathBuf,
}

impl MountAttempt {
    pub fn run(opts: &str, mnt: &Path) -> MountAttempt {
        // stderr to a file: a daemon that did mount keeps no pipe of ours open.
        let errf = tempfile::NamedTempFile::new_in("/tmp").expect("temp file");
        let mut child = Command::new(BIN)
            .arg("-o")
            .arg(opts)
            .arg(mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errf.reopen().expect("reopen"))
            .spawn()
            .expect("spawn unionfs");
        let status = wait_or_kill(&mut child);
        let stderr = fs::read_to_string(errf.path()).unwrap_or_default();
        MountAttempt { status, stderr, mnt: mnt.to_path_buf() }
    }

    pub fn mounted(&self) -> bool {
        is_mounted(&self.mnt)
    }
}

impl Drop for MountAttempt {
    fn drop(&mut self) {
        force_umount(&self.mnt);
    }
}

/// Run `sh -c CMD` as uid/gid; returns its output.
pub fn run_as(uid: u32, gid: u32, cmd: &str) -> std::process::Output {
    Command::new("setpriv")
        .args([&format!("--reuid={uid}"), &format!("--regid={gid}"), "--clear-groups", "sh", "-c", cmd])
        .output()
        .expect("setpriv")
}

/// The dedicated unprivileged user `unionfs-test` (created if absent): (uid, gid).
/// Also makes /dev/fuse usable by users (mode 0666, the distributions' default)
/// when this machine has it root-only.
pub fn test_user() -> (u32, u32) {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "unionfs-test"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok().filter(|_| out.status.success())
    };
    if id("-u").is_none() {
        let _ = Command::new("useradd").args(["-M", "-s", "/usr/sbin/nologin", "unionfs-test"]).status();
    }
    use std::os::unix::fs::PermissionsExt;
    if let Ok(md) = fs::metadata("/dev/fuse") {
        if md.permissions().mode() & 0o006 != 0o006 {
            eprintln!("note: /dev/fuse is not usable by users; setting mode 0666");
            let _ = fs::set_permissions("/dev/fuse", fs::Permissions::from_mode(0o666));
        }
    }
    (id("-u").expect("uid of unionfs-test"), id("-g").expect("gid of unionfs-test"))
}

/// An unprivileged user's mount; unmounted with `fusermount3 -u` as that
/// user, then by force (the inner mount's own guard).
pub struct UserMount {
    pub inner: UnionMount,
    pub uid: u32,
    pub gid: u32,
}

impl Drop for UserMount {
    fn drop(&mut self) {
        let _ = run_as(self.uid, self.gid, &format!("fusermount3 -u {}", self.inner.mnt.display()));
    }
}

/// `PREFIX... unionfs -d -o OPTS MNT` with its debug log in a file;
/// unmounted and reaped on drop (also when the test panics).
pub struct Daemon {
    child: Option<Child>,
    pub mnt: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(prefix: &[&str], opts: &str, mnt: &Path, log: &Path) -> Daemon {
        let f = fs::File::create(log).expect("log file");
        fs::set_permissions(log, fs::Permissions::from_mode(0o666)).expect("chmod log");
        let mut cmd = match prefix.split_first() {
            Some((p, rest)) => {
                let mut c = Command::new(p);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = cmd
            .arg("-d")
            .arg("-o")
            .arg(opts)
            .arg(mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("spawn unionfs");
        let mut d = Daemon { child: Some(child), mnt: mnt.to_path_buf(), log: log.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !is_mounted(mnt) {
            let exited = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!("unionfs did not mount {}: {}", mnt.display(), fs::read_to_string(log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        d
    }

    /// READ and WRITE requests the daemon served so far.
    pub fn data_requests(&self) -> (usize, usize) {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        (log.matches(" READ fh").count(), log.matches(" WRITE fh").count())
    }

    pub fn log_has(&self, s: &str) -> bool {
        self.log_text().contains(s)
    }

    /// The debug log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        force_umount(&self.mnt);
        if let Some(mut c) = self.child.take() {
            wait_or_kill(&mut c);
        }
    }
}
