//! FUSE passthrough (root daemons): data written through a passthrough
//! handle is what other handles and stat see, a lower file open read-only
//! while another handle copies it up behaves as on the kernel overlay, mmap
//! works, O_APPEND (also cleared with F_SETFL) is honoured, and a rootless
//! daemon falls back to normal I/O. Each case runs the same operations on a
//! kernel overlay over the same lowers as the oracle; the daemon's debug log
//! tells whether the kernel passed I/O through (no READ/WRITE requests).

mod support;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;
use support::*;

fn mount(l: &Layout, extra: &str) -> Daemon {
    let opts = if extra.is_empty() { l.opts() } else { format!("{},{extra}", l.opts()) };
    Daemon::start(&[], &opts, &l.mnt, &l.dir.path().join("daemon.log"))
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Sizes, data and mtime ordering seen after writes through one handle.
#[derive(Debug, PartialEq, Eq)]
struct WriteView {
    data_b: Vec<u8>,
    size_stat: u64,
    size_fstat: u64,
    mtime_moved: bool,
    lower_data: Vec<u8>,
    lower_size: u64,
    trunc_size: u64,
}

fn write_view(m: &Path) -> WriteView {
    let big = pattern(3 << 20, 7);
    let mut a =
        fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(m.join("new")).expect("create");
    let md0 = fs::metadata(m.join("new")).expect("stat");
    let t0 = (md0.mtime(), md0.mtime_nsec());
    std::thread::sleep(Duration::from_millis(20));
    a.write_all(&big).expect("write through A");
    // Another handle (opened after the writes) and stat see them.
    let mut data_b = Vec::new();
    fs::File::open(m.join("new")).expect("open B").read_to_end(&mut data_b).expect("read B");
    let md = fs::metadata(m.join("new")).expect("stat");
    let size_fstat = a.metadata().expect("fstat A").len();
    // A lower file opened for write: copied up, then written.
    let lf = fs::OpenOptions::new().write(true).open(m.join("lower")).expect("open lower rw");
    lf.write_at(b"XYZ", 4094).expect("write lower");
    drop(lf);
    // Truncate through the path while A is open.
    fs::OpenOptions::new().write(true).open(m.join("new")).expect("open").set_len(4096).expect("ftruncate");
    let trunc_size = a.metadata().expect("fstat A").len();
    a.seek(SeekFrom::Start(0)).expect("seek");
    WriteView {
        data_b,
        size_stat: md.len(),
        size_fstat,
        mtime_moved: (md.mtime(), md.mtime_nsec()) > t0,
        lower_data: fs::read(m.join("lower")).expect("read lower"),
        lower_size: fs::metadata(m.join("lower")).expect("stat lower").len(),
        trunc_size,
    }
}

#[test]
fn passthrough_writes_are_seen_by_other_handles_and_stat() {
    let l = Layout::new(1);
    fs::write(l.lower(0, "lower"), pattern(8192, 1)).expect("lower file");
    let (ours, reqs) = {
        let d = mount(&l, "");
        let v = write_view(&l.mnt);
        (v, d.data_requests())
    };
    let k = l.twin();
    let theirs = {
        let _km = k.kernel(&l);
        write_view(&k.mnt)
    };
    assert_eq!(theirs.data_b.len(), 3 << 20, "kernel oracle");
    assert!(ours == theirs, "differs from the kernel overlay");
    assert!(ours.mtime_moved);
    // 3 MiB written and read back, a lower file copied up and written: all
    // passed through (the copy-up itself is the daemon's, not a request).
    assert_eq!(reqs, (0, 0), "(READ, WRITE) requests reached the daemon: no passthrough");
    assert!(fs::read(l.upper.join("new")).expect("upper").len() == 4096);
}

/// Reader A opened read-only on a lower file; B copies it up and writes
/// (plain write, then O_APPEND); what A, fstat(A) and new opens see.
fn copy_up_under_reader(m: &Path) -> (String, u64, String, String) {
    let mut a = fs::File::open(m.join("f")).expect("open A");
    let mut first = [0u8; 3];
    a.read_exact(&mut first).expect("read A");
    assert_eq!(&first, b"old");
    let b = fs::OpenOptions::new().read(true).write(true).open(m.join("f")).expect("open B");
    b.write_at(b"OLD", 0).expect("write B");
    let mut c = fs::OpenOptions::new().append(true).open(m.join("f")).expect("open C");
    c.write_all(b"+new").expect("append C");
    // SAFETY: fadvise on an open descriptor.
    unsafe { libc::posix_fadvise(a.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    a.seek(SeekFrom::Start(0)).expect("seek");
    let mut seen_a = String::new();
    a.read_to_string(&mut seen_a).expect("read A");
    let size_a = a.metadata().expect("fstat A").len();
    let mut seen_b = String::new();
    let mut b = b;
    b.seek(SeekFrom::Start(0)).expect("seek");
    b.read_to_string(&mut seen_b).expect("read B");
    drop((a, b, c));
    (seen_a, size_a, seen_b, fs::read_to_string(m.join("f")).expect("read f"))
}

#[test]
fn lower_file_open_read_only_while_copied_up_behaves_as_the_kernel() {
    let l = Layout::new(1);
    l.lower_file(0, "f", "old lower data");
    let ours = {
        let _d = mount(&l, "");
        copy_up_under_reader(&l.mnt)
    };
    let k = l.twin();
    let theirs = {
        let _km = k.kernel(&l);
        copy_up_under_reader(&k.mnt)
    };
    let want = "OLD lower data+new".to_string();
    assert_eq!(theirs, (want.clone(), 18, want.clone(), want.clone()), "kernel oracle");
    assert_eq!(ours, theirs, "(via A, fstat A, via B, new open) differ from the kernel's");
    // Once every handle is closed the file is upper: new opens pass through.
    let d = mount(&l, "");
    let before = d.data_requests();
    let mut f = fs::OpenOptions::new().read(true).write(true).open(l.m("f")).expect("open");
    f.write_all(b"abc").expect("write");
    let mut s = String::new();
    fs::File::open(l.m("f")).expect("open").read_to_string(&mut s).expect("read");
    assert_eq!(s, "abc lower data+new");
    assert_eq!(d.data_requests(), before, "upper file not passed through");
}

/// `passthrough=all`: lower files too. A lower file open in passthrough
/// cannot see a copy-up, so an open for write is refused (ETXTBSY, as for a
/// running program) until those opens are closed; nothing else fails.
#[test]
fn passthrough_all_serves_lower_files_and_refuses_a_copy_up_under_them() {
    let l = Layout::new(1);
    l.lower_file(0, "f", "old lower data");
    fs::write(l.lower(0, "big"), pattern(1 << 20, 3)).expect("lower big");
    let d = mount(&l, "passthrough=all");
    assert_eq!(fs::read(l.m("big")).expect("read big"), pattern(1 << 20, 3));
    assert_eq!(d.data_requests().0, 0, "lower file not passed through");
    let mut a = fs::File::open(l.m("f")).expect("open A");
    let b = fs::File::open(l.m("f")).expect("open B read-only");
    let w = fs::OpenOptions::new().write(true).open(l.m("f"));
    assert_eq!(errno(w), libc::ETXTBSY, "open for write under a lower passthrough open");
    assert!(!l.upper.join("f").exists(), "copied up although refused");
    let mut s = String::new();
    a.read_to_string(&mut s).expect("read A");
    assert_eq!(s, "old lower data");
    drop((a, b));
    let w = fs::OpenOptions::new().write(true).open(l.m("f")).expect("open for write once closed");
    w.write_at(b"NEW", 0).expect("write");
    let r = fs::read_to_string(l.m("f")).expect("read");
    drop(w);
    assert_eq!(r, "NEW lower data");
    assert_eq!(fs::read_to_string(l.upper.join("f")).expect("upper"), "NEW lower data");
    // Closed readers do not refuse a writer (their RELEASE comes after close
    // returned).
    for i in 0..20 {
        let name = format!("r{i}");
        l.lower_file(0, &name, "lower");
        assert_eq!(fs::read_to_string(l.m(&name)).expect("read"), "lower");
        let w = fs::OpenOptions::new().append(true).open(l.m(&name)).expect("open for write right after a read");
        (&w).write_all(b"+").expect("append");
    }
}

/// mmap: read-only of a lower file, shared read-write of an upper file, and
/// a private mapping; the file contents afterwards.
fn mmap_view(m: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let map = |f: &fs::File, len: usize, prot: i32, flags: i32| -> &'static mut [u8] {
        // SAFETY: a fresh mapping of an open file, unmapped by the caller.
        unsafe {
            let p = libc::mmap(std::ptr::null_mut(), len, prot, flags, f.as_raw_fd(), 0);
            assert_ne!(p, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
            std::slice::from_raw_parts_mut(p as *mut u8, len)
        }
    };
    let unmap = |s: &mut [u8]| {
        // SAFETY: unmapping a mapping made above.
        unsafe { libc::munmap(s.as_mut_ptr() as *mut _, s.len()) };
    };
    let lf = fs::File::open(m.join("lower")).expect("open lower");
    let lm = map(&lf, 8192, libc::PROT_READ, libc::MAP_SHARED);
    let lower_seen = lm.to_vec();
    unmap(lm);
    let f =
        fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(m.join("mm")).expect("create");
    f.set_len(16384).expect("set_len");
    f.write_at(&pattern(16384, 9), 0).expect("write");
    let wm = map(&f, 16384, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED);
    wm[100..110].copy_from_slice(b"via mmap!!");
    wm[16000] = b'Z';
    // SAFETY: msync of the mapping above.
    assert_eq!(unsafe { libc::msync(wm.as_mut_ptr() as *mut _, 16384, libc::MS_SYNC) }, 0);
    unmap(wm);
    let pm = map(&f, 16384, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE);
    pm[0] = b'P';
    unmap(pm);
    drop(f);
    (lower_seen, fs::read(m.join("mm")).expect("read mm"), fs::read(m.join("lower")).expect("read lower"))
}

#[test]
fn mmap_through_the_mount() {
    let l = Layout::new(1);
    fs::write(l.lower(0, "lower"), pattern(8192, 5)).expect("lower");
    let ours = {
        let d = mount(&l, "");
        let v = mmap_view(&l.mnt);
        assert!(d.log_has("FUSE_PASSTHROUGH enabled"), "passthrough not enabled as root");
        v
    };
    let k = l.twin();
    let theirs = {
        let _km = k.kernel(&l);
        mmap_view(&k.mnt)
    };
    assert_eq!(&theirs.1[100..110], b"via mmap!!", "kernel oracle");
    assert!(ours == theirs, "mmap results differ from the kernel overlay's");
}

/// O_APPEND (also cleared with F_SETFL) on a file without other opens,
/// O_APPEND and O_DIRECT beside a passthrough handle.
fn append_direct_view(m: &Path) -> (String, String, Vec<u8>) {
    // Made by its O_APPEND open: a separate create + write first would leave
    // a passthrough handle whose RELEASE (asynchronous) may still be on its
    // way when the O_APPEND open comes, which then joins passthrough mode.
    let mut ap = fs::OpenOptions::new().append(true).create(true).open(m.join("ap")).expect("open O_APPEND");
    ap.write_all(b"hello world").expect("write ap");
    ap.write_all(b"!").expect("append");
    // SAFETY: fcntl on an open descriptor.
    unsafe {
        let fl = libc::fcntl(ap.as_raw_fd(), libc::F_GETFL);
        assert_eq!(libc::fcntl(ap.as_raw_fd(), libc::F_SETFL, fl & !libc::O_APPEND), 0);
    }
    ap.write_at(b"J", 0).expect("pwrite");
    drop(ap);
    let cleared = fs::read_to_string(m.join("ap")).expect("read ap");
    // Beside a handle open for write (passthrough here).
    let w =
        fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(m.join("log")).expect("create");
    w.write_at(b"first", 0).expect("write");
    let mut lg = fs::OpenOptions::new().append(true).open(m.join("log")).expect("open O_APPEND");
    lg.write_all(b"+second").expect("append");
    w.write_at(b"F", 0).expect("write");
    lg.write_all(b"+third").expect("append");
    drop((w, lg));
    let log = fs::read_to_string(m.join("log")).expect("read log");
    // O_DIRECT: 4 KiB aligned blocks.
    let layout = std::alloc::Layout::from_size_align(8192, 4096).expect("layout");
    // SAFETY: allocation of a non-zero size, freed below.
    let buf = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!buf.is_null());
    // SAFETY: buf points to 8192 bytes.
    let block = unsafe { std::slice::from_raw_parts_mut(buf, 8192) };
    block.copy_from_slice(&pattern(8192, 11));
    let keep = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.join("dio"))
        .expect("create dio");
    let dio = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(m.join("dio"))
        .expect("O_DIRECT");
    dio.write_all_at(block, 0).expect("O_DIRECT write");
    block.fill(0);
    dio.read_exact_at(block, 0).expect("O_DIRECT read");
    let got = block.to_vec();
    // SAFETY: allocated above with this layout.
    unsafe { std::alloc::dealloc(buf, layout) };
    drop((keep, dio));
    assert_eq!(got, fs::read(m.join("dio")).expect("read dio"));
    (cleared, log, got)
}

#[test]
fn o_append_and_o_direct_with_passthrough() {
    let l = Layout::new(1);
    let ours = {
        let _d = mount(&l, "");
        append_direct_view(&l.mnt)
    };
    let k = l.twin();
    let theirs = {
        let _km = k.kernel(&l);
        append_direct_view(&k.mnt)
    };
    assert_eq!((theirs.0.as_str(), theirs.1.as_str()), ("Jello world!", "First+second+third"), "kernel oracle");
    assert!(ours == theirs, "O_APPEND/O_DIRECT results differ: ours {:?}, kernel {:?}", &ours.0, &theirs.0);
}

#[test]
fn passthrough_off_uses_the_daemon() {
    let l = Layout::new(1);
    let d = mount(&l, "passthrough=off");
    fs::write(l.m("x"), b"data").expect("write");
    assert_eq!(fs::read(l.m("x")).expect("read"), b"data");
    assert!(d.data_requests().1 > 0, "passthrough=off passed writes through");
    assert!(!d.log_has("FUSE_PASSTHROUGH enabled"));
}

#[test]
fn rootless_daemon_falls_back_to_normal_io() {
    let (uid, gid) = test_user();
    let l = Layout::new(1);
    fs::set_permissions(l.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let f = l.lower_file(0, "f", "lower\n");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o666)).expect("chmod");
    for p in [&l.upper, &l.work, &l.mnt] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
    }
    let opts = format!("{},userxattr", l.opts());
    let d = Daemon::start(&["runuser", "-u", "unionfs-test", "--"], &opts, &l.mnt, &l.dir.path().join("user.log"));
    let mp = |r: &str| l.m(r).display().to_string();
    let o = run_as(
        uid,
        gid,
        &format!(
            "set -e; head -c 2000000 /dev/zero > {n}; echo more >> {f}; cat {f}; stat -c %s {n}",
            n = mp("new"),
            f = mp("f")
        ),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("lower\nmore\n2000000\n"), "as the user: {out} {}", String::from_utf8_lossy(&o.stderr));
    let (_, writes) = d.data_requests();
    assert!(writes > 0, "no WRITE reached the rootless daemon");
    assert!(!d.log_has("FUSE_PASSTHROUGH enabled"), "rootless daemon asked for passthrough");
    assert_eq!(fs::metadata(l.upper.join("new")).expect("upper new").len(), 2_000_000);
    drop(d);
    assert!(!is_mounted(&l.mnt));
}

/// A mount without writable upper: nothing can be copied up under a reader,
/// so lower files pass through too.
#[test]
fn read_only_mount_passes_lower_files_through() {
    let l = Layout::new(2);
    fs::write(l.lower(1, "big"), pattern(1 << 20, 4)).expect("lower big");
    l.lower_file(0, "small", "top");
    let d = Daemon::start(&[], &format!("lowerdir={}", l.lowerdir()), &l.mnt, &l.dir.path().join("ro.log"));
    assert_eq!(fs::read(l.m("big")).expect("read big"), pattern(1 << 20, 4));
    assert_eq!(fs::read_to_string(l.m("small")).expect("read small"), "top");
    assert_eq!(errno(fs::OpenOptions::new().write(true).open(l.m("small"))), libc::EROFS);
    assert_eq!(d.data_requests(), (0, 0), "(READ, WRITE) requests reached the daemon: no passthrough");
}

/// Opens of one file in every mode from several threads at once (the kernel
/// refuses an open that does not fit the inode's mode with EIO): none fails,
/// and every thread's last write is there.
#[test]
fn concurrent_opens_in_mixed_modes_never_fail() {
    let l = Layout::new(1);
    fs::write(l.lower(0, "shared"), vec![b'.'; 4096]).expect("lower");
    let d = mount(&l, "");
    let path = l.m("shared");
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || -> Result<(), String> {
                for i in 0..150u32 {
                    let r = match (i + t as u32) % 3 {
                        0 => fs::read(&path).map(|_| ()),
                        1 => fs::OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open(&path)
                            .and_then(|f| f.write_all_at(&[b'a' + t, (i % 10) as u8 + b'0'], t as u64 * 2)),
                        _ => fs::OpenOptions::new().append(true).open(&path).and_then(|mut f| f.write_all(b"+")),
                    };
                    r.map_err(|e| format!("thread {t} step {i}: {e}"))?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread").expect("an open failed");
    }
    let data = fs::read(&path).expect("read");
    for t in 0..4u8 {
        assert_eq!(data[t as usize * 2], b'a' + t, "thread {t}'s write");
    }
    assert_eq!(data.len(), 4096 + data[4096..].iter().filter(|&&c| c == b'+').count());
    assert_eq!(data.len(), 4096 + 4 * 50, "every append landed");
    drop(d);
}
