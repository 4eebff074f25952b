//! A real registry (Debian's docker-registry, distribution 2.8) on
//! 127.0.0.1 for the registry tests, in three set-ups (plain HTTP; TLS with
//! htpasswd Basic auth; Bearer tokens from a small Python token server), and
//! a TCP proxy that cuts or rewrites what passes. Everything is started in a
//! temp dir and stopped in Drop, also when a test fails.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub enum Auth {
    None,
    /// TLS (self-signed for 127.0.0.1) + htpasswd users.
    TlsBasic(Vec<(&'static str, &'static str)>),
    /// Token server with users (name, password, allowed actions).
    Token(Vec<(&'static str, &'static str, &'static str)>),
}

pub struct Registry {
    pub dir: PathBuf,
    pub port: u16,
    pub host: String,
    /// Where the registry's log goes (one line per request).
    pub log: PathBuf,
    /// The CA to trust for TLS set-ups (the self-signed cert).
    pub ca: Option<PathBuf>,
    _procs: Vec<Proc>,
}

fn run(cmd: &mut Command) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn wait_http(port: u16, tls: bool) {
    let t0 = Instant::now();
    loop {
        let ok = if tls {
            // A TCP connect is enough: the registry listens only once ready.
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        } else {
            TcpStream::connect(("127.0.0.1", port))
                .and_then(|mut s| {
                    s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: x\r\n\r\n")?;
                    let mut b = [0u8; 12];
                    s.read_exact(&mut b)?;
                    Ok(b.starts_with(b"HTTP/1.1 200") || b.starts_with(b"HTTP/1.1 401") || b.starts_with(b"HTTP/1.0"))
                })
                .unwrap_or(false)
        };
        if ok {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "port {port} never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A self-signed certificate for `san` (e.g. "IP:127.0.0.1").
pub fn self_signed(dir: &Path, name: &str, san: &str) -> (PathBuf, PathBuf) {
    let (crt, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=unionctl-test"])
        .arg("-addext")
        .arg(format!("subjectAltName={san}"))
        // rustls refuses a CA certificate as a server's own.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt));
    (crt, key)
}

impl Registry {
    pub fn start(dir: &Path, auth: Auth) -> Registry {
        Registry::start_with(dir, auth, "IP:127.0.0.1,DNS:localhost")
    }

    /// `san`: what the TLS certificate is valid for.
    pub fn start_with(dir: &Path, auth: Auth, san: &str) -> Registry {
        let dir = dir.join("registry");
        fs::create_dir_all(dir.join("storage")).unwrap();
        let port = free_port();
        let mut procs = Vec::new();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("storage").display()
        );
        let mut ca = None;
        match &auth {
            Auth::None => {}
            Auth::TlsBasic(users) => {
                let (crt, key) = self_signed(&dir, "tls", san);
                cfg += &format!("  tls:\n    certificate: {}\n    key: {}\n", crt.display(), key.display());
                let mut ht = String::new();
                for (u, p) in users {
                    let o = Command::new("htpasswd").args(["-Bbn", u, p]).output().unwrap();
                    assert!(o.status.success());
                    ht += String::from_utf8_lossy(&o.stdout).trim();
                    ht += "\n";
                }
                fs::write(dir.join("htpasswd"), ht).unwrap();
                cfg += &format!("auth:\n  htpasswd:\n    realm: test\n    path: {}\n", dir.join("htpasswd").display());
                ca = Some(crt);
            }
            Auth::Token(users) => {
                let (crt, key) = self_signed(&dir, "token", "DNS:token");
                let tport = free_port();
                let users_json = serde_json::to_string(
                    &users
                        .iter()
                        .map(|(u, p, a)| (u.to_string(), (p.to_string(), a.to_string())))
                        .collect::<std::collections::BTreeMap<_, _>>(),
                )
                .unwrap();
                fs::write(dir.join("users.json"), users_json).unwrap();
                let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry_support/token_server.py");
                let child = Command::new("/usr/bin/python3")
                    .arg(script)
                    .arg(tport.to_string())
                    .arg(&crt)
                    .arg(&key)
                    .arg(dir.join("users.json"))
                    .stdout(Stdio::null())
                    .stderr(fs::File::create(dir.join("token.log")).unwrap())
                    .spawn()
                    .unwrap();
                procs.push(Proc(child));
                wait_http(tport, false);
                cfg += &format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{tport}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
                    crt.display()
                );
            }
        }
        fs::write(dir.join("config.yml"), cfg).unwrap();
        let log = dir.join("registry.log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(fs::File::create(dir.join("registry.out")).unwrap())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        procs.push(Proc(child));
        wait_http(port, matches!(auth, Auth::TlsBasic(_)));
        Registry { dir, port, host: format!("127.0.0.1:{port}"), log, ca, _procs: procs }
    }

    /// Blob GETs the registry served for `digest` (hex), from its access log.
    pub fn blob_gets(&self, hex: &str) -> usize {
        let log = fs::read_to_string(self.dir.join("registry.out")).unwrap_or_default()
            + &fs::read_to_string(&self.log).unwrap_or_default();
        log.lines().filter(|l| l.contains("\"GET /v2/") && l.contains(&format!("/blobs/sha256:{hex}"))).count()
    }

    /// Everything the registry logged (access log included).
    pub fn log_text(&self) -> String {
        fs::read_to_string(self.dir.join("registry.out")).unwrap_or_default()
            + &fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// All blob GETs so far.
    pub fn all_blob_gets(&self) -> usize {
        let log = fs::read_to_string(self.dir.join("registry.out")).unwrap_or_default()
            + &fs::read_to_string(&self.log).unwrap_or_default();
        log.lines().filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:")).count()
    }

    /// The stored data of a blob (to corrupt or remove it).
    pub fn blob_data(&self, hex: &str) -> PathBuf {
        self.dir.join("storage/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }
}

/// What the proxy does to blob GETs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Pass,
    /// Close the connection after this many bytes of a blob answer (once).
    CutOnce(u64),
    /// Drop Range headers (the server then answers 200).
    StripRange,
    /// Send blob answers slowly (bytes per 10 ms).
    Slow(usize),
    /// Answer the first blob upload PUT with a 503.
    FailUploadOnce,
    /// Ask for Basic credentials at /v2/ and answer blob GETs with a 307 to
    /// this port on `localhost` (another host name).
    Redirect(u16),
}

/// A one-request-per-connection HTTP proxy in front of a registry.
pub struct Proxy {
    pub port: u16,
    pub mode: Arc<Mutex<Mode>>,
    /// Request heads seen (first line + Range header).
    pub seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    pub cuts: Arc<AtomicU64>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl Proxy {
    pub fn start(upstream: u16, mode: Mode) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(mode));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicU64::new(0));
        let (m, s, st, c) = (mode.clone(), seen.clone(), stop.clone(), cuts.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (m, s, c) = (m.clone(), s.clone(), c.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream, &m, &s, &c);
                });
            }
        });
        Proxy { port, mode, seen, stop, cuts }
    }

    pub fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    pub fn ranges(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().filter(|l| l.contains("range:")).cloned().collect()
    }
}

fn serve(
    client: TcpStream,
    upstream: u16,
    mode: &Mutex<Mode>,
    seen: &Mutex<Vec<String>>,
    cuts: &AtomicU64,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        head.push(line);
    }
    let first = head.first().cloned().unwrap_or_default();
    let is_blob_get = first.starts_with("GET ") && first.contains("/blobs/sha256:");
    let m = *mode.lock().unwrap();
    let mut out = String::new();
    let mut note = first.trim().to_string();
    let mut body_len = 0usize;
    for h in &head {
        let lower = h.to_ascii_lowercase();
        if lower.starts_with("connection:") {
            continue;
        }
        if let Some(n) = lower.strip_prefix("content-length:") {
            body_len = n.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("range:") {
            note += &format!(" {}", lower.trim());
            if m == Mode::StripRange {
                continue;
            }
        }
        out += h;
    }
    out += "Connection: close\r\n\r\n";
    if head.iter().any(|h| h.to_ascii_lowercase().starts_with("authorization:")) {
        note += " authorization";
    }
    seen.lock().unwrap().push(note.clone());
    let mut client = client;
    if let Mode::Redirect(port) = m {
        let path = first.split(' ').nth(1).unwrap_or("/");
        let reply = if path == "/v2/" && !note.ends_with(" authorization") {
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
        } else if is_blob_get {
            format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: http://localhost:{port}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        } else {
            String::new()
        };
        if !reply.is_empty() {
            return client.write_all(reply.as_bytes());
        }
    }
    if m == Mode::FailUploadOnce
        && first.starts_with("PUT ")
        && first.contains("/blobs/uploads/")
        && cuts.fetch_add(1, Ordering::SeqCst) == 0
    {
        let mut body = vec![0u8; body_len];
        reader.read_exact(&mut body)?;
        return client.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(out.as_bytes())?;
    if body_len > 0 {
        let mut body = vec![0u8; body_len];
        reader.read_exact(&mut body)?;
        up.write_all(&body)?;
    }
    let mut buf = [0u8; 16 << 10];
    let mut sent = 0u64;
    loop {
        let n = up.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let mut n = n;
        if is_blob_get {
            match m {
                Mode::CutOnce(limit) if cuts.load(Ordering::SeqCst) == 0 && sent + n as u64 > limit => {
                    n = (limit - sent) as usize;
                    client.write_all(&buf[..n])?;
                    cuts.fetch_add(1, Ordering::SeqCst);
                    return Ok(());
                }
                Mode::Slow(rate) => {
                    for chunk in buf[..n].chunks(rate.max(1)) {
                        client.write_all(chunk)?;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    sent += n as u64;
                    continue;
                }
                _ => {}
            }
        }
        client.write_all(&buf[..n])?;
        sent += n as u64;
    }
    Ok(())
}
