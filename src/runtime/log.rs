//! Container logs in the k8s-file format (podman's default): one record per
//! line, `TIMESTAMP STREAM F|P TEXT`, where P marks a partial line (the
//! output had no newline yet: a prompt, a long line cut at the buffer size)
//! and F a full one. `logs` joins the partial records back.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;

/// The two streams of a container (a terminal has only stdout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// RFC 3339 UTC with nanoseconds, now.
pub fn timestamp() -> String {
    crate::store::containers::now_rfc3339_nanos()
}

/// Appends records to the log file.
pub struct Writer {
    file: Option<File>,
}

impl Writer {
    pub fn open(path: &Path) -> Writer {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
        if let Err(e) = &file {
            log::debug!("log {}: {e}", path.display());
        }
        Writer { file: file.ok() }
    }

    /// Record a chunk of output: each complete line as F, a tail without a
    /// newline as P.
    pub fn write(&mut self, stream: Stream, data: &[u8]) {
        let Some(f) = self.file.as_mut() else { return };
        let ts = timestamp();
        let mut out = Vec::with_capacity(data.len() + 64);
        for piece in data.split_inclusive(|b| *b == b'\n') {
            let (text, flag) = match piece.strip_suffix(b"\n") {
                Some(t) => (t, "F"),
                None => (piece, "P"),
            };
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            out.extend_from_slice(format!("{ts} {} {flag} ", stream.name()).as_bytes());
            out.extend_from_slice(text);
            out.push(b'\n');
        }
        if let Err(e) = f.write_all(&out) {
            log::debug!("log write: {e}");
        }
    }
}

/// One line of output as `logs` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub timestamp: String,
    pub stream: Stream,
    pub text: Vec<u8>,
    /// Ends with a newline (the last record of a line was F).
    pub full: bool,
}

fn parse(record: &[u8]) -> Option<(String, Stream, bool, &[u8])> {
    let mut it = record.splitn(4, |b| *b == b' ');
    let ts = std::str::from_utf8(it.next()?).ok()?.to_string();
    let stream = match it.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = it.next()? == b"F";
    Some((ts, stream, full, it.next().unwrap_or_default()))
}

/// Reads the log, joining partial records, from where it left off.
pub struct Reader {
    inner: BufReader<File>,
    pending: Option<Line>,
}

impl Reader {
    pub fn open(path: &Path) -> io::Result<Reader> {
        Ok(Reader { inner: BufReader::new(File::open(path)?), pending: None })
    }

    /// Every complete line available now (and, with `flush`, a partial one).
    pub fn lines(&mut self, flush: bool) -> io::Result<Vec<Line>> {
        let mut out = Vec::new();
        let mut rec = Vec::new();
        loop {
            rec.clear();
            let pos = self.inner.stream_position()?;
            if self.inner.read_until(b'\n', &mut rec)? == 0 {
                break;
            }
            if rec.last() != Some(&b'\n') {
                // A record still being written: read it again next time.
                self.inner.seek(SeekFrom::Start(pos))?;
                break;
            }
            rec.pop();
            let Some((ts, stream, full, text)) = parse(&rec) else { continue };
            let line = match self.pending.take() {
                Some(mut p) if p.stream == stream => {
                    p.text.extend_from_slice(text);
                    p.full = full;
                    p
                }
                other => {
                    if let Some(p) = other {
                        out.push(p);
                    }
                    Line { timestamp: ts, stream, text: text.to_vec(), full }
                }
            };
            if line.full {
                out.push(line);
            } else {
                self.pending = Some(line);
            }
        }
        if flush {
            if let Some(p) = self.pending.take() {
                out.push(p);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ctr.log");
        let mut w = Writer::open(&p);
        w.write(Stream::Stdout, b"one\ntw");
        w.write(Stream::Stdout, b"o\r\n");
        w.write(Stream::Stderr, b"err\n");
        w.write(Stream::Stdout, b"prompt> ");
        let mut r = Reader::open(&p).unwrap();
        let got = r.lines(false).unwrap();
        let texts: Vec<_> = got.iter().map(|l| (String::from_utf8_lossy(&l.text).to_string(), l.stream)).collect();
        assert_eq!(
            texts,
            vec![("one".into(), Stream::Stdout), ("two".into(), Stream::Stdout), ("err".into(), Stream::Stderr)]
        );
        let rest = r.lines(true).unwrap();
        assert_eq!(rest.len(), 1);
        assert!(!rest[0].full && rest[0].text == b"prompt> ");
    }
}
