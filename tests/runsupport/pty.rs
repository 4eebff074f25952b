//! A pty driver for `-it`.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A command on a new pseudo-terminal (its controlling terminal, in its own
/// session), as a user's shell runs `unionctl run -it`.
pub struct Pty {
    master: fs::File,
    pub child: Child,
    buf: Arc<Mutex<Vec<u8>>>,
    seen: usize,
}

impl Pty {
    pub fn spawn(mut c: Command, rows: u16, cols: u16) -> Pty {
        let mut m: libc::c_int = -1;
        let mut s: libc::c_int = -1;
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: out pointers to two ints; no name buffer; termios default.
        let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty just gave us both descriptors.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        c.stdin(Stdio::from(slave.try_clone().unwrap()));
        c.stdout(Stdio::from(slave.try_clone().unwrap()));
        c.stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = c.spawn().unwrap();
        let master = fs::File::from(master);
        let buf = Arc::new(Mutex::new(Vec::new()));
        let mut r = master.try_clone().unwrap();
        let b2 = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = r.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                b2.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Pty { master, child, buf, seen: 0 }
    }

    pub fn send(&mut self, s: &str) {
        self.master.write_all(s.as_bytes()).unwrap();
    }

    /// Wait for `pat` in what came since the last match; returns that text.
    pub fn expect(&mut self, pat: &str, secs: u64) -> String {
        let t0 = Instant::now();
        loop {
            {
                let b = self.buf.lock().unwrap();
                let text = String::from_utf8_lossy(&b[self.seen..]).into_owned();
                if let Some(i) = text.find(pat) {
                    self.seen += text[..i + pat.len()].len();
                    return text[..i + pat.len()].to_string();
                }
                if t0.elapsed() > Duration::from_secs(secs) {
                    panic!("pty: no {pat:?} within {secs} s; got {text:?}");
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the terminal showed.
    pub fn all(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }

    /// Change the window size (the kernel sends SIGWINCH to the client).
    pub fn resize(&self, rows: u16, cols: u16) {
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: a winsize for our own pty master.
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(r, 0);
    }

    /// The client's exit status, within `secs`.
    pub fn wait(&mut self, secs: u64) -> Option<i32> {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            if t0.elapsed() > Duration::from_secs(secs) {
                let _ = self.child.kill();
                panic!("pty client still running after {secs} s; terminal: {:?}", self.all());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
