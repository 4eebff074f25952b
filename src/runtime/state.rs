//! A container's run state: `containers/<id>/state.json`, written under the
//! container's run lock (`tmp/locks/run-<id>.lock`), temp + fsync + rename.
//!
//! The record says what was last known; [`view`] says what is true now. A
//! process is identified by its pid and start time (a reused pid is not the
//! container), and a record from before a reboot is history. When the
//! monitor died, the container's init is checked directly: alive is
//! running, gone is exited with an unknown status (-1) until [`reconcile`]
//! cleans up after it.
//!
//! Lock order: run lock, then the container's mount lock (`ctr-<id>`,
//! [`crate::store::mounts`]), then the store lock.

use crate::store::containers::Container;
use crate::store::error::Result;
use crate::store::mounts::Proc;
use crate::store::util::{read_json, write_json};
use crate::store::Store;
use crate::sys::process;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// docker's zero time.
pub const NEVER: &str = "0001-01-01T00:00:00Z";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Exited,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

/// containers/<id>/state.json
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunState {
    pub status: Status,
    /// The container's init (host pid) and its start time.
    #[serde(default)]
    pub init: Proc,
    /// The monitor holding the container's output and exit status.
    #[serde(default)]
    pub monitor: Proc,
    #[serde(default)]
    pub exit_code: i32,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub finished_at: String,
    #[serde(default)]
    pub boot_id: String,
    /// Why the last start failed, or that the monitor died.
    #[serde(default)]
    pub error: String,
    /// Rootless: the unionfs daemon inside the container's namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<Proc>,
    /// The root mount reference the monitor holds (root: host mount).
    #[serde(default)]
    pub mounted: bool,
}

impl Default for RunState {
    fn default() -> Self {
        RunState {
            status: Status::Created,
            init: Proc::default(),
            monitor: Proc::default(),
            exit_code: 0,
            started_at: NEVER.into(),
            finished_at: NEVER.into(),
            boot_id: String::new(),
            error: String::new(),
            daemon: None,
            mounted: false,
        }
    }
}

pub fn path(store: &Store, c: &Container) -> PathBuf {
    c.dir(store).join("state.json")
}

pub fn log_path(store: &Store, c: &Container) -> PathBuf {
    c.dir(store).join("ctr.log")
}

/// The recorded state (a container never started: the default).
pub fn read(store: &Store, c: &Container) -> RunState {
    read_json(&path(store, c)).unwrap_or_default()
}

/// Write the state (the caller holds the run lock).
pub fn write(store: &Store, c: &Container, s: &RunState) -> Result<()> {
    write_json(&path(store, c), s)
}

pub fn lock(store: &Store, c: &Container) -> Result<crate::store::Lock> {
    store.named_lock(&format!("run-{}", c.id))
}

/// What is true now.
#[derive(Clone, Debug)]
pub struct View {
    pub status: Status,
    pub pid: i32,
    pub exit_code: i32,
    pub started_at: String,
    pub finished_at: String,
    pub error: String,
    /// Recorded as running, but the monitor is gone.
    pub orphaned: bool,
}

impl View {
    pub fn running(&self) -> bool {
        self.status == Status::Running
    }
}

/// Is the recorded init still the running container?
pub fn init_alive(s: &RunState) -> bool {
    s.boot_id == process::boot_id() && s.init.pid > 0 && s.init.alive()
}

pub fn monitor_alive(s: &RunState) -> bool {
    s.boot_id == process::boot_id() && s.monitor.pid > 0 && s.monitor.alive()
}

/// The state as it is now (reads only).
pub fn view(store: &Store, c: &Container) -> View {
    let s = read(store, c);
    let mut v = View {
        status: s.status.clone(),
        pid: 0,
        exit_code: s.exit_code,
        started_at: s.started_at.clone(),
        finished_at: s.finished_at.clone(),
        error: s.error.clone(),
        orphaned: false,
    };
    if s.status == Status::Running {
        if init_alive(&s) {
            v.pid = s.init.pid;
            v.orphaned = !monitor_alive(&s);
        } else if !monitor_alive(&s) {
            // Died with its monitor: the status is unknown.
            v.status = Status::Exited;
            v.exit_code = -1;
            v.error = "the container's monitor died; exit status unknown".into();
        } else {
            // The monitor is recording the exit right now.
            v.pid = 0;
        }
    }
    v
}
