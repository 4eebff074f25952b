//! `unionctl run|start|stop|kill|restart|wait`: argument handling and
//! output; the work happens in [`crate::runtime`]. Exit codes as docker:
//! the container's own status in the foreground, 125 for our errors, 126
//! when the command cannot be invoked, 127 when it is not found.

use crate::cli::container::{create_opts, CreateArgs};
use crate::runtime::{self, monitor};
use crate::store::containers::{self, Container};
use crate::store::error::{err, fail_with, set_exit_status, Error, Result};
use crate::store::Store;
use clap::Args;
use std::io::Write;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Run in the background and print the container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Args, Debug, Clone)]
pub struct StartArgs {
    /// Attach: stay in the foreground and return the container's exit status
    #[arg(short, long)]
    pub attach: bool,
    /// Attach stdin (with -a)
    #[arg(short, long)]
    pub interactive: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct StopArgs {
    /// Seconds to wait for the stop signal before SIGKILL
    #[arg(short = 't', long = "time", alias = "timeout", default_value_t = 10)]
    pub time: u64,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct KillArgs {
    /// The signal (name or number)
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

fn exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// Start in the foreground: our terminal is the container's; exits with its status.
fn attach(store: &Store, c: &Container) -> Result<()> {
    match monitor::run(store, c, monitor::Mode::Attached) {
        Ok(code) => exit(code),
        Err(e) => fail_with(e.code, e.msg),
    }
}

pub fn run(store: &Store, a: RunArgs) -> Result<()> {
    // Everything that fails before the container's process runs is ours: 125.
    set_exit_status(125);
    let o = create_opts(a.create)?;
    let c = containers::create(store, &o)?;
    if a.detach {
        match runtime::start_detached(store, &c) {
            Ok(()) => {
                println!("{}", c.id);
                Ok(())
            }
            Err(e) => fail_with(e.code, e.msg),
        }
    } else {
        attach(store, &c)
    }
}

/// Every container verb fails with podman's 125 (no such container, not running, ...).
fn for_each(store: &Store, which: &[String], mut f: impl FnMut(&Container) -> Result<()>) -> Result<()> {
    set_exit_status(125);
    let all = containers::list(store)?;
    let mut failed = 0;
    let mut last = None;
    for w in which {
        match containers::pick(&all, w).and_then(&mut f) {
            Ok(()) => println!("{w}"),
            Err(e) => {
                failed += 1;
                if which.len() > 1 {
                    eprintln!("unionctl: error: {e}");
                }
                last = Some(e);
            }
        }
    }
    match (failed, last) {
        (0, _) | (_, None) => Ok(()),
        (1, Some(e)) if which.len() == 1 => Err(e),
        (n, _) => err(format!("{n} of {} containers failed", which.len())),
    }
}

pub fn start(store: &Store, a: StartArgs) -> Result<()> {
    set_exit_status(125);
    if a.attach {
        if a.containers.len() != 1 {
            return err("start -a takes one container");
        }
        set_exit_status(125);
        // The monitor refuses a running container (and cleans up after a dead one).
        let mut c = containers::resolve(store, &a.containers[0])?;
        c.config.open_stdin |= a.interactive;
        return attach(store, &c);
    }
    for_each(store, &a.containers, |c| runtime::start_detached(store, c).map_err(|e| Error(e.msg)))
}

pub fn stop(store: &Store, a: StopArgs) -> Result<()> {
    for_each(store, &a.containers, |c| runtime::stop(store, c, Duration::from_secs(a.time)))
}

pub fn restart(store: &Store, a: StopArgs) -> Result<()> {
    for_each(store, &a.containers, |c| {
        runtime::stop(store, c, Duration::from_secs(a.time))?;
        runtime::start_detached(store, c).map_err(|e| Error(e.msg))
    })
}

pub fn kill(store: &Store, a: KillArgs) -> Result<()> {
    set_exit_status(125);
    let Some(sig) = runtime::parse_signal(&a.signal) else {
        return err(format!("invalid signal {:?}", a.signal));
    };
    for_each(store, &a.containers, |c| runtime::kill(store, c, sig))
}

pub fn wait(store: &Store, which: &[String]) -> Result<()> {
    set_exit_status(125);
    let all = containers::list(store)?;
    for w in which {
        let c = containers::pick(&all, w)?;
        let code = runtime::wait(store, c, None)?;
        println!("{code}");
    }
    Ok(())
}
