//! The bounded inode table (`max_inodes=`, `src/fs/prune.rs`): past its
//! budget the daemon asks the kernel to hand the least recently used inodes
//! back (FUSE_NOTIFY_PRUNE, Linux 6.18+). What the mount shows never changes
//! (the kernel overlay over the same layers is the oracle, also after changes
//! made while pruning goes on), the kernel really drops the names (a pruned
//! name is looked up again), and nothing in use is dropped: an open file, a
//! working directory, and mounts on a file and on a directory inside the
//! mount survive many rounds.

mod support;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const DIRS: usize = 40;
const FILES: usize = 50;

/// DIRS directories of FILES files in lower 0, a few shadowed in lower 1.
fn tree(l: &Layout) {
    for d in 0..DIRS {
        for f in 0..FILES {
            l.lower_file(0, &format!("d{d:02}/f{f:02}"), &format!("{d}/{f}"));
        }
        l.lower_file(1, &format!("d{d:02}/f00"), "shadowed");
        l.lower_file(1, &format!("d{d:02}/only-below"), "below");
    }
}

/// Every entry with what `find -printf` shows of it, in order.
fn walk(m: &Path) -> String {
    let out =
        Command::new("find").arg(".").args(["-printf", "%p %y %s %m %n\n"]).current_dir(m).output().expect("find");
    assert!(out.status.success(), "find failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<&str> = std::str::from_utf8(&out.stdout).expect("utf-8").lines().collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// Lines of the debug log naming the pruner's rounds.
fn rounds(d: &Daemon) -> usize {
    d.log_text().matches("prune: asked the kernel to hand back").count()
}

fn mount(l: &Layout, max_inodes: usize) -> Daemon {
    let opts = format!("{},max_inodes={max_inodes}", l.opts());
    Daemon::start(&[], &opts, &l.mnt, &l.dir.path().join(format!("daemon-{max_inodes}.log")))
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_small_table_shows_the_same_tree_and_the_kernel_hands_names_back() {
    let l = Layout::new(2);
    tree(&l);
    let twin = l.twin();
    let expected = {
        let _k = twin.kernel(&l);
        let w = walk(&twin.mnt);
        fs::write(twin.m("d00/new"), "n").expect("write new (kernel)");
        fs::remove_file(twin.m("d01/f03")).expect("unlink (kernel)");
        fs::rename(twin.m("d02/f05"), twin.m("d03/renamed")).expect("rename (kernel)");
        fs::create_dir(twin.m("d04/sub")).expect("mkdir (kernel)");
        (w, walk(&twin.mnt))
    };
    let d = mount(&l, 100);
    let first = walk(&l.mnt);
    assert_eq!(first, expected.0, "the first walk differs from the kernel overlay's");
    wait_for("a prune round", || rounds(&d) > 0);
    // Walked names were handed back: looking one up again reaches the daemon.
    let before = d.log_text().matches("LOOKUP name \"f01\"").count();
    let md = fs::metadata(l.m("d00/f01")).expect("stat d00/f01");
    assert_eq!(md.len(), 3);
    let after = d.log_text().matches("LOOKUP name \"f01\"").count();
    assert!(after > before, "d00/f01 was not looked up again: the kernel kept it (no pruning)");
    // Changes made among pruned names, then the whole tree again.
    fs::write(l.m("d00/new"), "n").expect("write new");
    fs::remove_file(l.m("d01/f03")).expect("unlink");
    fs::rename(l.m("d02/f05"), l.m("d03/renamed")).expect("rename");
    fs::create_dir(l.m("d04/sub")).expect("mkdir");
    assert_eq!(walk(&l.mnt), expected.1, "after changes: differs from the kernel overlay");
    assert_eq!(walk(&l.mnt), expected.1, "a walk after pruning differs from the one before");
    assert!(rounds(&d) >= 3, "only {} prune rounds for {} entries over a budget of 100", rounds(&d), DIRS * FILES);
}

#[test]
fn without_a_bound_nothing_is_pruned() {
    let l = Layout::new(2);
    tree(&l);
    let d = mount(&l, 0);
    walk(&l.mnt);
    walk(&l.mnt);
    let before = d.log_text().matches("LOOKUP name \"f01\"").count();
    fs::metadata(l.m("d00/f01")).expect("stat d00/f01");
    assert_eq!(d.log_text().matches("LOOKUP name \"f01\"").count(), before, "the kernel dropped d00/f01 unasked");
    assert_eq!(rounds(&d), 0);
}

#[test]
fn what_is_in_use_survives_pruning() {
    let l = Layout::new(2);
    tree(&l);
    let outside = l.dir.path().join("outside");
    fs::create_dir_all(outside.join("sub")).expect("mkdir outside");
    fs::write(outside.join("file"), "bound file").expect("write outside file");
    fs::write(outside.join("sub/inner"), "bound dir").expect("write outside dir");
    let d = mount(&l, 100);
    let mut sleeper = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // An open lower file, a process whose working directory is in the
        // mount, and bind mounts on a file and on a directory of the mount.
        let mut open = fs::File::open(l.m("d05/f07")).expect("open d05/f07");
        let s = sleeper.insert(Command::new("sleep").arg("60").current_dir(l.m("d06")).spawn().expect("sleep in d06"));
        let pid = s.id();
        for (src, dst) in [(outside.join("file"), l.m("d07/f01")), (outside.join("sub"), l.m("d08"))] {
            let st = Command::new("mount").arg("--bind").arg(&src).arg(&dst).status().expect("mount --bind");
            assert!(st.success(), "bind mount on {}", dst.display());
        }
        let start = rounds(&d);
        for _ in 0..3 {
            walk(&l.mnt);
        }
        wait_for("prune rounds", || rounds(&d) > start + 2);
        let mut text = String::new();
        open.read_to_string(&mut text).expect("read the open file");
        assert_eq!(text, "5/7");
        assert_eq!(fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd of sleep"), l.m("d06"));
        let ls = Command::new("ls").current_dir(format!("/proc/{pid}/cwd")).output().expect("ls");
        assert_eq!(String::from_utf8_lossy(&ls.stdout).lines().count(), FILES + 1, "ls in the working directory");
        assert!(is_mounted(&l.m("d07/f01")), "the bind mount on a file was detached");
        assert!(is_mounted(&l.m("d08")), "the bind mount on a directory was detached");
        assert_eq!(fs::read_to_string(l.m("d07/f01")).expect("read bound file"), "bound file");
        assert_eq!(fs::read_to_string(l.m("d08/inner")).expect("read bound dir"), "bound dir");
    }));
    if let Some(mut s) = sleeper {
        let _ = s.kill();
        let _ = s.wait();
    }
    force_umount(&l.m("d08"));
    force_umount(&l.m("d07/f01"));
    drop(d);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
