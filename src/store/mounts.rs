//! Mounting containers: one `unionfs` daemon per mounted container, then
//! its volume, bind and tmpfs mounts under the merged root; counted
//! references; everything undone in reverse by the last unmount.
//!
//! State lives in `containers/<id>/mount.json` (count, the daemon's pid and
//! start time, the boot it belongs to, what was mounted where), changed only
//! under the container's lock, so concurrent `unionctl mount`s of one
//! container start one daemon and all print its path. A state whose daemon
//! died, whose mount is gone or which predates a reboot is cleaned by the
//! next mount or unmount before it carries on.
//!
//! Mount destinations are resolved inside the merged root
//! ([`crate::sys::resolve`]): a symlink in the image never leads a mount
//! onto the host. As root the mounts are made in the host's mount
//! namespace (the merged mount is made private first); an unprivileged user
//! gets them in a user+mount namespace held by a small process (see
//! [`crate::store::userns`]), which `unionctl unshare CTR` enters.

use crate::store::containers::{Container, Kind, MountSpec};
use crate::store::error::{conflict, err, Context, Error, Result};
use crate::store::util::{read_json, write_json};
use crate::store::{volumes, Store};
use crate::sys::{at, mount, process, resolve};
use serde::{Deserialize, Serialize};
use std::ffi::OsStr;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A process we started that outlives us: pid and start time.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Proc {
    #[serde(rename = "Pid")]
    pub pid: i32,
    #[serde(rename = "Start")]
    pub start: u64,
}

impl Proc {
    pub fn alive(&self) -> bool {
        process::alive(self.pid, self.start)
    }
}

/// One mount made under the merged root.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Applied {
    #[serde(rename = "Spec")]
    pub spec: MountSpec,
    /// Where it is mounted (a host path below the merged root).
    #[serde(rename = "Target")]
    pub target: PathBuf,
}

/// containers/<id>/mount.json
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    #[serde(rename = "Count")]
    pub count: u32,
    #[serde(rename = "Daemon")]
    pub daemon: Proc,
    #[serde(rename = "BootId")]
    pub boot_id: String,
    #[serde(rename = "Merged")]
    pub merged: PathBuf,
    #[serde(rename = "Applied", default)]
    pub applied: Vec<Applied>,
    /// Rootless: the process holding the user+mount namespace with the volume mounts.
    #[serde(rename = "Namespace", default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Proc>,
}

fn state_path(store: &Store, c: &Container) -> PathBuf {
    c.dir(store).join("mount.json")
}

/// The recorded state (None when not mounted).
pub fn state(store: &Store, c: &Container) -> Option<State> {
    read_json(&state_path(store, c)).ok()
}

/// Is everything the state says still there (same boot, daemon running, mounted)?
fn live(s: &State) -> bool {
    s.boot_id == process::boot_id()
        && s.daemon.alive()
        && mount::mounted_type(&s.merged).as_deref() == Some("fuse.unionfs")
        && s.namespace.as_ref().is_none_or(Proc::alive)
}

/// The merged path when the container is mounted (and alive) now.
pub fn mounted(store: &Store, c: &Container) -> Option<(PathBuf, State)> {
    let s = state(store, c)?;
    live(&s).then(|| (s.merged.clone(), s))
}

fn ctr_lock(store: &Store, c: &Container) -> Result<crate::store::Lock> {
    store.named_lock(&format!("ctr-{}", c.id))
}

/// `lowerdir=` wants `:` and `,` escaped.
fn esc(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\").replace(':', "\\:").replace(',', "\\,")
}

/// The `unionfs` next to this executable (else the one on PATH).
pub fn unionfs_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|e| e.with_file_name("unionfs"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("unionfs"))
}

/// Start a `unionfs` daemon on `mnt` (it exits 0 once the mount is live) and
/// find the daemon it left behind.
pub fn spawn_unionfs(opts: &str, mnt: &Path) -> Result<Proc> {
    let bin = unionfs_binary();
    let out = Command::new(&bin)
        .arg("-o")
        .arg(opts)
        .arg(mnt)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error(format!("cannot run {}: {}", bin.display(), crate::sys::tree::strip_os(&e))))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        let line = msg.lines().find(|l| l.contains("error")).or_else(|| msg.lines().next()).unwrap_or("failed");
        return err(line.trim().trim_start_matches("unionfs: error: ").to_string());
    }
    let mut best: Option<Proc> = None;
    for pid in process::find_by_last_arg("unionfs", mnt.as_os_str()) {
        if let Some(start) = process::start_time(pid) {
            if best.as_ref().is_none_or(|b| start >= b.start) {
                best = Some(Proc { pid, start });
            }
        }
    }
    best.ok_or_else(|| Error(format!("the unionfs daemon of {} is not running after mounting", mnt.display())))
}

/// Unmount a FUSE mount (fusermount3 when not root); `lazy` detaches.
fn unmount_fuse(mnt: &Path, lazy: bool) -> std::io::Result<()> {
    if at::is_root() {
        return mount::umount2(mnt, if lazy { libc::MNT_DETACH } else { 0 });
    }
    let mut cmd = Command::new("fusermount3");
    cmd.arg("-u").arg("-q");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd.arg(mnt).stdin(Stdio::null()).output()?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr);
    if msg.contains("busy") {
        return Err(std::io::Error::from_raw_os_error(libc::EBUSY));
    }
    if msg.contains("not found") || msg.contains("not mounted") || msg.contains("Invalid argument") {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    Err(std::io::Error::other(msg.trim().to_string()))
}

/// Wait until a daemon has left (its locks are released with it); it gets
/// SIGTERM, then SIGKILL, when it does not.
fn wait_gone(p: &Proc, patience: Duration) {
    let t0 = Instant::now();
    let mut signalled = 0;
    while p.alive() {
        let waited = t0.elapsed();
        if waited > patience && signalled == 0 {
            let _ = process::kill(p.pid, libc::SIGTERM);
            signalled = 1;
        } else if waited > patience * 2 && signalled == 1 {
            let _ = process::kill(p.pid, libc::SIGKILL);
            signalled = 2;
        } else if waited > patience * 3 {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The unionfs options of a container's mount.
fn union_options(store: &Store, c: &Container) -> Result<String> {
    union_options_for(store, c, !at::is_root())
}

/// The unionfs options of a container's mount by a daemon that is root
/// (of the host) or not (`unprivileged`: owners recorded in xattrs).
pub fn union_options_for(store: &Store, c: &Container, unprivileged: bool) -> Result<String> {
    let img = c.image(store)?;
    let lowers = img.layer_dirs(store)?;
    if lowers.is_empty() {
        return err(format!("image {} has no layers", c.image_hex().get(..12).unwrap_or_default()));
    }
    let lower: Vec<String> = lowers.iter().map(|p| esc(p)).collect();
    let mut o =
        format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), esc(&c.upper(store)), esc(&c.work(store)));
    if unprivileged {
        o.push_str(",userxattr,xattr_permissions=2");
    }
    Ok(o)
}

/// Mount the container (or count one more reference); returns the merged path.
pub fn mount(store: &Store, c: &Container) -> Result<PathBuf> {
    let _l = ctr_lock(store, c)?;
    // Removed while we waited for the lock?
    if !c.dir(store).join("container.json").exists() {
        return err(format!("no such container: {}", c.id));
    }
    if let Some(mut s) = state(store, c) {
        if live(&s) {
            s.count += 1;
            write_json(&state_path(store, c), &s)?;
            return Ok(s.merged);
        }
        clean_dead(store, c, &s);
    }
    let merged = c.merged(store);
    clean_orphan(&merged);
    fs::create_dir_all(&merged).ctx(merged.display())?;
    let opts = union_options(store, c)?;
    let daemon = spawn_unionfs(&opts, &merged).map_err(|e| Error(format!("mount {}: {e}", c.name)))?;
    let mut s = State {
        count: 1,
        daemon,
        boot_id: process::boot_id(),
        merged: merged.clone(),
        applied: Vec::new(),
        namespace: None,
    };
    let done = (|| -> Result<()> {
        if at::is_root() {
            mount::make_private(&merged, false).ctx(format!("{}: make private", merged.display()))?;
            apply_all(store, c, &merged, &mut s.applied)?;
            if c.read_only {
                mount::remount_bind(&merged, libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV)
                    .ctx(format!("{}: read-only", merged.display()))?;
            }
        } else if !c.mounts.is_empty() {
            s.namespace = Some(crate::store::userns::start(store, c, &merged)?);
        }
        Ok(())
    })();
    if let Err(e) = done {
        undo_all(store, c, &s.applied);
        let _ = unmount_fuse(&merged, true);
        wait_gone(&s.daemon, Duration::from_secs(2));
        return Err(e);
    }
    write_json(&state_path(store, c), &s)?;
    Ok(merged)
}

/// Everything a dead mount left: detach what is still mounted, stop a
/// daemon that outlived its mount, release the volumes.
fn clean_dead(store: &Store, c: &Container, s: &State) {
    let same_boot = s.boot_id == process::boot_id();
    if let Some(ns) = s.namespace.as_ref().filter(|_| same_boot) {
        if ns.alive() {
            let _ = process::kill(ns.pid, libc::SIGKILL);
        }
    }
    if mount::mounted_type(&s.merged).is_some() {
        // The whole tree (submounts too) in one go: paths below a dead FUSE
        // mount cannot be looked up any more.
        let _ = unmount_fuse(&s.merged, true);
    }
    if same_boot && s.daemon.alive() {
        let _ = process::kill(s.daemon.pid, libc::SIGTERM);
        wait_gone(&s.daemon, Duration::from_secs(2));
    }
    for a in s.applied.iter().rev() {
        if let (Kind::Volume, Some(n)) = (a.spec.kind, &a.spec.name) {
            volumes::deactivate(store, n, &c.id);
        }
    }
    if s.namespace.is_some() {
        for m in c.mounts.iter().filter(|m| m.kind == Kind::Volume) {
            if let Some(n) = &m.name {
                volumes::deactivate(store, n, &c.id);
            }
        }
    }
    let _ = fs::remove_file(state_path(store, c));
}

/// A mount without state (a `unionctl mount` killed before it recorded
/// one): detach it and stop its daemon. True when there was one.
fn clean_orphan(merged: &Path) -> bool {
    let daemons = process::find_by_last_arg("unionfs", merged.as_os_str());
    let mounted = mount::mounted_type(merged).is_some();
    if mounted {
        let _ = unmount_fuse(merged, true);
    }
    for pid in &daemons {
        if let Some(start) = process::start_time(*pid) {
            let p = Proc { pid: *pid, start };
            let _ = process::kill(p.pid, libc::SIGTERM);
            wait_gone(&p, Duration::from_secs(2));
        }
    }
    mounted || !daemons.is_empty()
}

/// Mounts in the order to apply them: parents before children.
pub fn ordered(c: &Container) -> Vec<MountSpec> {
    let mut v = c.mounts.clone();
    v.sort_by_key(|m| m.destination.split('/').filter(|x| !x.is_empty()).count());
    v
}

/// Fill the volumes that need it from the image, then mount everything.
pub fn apply_all(store: &Store, c: &Container, merged: &Path, applied: &mut Vec<Applied>) -> Result<()> {
    let root =
        at::openat(libc::AT_FDCWD, merged.as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0).ctx(merged.display())?;
    let specs = ordered(c);
    let mut layers = vec![c.upper(store)];
    layers.extend(c.image(store)?.layer_dirs(store)?);
    // Every volume is filled from the image before anything is mounted over it.
    for m in specs.iter().filter(|m| m.kind == Kind::Volume) {
        let n = m.name.as_deref().unwrap_or_default();
        volumes::activate(store, n, &c.id)?;
        if !m.nocopy {
            volumes::copy_up_once(store, n, root.as_raw_fd(), &m.destination, &layers)?;
        }
    }
    for m in &specs {
        match apply(store, root.as_raw_fd(), m) {
            Ok(target) => applied.push(Applied { spec: m.clone(), target }),
            Err(e) => {
                for m in specs.iter().filter(|m| m.kind == Kind::Volume) {
                    if !applied.iter().any(|a| a.spec.destination == m.destination) {
                        volumes::deactivate(store, m.name.as_deref().unwrap_or_default(), &c.id);
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The source directory or file of a mount (None for tmpfs).
fn source_of(store: &Store, m: &MountSpec) -> Option<PathBuf> {
    match m.kind {
        Kind::Volume => Some(volumes::data(store, m.name.as_deref().unwrap_or_default())),
        Kind::Bind => m.source.as_ref().map(PathBuf::from),
        Kind::Tmpfs => None,
    }
}

/// The mount point inside the root: a directory (made when missing) or,
/// for a bind of a file, a file.
pub fn target_in_root(root: RawFd, dst: &str, file: bool) -> Result<OwnedFd> {
    let what = |e: std::io::Error| Error(format!("mount destination {dst}: {}", crate::sys::tree::strip_os(&e)));
    if !file {
        return resolve::mkdir_all(root, dst.as_bytes()).map_err(what);
    }
    let parent = dst.rsplit_once('/').map_or("/", |(p, _)| if p.is_empty() { "/" } else { p });
    resolve::mkdir_all(root, parent.as_bytes()).map_err(what)?;
    let r = resolve::resolve(
        root,
        dst.as_bytes(),
        resolve::How { follow_last: true, allow_missing_last: true, ..Default::default() },
    )
    .map_err(what)?;
    if let Some(obj) = r.obj {
        return Ok(obj);
    }
    let name = r.name.unwrap_or_default();
    drop(
        at::openat(
            r.parent.as_raw_fd(),
            &name,
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
            0o644,
        )
        .map_err(what)?,
    );
    resolve::open(root, dst.as_bytes()).map_err(what)
}

fn tmpfs_data(m: &MountSpec) -> (libc::c_ulong, String) {
    let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
    let mut data = Vec::new();
    for o in &m.options {
        match o.as_str() {
            "noexec" => flags |= libc::MS_NOEXEC,
            "exec" => flags &= !libc::MS_NOEXEC,
            "suid" => flags &= !libc::MS_NOSUID,
            "dev" => flags &= !libc::MS_NODEV,
            "nosuid" | "nodev" | "tmpcopyup" | "notmpcopyup" => {}
            o => data.push(o.to_string()),
        }
    }
    if !m.rw {
        flags |= libc::MS_RDONLY;
    }
    (flags, data.join(","))
}

/// Make one mount under the root; returns its host path.
pub fn apply(store: &Store, root: RawFd, m: &MountSpec) -> Result<PathBuf> {
    let src = source_of(store, m);
    let file = src.as_ref().is_some_and(|s| fs::metadata(s).is_ok_and(|md| !md.is_dir()));
    let target = target_in_root(root, &m.destination, file)?;
    let path = at::fd_path(target.as_raw_fd());
    let what = |e: std::io::Error| {
        Error(format!("mount {} on {}: {}", m.kind.as_str(), m.destination, crate::sys::tree::strip_os(&e)))
    };
    match (&m.kind, &src) {
        (Kind::Tmpfs, _) => {
            let (flags, data) = tmpfs_data(m);
            mount::tmpfs(target.as_raw_fd(), flags, &data).map_err(what)?;
        }
        (_, Some(s)) => {
            let mut extra = if m.rw { 0 } else { libc::MS_RDONLY };
            if m.kind == Kind::Volume {
                extra |= libc::MS_NOSUID | libc::MS_NODEV;
            }
            mount::bind(s, target.as_raw_fd(), true).map_err(what)?;
            if extra != 0 {
                if let Err(e) = mount::remount_bind(&path, extra) {
                    let _ = mount::umount2(&path, libc::MNT_DETACH);
                    return Err(what(e));
                }
            }
        }
        _ => return err(format!("mount on {}: no source", m.destination)),
    }
    if at::is_root() {
        let _ = mount::make_private(&path, true);
    }
    Ok(path)
}

/// Undo mounts in reverse order (for a failed mount); volumes released.
fn undo_all(store: &Store, c: &Container, applied: &[Applied]) {
    for a in applied.iter().rev() {
        if mount::umount2(&a.target, 0).is_err() {
            let _ = mount::umount2(&a.target, libc::MNT_DETACH);
        }
    }
    for m in c.mounts.iter().filter(|m| m.kind == Kind::Volume) {
        volumes::deactivate(store, m.name.as_deref().unwrap_or_default(), &c.id);
    }
}

/// What an unmount did.
#[derive(Debug, PartialEq, Eq)]
pub enum Unmounted {
    /// It was not mounted.
    NotMounted,
    /// One reference less; this many are left.
    Released(u32),
    /// Everything is undone.
    Done,
}

/// Drop one reference (`all`: every one); the last undoes everything.
/// A busy mount is reported (exit status 2) and nothing changes.
pub fn unmount(store: &Store, c: &Container, all: bool) -> Result<Unmounted> {
    let _l = ctr_lock(store, c)?;
    let Some(mut s) = state(store, c) else {
        return Ok(if clean_orphan(&c.merged(store)) { Unmounted::Done } else { Unmounted::NotMounted });
    };
    if !live(&s) {
        clean_dead(store, c, &s);
        return Ok(Unmounted::Done);
    }
    if s.count > 1 && !all {
        s.count -= 1;
        write_json(&state_path(store, c), &s)?;
        return Ok(Unmounted::Released(s.count));
    }
    if let Some((pid, comm)) = process::user_of(&s.merged) {
        return conflict(format!(
            "unmount {}: {}: target is busy (in use by process {pid} ({comm}))",
            c.name,
            s.merged.display()
        ));
    }
    teardown(store, c, &s, false)?;
    Ok(Unmounted::Done)
}

/// Undo everything of a live mount: submounts in reverse, the root, the
/// daemon, the volumes. `force`: a busy mount is detached (rm -f).
fn teardown(store: &Store, c: &Container, s: &State, force: bool) -> Result<()> {
    if let Some(ns) = &s.namespace {
        // The namespace and every mount in it go with its holder.
        let _ = process::kill(ns.pid, libc::SIGKILL);
        wait_gone(ns, Duration::from_secs(1));
    }
    let root = at::openat(libc::AT_FDCWD, s.merged.as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0);
    let mut undone: Vec<&Applied> = Vec::new();
    let busy = |what: &Path| Error(format!("unmount {}: {}: target is busy", c.name, what.display()));
    for a in s.applied.iter().rev() {
        match mount::umount2(&a.target, 0) {
            Ok(()) => undone.push(a),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::ENOENT) => {
                undone.push(a)
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && force => {
                let _ = mount::umount2(&a.target, libc::MNT_DETACH);
                undone.push(a);
            }
            Err(e) => {
                // Put back what was undone: the state stays as it was.
                if let Ok(root) = &root {
                    for u in undone.iter().rev() {
                        let _ = apply(store, root.as_raw_fd(), &u.spec);
                    }
                }
                if e.raw_os_error() == Some(libc::EBUSY) {
                    crate::store::error::conflict::<()>(String::new()).ok();
                    return Err(busy(&a.target));
                }
                return Err(Error(format!("unmount {}: {}", a.target.display(), crate::sys::tree::strip_os(&e))));
            }
        }
    }
    drop(root);
    match unmount_fuse(&s.merged, false) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) && force => {
            let _ = unmount_fuse(&s.merged, true);
        }
        Err(e) => {
            if let Ok(root) = at::openat(libc::AT_FDCWD, s.merged.as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0) {
                for u in undone.iter().rev() {
                    let _ = apply(store, root.as_raw_fd(), &u.spec);
                }
            }
            if e.raw_os_error() == Some(libc::EBUSY) {
                crate::store::error::conflict::<()>(String::new()).ok();
                return Err(busy(&s.merged));
            }
            return Err(Error(format!("unmount {}: {}", s.merged.display(), crate::sys::tree::strip_os(&e))));
        }
    }
    wait_gone(&s.daemon, Duration::from_secs(5));
    for m in c.mounts.iter().filter(|m| m.kind == Kind::Volume) {
        volumes::deactivate(store, m.name.as_deref().unwrap_or_default(), &c.id);
    }
    let _ = fs::remove_file(state_path(store, c));
    Ok(())
}

/// Unmount completely whatever the count (`rm -f`, `image rm -f`): busy
/// mounts are detached.
pub fn force_unmount(store: &Store, c: &Container) -> Result<()> {
    let _l = ctr_lock(store, c)?;
    let Some(s) = state(store, c) else { return Ok(()) };
    if !live(&s) {
        clean_dead(store, c, &s);
        return Ok(());
    }
    teardown(store, c, &s, true)
}

/// Run `f` with the container's lock held and the container not mounted
/// (else a conflict error): `rm` without `-f`.
pub fn with_unmounted<T>(store: &Store, c: &Container, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let _l = ctr_lock(store, c)?;
    if let Some(s) = state(store, c) {
        if live(&s) {
            return conflict(format!(
                "container {} is mounted (unmount it first, or rm -f)",
                if c.name.is_empty() { c.short_id() } else { &c.name }
            ));
        }
        clean_dead(store, c, &s);
    }
    f()
}

/// A read-only union of a container's upper over its image, on a mount
/// point of its own (export, cp from the container, commit while mounted
/// is not needed: the upper is read directly). Unmounted on drop.
pub struct View {
    pub path: PathBuf,
    daemon: Proc,
    _tmp: crate::store::TempDir,
}

impl View {
    pub fn open(store: &Store, c: &Container) -> Result<View> {
        let img = c.image(store)?;
        let mut lowers = vec![c.upper(store)];
        lowers.extend(img.layer_dirs(store)?);
        let lower: Vec<String> = lowers.iter().map(|p| esc(p)).collect();
        let tmp = store.temp_dir("view")?;
        let mnt = tmp.path.join("root");
        fs::create_dir(&mnt).ctx(mnt.display())?;
        let mut opts = format!("lowerdir={}", lower.join(":"));
        if !at::is_root() {
            opts.push_str(",userxattr,xattr_permissions=2");
        }
        let daemon = spawn_unionfs(&opts, &mnt).map_err(|e| Error(format!("{}: {e}", c.name)))?;
        Ok(View { path: mnt, daemon, _tmp: tmp })
    }

    pub fn root(&self) -> Result<OwnedFd> {
        at::openat(libc::AT_FDCWD, self.path.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .ctx(self.path.display())
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if unmount_fuse(&self.path, false).is_err() {
            let _ = unmount_fuse(&self.path, true);
        }
        wait_gone(&self.daemon, Duration::from_secs(2));
    }
}

/// Sync what the kernel may still hold for a mounted container (before its
/// upper is read directly: diff, commit).
pub fn sync(store: &Store, c: &Container) {
    if let Some((merged, _)) = mounted(store, c) {
        if let Ok(fd) = at::openat(libc::AT_FDCWD, merged.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0) {
            let _ = at::syncfs(fd.as_raw_fd());
        }
    }
}

/// OsStr of a path, for messages.
pub fn os(p: &Path) -> &OsStr {
    p.as_os_str()
}
