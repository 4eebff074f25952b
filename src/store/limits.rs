//! Bounds for hostile input: the size of tar extension headers (read whole
//! into memory by the tar reader) and the free space left while writing.

use crate::sys::at;
use std::cell::Cell;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// The most a member's extension headers (PAX `x`, GNU long name `L` and
/// long link `K`, GNU sparse maps) may take together.
pub const EXT_HEADER_LIMIT: u64 = 1 << 20;

/// Slack for the blocks around the extension data: the previous member's
/// padding, the member's own header and one header per extension.
const HEADER_SLACK: u64 = 8 * 512;

/// Limits what the tar reader may read while it moves to the next member
/// (all of that is headers: the previous member's data was drained before).
pub struct HeaderBudget {
    left: Cell<u64>,
}

impl Default for HeaderBudget {
    fn default() -> Self {
        HeaderBudget { left: Cell::new(u64::MAX) }
    }
}

impl HeaderBudget {
    /// Wrap the reader the tar archive reads from.
    pub fn reader<R>(&self, inner: R) -> Budgeted<'_, R> {
        Budgeted { inner, budget: self }
    }

    /// Run `f` (one `Entries::next`) with reads bounded to the headers' limit.
    pub fn next<T>(&self, f: impl FnOnce() -> T) -> T {
        self.left.set(EXT_HEADER_LIMIT + HEADER_SLACK);
        let r = f();
        self.left.set(u64::MAX);
        r
    }
}

/// A reader that fails once its [`HeaderBudget`] is spent.
pub struct Budgeted<'a, R> {
    inner: R,
    budget: &'a HeaderBudget,
}

impl<R: Read> Read for Budgeted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.budget.left.get();
        if left == 0 {
            return Err(io::Error::other("tar extension headers (PAX, GNU long name) larger than 1 MiB"));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if left != u64::MAX {
            self.budget.left.set(left - n as u64);
        }
        Ok(n)
    }
}

impl<R: Seek> Seek for Budgeted<'_, R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Check the free space every this many bytes written.
const CHECK_EVERY: u64 = 1 << 20;

/// Watches the free space of the filesystem a directory is on: writing stops
/// while a reserve is still free (2% of the filesystem, at most 256 MiB), so
/// a load never fills the disk (and ENOSPC, should it come first, reads the same).
pub struct Space {
    dir: OwnedFd,
    since: u64,
}

impl Space {
    /// Watch the filesystem of `dir`; fails at once when it is already short.
    pub fn new(dir: &Path) -> io::Result<Space> {
        let dir = at::openat(libc::AT_FDCWD, dir.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        let s = Space { dir, since: 0 };
        s.check()?;
        Ok(s)
    }

    /// Account for `n` bytes about to be written.
    pub fn wrote(&mut self, n: u64) -> io::Result<()> {
        self.since += n;
        if self.since < CHECK_EVERY {
            return Ok(());
        }
        self.since = 0;
        self.check()
    }

    pub fn check(&self) -> io::Result<()> {
        let st = at::fstatfs(self.dir.as_raw_fd())?;
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let reserve = (st.f_blocks.saturating_mul(st.f_frsize) / 50).min(256 << 20);
        if free < reserve {
            return Err(no_space());
        }
        Ok(())
    }
}

/// The error for a full filesystem (also what ENOSPC becomes).
pub fn no_space() -> io::Error {
    io::Error::new(io::ErrorKind::StorageFull, "not enough free space in the store's filesystem")
}

/// A writer whose writes are checked against a [`Space`].
pub struct Checked<W> {
    inner: W,
    space: Space,
}

impl<W> Checked<W> {
    pub fn new(inner: W, space: Space) -> Self {
        Checked { inner, space }
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.space.wrote(buf.len() as u64)?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_applies_only_inside_next() {
        let data = vec![1u8; 3 << 20];
        let b = HeaderBudget::default();
        let mut r = b.reader(&data[..]);
        let mut sink = Vec::new();
        assert!(b.next(|| (&mut r).take(2 << 20).read_to_end(&mut sink)).is_err());
        sink.clear();
        assert_eq!((&mut r).take(1 << 20).read_to_end(&mut sink).unwrap(), 1 << 20);
    }
}
