//! `unionctl`: the container-storage tool built on unionfs.

use clap::Parser;
use unionfs::cli::app::{self, Cli};

fn main() {
    let cli = Cli::parse();
    // Warnings by default; RUST_LOG=debug shows what a load skipped (xattrs).
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).try_init();
    if let Err(e) = app::run(cli) {
        eprintln!("unionctl: error: {e}");
        std::process::exit(unionfs::store::error::exit_status());
    }
}
