//! `unionctl pull`, `push`, `login`, `logout` (also as `image pull|push`):
//! argument handling and output; the work happens in [`crate::registry`].

use crate::registry::auth::{self, Creds};
use crate::registry::client::{Client, Options};
use crate::registry::pull::{self, PullOptions};
use crate::registry::push;
use crate::registry::reference::Reference;
use crate::store::error::{err, Context, Result};
use crate::store::Store;
use clap::{ArgAction, Args};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

/// How to reach a registry (shared by every verb).
#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Verify TLS certificates (--tls-verify=false allows plain HTTP and unverified TLS)
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub tls_verify: bool,
    /// Credentials USERNAME:PASSWORD (instead of the auth file)
    #[arg(long)]
    pub creds: Option<String>,
    /// Credentials file (default: $REGISTRY_AUTH_FILE, then podman's and docker's files)
    #[arg(long)]
    pub authfile: Option<PathBuf>,
    /// Directory with the registry's CA certificates (*.crt; default /etc/containers/certs.d/HOST:PORT)
    #[arg(long)]
    pub cert_dir: Option<PathBuf>,
}

impl RegistryArgs {
    fn options(&self) -> Result<Options> {
        Ok(Options {
            tls_verify: self.tls_verify,
            creds: self.creds.as_deref().map(Creds::parse).transpose()?,
            authfile: self.authfile.clone(),
            cert_dir: self.cert_dir.clone(),
        })
    }
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// NAME[:TAG|@DIGEST]; short names are docker.io/library/NAME
    pub name: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// OS/ARCH[/VARIANT] to pick from a multi-platform image (default: this machine)
    #[arg(long)]
    pub platform: Option<String>,
    /// Layers downloaded at once
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Attempts per layer after a broken connection or a server error
    #[arg(long, default_value_t = 3)]
    pub retry: u32,
    /// Print only the image ID
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// A stored image (name or ID)
    pub image: String,
    /// REGISTRY/REPOSITORY[:TAG] (default: the image's name)
    pub dest: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print only the manifest digest
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the manifest digest to this file
    #[arg(long)]
    pub digestfile: Option<PathBuf>,
    /// Recompress layers stored otherwise (gzip or zstd; an OCI manifest is pushed then)
    #[arg(long)]
    pub compression_format: Option<String>,
    /// Upload blobs larger than this many bytes in PATCH chunks of this size (0: one PUT)
    #[arg(long, default_value_t = 0)]
    pub chunk_size: u64,
    /// Attempts per blob after a broken connection or a server error
    #[arg(long, default_value_t = 3)]
    pub retry: u32,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// HOST[:PORT]
    pub registry: String,
    #[arg(short, long)]
    pub username: Option<String>,
    /// The password (visible to other users in ps: prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// HOST[:PORT]
    pub registry: Option<String>,
    /// Remove the credentials of every registry
    #[arg(short, long)]
    pub all: bool,
    #[arg(long)]
    pub authfile: Option<PathBuf>,
}

pub fn pull(store: &Store, a: PullArgs) -> Result<()> {
    let o = PullOptions { registry: a.registry.options()?, jobs: a.jobs, retry: a.retry, platform: a.platform };
    let bars = (!a.quiet && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new);
    if !a.quiet {
        eprintln!("Trying to pull {}...", Reference::parse(&a.name)?);
    }
    let p = pull::pull(store, &a.name, &o, bars.as_ref())?;
    if !a.quiet {
        eprintln!(
            "Pulled {} ({} new layers, {} already stored), digest {}",
            p.name.as_deref().unwrap_or(&a.name),
            p.new_layers,
            p.reused_layers,
            p.digest
        );
    }
    println!("{}", p.id);
    Ok(())
}

pub fn push(store: &Store, a: PushArgs) -> Result<()> {
    let quiet = a.quiet;
    let say = |s: &str| {
        if !quiet {
            eprintln!("{s}");
        }
    };
    let compression = a.compression_format.as_deref().map(push::parse_compression).transpose()?;
    let o = push::PushOptions { registry: a.registry.options()?, compression, chunk: a.chunk_size, retry: a.retry };
    let p = push::push(store, &a.image, a.dest.as_deref(), &o, &say)?;
    if let Some(f) = &a.digestfile {
        std::fs::write(f, p.digest.as_str()).ctx(f.display())?;
    }
    if quiet {
        println!("{}", p.digest);
    } else {
        eprintln!("Pushed {} ({} blobs uploaded, {} already there)", p.dest, p.uploaded, p.skipped);
        println!("{}", p.digest);
    }
    Ok(())
}

pub fn login(a: LoginArgs) -> Result<()> {
    let registry = Reference::registry_only(&a.registry)?;
    let Some(user) = a.username.filter(|u| !u.is_empty()) else {
        return err("login needs -u USERNAME");
    };
    let pass = match (a.password, a.password_stdin) {
        (Some(_), true) => return err("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => p,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().take(64 << 10).read_to_string(&mut s).ctx("standard input")?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => return err("login needs the password: --password-stdin (or -p)"),
    };
    let creds = Creds { user, pass };
    let mut o = a.registry_args.options()?;
    o.creds = Some(creds.clone());
    let c = Client::connect(&registry, "", &o, "pull")?;
    c.check_login()?;
    auth::store(o.authfile.as_deref(), &registry, &creds)?;
    println!("Login Succeeded!");
    Ok(())
}

pub fn logout(a: LogoutArgs) -> Result<()> {
    if a.all {
        auth::remove(a.authfile.as_deref(), None)?;
        println!("Removed login credentials for all registries");
        return Ok(());
    }
    let Some(r) = a.registry else { return err("logout needs a REGISTRY or --all") };
    let registry = Reference::registry_only(&r)?;
    if !auth::remove(a.authfile.as_deref(), Some(&registry))? {
        return err(format!("not logged into {registry}"));
    }
    println!("Removed login credentials for {registry}");
    Ok(())
}
