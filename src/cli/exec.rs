//! `unionctl exec` and `unionctl logs`.

use crate::runtime::exec::{self, ExecOptions};
use crate::runtime::log::{Reader, Stream};
use crate::runtime::state;
use crate::store::containers;
use crate::store::error::{err, fail_with, set_exit_status, Result};
use crate::store::Store;
use clap::Args;
use std::io::Write;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// Keep stdin open
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the process a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Run in the background
    #[arg(short, long)]
    pub detach: bool,
    /// KEY=VALUE
    #[arg(short, long)]
    pub env: Vec<String>,
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// USER[:GROUP] (names from the container's /etc/passwd and /etc/group)
    #[arg(short, long)]
    pub user: Option<String>,
    pub container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct LogsArgs {
    /// Keep printing new output until the container stops
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines
    #[arg(short = 'n', long)]
    pub tail: Option<String>,
    /// Prefix each line with its time
    #[arg(short, long)]
    pub timestamps: bool,
    pub container: String,
}

pub fn exec(store: &Store, a: ExecArgs) -> Result<()> {
    set_exit_status(125);
    let c = containers::resolve(store, &a.container)?;
    let o = ExecOptions {
        argv: a.cmd,
        env: a.env,
        user: a.user,
        workdir: a.workdir,
        tty: a.tty,
        interactive: a.interactive,
        detach: a.detach,
    };
    match exec::exec(store, &c, &o) {
        Ok(code) => {
            let _ = std::io::stdout().flush();
            std::process::exit(code)
        }
        Err(e) => fail_with(e.code, e.msg),
    }
}

pub fn logs(store: &Store, a: LogsArgs) -> Result<()> {
    set_exit_status(125);
    let c = containers::resolve(store, &a.container)?;
    let tail: Option<usize> = match a.tail.as_deref() {
        None | Some("all") | Some("-1") => None,
        Some(n) => Some(n.parse().map_err(|_| crate::store::error::Error(format!("invalid --tail {n:?}")))?),
    };
    let path = state::log_path(store, &c);
    let mut reader = match Reader::open(&path) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !a.follow {
                return Ok(());
            }
            loop {
                if !state::view(store, &c).running() {
                    return Ok(());
                }
                if let Ok(r) = Reader::open(&path) {
                    break r;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Err(e) => return err(format!("{}: {e}", path.display())),
    };
    let mut first = true;
    loop {
        let running = state::view(store, &c).running();
        let mut lines = reader.lines(!running).map_err(|e| crate::store::error::Error(e.to_string()))?;
        if first {
            if let Some(n) = tail {
                let skip = lines.len().saturating_sub(n);
                lines.drain(..skip);
            }
            first = false;
        }
        let (mut out, mut errs) = (std::io::stdout().lock(), std::io::stderr().lock());
        for l in lines {
            let w: &mut dyn Write = if l.stream == Stream::Stderr { &mut errs } else { &mut out };
            if a.timestamps {
                let _ = write!(w, "{} ", l.timestamp);
            }
            let _ = w.write_all(&l.text);
            if l.full {
                let _ = w.write_all(b"\n");
            }
        }
        let _ = out.flush();
        drop((out, errs));
        if !a.follow || !running {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
