//! Reading one layer blob from the registry: resumable and retried.
//!
//! Every byte received is also written to `downloads/<hex>.partial` in the
//! store (outside tmp/, so it survives a killed `unionctl`). A later read of
//! the same blob first replays the partial file, then asks for the rest with
//! `Range: bytes=N-`; only a 206 whose Content-Range starts at N is taken as
//! the rest, anything else is read from the start and the first N bytes
//! skipped. A broken connection is retried (`--retry`, backoff) from where
//! it stopped. The partial file goes once the blob was read to its end; the
//! digest is checked by the layer unpack that reads through this.

use super::client::Client;
use crate::store::digest::Digest;
use crate::store::error::{Context, Result};
use crate::store::Store;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::Duration;
use ureq::http::Method;

/// Counts blob requests with a Range header and restarts (for tests via RUST_LOG=debug).
pub struct BlobReader<'a> {
    client: &'a Client,
    digest: Digest,
    size: u64,
    partial: PathBuf,
    file: File,
    /// Bytes in the partial file.
    have: u64,
    /// Bytes given to the reader.
    pos: u64,
    body: Option<ureq::BodyReader<'static>>,
    failures: u32,
    retry: u32,
    bar: Option<indicatif::ProgressBar>,
}

/// `downloads/` under the store root (made on first use, 0700).
fn downloads(store: &Store) -> Result<PathBuf> {
    let d = store.root.join("downloads");
    match fs::DirBuilder::new().mode(0o700).create(&d) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e).ctx(d.display()),
        _ => Ok(d),
    }
}

impl<'a> BlobReader<'a> {
    pub fn open(
        client: &'a Client,
        store: &Store,
        digest: &Digest,
        size: u64,
        retry: u32,
        bars: Option<&indicatif::MultiProgress>,
    ) -> Result<BlobReader<'a>> {
        let partial = downloads(store)?.join(format!("{}.partial", digest.hex()));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&partial)
            .ctx(partial.display())?;
        // One writer per partial file (two pulls of one blob take turns).
        crate::sys::at::flock(file.as_raw_fd(), true).ctx(partial.display())?;
        let mut have = file.metadata().ctx(partial.display())?.len();
        if have > size {
            file.set_len(0).ctx(partial.display())?;
            have = 0;
        }
        if have > 0 {
            log::info!("blob {}: resuming after {have} of {size} bytes", digest.short());
        }
        let bar = bars.map(|m| {
            let b = m.add(indicatif::ProgressBar::new(size));
            if let Ok(s) =
                indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            {
                b.set_style(s.progress_chars("=> "));
            }
            b.set_prefix(format!("blob {}", digest.short()));
            b.set_position(have);
            b
        });
        Ok(BlobReader {
            client,
            digest: digest.clone(),
            size,
            partial,
            file,
            have,
            pos: 0,
            body: None,
            failures: 0,
            retry,
            bar,
        })
    }

    /// Ask for the blob from `self.pos` on. Err(false): do not retry.
    fn request(&mut self) -> std::result::Result<(), (String, bool)> {
        let url = self.client.url(&format!("blobs/{}", self.digest));
        let mut headers = Vec::new();
        if self.pos > 0 {
            headers.push(("Range", format!("bytes={}-", self.pos)));
        }
        let mut r = self.client.call(Method::GET, &url, &headers, true).map_err(|e| (e.0, true))?;
        let status = r.status().as_u16();
        let mut skip = 0;
        match status {
            206 => {
                let cr = Client::header(&r, "content-range").unwrap_or_default();
                if !cr.trim_start_matches("bytes").trim_start().starts_with(&format!("{}-", self.pos)) {
                    log::info!(
                        "blob {}: Content-Range {cr:?} does not start at {}: reading again",
                        self.digest.short(),
                        self.pos
                    );
                    return self.restart();
                }
            }
            200 => {
                if self.pos > 0 {
                    log::info!("blob {}: the server ignored Range: skipping {} bytes", self.digest.short(), self.pos);
                }
                skip = self.pos;
            }
            416 if self.pos > 0 => return self.restart(),
            s => {
                let e = self.client.fail(&format!("blob {}", self.digest.short()), &mut r);
                return Err((e.0, s >= 500 || s == 429));
            }
        }
        let mut body = r.into_body().into_reader();
        if skip > 0 {
            let n = io::copy(&mut (&mut body).take(skip), &mut io::sink()).map_err(|e| (e.to_string(), true))?;
            if n < skip {
                return Err((format!("blob {}: connection closed early", self.digest.short()), true));
            }
        }
        self.body = Some(body);
        Ok(())
    }

    /// A plain GET from the start; the bytes already given are skipped.
    fn restart(&mut self) -> std::result::Result<(), (String, bool)> {
        let url = self.client.url(&format!("blobs/{}", self.digest));
        let mut r = self.client.call(Method::GET, &url, &[], true).map_err(|e| (e.0, true))?;
        if r.status().as_u16() != 200 {
            let e = self.client.fail(&format!("blob {}", self.digest.short()), &mut r);
            return Err((e.0, false));
        }
        let mut body = r.into_body().into_reader();
        let n = io::copy(&mut (&mut body).take(self.pos), &mut io::sink()).map_err(|e| (e.to_string(), true))?;
        if n < self.pos {
            return Err((format!("blob {}: connection closed early", self.digest.short()), true));
        }
        self.body = Some(body);
        Ok(())
    }

    fn failed(&mut self, e: String, retryable: bool) -> io::Result<()> {
        self.body = None;
        self.failures += 1;
        if !retryable || self.failures > self.retry {
            let tries = if retryable && self.retry > 0 {
                format!(" (after {} attempts)", self.failures)
            } else {
                String::new()
            };
            return Err(io::Error::other(format!("{e}{tries}")));
        }
        let wait = Duration::from_millis(200u64 << self.failures.min(5));
        log::warn!("blob {}: {e}; retrying in {:?} from byte {}", self.digest.short(), wait, self.pos);
        std::thread::sleep(wait);
        Ok(())
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            if self.pos >= self.size {
                let _ = fs::remove_file(&self.partial);
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
            }
            return Ok(0);
        }
        let want = buf.len().min((self.size - self.pos).min(1 << 20) as usize);
        if self.pos < self.have {
            let n = want.min((self.have - self.pos) as usize);
            let got = self.file.read_at(&mut buf[..n], self.pos)?;
            if got == 0 {
                // The file got shorter (it should not): fetch the rest.
                self.have = self.pos;
            } else {
                self.pos += got as u64;
                return Ok(got);
            }
        }
        loop {
            if self.body.is_none() {
                if let Err((e, retryable)) = self.request() {
                    self.failed(e, retryable)?;
                    continue;
                }
            }
            let Some(body) = self.body.as_mut() else { continue };
            match body.read(&mut buf[..want]) {
                Ok(0) => self.failed(
                    format!("blob {}: connection closed at byte {} of {}", self.digest.short(), self.pos, self.size),
                    true,
                )?,
                Ok(n) => {
                    self.file.write_all_at(&buf[..n], self.pos)?;
                    self.pos += n as u64;
                    self.have = self.have.max(self.pos);
                    if let Some(b) = &self.bar {
                        b.set_position(self.pos);
                    }
                    return Ok(n);
                }
                Err(e) => self.failed(format!("blob {}: {e}", self.digest.short()), true)?,
            }
        }
    }
}

/// Remove the partial downloads no running pull holds (for `image prune`);
/// returns how many bytes went.
pub fn sweep_partials(store: &Store) -> u64 {
    let Ok(rd) = fs::read_dir(store.root.join("downloads")) else { return 0 };
    let mut freed = 0;
    for e in rd.flatten() {
        let Ok(f) = File::open(e.path()) else { continue };
        if crate::sys::at::try_flock(f.as_raw_fd(), true).unwrap_or(false) {
            freed += f.metadata().map_or(0, |m| m.len());
            let _ = fs::remove_file(e.path());
        }
    }
    freed
}
