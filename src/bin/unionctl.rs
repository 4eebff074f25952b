//! `unionctl`: the container-storage tool built on unionfs.

use clap::Parser;
use unionfs::cli::app::{self, Cli};

fn main() {
    // A container's PID 1 (see runtime::init): not a command line to parse.
    if std::env::args_os().next().is_some_and(|a| a == unionfs::runtime::init::INIT_NAME) {
        unionfs::runtime::init::init_main();
    }
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        use clap::error::ErrorKind;
        let code = match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
            // docker: a bad flag of run/exec/start is the tool's own error, 125.
            _ if runs_a_container() => 125,
            _ => 2,
        };
        std::process::exit(code)
    });
    // Warnings by default; RUST_LOG=debug shows what a load skipped (xattrs).
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).try_init();
    if let Err(e) = app::run(cli) {
        eprintln!("unionctl: error: {e}");
        std::process::exit(unionfs::store::error::exit_status());
    }
}

/// Is the command line `run`, `exec`, `start` or `create` (also under `container`)?
fn runs_a_container() -> bool {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .take(2)
        .any(|a| matches!(a.as_str(), "run" | "exec" | "start" | "create"))
}
