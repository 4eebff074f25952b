//! Image references as podman reads them: `[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`.
//!
//! The first component is a registry when it has a `.` or a `:` or is
//! `localhost`; otherwise the registry is `docker.io` (and a one-component
//! repository there is under `library/`). A `docker://` prefix is accepted.

use crate::store::digest::Digest;
use crate::store::error::{err, Result};

pub const DOCKER_HUB: &str = "docker.io";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` as written (docker.io for the default).
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

fn valid_repo(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 255
        && r.split('/').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
        })
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn valid_host(h: &str) -> bool {
    !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |why: &str| err(format!("invalid image reference {s:?}: {why}"));
        let rest = s.strip_prefix("docker://").unwrap_or(s);
        let (rest, digest) = match rest.split_once('@') {
            Some((r, d)) => match Digest::parse(d) {
                Ok(d) => (r, Some(d)),
                Err(e) => return bad(&e.0),
            },
            None => (rest, None),
        };
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_string())),
            None => (rest, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return bad("bad tag");
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, more)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), more.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" { DOCKER_HUB.to_string() } else { registry };
        if !valid_host(&registry) {
            return bad("bad registry name");
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if !valid_repo(&repository) {
            return bad("repository names are lowercase letters, digits and . _ - separated by /");
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        Ok(Reference { registry, repository, tag, digest })
    }

    /// A registry given alone (`login`, `logout`): `host[:port]`, also with a scheme or a path.
    pub fn registry_only(s: &str) -> Result<String> {
        let h = s.trim_start_matches("https://").trim_start_matches("http://").trim_start_matches("docker://");
        let h = h.split('/').next().unwrap_or_default();
        let h = if h == "index.docker.io" || h == "registry-1.docker.io" { DOCKER_HUB } else { h };
        if !valid_host(h) {
            return err(format!("invalid registry {s:?}"));
        }
        Ok(h.to_string())
    }

    /// What the API is asked for: the digest when there is one, else the tag.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// `registry/repository`.
    pub fn repo_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name an image gets in the store: `registry/repository:tag`
    /// (none when pulled by digest only).
    pub fn store_name(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.repo_name()))
    }

    /// Host to connect to (Docker Hub's API lives elsewhere).
    pub fn api_host(registry: &str) -> &str {
        if registry == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            registry
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.repo_name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_podman() {
        let r = Reference::parse("alpine").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/alpine", Some("latest"))
        );
        let r = Reference::parse("127.0.0.1:5000/test/hello:v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "test/hello", Some("v1"))
        );
        assert_eq!(r.store_name().unwrap(), "127.0.0.1:5000/test/hello:v1");
        let r = Reference::parse("localhost/x").unwrap();
        assert_eq!(r.registry, "localhost");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("quay.io/a/b@{d}")).unwrap();
        assert_eq!((r.tag.clone(), r.reference()), (None, d.clone()));
        let r = Reference::parse("docker://user/app:1.0").unwrap();
        assert_eq!(r.repo_name(), "docker.io/user/app");
        for bad in ["UPPER/case", "a//b", "x:", "x@sha256:zz", "-a/b", "x:tag with space"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Reference::registry_only("https://127.0.0.1:5000/v2/").unwrap(), "127.0.0.1:5000");
    }
}
