//! `unionctl`'s top-level command line (clap). The man pages and shell
//! completions are generated from [`command`].

use crate::cli::image::ImageCmd;
use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "unionctl", version, about = "Load container images into a layer store and work with them")]
pub struct Cli {
    /// Store root (default /var/lib/unionctl as root, else $XDG_DATA_HOME/unionctl)
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Manage images
    Image {
        #[command(subcommand)]
        cmd: ImageCmd,
    },
    /// List images (same as `image ls`)
    Images {
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, default_value = "table")]
        format: String,
    },
}

/// The clap definition of `unionctl`.
pub fn command() -> clap::Command {
    Cli::command()
}
