//! Which snapshot each bind path comes from. By default every bind comes from the main SNAPSHOT. A bind
//! may name its own snapshot (`--bind SELECTOR:PATH`, `source =` in a profile), and `--at TIME` picks, for
//! every bind path, the snapshot of the subvolume that holds that path on the live system (following nested
//! subvolumes and mount points) taken at or before TIME — so data, database and secrets come from the same
//! moment even when they live on different subvolumes or filesystems.
//!
//! Reads the live tree (lstat, GET_SUBVOL_INFO via `sys::walk`) and the snapshot catalogs; changes nothing.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use wayback_core::catalog::Snapshot;
use wayback_core::civil::format_utc;
use wayback_core::plan::{self, BindFrom, ExtraSourceFacts, SourceFacts, UpRequest};
use wayback_core::Config;

use crate::catalog::{load_catalog, resolve_path};
use crate::error::BadInput;
use crate::sys::{snapdiff, walk};

/// The sources of a request.
pub struct Sources {
    pub main: SourceFacts,
    pub main_date: Option<i64>,
    pub extra: Vec<ExtraSourceFacts>,
    pub bind_sources: Vec<BindFrom>,
}

/// Resolve every bind's source. `source_facts` inspects a snapshot path (btrfs or overlay).
pub fn resolve(
    cfg: &Config,
    req: &UpRequest,
    source_facts: &dyn Fn(&Path) -> Result<SourceFacts>,
) -> Result<Sources> {
    let binds = plan::merged_binds(&req.profile, req);
    let needs_catalog = req.at.is_some() || binds.iter().any(|b| b.source().is_some());
    let catalog: Vec<Snapshot> = if needs_catalog || !cfg.snapshot_roots.is_empty() {
        load_catalog(&cfg.snapshot_roots)
            .map(|c| c.snapshots)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let date_of = |p: &Path| catalog.iter().find(|s| s.path == p).map(|s| s.date);
    // With --at, SNAPSHOT (default /) is the live root the bind paths are relative to.
    let live_root: PathBuf = match (&req.at, &req.snapshot) {
        (Some(_), Some(s)) => s.clone(),
        (Some(_), None) => "/".into(),
        (None, _) => PathBuf::new(),
    };
    let main = match (&req.at, &req.snapshot) {
        (None, Some(s)) => Some(source_facts(s)?),
        (None, None) => {
            return Err(BadInput::new("which snapshot? give SNAPSHOT, or --at TIME").into())
        }
        (Some(_), _) => None,
    };
    // All sources, main first; binds point into this list.
    let mut paths: Vec<(PathBuf, String)> = main
        .iter()
        .map(|m| (m.path.clone(), "SNAPSHOT".into()))
        .collect();
    let mut from = Vec::new();
    for b in &binds {
        let (snap, rel, why) = match (b.source(), req.at) {
            (Some(sel), _) => {
                let snap = std::fs::canonicalize(resolve_path(sel, &cfg.snapshot_roots)?)
                    .map_err(|e| BadInput::new(format!("{sel}: {e}")))?;
                let rel = rel_in(&snap, b.path(), &live_root)?;
                (snap, rel, format!("{sel} for {}", b.path().display()))
            }
            (None, Some(t)) => {
                let live = live_root.join(b.path().strip_prefix("/").unwrap_or(b.path()));
                let (snap, rel) = at_or_before(&live, t, &catalog)?;
                (
                    snap,
                    rel,
                    format!("--at {} for {}", format_utc(t), b.path().display()),
                )
            }
            (None, None) => {
                from.push(BindFrom {
                    index: 0,
                    rel: b.path().to_path_buf(),
                });
                continue;
            }
        };
        let index = match paths.iter().position(|(p, _)| *p == snap) {
            Some(i) => i,
            None => {
                paths.push((snap, why));
                paths.len() - 1
            }
        };
        from.push(BindFrom { index, rel });
    }
    if paths.is_empty() {
        return Err(
            BadInput::new("--at needs at least one --bind PATH (or a profile with binds)").into(),
        );
    }
    let mut facts = Vec::new();
    for (p, why) in &paths {
        facts.push((source_facts(p)?, date_of(p), why.clone()));
    }
    let mut it = facts.into_iter();
    let (main, main_date, _) = it.next().expect("at least one source");
    Ok(Sources {
        main,
        main_date,
        extra: it
            .map(|(source, date, why)| ExtraSourceFacts { source, date, why })
            .collect(),
        bind_sources: from,
    })
}

/// Where `path` (as the service sees it) lives inside snapshot `snap`: the same relative path when the
/// snapshot holds it (a snapshot of the whole tree), else the part below the live subvolume `snap` was taken
/// of (a snapshot of /var/lib/mysql itself holds it at its root).
fn rel_in(snap: &Path, path: &Path, live_root: &Path) -> Result<PathBuf> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    if matches!(
        crate::sys::btrfs::probe(snap, &Path::new("/").join(rel)),
        wayback_core::plan::PathState::Present(_)
    ) {
        return Ok(path.to_path_buf());
    }
    let live_sub =
        snapdiff::live_of(snap).map_err(|e| BadInput::new(format!("{}: {e}", snap.display())))?;
    let root = if live_root.as_os_str().is_empty() {
        Path::new("/")
    } else {
        live_root
    };
    let live = root.join(rel);
    match live.strip_prefix(&live_sub) {
        Ok(r) => Ok(Path::new("/").join(r)),
        Err(_) => Err(BadInput::new(format!(
            "{} is not in snapshot {} (a snapshot of {}), neither at that path nor below it",
            path.display(),
            snap.display(),
            live_sub.display()
        ))
        .into()),
    }
}

/// The subvolume holding `live` on the live system, and its newest snapshot at or before `t`.
fn at_or_before(live: &Path, t: i64, catalog: &[Snapshot]) -> Result<(PathBuf, PathBuf)> {
    let (sub, meta) = holding_subvolume(live)?;
    let mut snaps: Vec<&Snapshot> = catalog
        .iter()
        .filter(|s| s.parent_uuid.is_some() && s.parent_uuid == meta.uuid)
        .collect();
    snaps.sort_by_key(|s| (s.date, s.seq));
    let rel = Path::new("/").join(live.strip_prefix(&sub).unwrap_or(Path::new("")));
    match snaps.iter().rev().find(|s| s.date <= t) {
        Some(s) => Ok((s.path.clone(), rel)),
        None => Err(BadInput::new(match snaps.first() {
            Some(o) => format!(
                "subvolume {} (holding {}) has no snapshot at or before {}; its oldest is {} ({})",
                sub.display(),
                live.display(),
                format_utc(t),
                o.path.display(),
                format_utc(o.date)
            ),
            None => format!(
                "subvolume {} (holding {}) has no snapshots under snapshot_roots in the config",
                sub.display(),
                live.display()
            ),
        })
        .into()),
    }
}

/// Walk up from `live` to the root of the btrfs subvolume that holds it (mount points of other filesystems
/// are crossed by the walk, since their roots are subvolume roots themselves).
fn holding_subvolume(live: &Path) -> Result<(PathBuf, wayback_core::catalog::SubvolMeta)> {
    let mut p = std::fs::canonicalize(live).map_err(|e| {
        BadInput::new(format!(
            "{}: {e} (it must exist on the live system for --at)",
            live.display()
        ))
    })?;
    loop {
        if let Some(meta) = walk::subvol_meta(&p) {
            return Ok((p, meta));
        }
        if !p.pop() {
            return Err(anyhow!(BadInput::new(format!(
                "{} is not on a btrfs subvolume: --at needs btrfs snapshots",
                live.display()
            ))));
        }
    }
}
