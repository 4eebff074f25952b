//! Processes and their namespaces and roots, read from /proc.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub zombie: bool,
}

/// Every process: pid, parent, zombie or not.
pub fn processes() -> Vec<Proc> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(i) = stat.rfind(')') else { continue };
        let f: Vec<&str> = stat[i + 2..].split(' ').collect();
        out.push(Proc { pid, ppid: f.get(1).and_then(|s| s.parse().ok()).unwrap_or(0), zombie: f[0] == "Z" });
    }
    out
}

/// Alive and not a zombie.
pub fn alive(pid: i32) -> bool {
    pid > 0 && processes().iter().any(|p| p.pid == pid && !p.zombie)
}

/// The parent of `pid`.
pub fn ppid(pid: i32) -> Option<i32> {
    processes().into_iter().find(|p| p.pid == pid).map(|p| p.ppid)
}

pub fn cmdline(pid: i32) -> String {
    let b = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&b).replace('\0', " ").trim().to_string()
}

/// The namespace `kind` (mnt, pid, uts, ipc, user, ...) of `pid`: `mnt:[4026...]`.
pub fn ns(pid: &str, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}")).map(|p| p.display().to_string()).unwrap_or_default()
}

/// major:minor of the FUSE file systems (container roots) mounted at or
/// below `p` in our namespace. (Never others: a bind of a host directory
/// has the host root's device.)
pub fn mount_devs_under(p: &Path) -> HashSet<String> {
    let root = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            let fuse = f.get(dash + 1).is_some_and(|t| t.starts_with("fuse"));
            (fuse && Path::new(&f[4].replace("\\040", " ")).starts_with(&root)).then(|| f[2].to_string())
        })
        .collect()
}

/// major:minor of the mount a process sees as its `/`.
pub fn root_dev(pid: i32) -> Option<String> {
    let mi = fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    mi.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.len() > 4 && f[4] == "/").then(|| f[2].to_string())
    })
}
