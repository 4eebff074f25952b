//! Mount the filesystem: validate, daemonize, start fuser's threads, handle
//! signals and shut down cleanly.
//!
//! Without `-f` the process forks; the parent waits on a pipe and exits 0
//! only once the child reports the mount live (or prints the child's error).

use crate::fs::fuse::Fuse;
use crate::fs::layers::Layers;
use crate::fs::options::Options;
use crate::fs::prune;
use crate::fs::UnionFs;
use crate::sys::fusemount::FuseMount;
use crate::sys::{self, process};
use fuser::{Config, Session, SessionACL};
use log::{info, warn};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, OnceLock};

const SIGNALS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// The mount request: kernel FUSE options and MS_* flags from ours.
fn fuse_mount(opts: &Options, read_only: bool, allow_other: bool) -> FuseMount {
    let mut m = FuseMount {
        fsname: opts.fsname.clone().unwrap_or_else(|| "unionfs".into()),
        subtype: opts.subtype.clone().unwrap_or_else(|| "unionfs".into()),
        options: vec!["default_permissions".into()],
        // FUSE's defaults: no setuid, no devices unless asked for.
        flags: libc::MS_NOSUID | libc::MS_NODEV,
    };
    if allow_other {
        m.options.push("allow_other".into());
    }
    if read_only {
        m.flags |= libc::MS_RDONLY;
    }
    for f in &opts.mount_flags {
        match f.as_str() {
            "suid" => m.flags &= !libc::MS_NOSUID,
            "nosuid" => m.flags |= libc::MS_NOSUID,
            "dev" => m.flags &= !libc::MS_NODEV,
            "nodev" => m.flags |= libc::MS_NODEV,
            "exec" => m.flags &= !libc::MS_NOEXEC,
            "noexec" => m.flags |= libc::MS_NOEXEC,
            "atime" => m.flags &= !libc::MS_NOATIME,
            "noatime" => m.flags |= libc::MS_NOATIME,
            "sync" => m.flags |= libc::MS_SYNCHRONOUS,
            "async" => m.flags &= !libc::MS_SYNCHRONOUS,
            "dirsync" => m.flags |= libc::MS_DIRSYNC,
            other => m.options.push(other.to_string()),
        }
    }
    m
}

/// Unmount after SIGTERM/SIGINT: retry while busy, then detach lazily (the
/// session ends when the last user lets go). Non-root goes through fusermount3.
fn unmount_on_signal(mnt: &Path) -> bool {
    for _ in 0..20 {
        match process::umount(mnt, false) {
            Ok(()) => return true,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => std::thread::sleep(std::time::Duration::from_millis(50)),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                return std::process::Command::new("fusermount3")
                    .args(["-u", "-z"])
                    .arg(mnt)
                    .status()
                    .is_ok_and(|s| s.success());
            }
            Err(e) => {
                // EINVAL: no longer mounted.
                warn!("unmount {}: {e}", mnt.display());
                return e.raw_os_error() == Some(libc::EINVAL);
            }
        }
    }
    warn!("{} stays busy: detaching it", mnt.display());
    process::umount(mnt, true).is_ok()
}

/// Mount and serve until unmounted. Errors are one-line messages.
pub fn run(opts: Options, mountpoint: &Path, foreground: bool) -> Result<(), String> {
    let layers = Layers::open(&opts, mountpoint)?;
    for w in &opts.warnings {
        eprintln!("unionfs: warning: {w}");
    }
    if opts.io_uring && !sys::fusemount::uring_enabled() {
        eprintln!("unionfs: warning: io_uring: not offered by the kernel (the fuse module's enable_uring is off): requests go through /dev/fuse");
    }
    let ready = if foreground { None } else { Some(daemonize()?) };
    let result = serve(layers, opts, mountpoint, ready.as_ref());
    if let (Err(msg), Some(fd)) = (&result, &ready) {
        // The waiting parent prints it.
        process::write_fd(fd.as_raw_fd(), format!("E{msg}").as_bytes());
        process::exit_now(1);
    }
    result
}

/// Fork; the parent waits for the child's word and exits. Returns the
/// child's end of the readiness pipe.
fn daemonize() -> Result<OwnedFd, String> {
    let (r, w) = process::pipe().map_err(|e| format!("pipe: {e}"))?;
    match process::fork().map_err(|e| format!("fork: {e}"))? {
        process::Fork::Parent(_) => {
            drop(w);
            let msg = process::read_all(r.as_raw_fd(), 4096);
            match msg.first() {
                Some(b'K') => process::exit_now(0),
                Some(b'E') => {
                    eprintln!("unionfs: error: {}", String::from_utf8_lossy(&msg[1..]).trim());
                    process::exit_now(1)
                }
                _ => {
                    eprintln!("unionfs: error: the daemon exited before the mount was ready");
                    process::exit_now(1)
                }
            }
        }
        process::Fork::Child => {
            drop(r);
            process::setsid();
            Ok(w)
        }
    }
}

fn serve(layers: Layers, opts: Options, mountpoint: &Path, ready: Option<&OwnedFd>) -> Result<(), String> {
    sys::set_umask(0);
    sys::raise_nofile_limit();
    process::one_malloc_arena();
    process::block_signals(&SIGNALS);
    let is_root = sys::geteuid() == 0;
    let read_only = !layers.has_upper || opts.read_only;
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let mut config = Config::default();
    let acl = if is_root || opts.allow_other {
        SessionACL::All
    } else if opts.allow_root {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    config.acl = acl;
    // A worker that just answered keeps reading a moment: a busy caller's
    // next request then needs no wake-up (see vendor/README.md).
    fuser::set_receive_spin(opts.spin);
    config.n_threads = Some(threads);
    config.clone_fd = true;
    config.uring = opts.io_uring;
    let fs = UnionFs::new(layers, opts.clone()).map_err(|e| format!("cannot start: {e}"))?;
    let table = fs.inodes.clone();
    let req = fuse_mount(&opts, read_only, acl != SessionACL::Owner);
    let dev = match if is_root { req.mount_direct(mountpoint) } else { Err(io::Error::from_raw_os_error(libc::EPERM)) }
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => req.mount_fusermount(mountpoint),
        r => r,
    }
    .map_err(|e| format!("mount {}: {}", mountpoint.display(), sys::tree::strip_os(&e)))?;
    let notifier = Arc::new(OnceLock::new());
    let session = match Session::from_fd(Fuse::new(fs, notifier.clone()), dev, acl, config) {
        Ok(s) => s,
        Err(e) => {
            unmount_on_signal(mountpoint);
            return Err(format!("mount {}: {e}", mountpoint.display()));
        }
    };
    let _ = notifier.set(session.notifier());
    prune::spawn(&table, notifier).map_err(|e| format!("cannot start the pruner thread: {e}"))?;
    drop(table);
    info!("mounted {} with {threads} threads", mountpoint.display());
    let mnt = mountpoint.to_path_buf();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let sig = process::wait_signal(&SIGNALS);
            info!("signal {sig}: unmounting {}", mnt.display());
            if unmount_on_signal(&mnt) {
                // The kernel ends the session: `run` returns.
                break;
            }
        })
        .map_err(|e| format!("cannot start signal thread: {e}"))?;
    if let Some(fd) = ready {
        process::write_fd(fd.as_raw_fd(), b"K");
        process::detach_stdio();
    }
    // We mounted, so fuser never unmounts by path: `run` returns once the
    // kernel ended the session (we are unmounted), and the daemon leaves
    // without touching whatever may be mounted on the same path by then
    // (fuser's own unmount-on-drop would: seen with a kernel overlay mounted
    // there right after `umount`).
    let result = session.run();
    if result.is_err() && sys::fusemount::is_mountpoint(mountpoint) {
        unmount_on_signal(mountpoint);
    }
    result.map_err(|e| format!("session: {e}"))
}
