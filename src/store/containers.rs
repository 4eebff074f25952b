//! Containers as the image store sees them: which images they keep in use.
//!
//! The container commands keep one record per container under `containers/`
//! in the store: `containers/<id>.json` or `containers/<id>/container.json`,
//! a JSON object with at least `{"Id": ..., "ImageID": ...}` (the image ID
//! with or without `sha256:`), written under the store lock like every
//! record. `image rm` refuses, and `image prune` skips, an image a container
//! uses; its layers stay for as long as the image does.

use crate::store::error::{Context, Result};
use crate::store::util::read_json;
use crate::store::Store;
use serde::Deserialize;
use std::collections::HashMap;
use std::fs;
use std::io;

#[derive(Deserialize)]
struct ContainerRef {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "ImageID")]
    image_id: String,
}

/// Image ID (hex) -> the IDs of the containers using it. A record that cannot
/// be read is an error: nothing may be removed while it is unknown what that
/// container needs.
pub fn images_in_use(store: &Store) -> Result<HashMap<String, Vec<String>>> {
    let dir = store.root.join("containers");
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e).ctx(dir.display()),
    };
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for e in rd {
        let e = e.ctx(dir.display())?;
        let p = e.path();
        let record = if p.is_dir() {
            p.join("container.json")
        } else if p.extension().is_some_and(|x| x == "json") {
            p
        } else {
            continue;
        };
        if !record.exists() {
            continue;
        }
        let c: ContainerRef = read_json(&record).ctx("container record")?;
        let image = c.image_id.strip_prefix("sha256:").unwrap_or(&c.image_id).to_string();
        out.entry(image).or_default().push(c.id);
    }
    for users in out.values_mut() {
        users.sort();
    }
    Ok(out)
}
