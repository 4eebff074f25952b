//! `unionctl`: the container-storage tool built on unionfs.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use unionfs::cli::image::{self, ImageCmd};
use unionfs::cli::registry as reg;
use unionfs::store::Store;

#[derive(Parser, Debug)]
#[command(name = "unionctl", version, about = "Load container images into a layer store and work with them")]
struct Cli {
    /// Store root (default /var/lib/unionctl as root, else $XDG_DATA_HOME/unionctl)
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
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
    /// Pull an image from a registry (same as `image pull`)
    Pull(reg::PullArgs),
    /// Push an image to a registry (same as `image push`)
    Push(reg::PushArgs),
    /// Log in to a registry (credentials go to the auth file, 0600)
    Login(reg::LoginArgs),
    /// Remove the credentials of a registry
    Logout(reg::LogoutArgs),
}

fn main() {
    let cli = Cli::parse();
    // Warnings by default; RUST_LOG=debug shows what a load skipped (xattrs).
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).try_init();
    // login and logout need no store.
    let cli = match cli.cmd {
        Cmd::Login(a) => exit_with(reg::login(a)),
        Cmd::Logout(a) => exit_with(reg::logout(a)),
        cmd => Cli { cmd, ..cli },
    };
    let root = cli.root.unwrap_or_else(Store::default_root);
    let result = Store::open(&root).and_then(|store| match cli.cmd {
        Cmd::Image { cmd } => image::run(&store, cmd),
        Cmd::Images { quiet, format } => {
            image::run(&store, ImageCmd::Ls { quiet, all: false, format, no_trunc: false })
        }
        Cmd::Pull(a) => reg::pull(&store, a),
        Cmd::Push(a) => reg::push(&store, a),
        Cmd::Login(_) | Cmd::Logout(_) => Ok(()),
    });
    if let Err(e) = result {
        eprintln!("unionctl: error: {e}");
        std::process::exit(unionfs::store::error::exit_status());
    }
}

fn exit_with(r: unionfs::store::error::Result<()>) -> ! {
    if let Err(e) = r {
        eprintln!("unionctl: error: {e}");
        std::process::exit(unionfs::store::error::exit_status());
    }
    std::process::exit(0)
}
