//! Rootless id maps: the user is root in the container's user namespace, and
//! the user's subordinate ids (`/etc/subuid`, `/etc/subgid`) are ids 1 and up,
//! mapped by the setuid `newuidmap`/`newgidmap` (package uidmap), as podman
//! does. A user without subordinate ids gets only their own id (mapped by
//! the namespace's own process, setgroups denied).

use std::process::{Command, Stdio};

/// One `/etc/subuid` range: (start, count).
pub type Range = (u32, u32);

/// The ranges of the user `name` (or uid) in a subuid/subgid file's text.
pub fn ranges(text: &str, name: &str, id: u32) -> Vec<Range> {
    let id = id.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if who != name && who != id {
                return None;
            }
            Some((start.parse().ok()?, count.parse().ok()?))
        })
        .filter(|r: &Range| r.1 > 0)
        .collect()
}

/// The subordinate uid and gid ranges of the calling user, when both exist
/// and the helpers are installed.
pub fn subordinate() -> Option<(Vec<Range>, Vec<Range>)> {
    let uid = crate::sys::geteuid();
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|u| u.name)?;
    let gid = nix::unistd::getegid().as_raw();
    let u = ranges(&std::fs::read_to_string("/etc/subuid").unwrap_or_default(), &name, uid);
    let g = ranges(&std::fs::read_to_string("/etc/subgid").unwrap_or_default(), &name, gid);
    let have =
        |b: &str| std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(b).is_file()));
    (!u.is_empty() && !g.is_empty() && have("newuidmap") && have("newgidmap")).then_some((u, g))
}

/// The argument list of newuidmap/newgidmap: 0 -> own id, then the ranges from 1.
fn map_args(own: u32, ranges: &[Range]) -> Vec<String> {
    let mut v = vec!["0".to_string(), own.to_string(), "1".to_string()];
    let mut inside = 1u32;
    for (start, count) in ranges {
        v.extend([inside.to_string(), start.to_string(), count.to_string()]);
        inside = inside.saturating_add(*count);
    }
    v
}

/// Map the user namespace of `pid` (run from outside it).
pub fn apply(pid: i32, u: &[Range], g: &[Range]) -> Result<(), String> {
    let own_u = crate::sys::geteuid();
    let own_g = nix::unistd::getegid().as_raw();
    for (tool, own, r) in [("newuidmap", own_u, u), ("newgidmap", own_g, g)] {
        let out = Command::new(tool)
            .arg(pid.to_string())
            .args(map_args(own, r))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if !out.status.success() {
            return Err(format!("{tool}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_by_name_or_id() {
        let t = "alice:100000:65536\nbob:165536:65536\n1001:300000:10\nbad\n";
        assert_eq!(ranges(t, "alice", 1000), vec![(100000, 65536)]);
        assert_eq!(ranges(t, "carol", 1001), vec![(300000, 10)]);
        assert!(ranges(t, "dave", 7).is_empty());
        assert_eq!(
            map_args(1000, &[(100000, 65536), (300000, 10)]),
            ["0", "1000", "1", "1", "100000", "65536", "65537", "300000", "10"]
        );
    }
}
