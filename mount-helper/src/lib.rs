//! `mount.unionfs`: the mount(8) helper. Parses mount's helper argv
//! ([`args`]), filters the options ([`options`]), applies the user-mount
//! policy and checks the directories ([`plan`]), then runs `unionfs` and maps
//! its outcome to mount(8)'s exit status ([`run`], [`exit`]). Mounting,
//! validation in depth and daemonizing are unionfs's.

pub mod args;
pub mod exit;
pub mod options;
pub mod plan;
pub mod run;

use args::Parsed;
use exit::Failure;
use std::ffi::OsString;

pub use args::command;

fn is_root() -> bool {
    unionfs::sys::geteuid() == 0
}

fn mount(argv: Vec<OsString>) -> Result<(), Failure> {
    let args = match args::parse(argv)? {
        Parsed::Printed => return Ok(()),
        Parsed::Mount(a) => a,
    };
    let plan = plan::plan(&args, is_root())?;
    for o in &plan.filtered.sloppy_dropped {
        eprintln!("mount.unionfs: warning: unknown option {o:?} ignored (-s)");
    }
    plan.check_dirs()?;
    let unionfs = run::locate()?;
    let (prog, argv) = plan.argv(&unionfs);
    if args.verbose {
        let words: Vec<String> =
            std::iter::once(&prog).chain(&argv).map(|w| w.to_string_lossy().into_owned()).collect();
        eprintln!("mount.unionfs: {}", words.join(" "));
    }
    if args.fake {
        return Ok(());
    }
    run::run(&prog, &argv)
}

/// Run the helper with `argv` (program name first); returns the exit status.
pub fn main(argv: Vec<OsString>) -> i32 {
    match mount(argv) {
        Ok(()) => 0,
        Err(f) => {
            if let Some(msg) = f.msg {
                eprintln!("mount.unionfs: {msg}");
            }
            f.code
        }
    }
}
