//! Write a directory tree as a tar stream: `commit` (a container's upper as
//! an OCI layer), `export` (the merged tree), `volume export`, `cp ... -`.
//!
//! The output is deterministic for a given tree (names sorted, no atime or
//! ctime, no user/group names, mtimes in whole seconds), so exporting what
//! was imported gives the same bytes. Kept: owners (also the ones a rootless
//! store records in `user.containers.override_stat`), modes with setuid,
//! hard links (by device and inode), symlinks, devices, fifos, the xattrs a
//! layer may carry ([`crate::store::unpack::xattr_allowed`]) and, when asked,
//! holes (PAX 1.0 sparse members, which `unpack` reads back as holes).
//!
//! In layer mode the union's on-disk forms become OCI ones: a whiteout
//! (char device 0:0 or an overlay whiteout xattr) is an empty `.wh.NAME`,
//! an opaque directory gets `.wh..wh..opq` right after its own entry.
//!
//! Traversal is iterative with one directory open at a time (a deep tree
//! needs neither stack nor descriptors).

use crate::store::error::{err, Context, Error, Result};
use crate::store::unpack::xattr_allowed;
use crate::sys::{at, xattr};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// How to write the tree.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The tree is a union's upper: convert whiteouts and opaque dirs to OCI markers.
    pub layer: bool,
    /// Files with holes become PAX 1.0 sparse members.
    pub sparse: bool,
    /// Do not descend into other filesystems (mounts under the tree).
    pub one_filesystem: bool,
    /// The name of the tree's root in the archive (`./`, `dir`); None: no entry for it.
    pub root_name: Option<String>,
    /// Prefix of every path below the root (`""`, `"dir/"`).
    pub prefix: String,
    /// Every entry gets this owner (`cp` without `-a`).
    pub owner: Option<(u32, u32)>,
}

const OPAQUE: [&str; 3] = ["trusted.overlay.opaque", "user.overlay.opaque", "user.fuseoverlayfs.opaque"];
const XATTR_WHITEOUT: [&str; 2] = ["trusted.overlay.whiteout", "user.overlay.whiteout"];
const OVERRIDE: [&str; 2] = ["user.containers.override_stat", "user.fuseoverlayfs.override_stat"];

/// The owner/mode/type a rootless store recorded instead of the real one.
struct Override {
    uid: u32,
    gid: u32,
    mode: u32,
    kind: Option<String>,
}

fn parse_override(v: &[u8]) -> Option<Override> {
    let s = std::str::from_utf8(v).ok()?;
    let mut f = s.trim().split(':');
    let uid = f.next()?.parse().ok()?;
    let gid = f.next()?.parse().ok()?;
    let mode = u32::from_str_radix(f.next()?, 8).ok()?;
    Some(Override { uid, gid, mode: mode & 0o7777, kind: f.next().map(str::to_string) })
}

struct Writer<W: Write> {
    b: tar::Builder<W>,
    opts: Options,
    /// (dev, ino) of objects with several links -> the archive path written first.
    links: HashMap<(u64, u64), Vec<u8>>,
    root_dev: u64,
}

fn header(kind: tar::EntryType, mode: u32, uid: u32, gid: u32, mtime: i64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid.into());
    h.set_gid(gid.into());
    h.set_mtime(mtime.max(0) as u64);
    h.set_size(size);
    h
}

/// Exactly `left` bytes of `inner`: zeros when it ends early (a file cut
/// while it is read), the rest ignored when it grew.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let mut n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            buf[..want].fill(0);
            n = want;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A file read at given offsets (the data segments of a sparse file).
struct Segments {
    fd: OwnedFd,
    segs: Vec<(u64, u64)>,
    i: usize,
    done: u64,
    map: Vec<u8>,
    map_pos: usize,
}

impl Read for Segments {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.map_pos < self.map.len() {
            let n = buf.len().min(self.map.len() - self.map_pos);
            buf[..n].copy_from_slice(&self.map[self.map_pos..self.map_pos + n]);
            self.map_pos += n;
            return Ok(n);
        }
        while let Some(&(off, len)) = self.segs.get(self.i) {
            if self.done == len {
                self.i += 1;
                self.done = 0;
                continue;
            }
            let want = buf.len().min(usize::try_from(len - self.done).unwrap_or(usize::MAX));
            let n = at::pread(self.fd.as_raw_fd(), &mut buf[..want], (off + self.done) as i64)?;
            let n = if n == 0 {
                buf[..want].fill(0);
                want
            } else {
                n
            };
            self.done += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

/// The data segments of a file (SEEK_DATA/SEEK_HOLE); None when it has no hole.
fn data_segments(fd: RawFd, size: u64) -> Option<Vec<(u64, u64)>> {
    let mut segs = Vec::new();
    let mut pos = 0i64;
    let size = size as i64;
    while pos < size {
        let start = match at::lseek(fd, pos, libc::SEEK_DATA) {
            Ok(s) => s,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => break,
            Err(_) => return None,
        };
        let end = at::lseek(fd, start, libc::SEEK_HOLE).ok()?.min(size);
        if end > start {
            segs.push((start as u64, (end - start) as u64));
        }
        pos = end;
    }
    let data: u64 = segs.iter().map(|s| s.1).sum();
    if data == size as u64 {
        return None;
    }
    // A file that ends in a hole: GNU tar records an empty segment at the end.
    if segs.last().is_none_or(|(o, l)| (o + l) as i64 != size) {
        segs.push((size as u64, 0));
    }
    Some(segs)
}

impl<W: Write> Writer<W> {
    /// A writer whose first entry is the root directory `root` itself when
    /// `opts.root_name` asks for one (its mode, owner, times, xattrs).
    fn start(out: W, opts: &Options, root: RawFd, root_st: &at::Stat) -> Result<Writer<W>> {
        let mut w =
            Writer { b: tar::Builder::new(out), opts: opts.clone(), links: HashMap::new(), root_dev: root_st.st_dev };
        if let Some(name) = &opts.root_name {
            w.pax(&pax_xattrs(&w.xattrs(root)))?;
            let over = OVERRIDE
                .iter()
                .find_map(|n| xattr::get(xattr::Target::Fd(root), OsStr::new(n)).ok().flatten())
                .and_then(|v| parse_override(&v));
            let (uid, gid, mode) = match over {
                Some(o) => (o.uid, o.gid, o.mode),
                None => (root_st.st_uid, root_st.st_gid, root_st.st_mode & 0o7777),
            };
            let (uid, gid) = opts.owner.unwrap_or((uid, gid));
            let mut h = header(tar::EntryType::Directory, mode, uid, gid, root_st.st_mtime, 0);
            w.b.append_data(&mut h, name, io::empty()).ctx("tar")?;
        }
        Ok(w)
    }
}

impl<W: Write> Writer<W> {
    fn xattrs(&self, fd: RawFd) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        let names = xattr::list(xattr::Target::Path(fd)).unwrap_or_default();
        for n in names {
            if !xattr_allowed(&n) {
                continue;
            }
            if let Ok(Some(v)) = xattr::get(xattr::Target::Path(fd), OsStr::from_bytes(&n)) {
                out.push((n, v));
            }
        }
        out.sort();
        out
    }

    fn has_xattr(fd: RawFd, names: &[&str], want: Option<&[u8]>) -> bool {
        names.iter().any(|n| match xattr::get(xattr::Target::Path(fd), OsStr::new(n)) {
            Ok(Some(v)) => want.is_none_or(|w| v == w),
            _ => false,
        })
    }

    fn pax(&mut self, recs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        if recs.is_empty() {
            return Ok(());
        }
        self.b
            .append_pax_extensions(recs.iter().map(|(k, v)| (std::str::from_utf8(k).unwrap_or_default(), &v[..])))
            .ctx("tar")
    }

    /// One object: `dir`/`name`, archive path `path` (dirs without the slash).
    /// Returns whether it is a directory to descend into.
    fn entry(&mut self, dir: RawFd, name: &OsStr, path: &[u8]) -> Result<bool> {
        let st = match at::lstatat(dir, name) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let fmt = st.st_mode & libc::S_IFMT;
        let obj = at::openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        let ofd = obj.as_raw_fd();
        let is_link = fmt == libc::S_IFLNK;
        let xattrs: Vec<(Vec<u8>, Vec<u8>)> = if is_link { Vec::new() } else { self.xattrs(ofd) };
        let over = if is_link {
            None
        } else {
            OVERRIDE.iter().find_map(|n| xattr::get(xattr::Target::Path(ofd), OsStr::new(n)).ok().flatten())
        }
        .and_then(|v| parse_override(&v));
        let (uid, gid, mode) = match &over {
            Some(o) => (o.uid, o.gid, o.mode),
            None => (st.st_uid, st.st_gid, st.st_mode & 0o7777),
        };
        let (uid, gid) = self.opts.owner.unwrap_or((uid, gid));
        let mtime = st.st_mtime;
        let pathname = |p: &[u8]| -> Vec<u8> { p.to_vec() };
        if self.opts.layer {
            let whiteout = (fmt == libc::S_IFCHR && st.st_rdev == 0)
                || (fmt == libc::S_IFREG && st.st_size == 0 && Self::has_xattr(ofd, &XATTR_WHITEOUT, None));
            if whiteout {
                let (parent, base) = match path.iter().rposition(|b| *b == b'/') {
                    Some(i) => (&path[..=i], &path[i + 1..]),
                    None => (&b""[..], path),
                };
                let mut wh = parent.to_vec();
                wh.extend_from_slice(b".wh.");
                wh.extend_from_slice(base);
                let mut h = header(tar::EntryType::Regular, 0, uid, gid, mtime, 0);
                self.b.append_data(&mut h, OsStr::from_bytes(&wh), io::empty()).ctx("tar")?;
                return Ok(false);
            }
        }
        // Hard links: the second and later names point at the first.
        if fmt != libc::S_IFDIR && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key).cloned() {
                let mut h = header(tar::EntryType::Link, mode, uid, gid, mtime, 0);
                self.b.append_link(&mut h, OsStr::from_bytes(path), OsStr::from_bytes(&first)).ctx("tar")?;
                return Ok(false);
            }
            self.links.insert(key, pathname(path));
        }
        let kind = over.as_ref().and_then(|o| o.kind.clone());
        let device = |k: &str| -> Option<(tar::EntryType, u32, u32)> {
            let (t, rest) = if let Some(r) = k.strip_prefix("char-") {
                (tar::EntryType::Char, r)
            } else if let Some(r) = k.strip_prefix("block-") {
                (tar::EntryType::Block, r)
            } else {
                return None;
            };
            let (ma, mi) = rest.split_once('-')?;
            Some((t, ma.parse().ok()?, mi.parse().ok()?))
        };
        match fmt {
            libc::S_IFDIR => {
                let mut p = path.to_vec();
                if !p.is_empty() && !p.ends_with(b"/") {
                    p.push(b'/');
                }
                self.pax(&pax_xattrs(&xattrs))?;
                let mut h = header(tar::EntryType::Directory, mode, uid, gid, mtime, 0);
                self.b.append_data(&mut h, OsStr::from_bytes(&p), io::empty()).ctx("tar")?;
                let descend = !(self.opts.one_filesystem && st.st_dev != self.root_dev);
                if self.opts.layer && Self::has_xattr(ofd, &OPAQUE, Some(b"y")) {
                    p.extend_from_slice(b".wh..wh..opq");
                    let mut h = header(tar::EntryType::Regular, 0, uid, gid, mtime, 0);
                    self.b.append_data(&mut h, OsStr::from_bytes(&p), io::empty()).ctx("tar")?;
                }
                return Ok(descend);
            }
            libc::S_IFLNK => {
                let target = at::readlinkat(dir, name)?;
                let mut h = header(tar::EntryType::Symlink, 0o777, uid, gid, mtime, 0);
                self.b.append_link(&mut h, OsStr::from_bytes(path), OsStr::from_bytes(&target)).ctx("tar")?;
            }
            libc::S_IFREG if kind.as_deref().and_then(device).is_some() || kind.as_deref() == Some("pipe") => {
                // A device or fifo a rootless store recorded as a file.
                self.pax(&pax_xattrs(&xattrs))?;
                let mut h;
                if let Some((t, ma, mi)) = kind.as_deref().and_then(device) {
                    h = header(t, mode, uid, gid, mtime, 0);
                    h.set_device_major(ma).ctx("tar")?;
                    h.set_device_minor(mi).ctx("tar")?;
                } else {
                    h = header(tar::EntryType::Fifo, mode, uid, gid, mtime, 0);
                }
                self.b.append_data(&mut h, OsStr::from_bytes(path), io::empty()).ctx("tar")?;
            }
            libc::S_IFREG => {
                let f = at::openat(dir, name, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
                let fst = at::fstat(f.as_raw_fd())?;
                if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino) {
                    return err(format!("{} changed while it was read", String::from_utf8_lossy(path)));
                }
                let size = fst.st_size as u64;
                let segs = if self.opts.sparse && (fst.st_blocks as u64) * 512 < size {
                    data_segments(f.as_raw_fd(), size)
                } else {
                    None
                };
                match segs {
                    Some(segs) => self.sparse(f, path, segs, size, &xattrs, (mode, uid, gid, mtime))?,
                    None => {
                        self.pax(&pax_xattrs(&xattrs))?;
                        let mut h = header(tar::EntryType::Regular, mode, uid, gid, mtime, size);
                        let r = Exact { inner: std::fs::File::from(f), left: size };
                        self.b.append_data(&mut h, OsStr::from_bytes(path), r).ctx("tar")?;
                    }
                }
            }
            libc::S_IFCHR | libc::S_IFBLK => {
                self.pax(&pax_xattrs(&xattrs))?;
                let t = if fmt == libc::S_IFCHR { tar::EntryType::Char } else { tar::EntryType::Block };
                let mut h = header(t, mode, uid, gid, mtime, 0);
                h.set_device_major(libc::major(st.st_rdev)).ctx("tar")?;
                h.set_device_minor(libc::minor(st.st_rdev)).ctx("tar")?;
                self.b.append_data(&mut h, OsStr::from_bytes(path), io::empty()).ctx("tar")?;
            }
            libc::S_IFIFO => {
                self.pax(&pax_xattrs(&xattrs))?;
                let mut h = header(tar::EntryType::Fifo, mode, uid, gid, mtime, 0);
                self.b.append_data(&mut h, OsStr::from_bytes(path), io::empty()).ctx("tar")?;
            }
            // Sockets have no tar form (docker skips them too).
            _ => {}
        }
        Ok(false)
    }

    /// A PAX 1.0 sparse member: the map, then the data segments.
    fn sparse(
        &mut self,
        f: OwnedFd,
        path: &[u8],
        segs: Vec<(u64, u64)>,
        size: u64,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        (mode, uid, gid, mtime): (u32, u32, u32, i64),
    ) -> Result<()> {
        let mut map = format!("{}\n", segs.len()).into_bytes();
        for (o, l) in &segs {
            map.extend_from_slice(format!("{o}\n{l}\n").as_bytes());
        }
        map.resize(map.len().div_ceil(512) * 512, 0);
        let data: u64 = segs.iter().map(|s| s.1).sum();
        let mut recs = vec![
            (b"GNU.sparse.major".to_vec(), b"1".to_vec()),
            (b"GNU.sparse.minor".to_vec(), b"0".to_vec()),
            (b"GNU.sparse.name".to_vec(), path.to_vec()),
            (b"GNU.sparse.realsize".to_vec(), size.to_string().into_bytes()),
        ];
        recs.extend(pax_xattrs(xattrs));
        self.pax(&recs)?;
        // The member's own name, as GNU tar makes it: DIR/GNUSparseFile.0/NAME.
        let (dir, base) = match path.iter().rposition(|b| *b == b'/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => (&b""[..], path),
        };
        let mut name = dir.to_vec();
        name.extend_from_slice(b"GNUSparseFile.0/");
        name.extend_from_slice(base);
        let total = map.len() as u64 + data;
        let mut h = header(tar::EntryType::Regular, mode, uid, gid, mtime, total);
        let r = Segments { fd: f, segs, i: 0, done: 0, map, map_pos: 0 };
        self.b.append_data(&mut h, OsStr::from_bytes(&name), Exact { inner: r, left: total }).ctx("tar")
    }
}

fn pax_xattrs(x: &[(Vec<u8>, Vec<u8>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    x.iter()
        .map(|(k, v)| {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            (key, v.clone())
        })
        .collect()
}

fn identity(fd: RawFd) -> io::Result<(u64, u64)> {
    let st = at::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

fn sorted_names(fd: RawFd) -> io::Result<Vec<OsString>> {
    let mut names: Vec<OsString> =
        at::read_dir_fd(fd)?.into_iter().map(|(n, _, _)| at::os(&n).to_os_string()).collect();
    names.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
    Ok(names)
}

/// Write the tree below the directory `top` to `out` (a finished archive:
/// end-of-archive blocks included). Returns the writer.
pub fn write_tree<W: Write>(top: RawFd, opts: &Options, out: W) -> Result<W> {
    let root = at::openat(top, OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let root_st = at::fstat(root.as_raw_fd())?;
    let mut w = Writer::start(out, opts, root.as_raw_fd(), &root_st)?;
    // Frames: this level's archive path (with its trailing slash), its
    // identity, and the names still to write (sorted, popped from the end).
    struct Frame {
        path: Vec<u8>,
        id: (u64, u64),
        names: Vec<OsString>,
    }
    let mut stack = vec![Frame {
        path: opts.prefix.as_bytes().to_vec(),
        id: identity(root.as_raw_fd())?,
        names: sorted_names(root.as_raw_fd())?,
    }];
    let mut cur = root;
    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.names.pop() else {
            stack.pop();
            let Some(parent) = stack.last() else { break };
            let up = at::openat(cur.as_raw_fd(), OsStr::new(".."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            if identity(up.as_raw_fd())? != parent.id {
                return err("a directory moved while it was archived");
            }
            cur = up;
            continue;
        };
        let mut path = frame.path.clone();
        path.extend_from_slice(name.as_bytes());
        if w.entry(cur.as_raw_fd(), &name, &path)
            .map_err(|e| Error(format!("{}: {e}", String::from_utf8_lossy(&path))))?
        {
            let sub = match at::openat(cur.as_raw_fd(), &name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
            {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => {
                    return Err(Error(format!(
                        "{}: {}",
                        String::from_utf8_lossy(&path),
                        crate::sys::tree::strip_os(&e)
                    )))
                }
            };
            path.push(b'/');
            let names = sorted_names(sub.as_raw_fd())?;
            stack.push(Frame { path, id: identity(sub.as_raw_fd())?, names });
            cur = sub;
        }
    }
    w.b.finish().ctx("tar")?;
    w.b.into_inner().ctx("tar")
}

/// Write one object named `name` in `dir` (a directory with everything in
/// it) as archive path `path` (`.`: a directory's contents only): `cp`.
pub fn write_one<W: Write>(dir: RawFd, name: &OsStr, path: &str, owner: Option<(u32, u32)>, out: W) -> Result<W> {
    let st = at::lstatat(dir, name)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let d = at::openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)?;
        let (root_name, prefix) =
            if path == "." { ("./".to_string(), String::new()) } else { (format!("{path}/"), format!("{path}/")) };
        let opts = Options { root_name: Some(root_name), prefix, owner, ..Options::default() };
        return write_tree(d.as_raw_fd(), &opts, out);
    }
    let root_st = at::fstat(dir)?;
    let opts = Options { owner, ..Options::default() };
    let mut w = Writer { b: tar::Builder::new(out), opts, links: HashMap::new(), root_dev: root_st.st_dev };
    w.entry(dir, name, path.as_bytes())?;
    w.b.finish().ctx("tar")?;
    w.b.into_inner().ctx("tar")
}

/// Stream a tar made by `write` straight into [`crate::store::unpack::unpack`]
/// at `dest` (both sides at once, through a pipe): copies that keep owners,
/// modes, xattrs, hard links and holes as an archive round trip does.
pub fn pipe_into(
    write: impl FnOnce(std::fs::File) -> Result<()> + Send,
    dest: &std::path::Path,
) -> Result<crate::store::unpack::Stats> {
    let (r, w) = crate::sys::process::pipe().ctx("pipe")?;
    std::thread::scope(|s| {
        let writer = s.spawn(move || write(std::fs::File::from(w)));
        let unpacked = crate::store::unpack::unpack(std::fs::File::from(r), dest);
        let wrote = writer.join().unwrap_or_else(|_| err("archive writer panicked"));
        // The reader's error explains a writer's broken pipe.
        let stats = unpacked?;
        wrote?;
        Ok(stats)
    })
}

/// Is `dir/name` a whiteout in one of the union's on-disk forms (char
/// device 0:0, an overlay whiteout xattr on an empty file)?
fn is_whiteout(dir: RawFd, name: &OsStr, st: &at::Stat) -> bool {
    let fmt = st.st_mode & libc::S_IFMT;
    if fmt == libc::S_IFCHR && st.st_rdev == 0 {
        return true;
    }
    if fmt == libc::S_IFREG && st.st_size == 0 {
        if let Ok(o) = at::openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0) {
            return XATTR_WHITEOUT
                .iter()
                .any(|n| matches!(xattr::get(xattr::Target::Path(o.as_raw_fd()), OsStr::new(n)), Ok(Some(_))));
        }
    }
    false
}

/// Does the directory hide what lower layers have in it (OCI marker or overlay xattr)?
fn is_opaque(dir: RawFd) -> bool {
    at::lstatat(dir, OsStr::new(".wh..wh..opq")).is_ok()
        || OPAQUE.iter().any(|n| matches!(xattr::get(xattr::Target::Fd(dir), OsStr::new(n)), Ok(Some(v)) if v == b"y"))
}

/// One directory of a union: the name -> (index of the layer that has it),
/// whiteouts and OCI markers applied; the dirs are the same directory in
/// each layer that contributes, top-most first.
fn merged_names(dirs: &[OwnedFd]) -> io::Result<Vec<(OsString, usize)>> {
    let mut hidden: std::collections::HashSet<OsString> = std::collections::HashSet::new();
    let mut out: std::collections::BTreeMap<Vec<u8>, (OsString, usize)> = std::collections::BTreeMap::new();
    for (i, d) in dirs.iter().enumerate() {
        let fd = d.as_raw_fd();
        let mut whiteouts = Vec::new();
        for (n, _, _) in at::read_dir_fd(fd)? {
            if let Some(target) = n.strip_prefix(b".wh.") {
                if target != b".wh..opq" {
                    whiteouts.push(at::os(target).to_os_string());
                }
                continue;
            }
            let name = at::os(&n).to_os_string();
            if hidden.contains(&name) || out.contains_key(n.as_slice()) {
                continue;
            }
            let Ok(st) = at::lstatat(fd, &name) else { continue };
            if is_whiteout(fd, &name, &st) {
                whiteouts.push(name);
                continue;
            }
            out.insert(n.clone(), (name, i));
        }
        // A layer's whiteouts hide lower layers' names, never its own.
        hidden.extend(whiteouts);
    }
    Ok(out.into_values().collect())
}

/// The directories below `dirs[top]/name` that make up the merged directory.
fn merged_children(dirs: &[OwnedFd], top: usize, name: &OsStr) -> io::Result<Vec<OwnedFd>> {
    let mut out = Vec::new();
    for (j, d) in dirs.iter().enumerate().skip(top) {
        let fd = d.as_raw_fd();
        if j > top {
            let mut wh = b".wh.".to_vec();
            wh.extend_from_slice(name.as_bytes());
            if at::lstatat(fd, at::os(&wh)).is_ok() {
                break;
            }
        }
        let st = match at::lstatat(fd, name) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            break;
        }
        let sub = at::openat(fd, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)?;
        let opaque = is_opaque(sub.as_raw_fd());
        out.push(sub);
        if opaque {
            break;
        }
    }
    Ok(out)
}

/// Write the union of `layers` (directories, top-most first: a container's
/// upper, then its image's layers) as one tree, read straight from the
/// layers: whiteouts and opaque directories applied, markers left out, hard
/// links of a layer kept (they are one inode there). `sub` selects a
/// directory inside the union (`""` for its root; no symlink is followed).
pub fn write_merged<W: Write>(layers: &[std::path::PathBuf], sub: &[u8], opts: &Options, out: W) -> Result<W> {
    let mut top: Vec<OwnedFd> = Vec::new();
    for l in layers {
        top.push(
            at::openat(libc::AT_FDCWD, l.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .map_err(|e| Error(format!("{}: {}", l.display(), crate::sys::tree::strip_os(&e))))?,
        );
    }
    // Walk down to `sub` through the union.
    for c in sub.split(|b| *b == b'/').filter(|c| !c.is_empty() && *c != b".") {
        let name = OsStr::from_bytes(c);
        let Some((_, i)) = merged_names(&top)?.into_iter().find(|(n, _)| n.as_os_str() == name) else {
            return Err(Error(format!("{}: no such directory", String::from_utf8_lossy(sub))));
        };
        top = merged_children(&top, i, name)?;
        if top.is_empty() {
            return Err(Error(format!("{}: not a directory", String::from_utf8_lossy(sub))));
        }
    }
    let first = top.first().ok_or_else(|| Error("no layers".into()))?;
    let root_st = at::fstat(first.as_raw_fd())?;
    let mut w = Writer::start(out, opts, first.as_raw_fd(), &root_st)?;
    struct Frame {
        path: Vec<u8>,
        dirs: Vec<OwnedFd>,
        names: Vec<(OsString, usize)>,
    }
    let names = merged_names(&top)?.into_iter().rev().collect();
    let mut stack = vec![Frame { path: opts.prefix.as_bytes().to_vec(), dirs: top, names }];
    while let Some(frame) = stack.last_mut() {
        let Some((name, i)) = frame.names.pop() else {
            stack.pop();
            continue;
        };
        let mut path = frame.path.clone();
        path.extend_from_slice(name.as_bytes());
        let fd = frame.dirs[i].as_raw_fd();
        let is_dir =
            w.entry(fd, &name, &path).map_err(|e| Error(format!("{}: {e}", String::from_utf8_lossy(&path))))?;
        if is_dir {
            let dirs = merged_children(&frame.dirs, i, &name)?;
            let names = merged_names(&dirs)?.into_iter().rev().collect();
            path.push(b'/');
            stack.push(Frame { path, dirs, names });
        }
    }
    w.b.finish().ctx("tar")?;
    w.b.into_inner().ctx("tar")
}
