//! The store's error: a one-line message with its context.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

#[derive(Debug)]
pub struct Error(pub String);

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
            return Error(crate::store::limits::no_space().to_string());
        }
        Error(crate::sys::tree::strip_os(&e))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error(format!("malformed JSON: {e}"))
    }
}

static EXIT_STATUS: AtomicI32 = AtomicI32::new(1);

/// A refusal because of what is in use or ambiguous (podman's exit status 2
/// for `rmi`: the image is used by a container, or needs -f).
pub fn conflict<T>(msg: impl Into<String>) -> Result<T> {
    EXIT_STATUS.store(2, Ordering::Relaxed);
    Err(Error(msg.into()))
}

/// Fail with a given exit status (`run`: 125 for our own errors, 126, 127).
pub fn fail_with<T>(code: i32, msg: impl Into<String>) -> Result<T> {
    EXIT_STATUS.store(code, Ordering::Relaxed);
    Err(Error(msg.into()))
}

/// Make every error from here on exit with `code` (docker's 125 for
/// `run`/`exec`/`start` failing before the container's process runs).
pub fn set_exit_status(code: i32) {
    EXIT_STATUS.store(code, Ordering::Relaxed);
}

/// The exit status for the error the command failed with.
pub fn exit_status() -> i32 {
    EXIT_STATUS.load(Ordering::Relaxed)
}

/// Build an error from anything printable.
pub fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error(msg.into()))
}

/// Add context in front of an error's message.
pub trait Context<T> {
    fn ctx(self, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn ctx(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error(format!("{what}: {}", e.into().0)))
    }
}
