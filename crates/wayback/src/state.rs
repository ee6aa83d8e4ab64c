//! On-disk state of instances: `<state_dir>/instances/<name>/` holds the plan, the journal, the init spec,
//! the container log, the owner (the process hosting the instance) and the phase; `<runtime_dir>/routes/`
//! holds one file per HTTP route for whichever process runs the proxy (see [`routes`]). Writes are atomic
//! (tempfile + rename).
//!
//! An instance directory is only ever named by a valid [`InstanceName`] (one path component), and carries
//! a marker file, `.wayback-instance`, holding its name. It is made complete in a hidden temporary
//! directory and renamed into place without replacing anything (`renameat2(RENAME_NOREPLACE)`), which is
//! what makes a name taken. Whatever a journal or a caller says, wayback opens, lists and removes only
//! `<state_dir>/instances/<valid name>` when the instances directory and the entry are real directories
//! (no symlink) and the marker names that instance; anything else found there is reported and left alone.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use wayback_core::{Config, InstanceName, Plan};

mod routes;

pub use routes::{hostname_owner, route_path, MasqueradeRoute, RouteFile, RouteRemoval};

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

/// One instance's directory: `<state_dir>/instances/<name>`, checked to be wayback's (see the module doc).
#[derive(Debug, Clone)]
pub struct InstanceDir {
    pub name: InstanceName,
    pub path: PathBuf,
    /// `<state_dir>/instances`.
    instances: PathBuf,
    /// `<runtime_dir>/routes`: the only directory this instance's route files are removed from.
    routes: PathBuf,
}

impl InstanceDir {
    fn at(cfg: &Config, name: &InstanceName) -> InstanceDir {
        InstanceDir {
            name: name.clone(),
            path: cfg.instances_dir().join(name.as_str()),
            instances: cfg.instances_dir(),
            routes: cfg.routes_dir(),
        }
    }

    /// Create the directory with its marker; fails with `Taken` if the name is taken.
    pub fn create(cfg: &Config, name: &InstanceName) -> Result<InstanceDir, StateError> {
        let dir = InstanceDir::at(cfg, name);
        create_private_dir_all(&dir.instances)?;
        real_dir(&dir.instances).map_err(|why| StateError::Foreign {
            path: dir.instances.clone(),
            why,
        })?;
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Write { path, source }
        };
        // Assembled complete under a hidden name, then renamed into place: the name is never taken by a
        // directory without its marker.
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{NEW_PREFIX}{name}-"))
            .tempdir_in(&dir.instances)
            .map_err(write_err(&dir.instances))?;
        let marker = tmp.path().join(MARKER);
        let mut f = fs::File::options()
            .write(true)
            .create_new(true)
            .open(&marker)
            .map_err(write_err(&marker))?;
        io::Write::write_all(&mut f, format!("{name}\n").as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(write_err(&marker))?;
        let parent = fs::File::open(&dir.instances).map_err(write_err(&dir.instances))?;
        match nix::fcntl::renameat2(
            &parent,
            tmp.path().file_name().expect("tempdir has a name"),
            &parent,
            name.as_str(),
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {
                let _ = tmp.keep();
                let _ = parent.sync_all();
                Ok(dir)
            }
            Err(nix::Error::EEXIST) => Err(StateError::Taken(name.to_string())),
            Err(e) => Err(StateError::Write {
                path: dir.path,
                source: e.into(),
            }),
        }
    }

    /// Open an existing instance: a real directory (no symlink) carrying the marker with its name.
    pub fn open(cfg: &Config, name: &InstanceName) -> Result<InstanceDir, StateError> {
        let dir = InstanceDir::at(cfg, name);
        match dir.inspect() {
            Found::Instance => Ok(dir),
            Found::Missing => Err(StateError::NotFound {
                name: name.to_string(),
            }),
            Found::Foreign(path, why) => Err(StateError::Foreign { path, why }),
        }
    }

    /// What is at this directory's path: the instance, nothing, or something wayback did not make.
    fn inspect(&self) -> Found {
        if self.path != self.instances.join(self.name.as_str()) {
            return Found::Foreign(
                self.path.clone(),
                "not directly in the instances directory".into(),
            );
        }
        match fs::symlink_metadata(&self.instances) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Found::Missing,
            _ => {}
        }
        if let Err(why) = real_dir(&self.instances) {
            return Found::Foreign(self.instances.clone(), why);
        }
        match fs::symlink_metadata(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Found::Missing,
            _ => {}
        }
        if let Err(why) = real_dir(&self.path) {
            return Found::Foreign(self.path.clone(), why);
        }
        match read_marker(&self.path) {
            Ok(m) if m == self.name.as_str() => Found::Instance,
            Ok(m) => Found::Foreign(self.path.clone(), format!("its {MARKER} names {m:?}")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Found::Foreign(self.path.clone(), format!("it has no {MARKER} marker"))
            }
            Err(e) => Found::Foreign(self.path.clone(), format!("cannot read its {MARKER}: {e}")),
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

    /// Remove the directory and everything in it — only when it is still exactly
    /// `<state_dir>/instances/<name>`, a real directory carrying the marker with this name. Already
    /// gone: Ok. The marker goes last, so a removal that fails half-way can be retried.
    pub fn remove(&self) -> Result<(), StateError> {
        match self.inspect() {
            Found::Missing => return Ok(()),
            Found::Foreign(path, why) => return Err(StateError::Foreign { path, why }),
            Found::Instance => {}
        }
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Write { path, source }
        };
        for entry in fs::read_dir(&self.path).map_err(err(&self.path))? {
            let entry = entry.map_err(err(&self.path))?;
            if entry.file_name() == MARKER {
                continue;
            }
            let p = entry.path();
            // DirEntry::file_type does not follow symlinks; remove_dir_all removes a tree without following
            // any symlink in it.
            let gone = match entry.file_type() {
                Ok(t) if t.is_dir() => fs::remove_dir_all(&p),
                _ => fs::remove_file(&p),
            };
            match gone {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(&p)(e)),
            }
        }
        for step in [
            fs::remove_file(self.path.join(MARKER)),
            fs::remove_dir(&self.path),
        ] {
            match step {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(&self.path)(e)),
            }
        }
        Ok(())
    }

    /// Remove one of this instance's route files (see [`routes`]).
    pub fn remove_route(&self, file: &Path) -> Result<RouteRemoval, StateError> {
        routes::remove(&self.routes, &self.name, file)
    }
}

enum Found {
    Instance,
    Missing,
    Foreign(PathBuf, String),
}

/// Ok when `path` is a directory and not a symlink; else why not.
fn real_dir(path: &Path) -> Result<(), String> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err("it is a symlink".into()),
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err("it is not a directory".into()),
        Err(e) => Err(format!("cannot inspect it: {e}")),
    }
}

/// The name in `dir`'s marker (not following a symlink at the marker).
fn read_marker(dir: &Path) -> io::Result<String> {
    let mut f = fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(MARKER))?;
    let mut buf = String::new();
    (&mut f).take(256).read_to_string(&mut buf)?;
    Ok(buf.trim_end_matches('\n').to_string())
}

/// `hostname_owner` as an error: `HostnameTaken` (bad input, exit 2) naming the owner.
pub fn ensure_hostname_free(
    cfg: &Config,
    host: &wayback_core::names::Hostname,
) -> Result<(), StateError> {
    match hostname_owner(cfg, host) {
        Some(owner) => Err(StateError::HostnameTaken {
            host: host.to_string(),
            owner: owner.to_string(),
        }),
        None => Ok(()),
    }
}

/// Names of all instances, sorted. Entries of the instances directory that are not instances (an invalid
/// name, a symlink, a file, a directory without wayback's marker) are skipped and reported once per
/// process; nothing here ever removes them.
pub fn list(cfg: &Config) -> Vec<InstanceName> {
    let instances = cfg.instances_dir();
    if let Err(why) = real_dir(&instances) {
        if instances.exists() || fs::symlink_metadata(&instances).is_ok() {
            report_stray(&instances, &why);
        }
        return Vec::new();
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(&instances).into_iter().flatten().flatten() {
        let path = entry.path();
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(|n| InstanceName::new(n).ok()) else {
            if !fresh_new_dir(&entry) {
                report_stray(&path, "its name is not a valid instance name");
            }
            continue;
        };
        match InstanceDir::at(cfg, &name).inspect() {
            Found::Instance => names.push(name),
            Found::Missing => {}
            Found::Foreign(p, why) => report_stray(&p, &why),
        }
    }
    names.sort();
    names
}

/// A directory another `up` is assembling right now (hidden, less than a minute old): not reported.
fn fresh_new_dir(entry: &fs::DirEntry) -> bool {
    entry.file_name().to_string_lossy().starts_with(NEW_PREFIX)
        && entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|a| a.as_secs() < 60))
}

/// Warn about something in wayback's directories that is not wayback's, once per path and process.
fn report_stray(path: &Path, why: &str) {
    static SEEN: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    if SEEN.lock().expect("stray report lock").insert(path.into()) {
        tracing::warn!(
            "ignoring {}: not an instance wayback made ({why}); wayback never removes it",
            path.display()
        );
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
        let (_t, cfg) = temp_config();
        let a = InstanceDir::create(&cfg, &name("a")).unwrap();
        assert!(matches!(
            InstanceDir::create(&cfg, &name("a")),
            Err(StateError::Taken(_))
        ));
        assert_eq!(fs::read_to_string(a.path.join(MARKER)).unwrap(), "a\n");
        a.set_phase(Phase::Running).unwrap();
        assert_eq!(a.phase(), Some(Phase::Running));
        assert_eq!(list(&cfg), vec![name("a")]);
        fs::create_dir(a.path.join("sub")).unwrap();
        fs::write(a.path.join("sub/f"), "x").unwrap();
        a.remove().unwrap();
        assert!(!a.path.exists());
        a.remove().unwrap();
        assert!(list(&cfg).is_empty());
        assert_eq!(
            fs::read_dir(cfg.instances_dir()).unwrap().count(),
            0,
            "no temporary directory is left behind"
        );
    }

    pub(super) fn temp_config() -> (tempfile::TempDir, Config) {
        let t = tempfile::tempdir().unwrap();
        let cfg = Config {
            state_dir: t.path().join("state"),
            runtime_dir: t.path().join("run"),
            ..Config::default()
        };
        (t, cfg)
    }

    pub(super) fn name(s: &str) -> InstanceName {
        InstanceName::new(s).unwrap()
    }

    #[test]
    fn strays_are_listed_never_and_removed_never() {
        let (t, cfg) = temp_config();
        let outside = t.path().join("outside");
        fs::create_dir_all(outside.join("keep")).unwrap();
        fs::write(outside.join(MARKER), "x\n").unwrap();
        let real = InstanceDir::create(&cfg, &name("real")).unwrap();
        let inst = cfg.instances_dir();
        // An invalid name, a symlink named like an instance (to a directory with a marker naming it), a
        // directory without a marker, one whose marker names another instance, a plain file.
        fs::create_dir(inst.join("Not_An-Instance")).unwrap();
        fs::write(outside.join(MARKER), "x\n").unwrap();
        std::os::unix::fs::symlink(&outside, inst.join("x")).unwrap();
        fs::create_dir(inst.join("nomark")).unwrap();
        fs::create_dir(inst.join("other")).unwrap();
        fs::write(inst.join("other").join(MARKER), "real\n").unwrap();
        fs::write(inst.join("file"), "").unwrap();
        assert_eq!(list(&cfg), vec![name("real")]);
        for n in ["x", "nomark", "other", "file"] {
            let e = InstanceDir::open(&cfg, &name(n)).unwrap_err();
            assert!(matches!(e, StateError::Foreign { .. }), "{n}: {e}");
            assert!(e.to_string().contains("leaves it alone"), "{e}");
        }
        assert!(matches!(
            InstanceDir::open(&cfg, &name("gone")),
            Err(StateError::NotFound { .. })
        ));
        // A directory value that was changed after opening is refused too.
        let mut moved = real.clone();
        moved.path = outside.clone();
        assert!(matches!(moved.remove(), Err(StateError::Foreign { .. })));
        let mut renamed = real.clone();
        renamed.name = name("x");
        renamed.path = inst.join("x");
        assert!(matches!(renamed.remove(), Err(StateError::Foreign { .. })));
        assert!(outside.join("keep").is_dir() && inst.join("x").exists());
        real.remove().unwrap();
        // The instances directory itself must not be a symlink.
        fs::remove_dir_all(&inst).unwrap();
        std::os::unix::fs::symlink(&outside, &inst).unwrap();
        assert!(list(&cfg).is_empty());
        assert!(matches!(
            InstanceDir::create(&cfg, &name("y")),
            Err(StateError::Foreign { .. })
        ));
        assert!(!outside.join("y").exists());
    }
}
