//! One registry, one repository: TLS set-up, the `/v2/` ping, authentication
//! (HTTP Basic or the Bearer token flow) and the requests pull and push make.
//!
//! TLS is verified against the system roots plus every `*.crt` of
//! `/etc/containers/certs.d/HOST:PORT/` and `~/.config/containers/certs.d/HOST:PORT/`
//! (or `--cert-dir`). `--tls-verify=false` turns verification off and lets
//! plain HTTP be used when TLS fails; it is never done without it.

use super::auth::{self, Creds};
use super::reference::Reference;
use crate::store::error::{err, Context, Error, Result};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;
use ureq::http::{self, Response};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::Body;

/// How to reach and authenticate to a registry.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub tls_verify: bool,
    pub creds: Option<Creds>,
    pub authfile: Option<PathBuf>,
    pub cert_dir: Option<PathBuf>,
}

/// What a 401 asked for.
#[derive(Clone, Debug)]
enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String> },
}

pub struct Client {
    agent: ureq::Agent,
    /// `https://host:port` or `http://host:port`.
    pub base: String,
    pub registry: String,
    pub repository: String,
    creds: Option<Creds>,
    challenge: Option<Challenge>,
    /// `pull` or `pull,push`.
    actions: String,
    /// The Authorization header value in use.
    auth: RwLock<Option<String>>,
}

const SYSTEM_BUNDLES: &[&str] =
    &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

fn read_pem(p: &Path, out: &mut Vec<Certificate<'static>>) -> Result<()> {
    let data = std::fs::read(p).ctx(p.display())?;
    for item in ureq::tls::parse_pem(&data) {
        if let PemItem::Certificate(c) = item.map_err(|e| Error(format!("{}: {e}", p.display())))? {
            out.push(c);
        }
    }
    Ok(())
}

/// Directories with the registry's own CA certificates.
fn cert_dirs(registry: &str, cert_dir: Option<&Path>) -> Vec<PathBuf> {
    if let Some(d) = cert_dir {
        return vec![d.to_path_buf()];
    }
    let mut v = vec![Path::new("/etc/containers/certs.d").join(registry)];
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        v.push(PathBuf::from(h).join(".config/containers/certs.d").join(registry));
    }
    v
}

fn tls_config(registry: &str, o: &Options) -> Result<TlsConfig> {
    if !o.tls_verify {
        return Ok(TlsConfig::builder().disable_verification(true).build());
    }
    let mut certs = Vec::new();
    if let Some(b) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.is_file()) {
        read_pem(b, &mut certs)?;
    }
    for d in cert_dirs(registry, o.cert_dir.as_deref()) {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "crt")) {
            read_pem(f, &mut certs)?;
        }
    }
    if certs.is_empty() {
        return Ok(TlsConfig::builder().root_certs(RootCerts::WebPki).build());
    }
    Ok(TlsConfig::builder().root_certs(RootCerts::new_with_certs(&certs)).build())
}

fn agent(tls: TlsConfig) -> ureq::Agent {
    let cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .max_redirects(5)
        .user_agent(concat!("unionctl/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::new_with_config(cfg)
}

/// `key="value"` pairs of a WWW-Authenticate header.
fn params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let value;
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            value = r[..end].to_string();
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        out.push((key, value));
    }
    out
}

fn parse_challenge(h: &str) -> Option<Challenge> {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let p = params(rest);
            let get = |k: &str| p.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
            Some(Challenge::Bearer { realm: get("realm")?, service: get("service") })
        }
        _ => None,
    }
}

fn header(r: &Response<Body>, name: &str) -> Option<String> {
    r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// The registry's error document as one line (`CODE: message`), else the status.
pub fn error_text(r: &mut Response<Body>) -> String {
    let status = r.status();
    let body = r.body_mut().with_config().limit(64 << 10).read_to_vec().unwrap_or_default();
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let first = parsed.as_ref().and_then(|v| v.get("errors")).and_then(|e| e.get(0)).cloned();
    match first {
        Some(e) => {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            format!("{code}: {msg} (HTTP {})", status.as_u16())
        }
        None => format!("HTTP {}", status),
    }
}

/// A transport failure as one line, with the hint a TLS failure needs.
fn transport(what: &str, e: ureq::Error, tls_verify: bool) -> Error {
    let text = e.to_string().replace('\n', " ");
    let tlsish = matches!(e, ureq::Error::Tls(_) | ureq::Error::Rustls(_))
        || text.contains("certificate")
        || text.contains("tls")
        || text.contains("corrupt message");
    if text.contains("CaUsedAsEndEntity") {
        return Error(format!(
            "{what}: TLS failed: the registry's certificate is a CA certificate (basicConstraints CA:TRUE) used as its own server certificate, which rustls refuses: sign a server certificate with that CA, or make the self-signed one with basicConstraints=CA:FALSE"
        ));
    }
    if tlsish && tls_verify {
        Error(format!(
            "{what}: TLS failed: {text} (a plain-HTTP or untrusted registry needs --tls-verify=false, or its CA in /etc/containers/certs.d/HOST:PORT/ca.crt)"
        ))
    } else {
        Error(format!("{what}: {text}"))
    }
}

impl Client {
    /// Reach `registry` for `repository` (empty for a login check) and get
    /// the authorization `actions` needs ("pull" or "pull,push").
    pub fn connect(registry: &str, repository: &str, o: &Options, actions: &str) -> Result<Client> {
        let host = Reference::api_host(registry);
        let agent = agent(tls_config(registry, o)?);
        let creds = match &o.creds {
            Some(c) => Some(c.clone()),
            None => auth::lookup(o.authfile.as_deref(), registry, repository)?,
        };
        let what = format!("pinging registry {registry}");
        let mut base = format!("https://{host}");
        let ping = match agent.get(format!("{base}/v2/")).call() {
            Ok(r) => r,
            Err(e) if !o.tls_verify && !matches!(e, ureq::Error::HostNotFound) => {
                // Allowed by --tls-verify=false only: plain HTTP.
                base = format!("http://{host}");
                agent.get(format!("{base}/v2/")).call().map_err(|e| transport(&what, e, false))?
            }
            Err(e) => return Err(transport(&what, e, o.tls_verify)),
        };
        let challenge = match ping.status().as_u16() {
            200..=299 => None,
            401 => header(&ping, "www-authenticate").as_deref().and_then(parse_challenge),
            s => return err(format!("{what}: unexpected HTTP {s} from {base}/v2/ (is this an OCI registry?)")),
        };
        let c = Client {
            agent,
            base,
            registry: registry.to_string(),
            repository: repository.to_string(),
            creds,
            challenge,
            actions: actions.to_string(),
            auth: RwLock::new(None),
        };
        c.authenticate()?;
        if matches!(c.challenge, Some(Challenge::Basic)) && c.creds.is_some() {
            // Wrong credentials are told as such, before any real request.
            c.check_login()?;
        }
        Ok(c)
    }

    /// Check `creds` against the registry (for `login`).
    pub fn check_login(&self) -> Result<()> {
        match &self.challenge {
            None => Ok(()),
            Some(Challenge::Basic) => {
                let r = self.call(http::Method::GET, &format!("{}/v2/", self.base), &[], false)?;
                match r.status().as_u16() {
                    200..=299 => Ok(()),
                    401 => err(format!("authenticating to {}: invalid username or password", self.registry)),
                    s => err(format!("logging in to {}: HTTP {s}", self.registry)),
                }
            }
            Some(Challenge::Bearer { .. }) => Ok(()),
        }
    }

    /// Set the Authorization header the challenge asks for.
    fn authenticate(&self) -> Result<()> {
        let value = match &self.challenge {
            None => None,
            Some(Challenge::Basic) => self.creds.as_ref().map(Creds::basic_header),
            Some(Challenge::Bearer { realm, service }) => {
                Some(format!("Bearer {}", self.token(realm, service.as_deref())?))
            }
        };
        if let Ok(mut a) = self.auth.write() {
            *a = value;
        }
        Ok(())
    }

    fn token(&self, realm: &str, service: Option<&str>) -> Result<String> {
        let what = format!("getting a token from {realm}");
        let mut req = self.agent.get(realm);
        if let Some(s) = service {
            req = req.query("service", s);
        }
        if !self.repository.is_empty() {
            req = req.query("scope", format!("repository:{}:{}", self.repository, self.actions));
        }
        if let Some(c) = &self.creds {
            req = req.header("Authorization", c.basic_header());
        }
        let mut r = req.call().map_err(|e| transport(&what, e, true))?;
        match r.status().as_u16() {
            200..=299 => {}
            401 | 403 => {
                return err(match &self.creds {
                    Some(_) => format!("authenticating to {}: invalid username or password", self.registry),
                    None => format!(
                        "authenticating to {}: the token server wants credentials (unionctl login)",
                        self.registry
                    ),
                })
            }
            _ => return err(format!("{what}: {}", error_text(&mut r))),
        }
        let v: serde_json::Value = serde_json::from_slice(
            &r.body_mut().with_config().limit(1 << 20).read_to_vec().map_err(|e| Error(format!("{what}: {e}")))?,
        )
        .ctx(&what)?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Error(format!("{what}: no token in the answer")))
    }

    pub fn url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.base, self.repository)
    }

    /// Resolve a Location header against the registry.
    pub fn location(&self, loc: &str) -> String {
        if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else {
            format!("{}{}{loc}", self.base, if loc.starts_with('/') { "" } else { "/" })
        }
    }

    fn build(&self, method: http::Method, url: &str, headers: &[(&str, String)]) -> http::request::Builder {
        let mut b = http::Request::builder().method(method).uri(url);
        // Never to another host (a redirect target gets none: ureq strips it).
        if url.starts_with(&self.base) {
            if let Some(a) = self.auth.read().ok().and_then(|a| a.clone()) {
                b = b.header("Authorization", a);
            }
        }
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        b
    }

    /// A request without a body; a 401 gets one fresh authentication and a retry.
    pub fn call(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, String)],
        retry_auth: bool,
    ) -> Result<Response<Body>> {
        let what = format!("{method} {}", url.split('?').next().unwrap_or(url));
        let req = self.build(method.clone(), url, headers).body(()).map_err(|e| Error(format!("{what}: {e}")))?;
        let r = self.agent.run(req).map_err(|e| transport(&what, e, true))?;
        if r.status().as_u16() == 401 && retry_auth && self.challenge.is_some() {
            self.authenticate()?;
            let req = self.build(method, url, headers).body(()).map_err(|e| Error(format!("{what}: {e}")))?;
            return self.agent.run(req).map_err(|e| transport(&what, e, true));
        }
        Ok(r)
    }

    /// A request with a body (not retried).
    pub fn send<B: ureq::AsSendBody>(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, String)],
        body: B,
    ) -> Result<Response<Body>> {
        let what = format!("{method} {}", url.split('?').next().unwrap_or(url));
        let req = self.build(method, url, headers).body(body).map_err(|e| Error(format!("{what}: {e}")))?;
        self.agent.run(req).map_err(|e| transport(&what, e, true))
    }

    /// The error for a failed answer, naming what was asked.
    pub fn fail(&self, what: &str, r: &mut Response<Body>) -> Error {
        let status = r.status().as_u16();
        let scope_hint = header(r, "www-authenticate").filter(|h| h.contains("insufficient_scope"));
        let text = error_text(r);
        match status {
            401 if scope_hint.is_some() && self.creds.is_some() => Error(format!(
                "{what}: insufficient_scope: the credentials for {} do not allow {} on {} ({text})",
                self.registry, self.actions, self.repository
            )),
            401 if self.creds.is_some() && self.bearer() => Error(format!(
                "{what}: the registry refused the token from the token server (expired or invalid) ({text})"
            )),
            401 => Error(format!(
                "{what}: authentication required ({text}); use --creds or unionctl login {}",
                self.registry
            )),
            403 => Error(format!("{what}: access denied ({text})")),
            _ => Error(format!("{what}: {text}")),
        }
    }

    pub fn header(r: &Response<Body>, name: &str) -> Option<String> {
        header(r, name)
    }

    /// Whether a Bearer token is in use.
    fn bearer(&self) -> bool {
        self.auth.read().is_ok_and(|a| a.as_deref().is_some_and(|a| a.starts_with("Bearer ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        match parse_challenge(r#"Bearer realm="http://127.0.0.1:1/token",service="reg",scope="repository:a/b:pull""#) {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "http://127.0.0.1:1/token");
                assert_eq!(service.as_deref(), Some("reg"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_challenge(r#"Basic realm="x""#), Some(Challenge::Basic)));
        assert!(parse_challenge("Negotiate").is_none());
    }
}
