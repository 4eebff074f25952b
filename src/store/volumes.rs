//! Volumes (docker's local driver):
//!
//! ```text
//! volumes/<name>/volume.json   Name, Driver, Labels, Options, CreatedAt, Anonymous, NeedsCopyUp
//! volumes/<name>/_data/        the data, bind-mounted into containers
//! volumes/<name>/mount.json    the containers that have it mounted now
//! ```
//!
//! Records are made and removed under the store lock; what changes while
//! containers mount it (who has it mounted, whether it still needs filling
//! from an image) under the volume's own lock `tmp/locks/vol-<name>.lock`.
//! The driver options (`type=tmpfs`, `type=none,o=bind,device=DIR`, or a
//! real device) are mounted on `_data` while at least one container has the
//! volume mounted.

use crate::store::containers::{self, Container, Kind};
use crate::store::error::{conflict, err, Context, Error, Result};
use crate::store::util::{read_json, write_json};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Volume {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "Labels", default)]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "Options", default)]
    pub options: BTreeMap<String, String>,
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    #[serde(rename = "Anonymous", default)]
    pub anonymous: bool,
    /// Not filled from an image yet (the first mount into a container does it, once).
    #[serde(rename = "NeedsCopyUp", default)]
    pub needs_copy_up: bool,
}

/// volumes/<name>/mount.json
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct MountedBy {
    #[serde(rename = "Containers", default)]
    containers: Vec<String>,
}

pub fn dir(store: &Store, name: &str) -> PathBuf {
    store.root.join("volumes").join(name)
}

/// The volume's data directory (its `Mountpoint`).
pub fn data(store: &Store, name: &str) -> PathBuf {
    dir(store, name).join("_data")
}

pub fn get(store: &Store, name: &str) -> Result<Volume> {
    let p = dir(store, name).join("volume.json");
    if !valid(name) || !p.exists() {
        return err(format!("no such volume: {name}"));
    }
    read_json(&p)
}

fn valid(name: &str) -> bool {
    containers::valid_name(name) && name != "." && name != ".."
}

/// Every volume, sorted by name.
pub fn list(store: &Store) -> Result<Vec<Volume>> {
    let d = store.root.join("volumes");
    let rd = match fs::read_dir(&d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx(d.display()),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let p = e.path().join("volume.json");
        if p.exists() {
            match read_json::<Volume>(&p) {
                Ok(v) => out.push(v),
                Err(e) => eprintln!("unionctl: warning: skipping volume record: {e}"),
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Check the local driver's options (docker's rules).
fn check_options(opts: &BTreeMap<String, String>) -> Result<()> {
    for k in opts.keys() {
        if !matches!(k.as_str(), "type" | "device" | "o" | "size") {
            return err(format!("invalid option {k:?} for the local volume driver (type, device, o)"));
        }
    }
    let t = opts.get("type").map(String::as_str);
    if t.is_some() != opts.contains_key("device") && t != Some("tmpfs") {
        return err("the local volume driver needs both type= and device= (e.g. --opt type=tmpfs --opt device=tmpfs)");
    }
    if t.is_none() && opts.contains_key("o") {
        return err("--opt o= needs --opt type=");
    }
    if t == Some("none") {
        let o = opts.get("o").map(String::as_str).unwrap_or("");
        if !o.split(',').any(|x| x == "bind" || x == "rbind") {
            return err("--opt type=none needs --opt o=bind");
        }
        let dev = opts.get("device").map(String::as_str).unwrap_or("");
        if !std::path::Path::new(dev).is_absolute() || !std::path::Path::new(dev).is_dir() {
            return err(format!("bind device {dev:?} is not an existing directory (an absolute path)"));
        }
    }
    Ok(())
}

/// Make a volume (the caller holds the store lock). An existing volume of
/// that name is returned as it is (docker's rule).
pub fn create(
    store: &Store,
    name: Option<&str>,
    driver: &str,
    labels: BTreeMap<String, String>,
    options: BTreeMap<String, String>,
    anonymous: bool,
) -> Result<(Volume, bool)> {
    if driver != "local" {
        return err(format!("volume driver {driver:?} is not supported (local)"));
    }
    check_options(&options)?;
    let name = match name {
        Some(n) => n.to_string(),
        None => crate::sys::process::random_hex64().ctx("random")?,
    };
    if !valid(&name) {
        return err(format!("invalid volume name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"));
    }
    if let Ok(v) = get(store, &name) {
        return Ok((v, false));
    }
    let v = Volume {
        name: name.clone(),
        driver: driver.to_string(),
        labels,
        options,
        created_at: containers::now_rfc3339_nanos(),
        anonymous,
        needs_copy_up: true,
    };
    let top = store.root.join("volumes");
    match fs::DirBuilder::new().mode(0o700).create(&top) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e).ctx(top.display()),
        _ => {}
    }
    let tmp = store.temp_dir("vol")?;
    fs::DirBuilder::new().mode(0o755).create(tmp.path.join("_data")).ctx("volume data")?;
    write_json(&tmp.path.join("volume.json"), &v)?;
    let d = dir(store, &name);
    if d.exists() {
        // A directory without record: an interrupted removal.
        crate::sys::tree::remove_tree(&d).ctx(d.display())?;
    }
    fs::rename(&tmp.path, &d).ctx(d.display())?;
    Ok((v, true))
}

/// Make the volumes a new container names that do not exist yet (the caller
/// holds the store lock); returns the names made.
pub fn ensure_for(store: &Store, c: &Container) -> Result<Vec<String>> {
    let mut made = Vec::new();
    for m in c.mounts.iter().filter(|m| m.kind == Kind::Volume) {
        let Some(n) = &m.name else { continue };
        match create(store, Some(n), "local", BTreeMap::new(), BTreeMap::new(), m.anonymous) {
            Ok((_, true)) => made.push(n.clone()),
            Ok(_) => {}
            Err(e) => {
                for v in &made {
                    let _ = remove(store, v);
                }
                return Err(e);
            }
        }
    }
    Ok(made)
}

/// Volume name -> the IDs of the containers that use it.
pub fn users(store: &Store) -> Result<HashMap<String, Vec<String>>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for c in containers::list(store)? {
        for m in c.mounts.iter().filter(|m| m.kind == Kind::Volume) {
            if let Some(n) = &m.name {
                let v = out.entry(n.clone()).or_default();
                if !v.contains(&c.id) {
                    v.push(c.id.clone());
                }
            }
        }
    }
    Ok(out)
}

/// Remove a volume (the caller holds the store lock and checked it is unused).
pub fn remove(store: &Store, name: &str) -> Result<()> {
    let d = dir(store, name);
    let _ = fs::remove_file(d.join("volume.json"));
    let data = data(store, name);
    if crate::sys::mount::mounted_type(&data).is_some() {
        let _ = crate::sys::mount::umount2(&data, libc::MNT_DETACH);
    }
    crate::sys::tree::remove_tree(&d).ctx(d.display())
}

/// Refuse to remove a volume that containers use (exit status 2, as podman).
pub fn check_unused(users: &HashMap<String, Vec<String>>, name: &str) -> Result<()> {
    match users.get(name) {
        Some(u) if !u.is_empty() => {
            let ids: Vec<&str> = u.iter().map(|i| i.get(..12).unwrap_or(i)).collect();
            conflict(format!(
                "volume {name} is in use by container(s) {}: remove them first (or volume rm -f)",
                ids.join(", ")
            ))
        }
        _ => Ok(()),
    }
}

fn lock(store: &Store, name: &str) -> Result<crate::store::Lock> {
    store.named_lock(&format!("vol-{name}"))
}

fn mounted_by(store: &Store, name: &str) -> MountedBy {
    read_json(&dir(store, name).join("mount.json")).unwrap_or_default()
}

/// The number of containers that have the volume mounted.
pub fn mount_count(store: &Store, name: &str) -> usize {
    mounted_by(store, name).containers.len()
}

/// The driver's mount of `_data` (`--opt type=...`): (device, type, flags, data).
fn driver_mount(v: &Volume) -> Option<(String, String, libc::c_ulong, String)> {
    let t = v.options.get("type")?;
    let dev = v.options.get("device").cloned().unwrap_or_else(|| t.clone());
    let mut flags = 0;
    let mut data = Vec::new();
    for o in v.options.get("o").map(String::as_str).unwrap_or("").split(',').filter(|o| !o.is_empty()) {
        match o {
            "bind" => flags |= libc::MS_BIND,
            "rbind" => flags |= libc::MS_BIND | libc::MS_REC,
            "ro" => flags |= libc::MS_RDONLY,
            "nosuid" => flags |= libc::MS_NOSUID,
            "nodev" => flags |= libc::MS_NODEV,
            "noexec" => flags |= libc::MS_NOEXEC,
            other => data.push(other.to_string()),
        }
    }
    if let Some(s) = v.options.get("size") {
        data.push(format!("size={s}"));
    }
    Some((dev, if t == "none" { String::new() } else { t.clone() }, flags, data.join(",")))
}

/// A container starts using the volume: its driver mount is made when it is
/// the first; returns the directory to bind into the container.
pub fn activate(store: &Store, name: &str, ctr: &str) -> Result<PathBuf> {
    let _l = lock(store, name)?;
    let v = get(store, name)?;
    let data = data(store, name);
    let mut by = mounted_by(store, name);
    if let Some((dev, fstype, flags, opts)) = driver_mount(&v) {
        if crate::sys::mount::mounted_type(&data).is_none() {
            let r = if flags & libc::MS_BIND != 0 {
                crate::sys::mount::mount_device(&dev, &data, "", flags & (libc::MS_BIND | libc::MS_REC), "").and_then(
                    |()| {
                        if flags & !(libc::MS_BIND | libc::MS_REC) != 0 {
                            crate::sys::mount::remount_bind(&data, flags & !(libc::MS_BIND | libc::MS_REC))
                        } else {
                            Ok(())
                        }
                    },
                )
            } else {
                crate::sys::mount::mount_device(&dev, &data, &fstype, flags, &opts)
            };
            r.map_err(|e| {
                Error(format!("volume {name}: mounting {dev} ({fstype}): {}", crate::sys::tree::strip_os(&e)))
            })?;
            by.containers.clear();
        }
    }
    if !by.containers.iter().any(|c| c == ctr) {
        by.containers.push(ctr.to_string());
    }
    write_json(&dir(store, name).join("mount.json"), &by)?;
    Ok(data)
}

/// A container stopped using the volume: the last one undoes the driver mount.
pub fn deactivate(store: &Store, name: &str, ctr: &str) {
    let Ok(_l) = lock(store, name) else { return };
    let Ok(v) = get(store, name) else { return };
    let mut by = mounted_by(store, name);
    by.containers.retain(|c| c != ctr);
    let data = data(store, name);
    if by.containers.is_empty() && driver_mount(&v).is_some() && crate::sys::mount::mounted_type(&data).is_some() {
        if let Err(e) = crate::sys::mount::umount2(&data, 0) {
            log::warn!("volume {name}: unmount {}: {}", data.display(), crate::sys::tree::strip_os(&e));
            let _ = crate::sys::mount::umount2(&data, libc::MNT_DETACH);
        }
    }
    let _ = write_json(&dir(store, name).join("mount.json"), &by);
}

/// Fill an empty volume from the image's content at the container's
/// `dst` (resolved inside the mounted root `root`, symlinks of the image
/// followed there), once in the volume's life. The content is read from
/// `layers` (the container's upper and its image's layers, top first), so
/// hard links stay hard links.
pub fn copy_up_once(store: &Store, name: &str, root: std::os::fd::RawFd, dst: &str, layers: &[PathBuf]) -> Result<()> {
    use std::os::fd::AsRawFd;
    let _l = lock(store, name)?;
    let mut v = get(store, name)?;
    if !v.needs_copy_up {
        return Ok(());
    }
    let data = data(store, name);
    let empty = fs::read_dir(&data).ctx(data.display())?.next().is_none();
    if empty {
        if let Ok(src) = crate::sys::resolve::open(root, dst.as_bytes()) {
            let st = crate::sys::at::fstat(src.as_raw_fd())?;
            // The real path of the destination below the root (no symlink in it).
            let root_path = crate::sys::at::fd_path(root);
            let real = crate::sys::at::fd_path(src.as_raw_fd());
            let rel = real.strip_prefix(&root_path).map(|p| p.to_path_buf()).unwrap_or_default();
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                let opts = crate::store::archive::Options { root_name: Some("./".into()), ..Default::default() };
                let rel = rel.as_os_str().as_encoded_bytes().to_vec();
                crate::store::archive::pipe_into(
                    |f| crate::store::archive::write_merged(layers, &rel, &opts, f).map(drop),
                    &data,
                )
                .map_err(|e| Error(format!("volume {name}: filling it from the image at {dst}: {e}")))?;
            }
        }
    }
    v.needs_copy_up = false;
    write_json(&dir(store, name).join("volume.json"), &v)
}

/// Is the volume's data directory empty?
pub fn is_empty(store: &Store, name: &str) -> Result<bool> {
    let d = data(store, name);
    Ok(fs::read_dir(&d).ctx(d.display())?.next().is_none())
}

/// Mark a volume as filled (an import gives it content: no copy-up later).
pub fn mark_filled(store: &Store, name: &str) -> Result<()> {
    let _l = lock(store, name)?;
    let mut v = get(store, name)?;
    v.needs_copy_up = false;
    write_json(&dir(store, name).join("volume.json"), &v)
}

/// Bytes used by the volume's data.
pub fn size(store: &Store, name: &str) -> u64 {
    crate::sys::tree::du_path(&data(store, name))
}
