//! What the container's process is: argv (Entrypoint + Cmd), environment,
//! working directory and user, resolved the way docker does. User and group
//! names are looked up in the container's own `/etc/passwd` and `/etc/group`
//! (read after `pivot_root`), never the host's.

use crate::store::containers::Config;

/// PATH when the image sets none (docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The argv: Entrypoint then Cmd (already merged with `run` flags at create).
pub fn argv(c: &Config) -> Vec<String> {
    let mut v = c.entrypoint.clone().unwrap_or_default();
    v.extend(c.cmd.clone().unwrap_or_default());
    v
}

/// Who the process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the primary group included, like docker).
    pub groups: Vec<u32>,
    pub home: String,
}

/// One `/etc/passwd` entry: (name, uid, gid, home).
fn passwd_entries(passwd: &str) -> impl Iterator<Item = (&str, u32, u32, &str)> {
    passwd.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        Some((f[0], f[2].parse().ok()?, f[3].parse().ok()?, f[5]))
    })
}

/// One `/etc/group` entry: (name, gid, members).
fn group_entries(group: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    group.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        Some((f[0], f[2].parse().ok()?, f[3].split(',').filter(|m| !m.is_empty()).collect()))
    })
}

/// Resolve `user` (`name`, `uid`, `name:group`, `uid:gid`, ...; empty = root)
/// against the contents of the container's passwd and group files.
pub fn resolve_user(user: &str, passwd: &str, group: &str) -> Result<User, String> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = match u.parse::<u32>() {
        Ok(uid) => passwd_entries(passwd).find(|e| e.1 == uid),
        Err(_) => Some(
            passwd_entries(passwd)
                .find(|e| e.0 == u)
                .ok_or_else(|| format!("unable to find user {u}: no matching entries in passwd file"))?,
        ),
    };
    let (name, uid, mut gid, home) = match entry {
        Some((n, uid, gid, home)) => (Some(n), uid, gid, home.to_string()),
        // A numeric uid without an entry: group 0 and home / (docker).
        None => (None, u.parse().unwrap_or(0), 0, "/".to_string()),
    };
    let explicit_group = g.is_some_and(|g| !g.is_empty());
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(group)
                .find(|e| e.0 == g)
                .map(|e| e.1)
                .ok_or_else(|| format!("unable to find group {g}: no matching entries in group file"))?,
        };
    }
    // An explicit group is the only one (runc's rule); else the user's
    // memberships in the container's /etc/group are added.
    let mut groups = vec![gid];
    if let (Some(n), false) = (name, explicit_group) {
        for (_, id, members) in group_entries(group) {
            if members.contains(&n) && !groups.contains(&id) {
                groups.push(id);
            }
        }
    }
    Ok(User { uid, gid, groups, home })
}

/// The process environment: the config's, with PATH, HOSTNAME, HOME and
/// (with a terminal) TERM added when missing, as docker does.
pub fn environment(env: &[String], extra: &[String], hostname: &str, home: &str, tty: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut set = |kv: &str| {
        let key = kv.split('=').next().unwrap_or(kv);
        out.retain(|x| x.split('=').next() != Some(key));
        out.push(kv.to_string());
    };
    set(&format!("PATH={DEFAULT_PATH}"));
    set(&format!("HOSTNAME={hostname}"));
    if tty {
        set("TERM=xterm");
    }
    for kv in env.iter().chain(extra) {
        set(kv);
    }
    if !out.iter().any(|x| x.starts_with("HOME=")) {
        out.push(format!("HOME={home}"));
    }
    out
}

/// The value of `key` in an environment list.
pub fn getenv<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter().rev().find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Parse an `--env-file`: KEY=VALUE lines; `#` comments and blank lines
/// skipped; a bare `KEY` takes the value from our own environment (docker).
pub fn parse_env_file(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if l.contains('=') {
            out.push(l.to_string());
        } else if let Ok(v) = std::env::var(l.trim()) {
            out.push(format!("{}={v}", l.trim()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:app,www\napp:x:1000:\naudio:x:29:app\n";

    #[test]
    fn users_resolve_through_the_container_files() {
        assert_eq!(
            resolve_user("", PASSWD, GROUP).unwrap(),
            User { uid: 0, gid: 0, groups: vec![0], home: "/root".into() }
        );
        let app = resolve_user("app", PASSWD, GROUP).unwrap();
        assert_eq!(
            (app.uid, app.gid, app.groups.clone(), app.home.as_str()),
            (1000, 1000, vec![1000, 50, 29], "/home/app")
        );
        assert_eq!(resolve_user("1000", PASSWD, GROUP).unwrap(), app);
        let w = resolve_user("app:staff", PASSWD, GROUP).unwrap();
        assert_eq!((w.gid, w.groups.clone()), (50, vec![50]));
        let n = resolve_user("4242:7", PASSWD, GROUP).unwrap();
        assert_eq!((n.uid, n.gid, n.home.as_str()), (4242, 7, "/"));
        assert!(resolve_user("nosuch", PASSWD, GROUP).unwrap_err().contains("unable to find user nosuch"));
        assert!(resolve_user("app:nosuch", PASSWD, GROUP).unwrap_err().contains("group nosuch"));
    }

    #[test]
    fn environment_defaults_and_overrides() {
        let e = environment(&["PATH=/x".into(), "A=1".into()], &["A=2".into()], "h", "/root", true);
        assert_eq!(getenv(&e, "PATH"), Some("/x"));
        assert_eq!(getenv(&e, "A"), Some("2"));
        assert_eq!(getenv(&e, "TERM"), Some("xterm"));
        assert_eq!(getenv(&e, "HOME"), Some("/root"));
        assert_eq!(getenv(&e, "HOSTNAME"), Some("h"));
        assert_eq!(parse_env_file("# c\n\nK=V\n  X=a b\n"), vec!["K=V".to_string(), "X=a b".to_string()]);
    }
}
