//! The `unionfs` command line (fuse-overlayfs compatible): parse, report, run.

use crate::fs::options::{parse_args, Command, USAGE};
use crate::fs::session;

/// Run `unionfs` with `args` (without the program name); returns the exit code.
pub fn main(args: &[String]) -> i32 {
    match parse_args(args) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            0
        }
        Ok(Command::Version) => {
            println!("unionfs version {}", env!("CARGO_PKG_VERSION"));
            println!("FUSE library version: fuser 0.18 (protocol 7.x)");
            0
        }
        Ok(Command::Mount { opts, mountpoint, foreground, debug }) => {
            let level = if debug { "debug" } else { "warn" };
            let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).try_init();
            match session::run(*opts, &mountpoint, foreground) {
                Ok(()) => 0,
                Err(msg) => {
                    eprintln!("unionfs: error: {msg}");
                    1
                }
            }
        }
        Err(msg) => {
            eprintln!("unionfs: error: {msg}\n{}", USAGE.lines().next().unwrap_or_default());
            2
        }
    }
}

/// The `-o` options unionfs acts on, with a sample value where one is needed,
/// for the man page (`unionfs(1)`). A unit test keeps it in step with the parser.
pub const MOUNT_OPTIONS: &[(&str, &str)] = &[
    ("lowerdir=/A:/B", "read-only lower layers, A on top (\\: escapes a colon)"),
    ("upperdir=/U", "the writable upper layer (with workdir=; without both the mount is read-only)"),
    ("workdir=/W", "empty directory on the upper's filesystem where copy-up is staged"),
    ("timeout=86400", "seconds the kernel caches entries and attributes"),
    ("threads=0", "worker threads (0: one per core)"),
    ("fsync=1", "fsync copied-up data and honour fsync (0: off)"),
    ("volatile", "the same as fsync=0"),
    ("userxattr", "keep private markers in user.overlay.* (automatic when not root)"),
    ("noxattrs", "refuse extended attributes"),
    ("allow_other", "let other users in (as root: the default)"),
    ("allow_root", "let root in"),
    ("ro", "read-only mount"),
    ("rw", "read-write mount (the default with an upper)"),
    ("nosuid", "mount flag (also nodev, noexec, noatime, sync, dirsync, and their opposites)"),
    ("fsname=NAME", "the mount's source as /proc/mounts shows it"),
    ("subtype=NAME", "the type shown as fuse.NAME (default unionfs)"),
    ("uidmapping=0:100000:65536", "ID:MAPPED:LEN[:...]: stored uid ID+n shows as MAPPED+n"),
    ("gidmapping=0:100000:65536", "the same for gids"),
    ("squash_to_root", "every file shows as owned by 0:0"),
    ("squash_to_uid=1000", "every file shows as owned by this uid"),
    ("squash_to_gid=1000", "every file shows as owned by this gid"),
    ("static_nlink", "directories show nlink 1"),
    ("xattr_permissions=2", "show owners recorded in user.containers.override_stat (default 2 when not root)"),
    ("redirect_dir=off", "accepted for compatibility"),
    ("metacopy=off", "accepted for compatibility"),
    ("index=off", "accepted for compatibility"),
];

/// A clap description of the `unionfs` command line, for its man page and
/// shell completions only: the parser is [`crate::fs::options::parse_args`].
pub fn command() -> clap::Command {
    use clap::{Arg, ArgAction};
    let opts: String = MOUNT_OPTIONS.iter().map(|(o, d)| format!("  {o}\n      {d}\n")).collect::<Vec<_>>().join("");
    clap::Command::new("unionfs")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Userspace union filesystem with the kernel overlayfs's semantics")
        .long_about(
            "Stacks read-only lower directories under a writable upper directory, with the kernel \
             overlayfs's semantics and on-disk format. The command daemonizes and exits 0 once the \
             mount is live; unmount with umount(8) or fusermount3 -u. Bad input fails before \
             anything is mounted, with one line on stderr. fuse-overlayfs compatible, so podman can \
             use it as mount_program; mount(8) and fstab reach it through mount.unionfs(8).",
        )
        .override_usage(
            "unionfs [-f] [-d] -o lowerdir=A:B[,upperdir=U,workdir=W][,OPTIONS] MOUNTPOINT\n       \
             unionfs SOURCE MOUNTPOINT -o OPTIONS",
        )
        .arg(Arg::new("foreground").short('f').action(ArgAction::SetTrue).help("Stay in the foreground"))
        .arg(
            Arg::new("debug")
                .short('d')
                .long("debug")
                .action(ArgAction::SetTrue)
                .help("Log every request (implies -f)"),
        )
        .arg(Arg::new("single").short('s').action(ArgAction::SetTrue).help("One worker thread"))
        .arg(
            Arg::new("options")
                .short('o')
                .value_name("OPTIONS")
                .action(ArgAction::Append)
                .help("Mount options, comma separated (see OPTIONS)"),
        )
        .arg(
            Arg::new("mountpoint")
                .value_name("MOUNTPOINT")
                .num_args(1..=2)
                .required(true)
                .value_hint(clap::ValueHint::DirPath)
                .help("Where to mount; with two arguments SOURCE MOUNTPOINT (the mount.fuse form, SOURCE ignored)"),
        )
        .after_long_help(format!("Mount options (-o):\n{opts}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::options::Options;

    /// Every option the man page lists is one the parser takes without a warning.
    #[test]
    fn man_page_options_are_the_parsers() {
        for (opt, _) in MOUNT_OPTIONS {
            let mut o = Options::default();
            let opt = opt.replace("NAME", "x");
            o.apply(&opt).unwrap_or_else(|e| panic!("{opt}: {e}"));
            assert!(o.warnings.is_empty(), "{opt}: {:?}", o.warnings);
        }
        command().debug_assert();
        let m = command().try_get_matches_from(["unionfs", "-f", "-o", "lowerdir=/l", "none", "/m"]).unwrap();
        assert_eq!(m.get_many::<String>("mountpoint").unwrap().count(), 2);
    }
}
