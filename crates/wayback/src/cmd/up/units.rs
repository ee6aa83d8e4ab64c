//! `up --unit UNIT...`: the profile made from the host's systemd units, its binds being the state paths the
//! units and their apps' configurations name that exist in the snapshot (looked up inside it, never on the
//! host); what was looked for and not found, and the units' configuration files, go to the plan.

use std::path::Path;

use anyhow::Result;
use wayback_core::plan::{Inferred, Looked};
use wayback_core::profile::{Bind, Profile};
use wayback_core::units;

use crate::cli::UpArgs;
use wayback_engine::error::BadInput;
use wayback_engine::profile::{convert, convert_with, UnitsRequest};
use wayback_engine::progress::Progress;
use wayback_engine::sys::inroot::Tree;
use wayback_engine::sys::snapunits::SnapUnitSource;

/// The profile for `--unit`, with what was inferred besides its binds. Refuses (exit 2) a `--no-bind` that
/// matches nothing, and — unless `--allow-empty` — a profile that would bind nothing of the snapshot.
pub fn profile(
    args: &UpArgs,
    snapshot: Option<&Path>,
    progress: &Progress,
) -> Result<(Profile, Inferred)> {
    let tree = snapshot.map(Tree::open).transpose()?;
    let exists = |p: &Path| tree.as_ref().is_some_and(|t| t.exists(p));
    let req = UnitsRequest {
        units: &args.unit,
        name: profile_name(&args.unit),
        port: args.port,
        ready: &args.ready,
        no_bind: &args.no_bind,
    };
    let conv = match (args.software.as_deref() == Some("snapshot"), snapshot) {
        (true, Some(s)) => convert_with(&req, &SnapUnitSource::open(s)?, &exists)?,
        (true, None) => {
            return Err(BadInput::new(
                "--unit with --software snapshot reads the units from SNAPSHOT: give the snapshot (not --at)",
            )
            .into())
        }
        (false, _) => convert(&req, &exists).map_err(|e| in_snapshot_hint(e, args, tree.as_ref()))?,
    };
    report(&conv.reports, args.verbose, progress);
    if let Some(p) = conv.no_bind_unmatched.first() {
        return Err(BadInput::new(format!(
            "--no-bind {}: none of the units' state paths is at or below it (see --dry-run for what they name)",
            p.display()
        ))
        .into());
    }
    let mut binds = conv.profile.binds.clone();
    binds.extend(args.bind.iter().map(|b| Bind::parse_cli(b)));
    if let (false, Some(mut none), Some(snap)) = (
        args.allow_empty,
        units::nothing_bound(&binds, &conv.state.candidates),
        snapshot,
    ) {
        none.snapshot = Some((
            snap.to_path_buf(),
            wayback_engine::planning::data_dirs(snap),
        ));
        return Err(BadInput::new(none.to_string()).into());
    }
    let looked = |path: &Path, reason: &str| Looked {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    // One line per path in the plan, with every reason it was looked for (as its bind would show them).
    let mut missing: Vec<Looked> = Vec::new();
    for c in &conv.state.missing {
        match missing.iter_mut().find(|m| m.path == c.named) {
            Some(m) if !m.reason.split("; ").any(|r| r == c.reason) => {
                m.reason = format!("{}; {}", m.reason, c.reason);
            }
            Some(_) => {}
            None => missing.push(looked(&c.named, &c.reason)),
        }
    }
    let inferred = Inferred {
        missing,
        configs: conv
            .configs
            .iter()
            .map(|c| looked(&c.path, &c.reason))
            .collect(),
    };
    Ok((conv.profile, inferred))
}

/// The profile, and so the default instance name, is the first unit's: `--unit redis-server` runs as
/// `redis-server-1`.
fn profile_name(units: &[String]) -> &str {
    units
        .first()
        .map_or("units", |u| u.strip_suffix(".service").unwrap_or(u))
}

/// What the units ask that wayback does not do exactly: one line per kind of report (all with --verbose).
fn report(reports: &[units::Report], verbose: bool, progress: &Progress) {
    if verbose {
        for r in reports {
            progress.note(r.to_string());
        }
        return;
    }
    for g in units::group_reports(reports) {
        progress.note(g.to_string());
    }
}

/// A unit the host lacks but the snapshot has (removed or renamed by an upgrade since): say so, and that
/// `--software snapshot` runs the snapshot's own.
fn in_snapshot_hint(e: anyhow::Error, args: &UpArgs, tree: Option<&Tree>) -> anyhow::Error {
    let Some(tree) = tree else { return e };
    let text = e.to_string();
    let found = args.unit.iter().find_map(|u| {
        let full = if u.contains('.') {
            u.clone()
        } else {
            format!("{u}.service")
        };
        if !text.contains(&format!("unit {full} not found")) {
            return None;
        }
        let template = full
            .split_once('@')
            .and_then(|(prefix, rest)| Some(format!("{prefix}@.{}", rest.rsplit_once('.')?.1)));
        let names: Vec<&String> = std::iter::once(&full).chain(&template).collect();
        units::SEARCH_PATH
            .iter()
            .flat_map(|d| names.iter().map(move |n| Path::new(d).join(n)))
            .find(|p| tree.exists(p))
            .map(|p| (full.clone(), p))
    });
    match found {
        Some((unit, path)) => BadInput::new(format!(
            "{text}; the snapshot has {unit} ({}): `--software snapshot` runs the snapshot's own unit and software",
            path.display()
        ))
        .into(),
        None => e,
    }
}
