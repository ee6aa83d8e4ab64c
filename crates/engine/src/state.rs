//! On-disk state of instances: `<state_dir>/instances/<name>/` holds the plan, the journal, the init spec,
//! the container log, the owner (the process hosting the instance) and the phase; `<runtime_dir>/routes/`
//! holds one file per HTTP route for whichever process runs the proxy (see [`routes`]). Writes are atomic
//! (tempfile + rename).
//!
//! An instance directory is only ever named by a valid `InstanceName` (one path component), and carries
//! a marker file, `.wayback-instance`, holding its name. It is made complete in a hidden temporary
//! directory and renamed into place without replacing anything (`renameat2(RENAME_NOREPLACE)`), which is
//! what makes a name taken. Whatever a journal or a caller says, wayback opens, lists and removes only
//! `<state_dir>/instances/<valid name>` when the instances directory and the entry are real directories
//! (no symlink) and the marker names that instance; anything else found there is reported and left alone.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wayback_core::format::Persisted;
use wayback_core::Config;

use crate::sys::procfs;

pub mod failed;
mod instance_dir;
mod keep;
mod routes;
#[cfg(test)]
mod tests;

pub use instance_dir::{list, InstanceDir, OtherPlan, Others};
pub use keep::{parse_until, Keep};
pub use routes::{
    hostname_owner, hostname_owner_in, route_path, MasqueradeRoute, RouteFile, RouteRemoval,
};

/// The marker file in every instance directory; it holds the instance's name.
pub const MARKER: &str = ".wayback-instance";
/// Prefix of the temporary directory an instance directory is assembled in before it is renamed into place.
const NEW_PREFIX: &str = ".new-";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("an instance named {0:?} already exists; pick another --name or run `wayback down {0}` first")]
    Taken(String),
    #[error("no instance named {name:?} (see `wayback ls`)")]
    NotFound { name: String },
    #[error("{path} is not an instance directory wayback made ({why}); wayback leaves it alone: check it and remove it by hand")]
    Foreign { path: PathBuf, why: String },
    #[error("hostname {host} is already used by instance {owner}; pick another --host or `wayback down {owner}`")]
    HostnameTaken { host: String, owner: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(transparent)]
    Format(#[from] wayback_core::format::FormatError),
}

/// Lifecycle of an instance as its owner reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Starting,
    Running,
    Stopping,
}

/// The process that hosts an instance (the foreground `up`), identified by PID and start time so a reused
/// PID is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: i32,
    pub start_time: u64,
    /// The owner is `wayback serve`: ask it over its socket instead of signalling it.
    #[serde(default)]
    pub daemon: bool,
}

impl Persisted for Owner {
    const KIND: &'static str = "owner record";
}

impl Persisted for Phase {
    const KIND: &'static str = "phase record";
}

impl Owner {
    pub fn current() -> Owner {
        let pid = std::process::id() as i32;
        Owner {
            pid,
            start_time: process_start_time(pid).unwrap_or(0),
            daemon: false,
        }
    }

    pub fn current_daemon() -> Owner {
        Owner {
            daemon: true,
            ..Owner::current()
        }
    }

    pub fn alive(&self) -> bool {
        process_start_time(self.pid) == Some(self.start_time)
    }
}

/// The start time of `pid` (see [`procfs::start_time`]); `None` for a process that is gone or a zombie, or
/// when /proc could not be read.
pub fn process_start_time(pid: i32) -> Option<u64> {
    procfs::start_time(pid).ok().flatten()
}

/// `hostname_owner` as an error: `HostnameTaken` (bad input, exit 2) naming the owner.
pub fn ensure_hostname_free(
    cfg: &Config,
    others: &Others,
    host: &wayback_core::names::Hostname,
) -> Result<(), StateError> {
    match hostname_owner_in(cfg, others, host) {
        Some(owner) => Err(StateError::HostnameTaken {
            host: host.to_string(),
            owner: owner.to_string(),
        }),
        None => Ok(()),
    }
}

pub fn create_private_dir_all(path: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| StateError::Write {
            path: path.into(),
            source,
        })
}

/// Write JSON atomically (a temp file in the same directory, fsync, rename), in the current format
/// (`wayback_core::format`).
pub fn write_json<T: Persisted>(path: &Path, value: &T) -> Result<(), StateError> {
    let err = |source| StateError::Write {
        path: path.into(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    let json = wayback_core::format::encode(value).map_err(|e| err(e.into()))?;
    // One write, not one per token (the temp file is unbuffered).
    let bytes = serde_json::to_vec_pretty(&json).map_err(|e| err(e.into()))?;
    tmp.write_all(&bytes).map_err(err)?;
    tmp.as_file().sync_data().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Write JSON for a reader that may be an earlier release: in `format` (format 0 had no version), else the
/// current format.
pub fn write_json_in<T: Persisted>(format: u32, path: &Path, value: &T) -> Result<(), StateError> {
    if format > 0 {
        return write_json(path, value);
    }
    let err = |source| StateError::Write {
        path: path.into(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| err(e.into()))?;
    tmp.write_all(&bytes).map_err(err)?;
    tmp.as_file().sync_data().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Read JSON written by this or any earlier release (migrated), refusing a later release's.
pub fn read_json<T: Persisted>(path: &Path) -> Result<T, StateError> {
    let bytes = fs::read(path).map_err(|source| StateError::Read {
        path: path.into(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            path: path.into(),
            message: e.to_string(),
        })?;
    Ok(wayback_core::format::decode(value, path)?)
}
