//! `unionfs`: mount a union of directories (see `unionfs --help`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(unionfs::cli::mount::main(&args));
}
