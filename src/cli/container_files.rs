//! `unionctl diff|export|cp` (also under `unionctl container ...`): a
//! container's content against its image, as a tar, or copied in and out.
//! Argument handling and output; the work happens in [`crate::store`].

use crate::cli::container::{name_of, CpArgs};
use crate::cli::format::{self, Format};
use crate::store::containers::{self, Container};
use crate::store::error::{err, Context, Error, Result};
use crate::store::mounts;
use crate::store::{archive, changes, Store};
use crate::sys::{at, resolve};
use serde_json::json;
use std::ffi::OsStr;
use std::io::{IsTerminal, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
pub fn diff(store: &Store, which: &str, format: &str) -> Result<()> {
    let c = containers::resolve(store, which)?;
    let img = c.image(store)?;
    mounts::sync(store, &c);
    let ch = changes::changes(&c.upper(store), &img.layer_dirs(store)?)?;
    match format::parse(format) {
        Format::Json => {
            let pick = |k: changes::Kind| -> Vec<&str> {
                ch.iter().filter(|x| x.kind == k).map(|x| x.path.as_str()).collect()
            };
            let v = json!({
                "changed": pick(changes::Kind::Changed),
                "added": pick(changes::Kind::Added),
                "deleted": pick(changes::Kind::Deleted),
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Table => {
            let mut out = std::io::stdout().lock();
            for x in &ch {
                writeln!(out, "{} {}", x.kind.letter(), x.path).ctx("stdout")?;
            }
        }
        Format::Template(t) => {
            for x in &ch {
                println!("{}", format::render(&t, &json!({"Kind": x.kind.letter().to_string(), "Path": x.path}))?);
            }
        }
    }
    Ok(())
}

/// A file output: `-`/None is standard output (never a terminal), else a
/// temp file in the destination's directory renamed over it when complete.
struct Output {
    tmp: Option<(PathBuf, PathBuf)>,
    file: std::fs::File,
}

impl Output {
    fn open(o: Option<&Path>, what: &str) -> Result<Output> {
        match o {
            None => Self::stdout(what),
            Some(p) if p.as_os_str() == "-" => Self::stdout(what),
            Some(p) => {
                if std::fs::metadata(p).is_ok_and(|m| !m.is_file()) {
                    let file = std::fs::OpenOptions::new().write(true).open(p).ctx(p.display())?;
                    return Ok(Output { tmp: None, file });
                }
                let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                let t = dir.join(format!(
                    ".{}.partial-{}",
                    p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
                    std::process::id()
                ));
                let file = std::fs::File::create(&t).ctx(t.display())?;
                Ok(Output { tmp: Some((t, p.to_path_buf())), file })
            }
        }
    }

    fn stdout(what: &str) -> Result<Output> {
        if std::io::stdout().is_terminal() {
            return err(format!("refusing to write {what} to a terminal (use -o FILE or redirect standard output)"));
        }
        let fd = std::os::fd::AsFd::as_fd(&std::io::stdout()).try_clone_to_owned().ctx("standard output")?;
        Ok(Output { tmp: None, file: std::fs::File::from(fd) })
    }

    fn writer(&self) -> Result<std::fs::File> {
        self.file.try_clone().ctx("output")
    }

    fn finish(self, ok: bool) -> Result<()> {
        if let Some((t, p)) = self.tmp {
            if !ok {
                let _ = std::fs::remove_file(&t);
                return Ok(());
            }
            self.file.sync_all().ctx(t.display())?;
            std::fs::rename(&t, &p).ctx(p.display())?;
        }
        Ok(())
    }
}

/// Write a tar made by `f` to `-o` (or stdout).
pub fn write_archive(output: Option<&Path>, what: &str, f: impl FnOnce(std::fs::File) -> Result<()>) -> Result<()> {
    let out = Output::open(output, what)?;
    let w = out.writer()?;
    let r = f(w);
    out.finish(r.is_ok())?;
    r
}

pub fn export(store: &Store, which: &str, output: Option<PathBuf>) -> Result<()> {
    let c = containers::resolve(store, which)?;
    let mut layers = vec![c.upper(store)];
    layers.extend(c.image(store)?.layer_dirs(store)?);
    mounts::sync(store, &c);
    write_archive(output.as_deref(), "an archive", |w| {
        let bw = std::io::BufWriter::with_capacity(1 << 20, w);
        let bw = archive::write_merged(&layers, b"", &archive::Options::default(), bw)?;
        bw.into_inner().map_err(|e| e.into_error()).ctx("output")?;
        Ok(())
    })
}

/// `CTR:PATH` -> (container, path); None for a host path.
fn split_ctr<'a>(all: &'a [Container], s: &'a str) -> Result<Option<(&'a Container, &'a str)>> {
    if s.starts_with('/') || s.starts_with('.') || s == "-" {
        return Ok(None);
    }
    let Some((c, p)) = s.split_once(':') else { return Ok(None) };
    if c.contains('/') {
        return Ok(None);
    }
    let ctr = containers::pick(all, c)?;
    Ok(Some((ctr, if p.is_empty() { "/" } else { p })))
}

fn base(p: &str) -> String {
    let t = p.trim_end_matches('/');
    t.rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or(".").to_string()
}

pub fn cp(store: &Store, a: CpArgs) -> Result<()> {
    let all = containers::list(store)?;
    match (split_ctr(&all, &a.src)?, split_ctr(&all, &a.dest)?) {
        (Some(_), Some(_)) => err("cp: copying between containers is not supported (copy through the host)"),
        (None, None) => err("cp: one of SRC and DEST must be CONTAINER:PATH"),
        (Some((c, p)), None) => cp_out(store, c, p, &a),
        (None, Some((c, p))) => cp_in(store, c, p, &a),
    }
}

fn me() -> (u32, u32) {
    // SAFETY: no failure mode.
    (crate::sys::geteuid(), nix::unistd::getegid().as_raw())
}

/// The directory to unpack into and the name to give (docker cp's rules).
fn destination(
    dir_of: impl Fn(&str) -> Result<Option<bool>>,
    dest: &str,
    src_name: &str,
    src_is_dir: bool,
) -> Result<(String, String)> {
    let contents = dest.ends_with("/.");
    match dir_of(dest)? {
        Some(true) => Ok((dest.to_string(), if contents { ".".into() } else { src_name.to_string() })),
        Some(false) if src_is_dir => err(format!("cannot copy a directory to the file {dest}")),
        _ if dest.ends_with('/') && !src_is_dir => err(format!("{dest}: no such directory")),
        _ => {
            let parent = match dest.trim_end_matches('/').rsplit_once('/') {
                Some(("", _)) => "/".to_string(),
                Some((p, _)) => p.to_string(),
                None => ".".to_string(),
            };
            match dir_of(&parent)? {
                Some(true) => Ok((parent, base(dest))),
                _ => err(format!("{parent}: no such directory")),
            }
        }
    }
}

fn cp_out(store: &Store, c: &Container, path: &str, a: &CpArgs) -> Result<()> {
    let view = mounts::View::open(store, c)?;
    let root = view.root()?;
    let r = resolve::resolve(
        root.as_raw_fd(),
        path.as_bytes(),
        resolve::How {
            follow_last: a.follow_link || path.ends_with('/') || path.ends_with("/."),
            ..Default::default()
        },
    )
    .map_err(|e| Error(format!("{}:{path}: {}", name_of(c), crate::sys::tree::strip_os(&e))))?;
    let parent = at::reopen(r.parent.as_raw_fd(), libc::O_RDONLY | libc::O_DIRECTORY)?;
    let (pfd, name) = match r.name {
        Some(n) => (parent, n),
        None => {
            // The root (or a path that ends at it): its contents.
            let d = at::reopen(
                r.obj.as_ref().map_or(root.as_raw_fd(), |o| o.as_raw_fd()),
                libc::O_RDONLY | libc::O_DIRECTORY,
            )?;
            (d, std::ffi::OsString::from("."))
        }
    };
    let st = at::lstatat(pfd.as_raw_fd(), &name)?;
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let owner = if a.archive { None } else { Some(me()) };
    let src_name =
        if path.ends_with("/.") || name == "." { ".".to_string() } else { name.to_string_lossy().into_owned() };
    if a.dest == "-" {
        let arch_name = if src_name == "." { base(path) } else { src_name };
        return write_archive(None, "an archive", |w| {
            archive::write_one(pfd.as_raw_fd(), &name, &arch_name, owner, std::io::BufWriter::new(w))?
                .into_inner()
                .map_err(|e| e.into_error())
                .ctx("output")?;
            Ok(())
        });
    }
    let host_dir = |p: &str| -> Result<Option<bool>> {
        match std::fs::metadata(p) {
            Ok(m) => Ok(Some(m.is_dir())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx(p),
        }
    };
    let (dir, arch_name) = destination(host_dir, &a.dest, &src_name, is_dir)?;
    let arch_name = if src_name == "." { ".".to_string() } else { arch_name };
    let name2 = name.clone();
    archive::pipe_into(
        move |f| archive::write_one(pfd.as_raw_fd(), &name2, &arch_name, owner, f).map(drop),
        Path::new(&dir),
    )?;
    Ok(())
}

fn cp_in(store: &Store, c: &Container, path: &str, a: &CpArgs) -> Result<()> {
    // Writes go through the container's own mount (its volumes included).
    let merged = mounts::mount(store, c)?;
    let result = (|| -> Result<()> {
        let root = at::openat(libc::AT_FDCWD, merged.as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0)
            .ctx(merged.display())?;
        let in_ctr = |p: &str| -> Result<Option<bool>> {
            match resolve::open(root.as_raw_fd(), p.as_bytes()) {
                Ok(fd) => Ok(Some(at::fstat(fd.as_raw_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR)),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
                Err(e) => Err(Error(format!("{}:{p}: {}", name_of(c), crate::sys::tree::strip_os(&e)))),
            }
        };
        let owner = if a.archive { None } else { Some((0, 0)) };
        // The directory stays open (and is reached by its /proc path) while unpacking.
        let target = |dir: &str| -> Result<(std::os::fd::OwnedFd, PathBuf)> {
            let fd = resolve::open(root.as_raw_fd(), dir.as_bytes())
                .map_err(|e| Error(format!("{}:{dir}: {}", name_of(c), crate::sys::tree::strip_os(&e))))?;
            let d = at::reopen(fd.as_raw_fd(), libc::O_RDONLY | libc::O_DIRECTORY)?;
            let p = PathBuf::from(format!("/proc/self/fd/{}", d.as_raw_fd()));
            Ok((d, p))
        };
        if a.src == "-" {
            if in_ctr(path)? != Some(true) {
                return err(format!(
                    "{}:{path}: not a directory (a tar from standard input goes into a directory)",
                    name_of(c)
                ));
            }
            let (_d, p) = target(path)?;
            crate::store::unpack::unpack(std::io::stdin().lock(), &p)?;
            return Ok(());
        }
        let src = Path::new(&a.src);
        let (sdir, sname) = match (src.parent(), src.file_name()) {
            (Some(p), Some(n)) => (if p.as_os_str().is_empty() { Path::new(".") } else { p }, n.to_os_string()),
            _ => (src, std::ffi::OsString::from(".")),
        };
        let pfd =
            at::openat(libc::AT_FDCWD, sdir.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0).ctx(sdir.display())?;
        let mut sname = sname;
        let mut pfd = pfd;
        if a.follow_link {
            if let Ok(real) = std::fs::canonicalize(src) {
                let p = real.parent().unwrap_or(Path::new("/")).to_path_buf();
                pfd = at::openat(libc::AT_FDCWD, p.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .ctx(p.display())?;
                sname = real.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            }
        }
        let st = at::lstatat(pfd.as_raw_fd(), &sname)
            .map_err(|e| Error(format!("{}: {}", a.src, crate::sys::tree::strip_os(&e))))?;
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let contents = a.src.ends_with("/.");
        let src_name = if contents { ".".to_string() } else { sname.to_string_lossy().into_owned() };
        let (dir, arch_name) = destination(in_ctr, path, &src_name, is_dir)?;
        let arch_name = if contents { ".".to_string() } else { arch_name };
        let (_d, dest) = target(&dir)?;
        archive::pipe_into(
            move |f| {
                archive::write_one(pfd.as_raw_fd(), OsStr::from_bytes(sname.as_bytes()), &arch_name, owner, f).map(drop)
            },
            &dest,
        )?;
        Ok(())
    })();
    let released = mounts::unmount(store, c, false);
    result?;
    released.map(drop)
}
