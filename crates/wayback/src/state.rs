//! On-disk state of instances: `<state_dir>/instances/<name>/` holds the plan, the journal, the init spec,
//! the container log, the owner (the process hosting the instance) and the phase; `<runtime_dir>/routes/`
//! holds one file per HTTP route for whichever process runs the proxy. Writes are atomic (tempfile + rename).
//! The instance directory is created with mkdir, which is what makes a name taken.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use wayback_core::{Config, Plan};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("an instance named {0:?} already exists; pick another --name or run `wayback down {0}` first")]
    Taken(String),
    #[error("no instance named {name:?} (see `wayback ls`)")]
    NotFound { name: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
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

/// Field 22 of /proc/PID/stat (start time in clock ticks since boot); None for a process that is gone or
/// a zombie (dead, waiting to be reaped by a parent that may never do so).
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// One instance's directory.
#[derive(Debug, Clone)]
pub struct InstanceDir {
    pub name: String,
    pub path: PathBuf,
}

impl InstanceDir {
    /// Create the directory; fails with `Taken` if it exists.
    pub fn create(cfg: &Config, name: &str) -> Result<InstanceDir, StateError> {
        let parent = cfg.instances_dir();
        create_private_dir_all(&parent)?;
        let path = parent.join(name);
        match fs::create_dir(&path) {
            Ok(()) => Ok(InstanceDir {
                name: name.into(),
                path,
            }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(StateError::Taken(name.into()))
            }
            Err(source) => Err(StateError::Write { path, source }),
        }
    }

    pub fn open(cfg: &Config, name: &str) -> Result<InstanceDir, StateError> {
        let path = cfg.instance_dir(name);
        if path.is_dir() {
            Ok(InstanceDir {
                name: name.into(),
                path,
            })
        } else {
            Err(StateError::NotFound { name: name.into() })
        }
    }

    pub fn plan_path(&self) -> PathBuf {
        self.path.join("plan.json")
    }
    pub fn journal_path(&self) -> PathBuf {
        self.path.join("journal.jsonl")
    }
    pub fn log_path(&self) -> PathBuf {
        self.path.join("log")
    }
    pub fn init_spec_path(&self) -> PathBuf {
        self.path.join("init.json")
    }

    pub fn plan(&self) -> Result<Plan, StateError> {
        read_json(&self.plan_path())
    }

    pub fn owner(&self) -> Option<Owner> {
        read_json(&self.path.join("owner.json")).ok()
    }
    pub fn set_owner(&self, owner: Owner) -> Result<(), StateError> {
        write_json(&self.path.join("owner.json"), &owner)
    }

    pub fn phase(&self) -> Option<Phase> {
        read_json(&self.path.join("phase.json")).ok()
    }
    pub fn set_phase(&self, phase: Phase) -> Result<(), StateError> {
        write_json(&self.path.join("phase.json"), &phase)
    }

    /// Expiry (unix time) — the plan's, unless extended.
    pub fn expires(&self) -> Option<u64> {
        read_json(&self.path.join("expires.json"))
            .ok()
            .or_else(|| self.plan().ok().map(|p| p.expires))
    }

    /// Unix time of the last proxied request, as recorded by the process that runs the proxy.
    pub fn last_activity(&self) -> Option<u64> {
        read_json(&self.path.join("activity.json")).ok()
    }

    /// Remove the directory and everything in it. Already gone: Ok.
    pub fn remove(&self) -> Result<(), StateError> {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Write {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

/// Names of all instances, sorted.
pub fn list(cfg: &Config) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(cfg.instances_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// What the proxy needs to route one hostname.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteFile {
    pub host: String,
    pub instance: String,
    pub netns_path: PathBuf,
    pub port: u16,
    /// The access gate (with its secrets: this file is root-only).
    #[serde(default)]
    pub gate: Option<wayback_proxy::GateConfig>,
    /// Hostname masquerade: the app's origin, and the public one it is rewritten to.
    #[serde(default)]
    pub masquerade: Option<MasqueradeRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasqueradeRoute {
    pub original_host: String,
    pub original_https: bool,
    /// The instance's public host, with its port when not the scheme's default.
    pub public_host: String,
    pub public_https: bool,
    pub bodies: bool,
}

pub fn route_path(cfg: &Config, host: &str) -> PathBuf {
    cfg.routes_dir().join(format!("{host}.json"))
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

/// Write JSON atomically: a temp file in the same directory, fsync, rename.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let err = |source| StateError::Write {
        path: path.into(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    serde_json::to_writer_pretty(&mut tmp, value).map_err(|e| err(e.into()))?;
    tmp.as_file().sync_data().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, StateError> {
    let bytes = fs::read(path).map_err(|source| StateError::Read {
        path: path.into(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
        path: path.into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_self_and_taken_names() {
        assert!(Owner::current().alive());
        assert!(!Owner {
            pid: std::process::id() as i32,
            start_time: 1,
            daemon: false,
        }
        .alive());
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            state_dir: dir.path().into(),
            ..Config::default()
        };
        let a = InstanceDir::create(&cfg, "a").unwrap();
        assert!(matches!(
            InstanceDir::create(&cfg, "a"),
            Err(StateError::Taken(_))
        ));
        a.set_phase(Phase::Running).unwrap();
        assert_eq!(a.phase(), Some(Phase::Running));
        assert_eq!(list(&cfg), vec!["a".to_string()]);
        a.remove().unwrap();
        a.remove().unwrap();
        assert!(list(&cfg).is_empty());
    }
}
