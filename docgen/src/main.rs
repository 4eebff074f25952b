//! `unionfs-docgen OUTDIR`: writes the man pages and shell completions of
//! unionfs, unionctl and mount.unionfs under OUTDIR (what scripts/install.sh
//! installs):
//!
//! ```text
//! OUTDIR/man/man1/unionfs.1, unionctl.1, unionctl-image.1, unionctl-image-load.1, ...
//! OUTDIR/man/man8/mount.unionfs.8
//! OUTDIR/completions/bash/NAME, zsh/_NAME, fish/NAME.fish  (for each of the three)
//! ```

use clap_complete::{generate_to, Shell};
use std::path::{Path, PathBuf};

fn man(cmd: clap::Command, section: &str, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if section == "1" {
        // One page per command and subcommand: unionctl.1, unionctl-image.1, ...
        clap_mangen::generate_to(cmd, dir)
    } else {
        clap_mangen::Man::new(cmd).section(section).generate_to(dir).map(|_| ())
    }
}

fn completions(mut cmd: clap::Command, out: &Path) -> std::io::Result<()> {
    let name = cmd.get_name().to_string();
    for (shell, sub) in [(Shell::Bash, "bash"), (Shell::Zsh, "zsh"), (Shell::Fish, "fish")] {
        let dir = out.join("completions").join(sub);
        std::fs::create_dir_all(&dir)?;
        let written = generate_to(shell, &mut cmd, &name, &dir)?;
        // bash-completion looks the command's name up: NAME, not NAME.bash.
        if shell == Shell::Bash {
            std::fs::rename(&written, dir.join(&name))?;
        }
    }
    Ok(())
}

fn run(out: &Path) -> std::io::Result<()> {
    let man1 = out.join("man/man1");
    man(unionfs::cli::mount::command(), "1", &man1)?;
    man(unionfs::cli::app::command(), "1", &man1)?;
    man(mount_helper::command(), "8", &out.join("man/man8"))?;
    completions(unionfs::cli::mount::command(), out)?;
    completions(unionfs::cli::app::command(), out)?;
    completions(mount_helper::command(), out)?;
    Ok(())
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next().map(PathBuf::from), args.next()) else {
        eprintln!("usage: unionfs-docgen OUTDIR");
        std::process::exit(2);
    };
    if let Err(e) = run(&out) {
        eprintln!("unionfs-docgen: {}: {e}", out.display());
        std::process::exit(1);
    }
}
