//! `mount.unionfs`: the helper mount(8) runs for `-t unionfs` and fstab lines
//! of type `unionfs` (see `mount.unionfs --help` and mount.unionfs(8)).

fn main() {
    std::process::exit(mount_helper::main(std::env::args_os().collect()));
}
