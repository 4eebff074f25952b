//! `unionctl`: the container-storage tool built on unionfs.

use clap::Parser;
use unionfs::cli::app::{Cli, Cmd};
use unionfs::cli::image::{self, ImageCmd};
use unionfs::store::Store;

fn main() {
    let cli = Cli::parse();
    // Warnings by default; RUST_LOG=debug shows what a load skipped (xattrs).
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).try_init();
    let root = cli.root.unwrap_or_else(Store::default_root);
    let result = Store::open(&root).and_then(|store| match cli.cmd {
        Cmd::Image { cmd } => image::run(&store, cmd),
        Cmd::Images { quiet, format } => {
            image::run(&store, ImageCmd::Ls { quiet, all: false, format, no_trunc: false })
        }
    });
    if let Err(e) = result {
        eprintln!("unionctl: error: {e}");
        std::process::exit(unionfs::store::error::exit_status());
    }
}
