//! What a failed start leaves to read: its resources are all removed, but its logs are kept in
//! `<state_dir>/failed/<name>/` — the container's output (`log`), the app's own log directories
//! (`applogs/var/log/APP/…`) and `failed.json` (when, and the error). `wayback logs NAME` shows them; `gc`
//! removes them once older than `keep_failed_logs`; a later failed start of the same name replaces them.
//!
//! Like instance directories, a failed directory is only ever `<state_dir>/failed/<valid name>`, a real
//! directory carrying its marker (`failed.json`); nothing else there is touched.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wayback_core::{Config, InstanceName};

use super::{read_json, write_json, InstanceDir, StateError};

/// The marker and record of a failed start.
const RECORD: &str = "failed.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failed {
    pub name: String,
    /// Unix time of the failure.
    pub when: u64,
    /// What `up` reported.
    pub error: String,
    #[serde(skip)]
    pub dir: PathBuf,
}

impl wayback_core::format::Persisted for Failed {
    const KIND: &'static str = "record of a failed start";
}

impl Failed {
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log")
    }
    pub fn applogs(&self) -> PathBuf {
        self.dir.join("applogs")
    }
}

fn root(cfg: &Config) -> PathBuf {
    cfg.state_dir.join("failed")
}

/// Where the failed start of `name` keeps its logs, if it is wayback's (a real directory with its record).
fn checked(cfg: &Config, name: &InstanceName) -> Option<PathBuf> {
    let dir = root(cfg).join(name.as_str());
    let real_dir = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    (real_dir(&root(cfg)) && real_dir(&dir) && dir.join(RECORD).is_file()).then_some(dir)
}

/// Keep the logs of `dir`, whose start failed, before its teardown removes the instance directory: the
/// container log is hard-linked (what is still written to it lands in the kept copy too) and the app's log
/// directories are moved. Call [`record`] once the teardown is done.
pub fn keep(cfg: &Config, dir: &InstanceDir) -> Result<PathBuf, StateError> {
    let name = &dir.name;
    let target = root(cfg).join(name.as_str());
    if let Some(old) = checked(cfg, name) {
        fs::remove_dir_all(&old).map_err(|source| StateError::Write { path: old, source })?;
    }
    let write = |source: io::Error| StateError::Write {
        path: target.clone(),
        source,
    };
    super::create_private_dir_all(&target)?;
    // The record first: it is the marker that makes the directory wayback's.
    record(cfg, name, "the start failed (teardown in progress)")?;
    match fs::hard_link(dir.log_path(), target.join("log")) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(write(e)),
    }
    let applogs = dir.path.join("applogs");
    if applogs.is_dir() {
        fs::rename(&applogs, target.join("applogs")).map_err(write)?;
    }
    Ok(target)
}

/// Write (or rewrite) the record of the failed start of `name`.
pub fn record(cfg: &Config, name: &InstanceName, error: &str) -> Result<(), StateError> {
    let rec = Failed {
        name: name.to_string(),
        when: crate::clock::now_secs(),
        error: error.to_string(),
        dir: PathBuf::new(),
    };
    write_json(&root(cfg).join(name.as_str()).join(RECORD), &rec)
}

/// The kept logs of the last failed start of `name`.
pub fn find(cfg: &Config, name: &InstanceName) -> Option<Failed> {
    let dir = checked(cfg, name)?;
    let mut f: Failed = read_json(&dir.join(RECORD)).ok()?;
    f.dir = dir;
    Some(f)
}

/// Remove the kept logs of failed starts older than `max_age` seconds; returns the names removed.
pub fn collect(cfg: &Config, max_age: u64) -> Vec<String> {
    let now = crate::clock::now_secs();
    let mut removed = Vec::new();
    for e in fs::read_dir(root(cfg)).into_iter().flatten().flatten() {
        let Some(name) = e
            .file_name()
            .to_str()
            .and_then(|n| InstanceName::new(n).ok())
        else {
            continue;
        };
        let Some(f) = find(cfg, &name) else { continue };
        if now.saturating_sub(f.when) >= max_age && fs::remove_dir_all(&f.dir).is_ok() {
            removed.push(f.name);
        }
    }
    removed
}
