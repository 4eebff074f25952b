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
