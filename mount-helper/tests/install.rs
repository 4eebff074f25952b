//! scripts/install.sh into a temp prefix: everything in place, idempotent,
//! runs from there (mount.unionfs finds the installed unionfs without PATH),
//! and --uninstall leaves nothing behind.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            v.push(e.path());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                v.extend(tree(&e.path()));
            }
        }
    }
    v.sort();
    v
}

#[test]
fn install_run_uninstall() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let target = Path::new(HELPER).parent().and_then(Path::parent).expect("target dir").to_path_buf();
    for b in ["unionfs", "unionctl", "unionfs-docgen"] {
        assert!(target.join("debug").join(b).exists(), "target/debug/{b} missing: cargo build --workspace first");
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install.sh");
    let t = tempfile::Builder::new().prefix("install-test.").tempdir_in("/tmp").unwrap();
    let (prefix, helpers) = (t.path().join("usr"), t.path().join("helpers"));
    let install = |extra: &[&str]| {
        let o = run(Command::new(&script)
            .arg("--prefix")
            .arg(&prefix)
            .arg("--helper-dir")
            .arg(&helpers)
            .args(["--debug", "--no-build"])
            .args(extra)
            .env("CARGO_TARGET_DIR", &target));
        assert!(o.status.success(), "install.sh {extra:?}: {}{}", text(&o.stdout), text(&o.stderr));
    };

    install(&[]);
    let first = tree(t.path());
    let manifest = fs::read_to_string(prefix.join("share/unionfs/install-manifest")).unwrap();
    install(&[]);
    assert_eq!(tree(t.path()), first, "a second install changed the tree");
    assert_eq!(fs::read_to_string(prefix.join("share/unionfs/install-manifest")).unwrap(), manifest);

    for f in [
        "bin/unionfs",
        "bin/unionctl",
        "sbin/mount.unionfs",
        "share/man/man1/unionfs.1",
        "share/man/man1/unionctl.1",
        "share/man/man1/unionctl-image-load.1",
        "share/man/man8/mount.unionfs.8",
        "share/bash-completion/completions/unionctl",
        "share/bash-completion/completions/mount.unionfs",
        "share/zsh/site-functions/_unionctl",
        "share/fish/vendor_completions.d/unionctl.fish",
    ] {
        assert!(prefix.join(f).is_file(), "{f} not installed");
    }
    assert_eq!(fs::read_link(helpers.join("mount.unionfs")).unwrap(), prefix.join("sbin/mount.unionfs"));
    let man = fs::read_to_string(prefix.join("share/man/man8/mount.unionfs.8")).unwrap();
    assert!(man.contains(".TH mount.unionfs 8"), "{}", &man[..man.len().min(200)]);
    for name in ["unionctl", "unionfs", "mount.unionfs"] {
        let o = run(Command::new("bash").arg("-n").arg(prefix.join("share/bash-completion/completions").join(name)));
        assert!(o.status.success(), "bash completion {name}: {}", text(&o.stderr));
    }

    // Run from there.
    let o = run(Command::new(prefix.join("bin/unionctl")).arg("--version"));
    assert!(o.status.success() && text(&o.stdout).starts_with("unionctl "));
    let l = Layout::new();
    let m = l.mnt.to_str().unwrap();
    // The helper where mount(8) would look, with no PATH (as mount(8) runs
    // it): it finds PREFIX/bin/unionfs through its real file's ../bin.
    let o = run(Command::new(helpers.join("mount.unionfs")).args(["-v", "none", m, "-o", &l.opts()]).env_clear());
    assert!(o.status.success(), "installed helper: {}", text(&o.stderr));
    assert!(text(&o.stderr).contains(&format!("{}/bin/unionfs -o", prefix.display())), "{}", text(&o.stderr));
    assert_eq!(findmnt(&l.mnt, "FSTYPE"), "fuse.unionfs");
    assert_eq!(fs::read_to_string(l.mnt.join("top")).unwrap(), "from l1\n");
    let o = run(Command::new("umount").arg(m));
    assert!(o.status.success(), "umount: {}", text(&o.stderr));
    assert_eq!(mount_count(&l.mnt), 0);

    install(&["--uninstall"]);
    assert_eq!(tree(t.path()), Vec::<PathBuf>::new(), "uninstall left files behind");
    // Uninstalling again is harmless.
    install(&["--uninstall"]);
}
