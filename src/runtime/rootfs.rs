//! The container's view of the filesystem, made inside its own mount
//! namespace before `pivot_root`: a minimal `/dev` (tmpfs, the host's device
//! nodes bound in, a private devpts, shm), `/sys` read-only, the files
//! `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` bound from the
//! container's directory, `/proc` (from inside the pid namespace), then
//! `pivot_root` with the host's root detached.
//!
//! Every destination is resolved inside the root ([`crate::sys::resolve`]):
//! an image's symlink (`/dev -> /host`) never leads a mount onto the host.

use crate::store::error::{Context, Error, Result};
use crate::store::mounts::target_in_root;
use crate::sys::{at, resolve};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// What the root is prepared for.
pub struct Prepare<'a> {
    pub merged: &'a Path,
    /// containers/<id>/userdata: hostname, hosts, resolv.conf.
    pub userdata: &'a Path,
    pub read_only: bool,
    /// An unprivileged user namespace: no device nodes, no devpts gid.
    pub rootless: bool,
    pub tty: bool,
}

fn none() -> Option<&'static str> {
    None
}

/// A host path for an object resolved inside the root.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    at::fd_path(fd.as_raw_fd())
}

fn dir_in(root: RawFd, dst: &str) -> Result<OwnedFd> {
    target_in_root(root, dst, false)
}

fn file_in(root: RawFd, dst: &str) -> Result<OwnedFd> {
    target_in_root(root, dst, true)
}

fn mnt(src: Option<&str>, target: &Path, fstype: Option<&str>, flags: MsFlags, data: Option<&str>) -> Result<()> {
    mount(src, target, fstype, flags, data)
        .map_err(|e| Error(format!("mount {} on {}: {}", fstype.or(src).unwrap_or("bind"), target.display(), e.desc())))
}

/// Flags a remount must keep (a mount in a user namespace has its
/// nosuid/nodev/noexec locked).
fn kept_flags(p: &Path) -> MsFlags {
    let mut f = MsFlags::empty();
    if let Ok(st) = nix::sys::statvfs::statvfs(p) {
        use nix::sys::statvfs::FsFlags;
        let fl = st.flags();
        for (a, b) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if fl.contains(a) {
                f |= b;
            }
        }
    }
    f
}

/// Remount a bind mount read-only (keeping its locked flags).
pub fn remount_ro(p: &Path) -> Result<()> {
    let f = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | kept_flags(p);
    mnt(None, p, None, f, None)
}

/// Mounts made from here on stay in this namespace.
pub fn make_private() -> Result<()> {
    mnt(None, Path::new("/"), None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)
}

/// The device nodes bound from the host (as runc does in a user namespace).
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Set up `/dev`, `/sys`, the /etc files, a read-only root; with a terminal,
/// the pty master (made in the container's own devpts) is returned.
pub fn prepare(p: &Prepare) -> Result<Option<(OwnedFd, u32)>> {
    let root = at::openat(libc::AT_FDCWD, p.merged.as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0)
        .ctx(p.merged.display())?;
    let r = root.as_raw_fd();
    // Mount points the process expects, made before the root may turn read-only.
    let proc_dir = dir_in(r, "/proc")?;
    drop(proc_dir);
    let etc_files: Vec<(OwnedFd, PathBuf)> = ["hostname", "hosts", "resolv.conf"]
        .iter()
        .filter_map(|f| {
            let t = file_in(r, &format!("/etc/{f}"));
            if let Err(e) = &t {
                log::debug!("/etc/{f}: {e}");
            }
            t.ok().map(|t| (t, p.userdata.join(f)))
        })
        .collect();
    let dev = dir_in(r, "/dev")?;
    let sys = dir_in(r, "/sys")?;
    for (t, src) in &etc_files {
        mnt(Some(&src.to_string_lossy()), &fd_path(t), none(), MsFlags::MS_BIND, none())?;
    }

    // /dev
    let devp = fd_path(&dev);
    mnt(
        Some("tmpfs"),
        &devp,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    let dev = at::openat(libc::AT_FDCWD, devp.as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0).ctx("/dev")?;
    let devp = fd_path(&dev);
    for d in DEVICES {
        let host = Path::new("/dev").join(d);
        if !host.exists() {
            continue;
        }
        let node = devp.join(d);
        std::fs::write(&node, b"").ctx(format!("/dev/{d}"))?;
        mnt(Some(&host.to_string_lossy()), &node, none(), MsFlags::MS_BIND, none())?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        std::os::unix::fs::symlink(target, devp.join(name)).ctx(format!("/dev/{name}"))?;
    }
    for d in ["pts", "shm", "mqueue"] {
        std::fs::create_dir(devp.join(d)).ctx(format!("/dev/{d}"))?;
    }
    let pts_opts =
        if p.rootless { "newinstance,ptmxmode=0666,mode=0620" } else { "newinstance,ptmxmode=0666,mode=0620,gid=5" };
    mnt(Some("devpts"), &devp.join("pts"), Some("devpts"), MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, Some(pts_opts))?;
    mnt(
        Some("shm"),
        &devp.join("shm"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )?;
    if let Err(e) = mount(
        Some("mqueue"),
        &devp.join("mqueue"),
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        none(),
    ) {
        log::debug!("/dev/mqueue: {e}");
    }
    let console = if p.tty {
        let (master, n) = crate::sys::tty::open_pty(&devp.join("pts/ptmx")).ctx("/dev/pts/ptmx")?;
        let node = devp.join("console");
        std::fs::write(&node, b"").ctx("/dev/console")?;
        mnt(Some(&devp.join(format!("pts/{n}")).to_string_lossy()), &node, none(), MsFlags::MS_BIND, none())?;
        Some((master, n))
    } else {
        None
    };

    // /sys, read-only: the host's (a new sysfs needs a network namespace).
    let sysp = fd_path(&sys);
    mnt(Some("/sys"), &sysp, none(), MsFlags::MS_BIND | MsFlags::MS_REC, none())?;
    let sys = at::openat(libc::AT_FDCWD, sysp.as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0).ctx("/sys")?;
    let sysp = fd_path(&sys);
    let real = std::fs::read_link(&sysp).unwrap_or(sysp.clone());
    remount_ro(&sysp)?;
    // Its submounts (cgroups, ...) too.
    for m in crate::sys::mount::mounts_under(&real) {
        if m.mount_point != real {
            if let Err(e) = remount_ro(&m.mount_point) {
                log::debug!("{}: {e}", m.mount_point.display());
            }
        }
    }

    if p.read_only {
        // The root itself: a bind of the merged root on itself, made read-only.
        mnt(Some(&p.merged.to_string_lossy()), p.merged, none(), MsFlags::MS_BIND | MsFlags::MS_REC, none())?;
        remount_ro(p.merged)?;
    }
    Ok(console)
}

/// In the new pid namespace: mount `/proc`, then make the merged root `/`
/// and detach the host's.
pub fn enter(merged: &Path) -> Result<()> {
    let root =
        at::openat(libc::AT_FDCWD, merged.as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0).ctx(merged.display())?;
    let proc_dir = resolve::open(root.as_raw_fd(), b"/proc").ctx("/proc")?;
    mnt(
        Some("proc"),
        &fd_path(&proc_dir),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        none(),
    )?;
    protect_kernel_files(root.as_raw_fd())?;
    std::env::set_current_dir(merged).ctx(merged.display())?;
    nix::unistd::pivot_root(".", ".").map_err(|e| Error(format!("pivot_root: {}", e.desc())))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| Error(format!("detach the host root: {}", e.desc())))?;
    std::env::set_current_dir("/").ctx("chdir /")?;
    Ok(())
}

/// What docker hides from a container (host kernel details, firmware).
const MASKED: [&str; 10] = [
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// What docker leaves visible but read-only (sysctls: `core_pattern` would
/// run a program on the host).
const READ_ONLY: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Mask and write-protect the kernel's files as docker does.
fn protect_kernel_files(root: RawFd) -> Result<()> {
    for p in READ_ONLY {
        let Ok(obj) = resolve::open(root, p.as_bytes()) else { continue };
        let path = fd_path(&obj);
        mnt(Some(&path.to_string_lossy()), &path, none(), MsFlags::MS_BIND | MsFlags::MS_REC, none())?;
        let again = resolve::open(root, p.as_bytes()).ctx(p)?;
        remount_ro(&fd_path(&again))?;
    }
    for p in MASKED {
        let Ok(obj) = resolve::open(root, p.as_bytes()) else { continue };
        let path = fd_path(&obj);
        let is_dir = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
        let r = if is_dir {
            mount(Some("tmpfs"), &path, Some("tmpfs"), MsFlags::MS_RDONLY, Some("size=0"))
        } else {
            mount(Some("/dev/null"), &path, none(), MsFlags::MS_BIND, none())
        };
        if let Err(e) = r {
            log::debug!("mask {p}: {e}");
        }
    }
    Ok(())
}

/// Write the files docker provides: /etc/hostname, /etc/hosts,
/// /etc/resolv.conf (the host's, as with the host network).
pub fn write_userdata(dir: &Path, hostname: &str) -> Result<()> {
    std::fs::create_dir_all(dir).ctx(dir.display())?;
    let w = |name: &str, data: &[u8]| crate::store::util::write_atomic(&dir.join(name), data);
    w("hostname", format!("{hostname}\n").as_bytes())?;
    w(
        "hosts",
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t{hostname}\n"
        )
        .as_bytes(),
    )?;
    let resolv = ["/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"]
        .iter()
        .find_map(|p| std::fs::read(p).ok().filter(|d| !d.is_empty()))
        .unwrap_or_else(|| b"nameserver 8.8.8.8\n".to_vec());
    w("resolv.conf", &resolv)?;
    // Readable by every user of the container.
    for f in ["hostname", "hosts", "resolv.conf"] {
        let _ = std::fs::set_permissions(dir.join(f), std::os::unix::fs::PermissionsExt::from_mode(0o644));
    }
    Ok(())
}
