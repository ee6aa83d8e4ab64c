//! Where the instance's data comes from: the clones (main source and extra ones), and each bind path
//! resolved inside the snapshot it comes from (through the caller's probe) into a mount of the clone, with
//! the skew between the chosen snapshots.

use std::path::{Path, PathBuf};

use super::{
    BindFrom, ExtraSource, Facts, PathState, PlanError, SourceFacts, SourceKind, UpRequest,
};
use crate::config::Config;
use crate::duration::Duration;
use crate::names::InstanceName;
use crate::nspawn::{CloneData, MountBind};
use crate::profile::{Bind, Profile};

/// The clones and the binds into them.
pub(super) struct Layout {
    pub clone: PathBuf,
    pub extra: Vec<ExtraSource>,
    pub mounts: Vec<MountBind>,
    pub skew: Option<u64>,
}

pub(super) fn layout(
    req: &UpRequest,
    facts: &Facts,
    cfg: &Config,
    name: &InstanceName,
    probe: &dyn Fn(&Path, &Path) -> PathState,
) -> Result<Layout, PlanError> {
    let clone = clone_for(cfg, &facts.source, name, 0);
    let extra: Vec<ExtraSource> = facts
        .extra_sources
        .iter()
        .enumerate()
        .map(|(i, e)| ExtraSource {
            source: e.source.clone(),
            clone: clone_for(cfg, &e.source, name, i + 1),
            date: e.date,
            why: e.why.clone(),
        })
        .collect();
    // Boot mode clones the whole root: no binds.
    let binds = if req.boot {
        Vec::new()
    } else {
        merged_binds(&req.profile, req)
    };
    let mut mounts = Vec::new();
    for (i, b) in binds.iter().enumerate() {
        for p in [b.path(), b.dest()] {
            if !p.is_absolute() || p.components().any(|c| c.as_os_str() == "..") {
                return Err(PlanError::BindInvalid(p.to_path_buf()));
            }
        }
        if reserved(b.dest()) {
            return Err(PlanError::BindDestReserved {
                path: b.path().to_path_buf(),
                dest: b.dest().to_path_buf(),
            });
        }
        let (src, root, rel) = origin(facts, &clone, &extra, b, i)?;
        let resolved = resolve(probe, src, &rel, b.path())?;
        mounts.push(MountBind {
            source: cfg
                .instance_dir(name.as_str())
                .join("binds")
                .join(i.to_string()),
            dest: b.dest().to_path_buf(),
            readonly: false,
            clone: Some(CloneData {
                root: root.clone(),
                path: rel,
                resolved,
            }),
            reason: b.reason().map(str::to_string),
        });
    }
    mounts.extend(config_binds(req, facts, cfg, name, &clone, mounts.len()));
    mounts.extend(log_binds(req, cfg, name));
    let skew = skew(req, facts, cfg, &extra)?;
    Ok(Layout {
        clone,
        extra,
        mounts,
        skew,
    })
}

/// With `--bind-config`: the snapshot's copy of each unit configuration file that differs from the host's,
/// read-only over the host's (after the host's /etc, so it wins).
fn config_binds(
    req: &UpRequest,
    facts: &Facts,
    cfg: &Config,
    name: &InstanceName,
    clone: &Path,
    first: usize,
) -> Vec<MountBind> {
    if !req.bind_config || req.boot {
        return Vec::new();
    }
    facts
        .config_drift
        .iter()
        .filter(|d| d.differs)
        .enumerate()
        .map(|(i, d)| MountBind {
            source: cfg
                .instance_dir(name.as_str())
                .join("binds")
                .join((first + i).to_string()),
            dest: d.path.clone(),
            readonly: true,
            clone: Some(CloneData {
                root: clone.to_path_buf(),
                path: d.path.clone(),
                resolved: d.path.clone(),
            }),
            reason: Some(format!("the snapshot's copy (--bind-config); {}", d.reason)),
        })
        .collect()
}

/// The app's log directories (the profile's dirs under /var/log: `LogsDirectory=`, `/var/log/APP` named in
/// its config) are kept on disk in the instance's directory, so they survive the tmpfs root and a failed
/// start, and `wayback logs` shows them.
fn log_binds(req: &UpRequest, cfg: &Config, name: &InstanceName) -> Vec<MountBind> {
    if req.boot {
        return Vec::new();
    }
    let applogs = cfg.instance_dir(name.as_str()).join("applogs");
    req.profile
        .dirs
        .iter()
        .filter(|d| d.path.starts_with("/var/log") && d.path != Path::new("/var/log"))
        .map(|d| MountBind {
            source: applogs.join(d.path.strip_prefix("/").unwrap_or(&d.path)),
            dest: d.path.clone(),
            readonly: false,
            clone: None,
            reason: Some(format!(
                "the app's logs, kept on disk: `wayback logs {name}` shows them"
            )),
        })
        .collect()
}

/// Destinations the container needs for itself: its root and /run (nspawn mounts the container's own there;
/// a bind in their place fails to start), and the kernel's and devices' trees with everything below them.
fn reserved(dest: &Path) -> bool {
    let dest: PathBuf = dest.components().collect();
    dest == Path::new("/")
        || dest == Path::new("/run")
        || ["/proc", "/sys", "/dev"]
            .iter()
            .any(|r| dest.starts_with(r))
}

/// Which source (main or extra), which clone, and which path inside it bind `i` comes from.
fn origin<'a>(
    facts: &'a Facts,
    clone: &'a PathBuf,
    extra: &'a [ExtraSource],
    b: &Bind,
    i: usize,
) -> Result<(&'a SourceFacts, &'a PathBuf, PathBuf), PlanError> {
    let abs = |rel: &Path| Path::new("/").join(rel.strip_prefix("/").unwrap_or(rel));
    Ok(match facts.bind_sources.get(i) {
        Some(BindFrom { index, rel }) if *index > 0 => {
            let e = extra
                .get(index - 1)
                .ok_or(PlanError::BindInvalid(b.path().to_path_buf()))?;
            (&e.source, &e.clone, abs(rel))
        }
        Some(BindFrom { rel, .. }) => (&facts.source, clone, abs(rel)),
        None => (&facts.source, clone, abs(b.path())),
    })
}

/// The bind path resolved inside its snapshot, or why it cannot be bound.
fn resolve(
    probe: &dyn Fn(&Path, &Path) -> PathState,
    src: &SourceFacts,
    rel: &Path,
    asked: &Path,
) -> Result<PathBuf, PlanError> {
    match probe(&src.path, rel) {
        PathState::Present(r) => Ok(r),
        PathState::Missing(hint) => Err(PlanError::BindMissing {
            path: asked.to_path_buf(),
            snapshot: src.path.clone(),
            hint,
        }),
        PathState::NestedSubvolume => Err(PlanError::NestedSubvolume {
            path: asked.to_path_buf(),
            snapshot: src.path.clone(),
        }),
        PathState::Refused(why) => Err(PlanError::BindRefused {
            path: asked.to_path_buf(),
            snapshot: src.path.clone(),
            why,
        }),
    }
}

/// Seconds between the oldest and the newest chosen snapshot, when their dates are known; refused over
/// `max_skew` with `--strict-consistency`.
fn skew(
    req: &UpRequest,
    facts: &Facts,
    cfg: &Config,
    extra: &[ExtraSource],
) -> Result<Option<u64>, PlanError> {
    let dates: Vec<i64> = facts
        .main_date
        .into_iter()
        .chain(extra.iter().filter_map(|e| e.date))
        .collect();
    let (Some(min), Some(max)) = (dates.iter().min(), dates.iter().max()) else {
        return Ok(None);
    };
    if dates.len() < 2 {
        return Ok(None);
    }
    let sk = (max - min).unsigned_abs();
    if req.strict_consistency && sk > cfg.max_skew.as_secs() {
        return Err(PlanError::Skew {
            skew: Duration(sk),
            max: cfg.max_skew,
        });
    }
    Ok(Some(sk))
}

/// The binds of a request: the profile's, then the command line's (a CLI bind with the same destination
/// replaces the profile's).
pub fn merged_binds(profile: &Profile, req: &UpRequest) -> Vec<Bind> {
    let mut binds: Vec<Bind> = profile.binds.clone();
    for b in &req.binds {
        binds.retain(|x| x.dest() != b.dest());
        binds.push(b.clone());
    }
    binds
}

/// The clone of source `index` (0: the main one): btrfs snapshots go to `<fs_root>/<clone_dir>/<name>`
/// (`<name>.<index>` for extra sources: `.` cannot occur in instance names), overlays into the instance dir.
fn clone_for(cfg: &Config, src: &SourceFacts, name: &InstanceName, index: usize) -> PathBuf {
    match (src.kind, index) {
        (SourceKind::Btrfs, 0) => clone_path(cfg, &src.fs_root, name),
        (SourceKind::Btrfs, i) => {
            clone_path(cfg, &src.fs_root, name).with_file_name(format!("{name}.{i}"))
        }
        (SourceKind::Overlay, 0) => cfg.instance_dir(name.as_str()).join("overlay/merged"),
        (SourceKind::Overlay, i) => cfg
            .instance_dir(name.as_str())
            .join(format!("overlay-{i}/merged")),
    }
}

/// Where the clone of an instance goes: `<fs_root>/<clone_dir>/<name>` (relative clone_dir) or
/// `<clone_dir>/<name>`.
pub fn clone_path(cfg: &Config, fs_root: &Path, name: &InstanceName) -> PathBuf {
    let dir = if cfg.clone_dir.is_absolute() {
        cfg.clone_dir.clone()
    } else {
        fs_root.join(&cfg.clone_dir)
    };
    dir.join(name.as_str())
}
