//! Credentials where podman and docker keep them.
//!
//! Read order: `--authfile` or `$REGISTRY_AUTH_FILE`, then
//! `$XDG_RUNTIME_DIR/containers/auth.json` (what `podman login` writes),
//! `~/.config/containers/auth.json`, `~/.docker/config.json`. Each maps
//! `host[:port][/namespace...]` to `{"auth": base64("user:pass")}`; the most
//! specific key for a repository wins. `login` writes the first of these
//! (0600, temp file + rename).

use crate::store::error::{err, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{Map, Value};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Clone, PartialEq, Eq)]
pub struct Creds {
    pub user: String,
    pub pass: String,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Creds({}, ***)", self.user)
    }
}

impl Creds {
    /// `--creds USER[:PASS]`.
    pub fn parse(s: &str) -> Result<Creds> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Creds { user: u.into(), pass: p.into() }),
            _ => err("--creds must be USERNAME:PASSWORD"),
        }
    }

    pub fn basic_header(&self) -> String {
        format!("Basic {}", B64.encode(format!("{}:{}", self.user, self.pass)))
    }

    fn from_auth(v: &Value) -> Option<Creds> {
        let s = v.get("auth")?.as_str()?;
        let raw = B64.decode(s.trim()).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (u, p) = raw.split_once(':')?;
        Some(Creds { user: u.into(), pass: p.into() })
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// Where `login` writes (and `logout` removes) credentials.
pub fn write_path(authfile: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = authfile {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(x).join("containers/auth.json"));
    }
    match home() {
        Some(h) => Ok(h.join(".config/containers/auth.json")),
        None => err("no place for credentials: set HOME or use --authfile"),
    }
}

/// Every file read, in order.
fn read_paths(authfile: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = authfile {
        return vec![p.to_path_buf()];
    }
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
    }
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(x).join("containers/auth.json"));
    }
    if let Some(h) = home() {
        out.push(h.join(".config/containers/auth.json"));
        out.push(h.join(".docker/config.json"));
    }
    out
}

fn read_auths(p: &Path) -> Result<Map<String, Value>> {
    let data = match fs::read(p) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(e).ctx(p.display()),
    };
    if data.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Map::new());
    }
    let v: Value = serde_json::from_slice(&data).ctx(p.display())?;
    Ok(v.get("auths").and_then(|a| a.as_object()).cloned().unwrap_or_default())
}

/// Keys that may hold credentials for `registry/repository`, most specific first.
fn keys_for(registry: &str, repository: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let parts: Vec<&str> = repository.split('/').filter(|s| !s.is_empty()).collect();
    for n in (1..=parts.len()).rev() {
        keys.push(format!("{registry}/{}", parts[..n].join("/")));
    }
    keys.push(registry.to_string());
    if registry == super::reference::DOCKER_HUB {
        keys.push("https://index.docker.io/v1/".into());
        keys.push("index.docker.io".into());
    }
    keys
}

/// Normalise a key of a file (docker's may carry a scheme and a path).
fn clean_key(k: &str) -> String {
    let k = k.trim_start_matches("https://").trim_start_matches("http://");
    let k = k.strip_suffix("/v1/").or_else(|| k.strip_suffix("/v2/")).unwrap_or(k);
    k.trim_end_matches('/').to_string()
}

/// The stored credentials for a repository (`repository` may be empty).
pub fn lookup(authfile: Option<&Path>, registry: &str, repository: &str) -> Result<Option<Creds>> {
    let keys = keys_for(registry, repository);
    for p in read_paths(authfile) {
        let auths = read_auths(&p)?;
        for k in &keys {
            let hit = auths.iter().find(|(key, _)| *key == k || clean_key(key) == *k);
            if let Some(c) = hit.and_then(|(_, v)| Creds::from_auth(v)) {
                return Ok(Some(c));
            }
        }
    }
    Ok(None)
}

fn write_file(p: &Path, auths: Map<String, Value>) -> Result<()> {
    let mut doc: Value = match fs::read(p) {
        Ok(d) if !d.iter().all(|b| b.is_ascii_whitespace()) => serde_json::from_slice(&d).ctx(p.display())?,
        _ => Value::Object(Map::new()),
    };
    let Some(obj) = doc.as_object_mut() else { return err(format!("{}: not a JSON object", p.display())) };
    obj.insert("auths".into(), Value::Object(auths));
    let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).ctx(dir.display())?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).ctx(tmp.display())?;
        f.write_all(&serde_json::to_vec_pretty(&doc)?).ctx(tmp.display())?;
        f.write_all(b"\n").ctx(tmp.display())?;
        f.sync_all().ctx(tmp.display())?;
        fs::rename(&tmp, p).ctx(p.display())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Store credentials for `key` (a registry, or registry/namespace).
pub fn store(authfile: Option<&Path>, key: &str, c: &Creds) -> Result<PathBuf> {
    let p = write_path(authfile)?;
    let mut auths = read_auths(&p)?;
    let auth = B64.encode(format!("{}:{}", c.user, c.pass));
    auths.insert(key.to_string(), serde_json::json!({ "auth": auth }));
    write_file(&p, auths)?;
    Ok(p)
}

/// Remove the credentials for `key` (all with `None`); false when there were none.
pub fn remove(authfile: Option<&Path>, key: Option<&str>) -> Result<bool> {
    let p = write_path(authfile)?;
    let mut auths = read_auths(&p)?;
    let had = match key {
        Some(k) => {
            let found: Vec<String> = auths.keys().filter(|x| *x == k || clean_key(x) == k).cloned().collect();
            for f in &found {
                auths.remove(f);
            }
            !found.is_empty()
        }
        None => {
            let had = !auths.is_empty();
            auths.clear();
            had
        }
    };
    if had {
        write_file(&p, auths)?;
    }
    Ok(had)
}
