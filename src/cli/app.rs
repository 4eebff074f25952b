//! `unionctl`'s command line (clap) and where each verb goes. The man pages
//! and shell completions are generated from [`command`].

use crate::cli::container::{self, ContainerCmd, CtrVerb, PsArgs};
use crate::cli::image::{self, ImageCmd};
use crate::cli::registry as reg;
use crate::cli::system::{self, SystemCmd};
use crate::cli::volume::{self, VolumeCmd};
use crate::store::Store;
use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "unionctl", version, about = "Images, containers and volumes on unionfs")]
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
    /// Pull an image from a registry (same as `image pull`)
    Pull(reg::PullArgs),
    /// Push an image to a registry (same as `image push`)
    Push(reg::PushArgs),
    /// Log in to a registry (credentials go to the auth file, 0600)
    Login(reg::LoginArgs),
    /// Remove the credentials of a registry
    Logout(reg::LogoutArgs),
    /// Manage containers
    Container {
        #[command(subcommand)]
        cmd: ContainerCmd,
    },
    /// List containers
    Ps(PsArgs),
    /// Show containers (JSON); images and volumes too, when no container has the name
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(short, long)]
        size: bool,
        #[arg(short, long, default_value = "json")]
        format: String,
    },
    /// Create, rm, mount, unmount, diff, commit, export, cp, unshare (as `container ...`)
    #[command(flatten)]
    Ctr(CtrVerb),
    /// Manage volumes
    Volume {
        #[command(subcommand)]
        cmd: VolumeCmd,
    },
    /// Disk usage, pruning, information
    System {
        #[command(subcommand)]
        cmd: SystemCmd,
    },
    /// Storage driver, store and counts
    Info {
        #[arg(short, long, default_value = "text")]
        format: String,
    },
    /// (internal) hold a rootless container's mount namespace
    #[command(name = "__ns-hold", hide = true)]
    NsHold { id: String, merged: PathBuf },
    /// (internal) the monitor of a detached container
    #[command(name = "__monitor", hide = true)]
    Monitor { id: String },
}

fn inspect_any(store: &Store, names: &[String], size: bool, format: &str) -> crate::store::error::Result<()> {
    let all = crate::store::containers::list(store)?;
    if names.iter().all(|n| crate::store::containers::pick(&all, n).is_ok()) {
        return container::run(
            store,
            ContainerCmd::Inspect { containers: names.to_vec(), size, format: format.into() },
        );
    }
    if names.iter().all(|n| crate::store::images::resolve(store, n).is_ok()) {
        return image::run(store, ImageCmd::Inspect { images: names.to_vec(), format: "json".into() });
    }
    if names.iter().all(|n| crate::store::volumes::get(store, n).is_ok()) {
        return volume::run(store, VolumeCmd::Inspect { volumes: names.to_vec(), format: format.into() });
    }
    // The container error (ambiguous prefix, unknown name) says what is wrong.
    for n in names {
        crate::store::containers::pick(&all, n)?;
    }
    Ok(())
}

/// Run one parsed command line against its store.
pub fn run(cli: Cli) -> crate::store::error::Result<()> {
    // login and logout need no store.
    let cli = match cli.cmd {
        Cmd::Login(a) => return reg::login(a),
        Cmd::Logout(a) => return reg::logout(a),
        cmd => Cli { cmd, ..cli },
    };
    let root = cli.root.unwrap_or_else(Store::default_root);
    Store::open(&root).and_then(|store| match cli.cmd {
        Cmd::Image { cmd } => image::run(&store, cmd),
        Cmd::Images { quiet, format } => {
            image::run(&store, ImageCmd::Ls { quiet, all: false, format, no_trunc: false })
        }
        Cmd::Pull(a) => reg::pull(&store, a),
        Cmd::Push(a) => reg::push(&store, a),
        Cmd::Login(_) | Cmd::Logout(_) => Ok(()),
        Cmd::Container { cmd } => container::run(&store, cmd),
        Cmd::Ctr(v) => container::run_verb(&store, v),
        Cmd::Ps(a) => container::run(&store, ContainerCmd::Ls(a)),
        Cmd::Inspect { names, size, format } => inspect_any(&store, &names, size, &format),
        Cmd::Volume { cmd } => volume::run(&store, cmd),
        Cmd::System { cmd } => system::run(&store, cmd),
        Cmd::Info { format } => system::info(&store, &format),
        Cmd::NsHold { id, merged } => crate::store::userns::hold(&store, &id, &merged),
        Cmd::Monitor { id } => crate::runtime::monitor_main(&store, &id),
    })
}

/// The clap definition of `unionctl`.
pub fn command() -> clap::Command {
    Cli::command()
}
