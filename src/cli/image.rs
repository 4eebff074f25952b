//! `unionctl image ...`: argument handling and output; the work happens in
//! [`crate::store`].

use crate::store::containers;
use crate::store::digest::Digest;
use crate::store::error::{conflict, err, Result};
use crate::store::images::{self, ImageRecord};
use crate::store::load::{self, Progress};
use crate::store::save::{self, Format};
use crate::store::util::{ago, human_size, parse_rfc3339, split_name};
use crate::store::Store;
use clap::Subcommand;
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// Load images from an OCI layout dir, an OCI archive or a docker save tar (- for stdin)
    Load {
        #[arg(short = 'i', long = "input")]
        input: Option<PathBuf>,
        /// The same as -i
        path: Option<PathBuf>,
        /// Print only the image IDs
        #[arg(short, long)]
        quiet: bool,
    },
    /// List images
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        /// Also images without a name
        #[arg(short, long)]
        all: bool,
        /// table (default) or json
        #[arg(long, default_value = "table")]
        format: String,
        #[arg(long)]
        no_trunc: bool,
    },
    /// Show everything about images (JSON)
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
        /// json (the only format)
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Show the layers history of an image
    History {
        image: String,
        #[arg(long, default_value = "table")]
        format: String,
        #[arg(long)]
        no_trunc: bool,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Add names to an image
    Tag {
        image: String,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove images (or just a name when the image has others)
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
        /// Remove even when a container uses it, with all its names
        #[arg(short, long)]
        force: bool,
    },
    /// Remove unnamed images (-a: every image no container uses) and unused layers and blobs
    Prune {
        #[arg(short, long)]
        all: bool,
        /// Do not ask (there is never a prompt; accepted for compatibility)
        #[arg(short, long)]
        force: bool,
    },
    /// Pull an image from a registry
    Pull(crate::cli::registry::PullArgs),
    /// Push an image to a registry
    Push(crate::cli::registry::PushArgs),
    /// Write an image to an archive
    Save {
        /// File (a symlink is followed and kept), - for standard output, or a pipe/device
        #[arg(short, long)]
        output: PathBuf,
        /// oci-archive or docker-archive
        #[arg(long, default_value = "docker-archive")]
        format: String,
        image: String,
    },
}

/// A byte progress bar on a terminal, nothing otherwise.
struct Bar(Option<indicatif::ProgressBar>);

impl Progress for Bar {
    fn start(&self, total: u64) {
        if let Some(b) = &self.0 {
            b.set_length(total);
            b.set_position(0);
        }
    }
    fn advance(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

fn bar() -> Bar {
    if !std::io::stderr().is_terminal() {
        return Bar(None);
    }
    let b = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} loading [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
    {
        b.set_style(style.progress_chars("=> "));
    }
    Bar(Some(b))
}

fn short(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        format!("sha256:{id}")
    } else {
        id.chars().take(12).collect()
    }
}

pub fn run(store: &Store, cmd: ImageCmd) -> Result<()> {
    match cmd {
        ImageCmd::Load { input, path, quiet } => {
            let given = input.or(path).ok_or_else(|| {
                crate::store::error::Error("image load needs -i PATH (or - for standard input)".into())
            })?;
            let (_spool, path) = if given.as_os_str() == "-" {
                let (t, p) = load::spool_stdin(store)?;
                (Some(t), p)
            } else {
                (None, given)
            };
            let loaded = load::load(store, &path, &bar())?;
            for l in loaded {
                if quiet {
                    println!("sha256:{}", l.id);
                    continue;
                }
                println!(
                    "Loaded image ID: sha256:{} ({} new layers, {} already stored)",
                    l.id, l.new_layers, l.reused_layers
                );
                for n in &l.names {
                    println!("Loaded image: {n}");
                }
            }
            Ok(())
        }
        ImageCmd::Ls { quiet, all, format, no_trunc } => {
            let imgs = images::list(store)?;
            if format == "json" {
                let in_use = containers::images_in_use(store).unwrap_or_default();
                let v: Vec<_> = imgs.iter().map(|i| summary_json(store, i, users(&in_use, i))).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            if format != "table" {
                return err(format!("unknown format {format:?} (table or json)"));
            }
            if quiet {
                for i in &imgs {
                    println!("{}", short(&i.id, no_trunc));
                }
                return Ok(());
            }
            println!("{:<40} {:<12} {:<14} {:<24} SIZE", "REPOSITORY", "TAG", "IMAGE ID", "CREATED");
            for i in &imgs {
                let created = ago(i.config(store).ok().and_then(|(_, c)| c.created).and_then(|c| parse_rfc3339(&c)));
                let rows: Vec<(String, String)> = if i.names.is_empty() {
                    vec![("<none>".into(), "<none>".into())]
                } else {
                    i.names.iter().map(|n| split_name(n)).map(|(r, t)| (r.to_string(), t.to_string())).collect()
                };
                let _ = all;
                for (repo, tag) in rows {
                    println!(
                        "{:<40} {:<12} {:<14} {:<24} {}",
                        repo,
                        tag,
                        short(&i.id, no_trunc),
                        created,
                        human_size(i.size)
                    );
                }
            }
            Ok(())
        }
        ImageCmd::Inspect { images: which, format } => {
            if format != "json" {
                return err(format!("unknown format {format:?} (json)"));
            }
            let in_use = containers::images_in_use(store).unwrap_or_default();
            let mut out = Vec::new();
            for w in &which {
                let img = images::resolve(store, w)?;
                out.push(inspect_json(store, &img, users(&in_use, &img))?);
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        ImageCmd::History { image, format, no_trunc, quiet } => {
            history(store, &images::resolve(store, &image)?, &format, no_trunc, quiet)
        }
        ImageCmd::Tag { image, names } => {
            let _lock = store.lock()?;
            let img = images::resolve(store, &image)?;
            for n in names {
                images::add_name(store, &img.id, &n)?;
            }
            Ok(())
        }
        ImageCmd::Rm { images: which, force } => {
            if force {
                // As podman: -f removes the containers that use the images first.
                let in_use = containers::images_in_use(store)?;
                for w in &which {
                    let img = images::resolve(store, w)?;
                    for id in in_use.get(&img.id).map_or(&[][..], |v| v.as_slice()) {
                        let c = containers::resolve(store, id)?;
                        crate::runtime::remove(store, &c, true, false)?;
                        println!("Removed container: {id}");
                    }
                }
            }
            let _lock = store.lock()?;
            for (id, step) in rm_plan(store, &which, force)? {
                let mut img = images::resolve(store, &id)?;
                match step {
                    RmStep::Untag(name) => {
                        img.names.retain(|n| *n != name);
                        images::save(store, &img)?;
                        println!("Untagged: {name}");
                    }
                    RmStep::UntagAll => {
                        for n in std::mem::take(&mut img.names) {
                            println!("Untagged: {n}");
                        }
                        images::save(store, &img)?;
                    }
                    RmStep::Delete => {
                        images::delete(store, &img.id)?;
                        for n in &img.names {
                            println!("Untagged: {n}");
                        }
                        println!("Deleted: sha256:{}", img.id);
                    }
                }
            }
            let (nl, nb, _) = images::gc(store)?;
            if nl + nb > 0 {
                eprintln!("removed {nl} unused layers and {nb} unused blobs");
            }
            Ok(())
        }
        ImageCmd::Prune { all, force: _ } => {
            // Leftovers of killed loads (also swept when the store is opened)
            // and downloads of pulls that never finished.
            crate::store::recover::tmp(store);
            crate::registry::blob::sweep_partials(store);
            let _lock = store.lock()?;
            let in_use = containers::images_in_use(store)?;
            let mut n = 0;
            for img in images::list(store)? {
                if !in_use.contains_key(&img.id) && (all || img.names.is_empty()) {
                    images::delete(store, &img.id)?;
                    println!("sha256:{}", img.id);
                    n += 1;
                }
            }
            let (nl, nb, bytes) = images::gc(store)?;
            eprintln!("removed {n} images, {nl} layers, {nb} blobs; {} reclaimed", human_size(bytes));
            Ok(())
        }
        ImageCmd::Pull(a) => crate::cli::registry::pull(store, a),
        ImageCmd::Push(a) => crate::cli::registry::push(store, a),
        ImageCmd::Save { output, format, image } => {
            let fmt = Format::parse(&format)?;
            let img = images::resolve(store, &image)?;
            // Saved under the name asked for, else every name of the image.
            let names = images::matching_name(&img, &image).map_or_else(|| img.names.clone(), |n| vec![n]);
            save::save(store, &img, &names, &output, fmt)
        }
    }
}

/// What `image rm` does to one image.
enum RmStep {
    /// Only this name goes (the image has others).
    Untag(String),
    /// All names go, the image stays (-f on an image containers use).
    UntagAll,
    Delete,
}

/// Check every argument before anything changes (podman's and docker's
/// rules): a name of an image with other names only untags; an image ID of
/// an image with several names needs -f (then every name goes); an image a
/// container uses is refused, and with -f loses its names but stays, with
/// its layers, until its containers are gone.
fn rm_plan(store: &Store, which: &[String], force: bool) -> Result<Vec<(String, RmStep)>> {
    let in_use = containers::images_in_use(store)?;
    // Names each image has once the steps planned so far are done.
    let mut names: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    let mut plan = Vec::new();
    for w in which {
        let img = images::resolve(store, w)?;
        let short = img.id.get(..12).unwrap_or(&img.id).to_string();
        let left = names.entry(img.id.clone()).or_insert_with(|| img.names.clone());
        if plan.iter().any(|(id, s)| *id == img.id && matches!(s, RmStep::Delete)) {
            return err(format!("image not known: {w}"));
        }
        let name = images::matching_name(&img, w).filter(|n| left.contains(n));
        let step = match (name, in_use.get(&img.id)) {
            (Some(n), _) if left.len() > 1 && !force => RmStep::Untag(n),
            (None, _) if left.len() > 1 && !force => {
                return conflict(format!(
                    "conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
                ));
            }
            (_, Some(users)) if !force => {
                return conflict(format!(
                    "image {short} is in use by container(s) {}: remove them first (-f removes only its names)",
                    users.join(", ")
                ));
            }
            (_, Some(_)) => RmStep::UntagAll,
            _ => RmStep::Delete,
        };
        match &step {
            RmStep::Untag(n) => left.retain(|x| x != n),
            _ => left.clear(),
        }
        plan.push((img.id.clone(), step));
    }
    Ok(plan)
}

/// The containers using an image.
fn users<'a>(in_use: &'a std::collections::HashMap<String, Vec<String>>, i: &ImageRecord) -> &'a [String] {
    in_use.get(&i.id).map_or(&[], |v| v.as_slice())
}

fn summary_json(store: &Store, i: &ImageRecord, users: &[String]) -> serde_json::Value {
    let created = i.config(store).ok().and_then(|(_, c)| c.created);
    json!({
        "Id": i.id,
        "Names": i.names,
        "Created": created,
        "Size": i.size,
        "Layers": i.layers.len(),
        "Containers": users.len(),
    })
}

fn inspect_json(store: &Store, i: &ImageRecord, users: &[String]) -> Result<serde_json::Value> {
    let (_, cfg) = i.config(store)?;
    let dirs: Vec<String> = i.layer_dirs(store)?.iter().map(|p| p.display().to_string()).collect();
    Ok(json!({
        "Id": i.id,
        "Digest": i.manifest_digest,
        "RepoTags": i.names,
        "RepoDigests": repo_digests(i),
        "Created": cfg.created,
        "Architecture": cfg.architecture,
        "Os": cfg.os,
        "Config": cfg.config,
        "RootFS": { "Type": "layers", "Layers": i.layers },
        "Size": i.size,
        "VirtualSize": i.size,
        "History": cfg.history,
        "GraphDriver": { "Name": "unionfs", "Data": { "LowerDir": dirs.join(":") } },
        "LayerDirs": dirs,
        "Containers": users,
    }))
}

/// `repository@digest` for each name (the manifest pulled or loaded).
fn repo_digests(i: &ImageRecord) -> Vec<String> {
    let Some(d) = &i.manifest_digest else { return Vec::new() };
    let mut v: Vec<String> = i.names.iter().map(|n| format!("{}@{d}", split_name(n).0)).collect();
    v.dedup();
    v
}

fn history(store: &Store, i: &ImageRecord, format: &str, no_trunc: bool, quiet: bool) -> Result<()> {
    let (_, cfg) = i.config(store)?;
    // Each history entry that is not an empty layer matches the next layer.
    let sizes: Vec<u64> = i
        .layers
        .iter()
        .map(|d| Digest::parse(d).ok().and_then(|d| crate::store::layers::read_record(store, &d)).map_or(0, |r| r.size))
        .collect();
    let mut rows = Vec::new();
    let mut li = 0;
    let entries = if cfg.history.is_empty() {
        vec![crate::store::spec::History::default(); i.layers.len()]
    } else {
        cfg.history.clone()
    };
    for h in &entries {
        let size = if h.empty_layer == Some(true) {
            0
        } else {
            li += 1;
            sizes.get(li - 1).copied().unwrap_or(0)
        };
        rows.push((h.clone(), size));
    }
    rows.reverse();
    if format == "json" {
        let v: Vec<_> = rows
            .iter()
            .enumerate()
            .map(|(n, (h, size))| json!({"id": if n == 0 { i.id.clone() } else { "<missing>".to_string() }, "created": h.created, "createdBy": h.created_by, "size": size, "comment": h.comment}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if quiet {
        for (n, _) in rows.iter().enumerate() {
            println!("{}", if n == 0 { short(&i.id, no_trunc) } else { "<missing>".into() });
        }
        return Ok(());
    }
    println!("{:<14} {:<24} {:<45} {:<10} COMMENT", "ID", "CREATED", "CREATED BY", "SIZE");
    for (n, (h, size)) in rows.iter().enumerate() {
        let id = if n == 0 { short(&i.id, no_trunc) } else { "<missing>".into() };
        let mut by = h.created_by.clone().unwrap_or_default();
        if !no_trunc && by.chars().count() > 44 {
            by = by.chars().take(41).collect::<String>() + "...";
        }
        let created = ago(h.created.as_deref().and_then(parse_rfc3339));
        println!(
            "{:<14} {:<24} {:<45} {:<10} {}",
            id,
            created,
            by,
            human_size(*size),
            h.comment.clone().unwrap_or_default()
        );
    }
    Ok(())
}
