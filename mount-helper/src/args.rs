//! The helper's command line, as mount(8) calls it:
//! `mount.unionfs SPEC DIR [-sfnv] [-N NAMESPACE] [-o OPTIONS] [-t TYPE]`.

use crate::exit::{Failure, USAGE};
use clap::{CommandFactory, Parser};
use std::ffi::OsString;
use std::path::PathBuf;

const LONG_ABOUT: &str = "\
The mount(8) helper for unionfs: `mount -t unionfs none DIR -o lowerdir=...`, \
fstab lines of type `unionfs` and systemd .mount units with Type=unionfs run it. \
It drops the options that belong to mount(8) and fstab (defaults, auto, noauto, \
user, users, nouser, owner, group, _netdev, nofail, x-*, comment=), refuses \
unknown options and relative layer paths, checks that the mountpoint and every \
layer are directories, and then runs `unionfs -o OPTIONS DIR`, which mounts and \
daemonizes. Run by an ordinary user (an fstab line with `user` or `users`), the \
mount goes through fusermount3 with `userxattr`.";

const AFTER_HELP: &str = "\
Exit status (mount(8)'s): 0 mounted; 1 bad command line; 2 unionfs cannot be \
found or started; 32 mount failure: an unknown or invalid option, a relative \
layer path, a missing mountpoint or layer, a layer that is not a directory, or \
unionfs's own refusal (printed by unionfs).";

/// `mount.unionfs` arguments. The flags mean what they mean to mount(8).
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "mount.unionfs", version, about = "mount(8) helper for unionfs", long_about = LONG_ABOUT, after_long_help = AFTER_HELP)]
pub struct Args {
    /// The source (fstab's first field, e.g. `none`); shown as the mount's source (fsname=)
    pub spec: String,
    /// The mountpoint (mount(8) passes it absolute)
    pub dir: PathBuf,
    /// Sloppy: drop unknown options with a warning instead of failing
    #[arg(short = 's')]
    pub sloppy: bool,
    /// Fake: check everything, mount nothing
    #[arg(short = 'f')]
    pub fake: bool,
    /// Do not write /etc/mtab (accepted; there is none to write)
    #[arg(short = 'n')]
    pub no_mtab: bool,
    /// Verbose: print the unionfs command line before running it
    #[arg(short = 'v')]
    pub verbose: bool,
    /// Mount in another mount namespace: a PID or a namespace file (through nsenter)
    #[arg(short = 'N', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Mount options, comma separated (may be repeated)
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// Filesystem type: unionfs or fuse.unionfs
    #[arg(short = 't', value_name = "TYPE")]
    pub fstype: Option<String>,
    /// Read-only (the same as -o ro)
    #[arg(short = 'r')]
    pub read_only: bool,
    /// Read-write (the same as -o rw)
    #[arg(short = 'w')]
    pub read_write: bool,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    Mount(Args),
    /// --help or --version: printed, exit 0.
    Printed,
}

/// The clap definition (man page and completions are generated from it).
pub fn command() -> clap::Command {
    Args::command()
}

/// Parse argv (with the program name). Errors are one line, exit status 1.
pub fn parse(argv: Vec<OsString>) -> Result<Parsed, Failure> {
    match Args::try_parse_from(argv) {
        Ok(a) => {
            match a.fstype.as_deref() {
                None | Some("unionfs") | Some("fuse.unionfs") => {}
                Some(t) => return Err(Failure::new(USAGE, format!("this helper mounts unionfs, not type {t:?}"))),
            }
            Ok(Parsed::Mount(a))
        }
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                let _ = e.print();
                Ok(Parsed::Printed)
            }
            _ => {
                let text = e.to_string();
                let line = text.lines().next().unwrap_or("bad command line");
                Err(Failure::new(USAGE, line.trim_start_matches("error: ").to_string()))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Parsed, Failure> {
        parse(std::iter::once("mount.unionfs").chain(v.iter().copied()).map(OsString::from).collect())
    }

    fn args(v: &[&str]) -> Args {
        match p(v) {
            Ok(Parsed::Mount(a)) => a,
            other => panic!("{v:?}: {other:?}"),
        }
    }

    #[test]
    fn mount8_convention() {
        let a = args(&["none", "/m", "-o", "rw,lowerdir=/l"]);
        assert_eq!((a.spec.as_str(), a.dir.to_str()), ("none", Some("/m")));
        assert_eq!(a.options, vec!["rw,lowerdir=/l".to_string()]);
        assert!(!a.sloppy && !a.fake && !a.no_mtab && !a.verbose && a.namespace.is_none());
        // Flags combined, before or after the positionals, -N and -t.
        let a = args(&["-sfnv", "none", "/m", "-N", "1234", "-o", "a", "-o", "b", "-t", "fuse.unionfs"]);
        assert!(a.sloppy && a.fake && a.no_mtab && a.verbose);
        assert_eq!(a.namespace.as_deref(), Some("1234"));
        assert_eq!(a.options, vec!["a".to_string(), "b".to_string()]);
        // systemd's argv: WHAT WHERE [-s] [-w] -t TYPE -o OPTIONS.
        let a = args(&["none", "/m", "-s", "-w", "-t", "unionfs", "-o", "lowerdir=/l"]);
        assert!(a.sloppy && a.read_write && !a.read_only);
        let a = args(&["none", "/m", "-olowerdir=/l", "-r"]);
        assert_eq!(a.options, vec!["lowerdir=/l".to_string()]);
        assert!(a.read_only);
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        for bad in [
            &["none"][..],
            &[],
            &["none", "/m", "extra"],
            &["none", "/m", "-x"],
            &["none", "/m", "-o"],
            &["none", "/m", "-N"],
            &["none", "/m", "-t", "ext4"],
        ] {
            let e = p(bad).expect_err(&format!("{bad:?} accepted"));
            assert_eq!(e.code, USAGE, "{bad:?}");
            let msg = e.msg.unwrap_or_default();
            assert!(!msg.is_empty() && !msg.contains('\n'), "{bad:?}: {msg:?}");
        }
        assert!(matches!(p(&["--version"]), Ok(Parsed::Printed)));
    }
}
