//! One instance's directory, `<state_dir>/instances/<name>`: created complete with its marker and renamed
//! into place, opened and removed only when it is exactly that path, a real directory (no symlink) in a real
//! instances directory, and carries the marker naming it; [`list`] skips (and reports once) everything else.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wayback_core::{Config, InstanceName, Plan};

use super::{
    create_private_dir_all, read_json, routes, write_json, Owner, Phase, RouteRemoval, StateError,
    MARKER, NEW_PREFIX,
};

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
            // A later release's instance is left to it: refused here, so nothing acts on it.
            Found::Instance if dir.format() > wayback_core::format::CURRENT => Err(
                StateError::Format(wayback_core::format::FormatError::Newer {
                    file: dir.plan_path().display().to_string(),
                    kind: "plan",
                    found: dir.format(),
                }),
            ),
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
                match adopt_format0(&self.path, &self.name) {
                    Ok(()) => Found::Instance,
                    Err(why) => Found::Foreign(
                        self.path.clone(),
                        format!("it has no {MARKER} marker ({why})"),
                    ),
                }
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

    /// The format of this instance's files: its plan's (0 for an instance an earlier release started).
    pub fn format(&self) -> u32 {
        let plan = fs::read(self.plan_path()).unwrap_or_default();
        serde_json::from_slice::<serde_json::Value>(&plan)
            .ok()
            .map_or(0, |v| wayback_core::format::split(v).0)
    }

    /// Set the expiry (`extend`). Read by the process hosting the instance — maybe an earlier release, which
    /// reads only its own format: written in the instance's format.
    pub fn set_expires(&self, unix: u64) -> Result<(), StateError> {
        super::write_json_in(self.format(), &self.path.join("expires.json"), &unix)
    }

    /// Record the last proxied request (by whichever process runs the proxy) for the host's `--idle` check;
    /// in the instance's format, like the expiry.
    pub fn set_last_activity(&self, unix: u64) -> Result<(), StateError> {
        super::write_json_in(self.format(), &self.path.join("activity.json"), &unix)
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
pub(super) fn real_dir(path: &Path) -> Result<(), String> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err("it is a symlink".into()),
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err("it is not a directory".into()),
        Err(e) => Err(format!("cannot inspect it: {e}")),
    }
}

/// Format 0 (the release before versions were recorded) made instance directories without a marker. One
/// is recognised by its plan in format 0 naming this very instance next to its journal, and gets the marker
/// (written complete under a temporary name, then renamed): from then on it is an instance like any other,
/// adopted, extended and torn down by this release.
fn adopt_format0(dir: &Path, name: &InstanceName) -> Result<(), String> {
    let plan = dir.join("plan.json");
    let journal = dir.join("journal.jsonl");
    let regular = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
    if !regular(&plan) || !regular(&journal) {
        return Err("no plan and journal of an earlier release either".into());
    }
    let text = fs::read(&plan).map_err(|e| format!("cannot read {}: {e}", plan.display()))?;
    let v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|_| "its plan.json is not JSON".to_string())?;
    if v.get("format").is_some() || v["name"].as_str() != Some(name.as_str()) {
        return Err("its plan.json is not a format-0 plan of this instance".into());
    }
    let tmp = dir.join(format!("{MARKER}.new"));
    fs::write(&tmp, format!("{name}\n"))
        .and_then(|()| fs::rename(&tmp, dir.join(MARKER)))
        .map_err(|e| format!("cannot mark it: {e}"))
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

/// Every instance [`list`] finds, and of those whose saved plan can be read what a new instance's planning
/// compares itself with (address block, hostname): each plan read and parsed once per `up`, under the
/// allocation lock, and dropped at once (only these two fields are kept, so the peak does not grow with
/// the number of instances times a plan's size).
#[derive(Debug, Default)]
pub struct Others {
    pub names: Vec<InstanceName>,
    /// The instances whose plan could be read: not a later release's one (whose format this release does
    /// not read, as [`InstanceDir::open`] refuses it), nor one whose plan is missing or corrupt.
    pub plans: Vec<OtherPlan>,
}

/// What [`Others`] keeps of one instance's saved plan.
#[derive(Debug, Clone)]
pub struct OtherPlan {
    pub name: InstanceName,
    /// Its address block (`Plan::block.net`).
    pub net: ipnet::Ipv4Net,
    /// The hostname it routes (`Plan::http.host`), if any.
    pub host: Option<String>,
}

impl Others {
    pub fn read(cfg: &Config) -> Others {
        let names = list(cfg);
        let plans = names
            .iter()
            .filter_map(|n| {
                let plan = read_json::<Plan>(&InstanceDir::at(cfg, n).plan_path()).ok()?;
                Some(OtherPlan {
                    name: n.clone(),
                    net: plan.block.net,
                    host: plan.http.map(|h| h.host),
                })
            })
            .collect();
        Others { names, plans }
    }
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
