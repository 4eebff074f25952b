//! `unionctl system df|prune` and `unionctl info`.

use crate::cli::format::{self, Format};
use crate::store::error::Result;
use crate::store::util::{ago, human_size, parse_rfc3339};
use crate::store::{containers, images, layers, mounts, volumes, Store};
use clap::Subcommand;
use serde_json::json;
use std::collections::{HashMap, HashSet};

#[derive(Subcommand, Debug, Clone)]
pub enum SystemCmd {
    /// Disk usage of images, containers and volumes
    Df {
        /// Per image, container and volume
        #[arg(short, long)]
        verbose: bool,
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Remove unmounted containers, unnamed images (-a: unused ones) and with --volumes unused volumes
    Prune {
        #[arg(short, long)]
        all: bool,
        #[arg(long)]
        volumes: bool,
        /// Do not ask (there is never a prompt)
        #[arg(short, long)]
        force: bool,
    },
    /// Same as `unionctl info`
    Info {
        #[arg(short, long, default_value = "text")]
        format: String,
    },
}

fn pct(part: u64, total: u64) -> String {
    let p = (part * 100).checked_div(total).unwrap_or(0);
    format!("{} ({p}%)", human_size(part))
}

/// Bytes of each layer (from its record).
fn layer_sizes(store: &Store) -> HashMap<String, u64> {
    layers::list(store)
        .into_iter()
        .filter_map(|d| layers::read_record(store, &d).map(|r| (d.to_string(), r.size)))
        .collect()
}

struct Usage {
    images: Vec<images::ImageRecord>,
    ctrs: Vec<(containers::Container, u64, bool)>,
    vols: Vec<(volumes::Volume, u64, usize)>,
    in_use: HashMap<String, Vec<String>>,
    layer_size: HashMap<String, u64>,
}

fn usage(store: &Store) -> Result<Usage> {
    let images = images::list(store)?;
    let in_use = containers::images_in_use(store)?;
    let ctrs = containers::list(store)?
        .into_iter()
        .map(|c| {
            let size = crate::sys::tree::du_path(&c.upper(store));
            let mounted = mounts::mounted(store, &c).is_some();
            (c, size, mounted)
        })
        .collect();
    let users = volumes::users(store)?;
    let vols = volumes::list(store)?
        .into_iter()
        .map(|v| {
            let size = volumes::size(store, &v.name);
            let n = users.get(&v.name).map_or(0, Vec::len);
            (v, size, n)
        })
        .collect();
    Ok(Usage { images, ctrs, vols, in_use, layer_size: layer_sizes(store) })
}

fn df(store: &Store, verbose: bool, format: &str) -> Result<()> {
    let u = usage(store)?;
    // Images: shared layers count once; reclaimable = layers only unused images have.
    let used_layers: HashSet<&String> =
        u.images.iter().filter(|i| u.in_use.contains_key(&i.id)).flat_map(|i| i.layers.iter()).collect();
    let all_layers: HashSet<&String> = u.images.iter().flat_map(|i| i.layers.iter()).collect();
    let size_of =
        |set: &HashSet<&String>| -> u64 { set.iter().map(|l| u.layer_size.get(*l).copied().unwrap_or(0)).sum() };
    let img_total = size_of(&all_layers);
    let img_active = u.images.iter().filter(|i| u.in_use.contains_key(&i.id)).count();
    let img_reclaim = img_total - size_of(&used_layers);
    let ctr_total: u64 = u.ctrs.iter().map(|c| c.1).sum();
    let ctr_active = u.ctrs.iter().filter(|c| c.2).count();
    let ctr_reclaim: u64 = u.ctrs.iter().filter(|c| !c.2).map(|c| c.1).sum();
    let vol_total: u64 = u.vols.iter().map(|v| v.1).sum();
    let vol_active = u.vols.iter().filter(|v| v.2 > 0).count();
    let vol_reclaim: u64 = u.vols.iter().filter(|v| v.2 == 0).map(|v| v.1).sum();
    let fmt = format::parse(format);
    if !matches!(fmt, Format::Table) {
        let objs = vec![
            json!({"Type": "Images", "Total": u.images.len(), "Active": img_active, "Size": img_total, "Reclaimable": img_reclaim}),
            json!({"Type": "Containers", "Total": u.ctrs.len(), "Active": ctr_active, "Size": ctr_total, "Reclaimable": ctr_reclaim}),
            json!({"Type": "Local Volumes", "Total": u.vols.len(), "Active": vol_active, "Size": vol_total, "Reclaimable": vol_reclaim}),
        ];
        return format::print_objects(&fmt, &objs);
    }
    if !verbose {
        format::table(
            &["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
            &[
                vec![
                    "Images".into(),
                    u.images.len().to_string(),
                    img_active.to_string(),
                    human_size(img_total),
                    pct(img_reclaim, img_total),
                ],
                vec![
                    "Containers".into(),
                    u.ctrs.len().to_string(),
                    ctr_active.to_string(),
                    human_size(ctr_total),
                    pct(ctr_reclaim, ctr_total),
                ],
                vec![
                    "Local Volumes".into(),
                    u.vols.len().to_string(),
                    vol_active.to_string(),
                    human_size(vol_total),
                    pct(vol_reclaim, vol_total),
                ],
            ],
        );
        return Ok(());
    }
    println!("Images space usage:\n");
    let mut layer_users: HashMap<&String, usize> = HashMap::new();
    for i in &u.images {
        for l in i.layers.iter().collect::<HashSet<_>>() {
            *layer_users.entry(l).or_default() += 1;
        }
    }
    let rows: Vec<Vec<String>> = u
        .images
        .iter()
        .map(|i| {
            let size: u64 = i.layers.iter().map(|l| u.layer_size.get(l).copied().unwrap_or(0)).sum();
            let shared: u64 = i
                .layers
                .iter()
                .filter(|l| layer_users.get(l).copied().unwrap_or(0) > 1)
                .map(|l| u.layer_size.get(l).copied().unwrap_or(0))
                .sum();
            let (repo, tag) = i.names.first().map_or(("<none>", "<none>"), |n| crate::store::util::split_name(n));
            let created = i.config(store).ok().and_then(|(_, c)| c.created).and_then(|c| parse_rfc3339(&c));
            vec![
                repo.to_string(),
                tag.to_string(),
                i.id.get(..12).unwrap_or(&i.id).to_string(),
                ago(created),
                human_size(size),
                human_size(shared),
                human_size(size - shared),
                u.in_use.get(&i.id).map_or(0, Vec::len).to_string(),
            ]
        })
        .collect();
    format::table(
        &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"],
        &rows,
    );
    println!("\nContainers space usage:\n");
    let rows: Vec<Vec<String>> = u
        .ctrs
        .iter()
        .map(|(c, size, mounted)| {
            vec![
                c.short_id().to_string(),
                c.image_hex().get(..12).unwrap_or_default().to_string(),
                c.command().join(" "),
                c.mounts.iter().filter(|m| m.kind == containers::Kind::Volume).count().to_string(),
                human_size(*size),
                ago(parse_rfc3339(&c.created)),
                if *mounted { "mounted".into() } else { "created".into() },
                c.name.clone(),
            ]
        })
        .collect();
    format::table(&["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"], &rows);
    println!("\nLocal Volumes space usage:\n");
    let rows: Vec<Vec<String>> =
        u.vols.iter().map(|(v, size, links)| vec![v.name.clone(), links.to_string(), human_size(*size)]).collect();
    format::table(&["VOLUME NAME", "LINKS", "SIZE"], &rows);
    Ok(())
}

fn prune(store: &Store, all: bool, vols: bool) -> Result<()> {
    let mut bytes = 0u64;
    let mut removed_ctrs = Vec::new();
    for c in containers::list(store)? {
        if mounts::mounted(store, &c).is_some() {
            continue;
        }
        let size = crate::sys::tree::du_path(&c.upper(store));
        match crate::runtime::remove(store, &c, false, false) {
            Ok(()) => {
                bytes += size;
                removed_ctrs.push(c.id);
            }
            // Mounted meanwhile: it stays.
            Err(e) => log::debug!("prune: {}: {e}", c.id),
        }
    }
    let _lock = store.lock()?;
    let in_use = containers::images_in_use(store)?;
    let mut removed_imgs = Vec::new();
    for img in images::list(store)? {
        if !in_use.contains_key(&img.id) && (all || img.names.is_empty()) {
            images::delete(store, &img.id)?;
            removed_imgs.push(img.id);
        }
    }
    let (_, _, freed) = images::gc(store)?;
    bytes += freed;
    let mut removed_vols = Vec::new();
    if vols {
        let users = volumes::users(store)?;
        for v in volumes::list(store)? {
            if users.get(&v.name).is_none_or(|u| u.is_empty()) && (all || v.anonymous) {
                bytes += volumes::size(store, &v.name);
                volumes::remove(store, &v.name)?;
                removed_vols.push(v.name);
            }
        }
    }
    for (title, list) in
        [("Deleted Containers", removed_ctrs), ("Deleted Images", removed_imgs), ("Deleted Volumes", removed_vols)]
    {
        if !list.is_empty() {
            println!("{title}:");
            for x in list {
                println!("{x}");
            }
            println!();
        }
    }
    println!("Total reclaimed space: {}", human_size(bytes));
    Ok(())
}

fn unionfs_version() -> String {
    std::process::Command::new(mounts::unionfs_binary())
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(|l| l.trim_start_matches("unionfs version ").to_string()))
        .unwrap_or_else(|| "unknown".into())
}

pub fn info(store: &Store, format: &str) -> Result<()> {
    let imgs = images::list(store)?;
    let ctrs = containers::list(store)?;
    let mounted = ctrs.iter().filter(|c| mounts::mounted(store, c).is_some()).count();
    let vols = volumes::list(store)?;
    let nlayers = layers::list(store).len();
    let backing = containers::fs_type(&store.root);
    let rootless = !crate::sys::at::is_root();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let v = json!({
        "host": {
            "arch": crate::store::spec::host_platform().architecture,
            "os": "linux",
            "kernel": kernel,
            "rootless": rootless,
            "security": {"rootless": rootless},
        },
        "store": {
            "graphDriverName": "unionfs",
            "graphDriverVersion": unionfs_version(),
            "graphRoot": store.root,
            "graphStatus": {
                "Backing Filesystem": backing,
                "Mount Program": mounts::unionfs_binary(),
                "Volume mounts": if rootless { "user+mount namespace (unionctl unshare CTR)" } else { "host mount namespace" },
            },
            "imageStore": {"number": imgs.len()},
            "layerStore": {"number": nlayers},
            "containerStore": {"number": ctrs.len(), "mounted": mounted},
            "volumeStore": {"number": vols.len()},
            "volumePath": store.root.join("volumes"),
        },
        "version": {"Version": env!("CARGO_PKG_VERSION")},
        "Driver": "unionfs",
        "DriverVersion": unionfs_version(),
        "DockerRootDir": store.root,
        "Images": imgs.len(),
        "Layers": nlayers,
        "Containers": ctrs.len(),
        "Volumes": vols.len(),
    });
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&v)?),
        "text" | "table" | "" => {
            let s = &v["store"];
            println!("host:");
            println!("  arch: {}", v["host"]["arch"].as_str().unwrap_or_default());
            println!("  kernel: {kernel}");
            println!("  rootless: {rootless}");
            println!("store:");
            println!("  graphDriverName: unionfs");
            println!("  graphDriverVersion: {}", s["graphDriverVersion"].as_str().unwrap_or_default());
            println!("  graphRoot: {}", store.root.display());
            println!("  backingFilesystem: {backing}");
            println!("  mountProgram: {}", mounts::unionfs_binary().display());
            println!("  volumeMounts: {}", s["graphStatus"]["Volume mounts"].as_str().unwrap_or_default());
            println!("  images: {}", imgs.len());
            println!("  layers: {nlayers}");
            println!("  containers: {} ({mounted} mounted)", ctrs.len());
            println!("  volumes: {}", vols.len());
        }
        t => println!("{}", format::render(t, &v)?),
    }
    Ok(())
}

pub fn run(store: &Store, cmd: SystemCmd) -> Result<()> {
    match cmd {
        SystemCmd::Df { verbose, format } => df(store, verbose, &format),
        SystemCmd::Prune { all, volumes, force: _ } => prune(store, all, volumes),
        SystemCmd::Info { format } => info(store, &format),
    }
}
