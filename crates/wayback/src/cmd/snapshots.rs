//! `wayback snapshots [ROOT...]`: list the snapshots snapper, btrbk and plain read-only subvolumes left in
//! and below the given roots (id, date, source, description, path), sorted by date, and apart from them
//! the live (writable) subvolumes found there, which are never snapshots. Also the catalog and selector
//! helpers `find`, `diff` and `up` share, among them [`inspect_path`]: is a path live data, and what are
//! its snapshots. Reads only (readdir, info.xml, subvolume ioctls).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use wayback_core::catalog::{self, Catalog, PathInfo};
use wayback_core::selector::{self, Kind, Selector};
use wayback_core::Config;

use crate::error::BadInput;
use crate::sys::walk::FsProbe;

/// Selector help shared by `find`, `diff` (and `up`).
pub const SELECTOR_HELP: &str = "\
Snapshot selectors:
  /persist/.snapshots/11921/snapshot  a path
  @11921             snapper number (btrbk, plain: the id `wayback snapshots` shows)
  /persist@11921     the same, among the snapshots under /persist only
  @2026-11-14        the newest snapshot on or before that day (UTC)
  @2026-11-14T10:00  the newest at or before that time (UTC; or add +01:00)
  @2w, @36h          the newest snapshot at least that old
Ranges (find --in): @100..@120, @2026-11-01.., ..@2w, /persist@2026-11-14
(each end inclusive; a date alone covers its whole day).
Only read-only snapshots are ever selected: a writable (live) subvolume is listed apart and never
picked. An ambiguous or empty selection is an error (exit 2) listing the candidates.";

#[derive(Debug, clap::Args)]
#[command(after_help = SELECTOR_HELP)]
pub struct SnapshotsArgs {
    /// Where to look: a snapper `.snapshots` directory or its parent, a btrbk snapshot_dir, or any
    /// directory holding subvolumes (searched up to 4 levels down, e.g. ROOT/snaps/N)
    #[arg(value_name = "ROOT")]
    pub roots: Vec<PathBuf>,
    /// One JSON object: {"snapshots": [...], "live": [...], "warnings": [...]}
    #[arg(long)]
    pub json: bool,
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn canonical(p: &Path, what: &str) -> Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|e| {
        BadInput::new(format!(
            "{what} {} does not exist or cannot be reached: {e}",
            p.display()
        ))
        .into()
    })
}

/// A selector with its ROOT (or path) made absolute, so it compares with discovered paths.
pub fn canonical_selector(sel: Selector) -> Result<Selector> {
    let kind = match sel.kind {
        Kind::Path(p) => Kind::Path(canonical(&p, "snapshot")?),
        Kind::At {
            root: Some(r),
            target,
        } => Kind::At {
            root: Some(canonical(&r, "snapshot root")?),
            target,
        },
        k => k,
    };
    Ok(Selector {
        text: sel.text,
        kind,
    })
}

/// Make each root absolute, dropping duplicates.
fn canonical_roots(roots: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut abs: Vec<PathBuf> = Vec::new();
    for r in roots {
        let c = canonical(r, "snapshot root")?;
        if !abs.contains(&c) {
            abs.push(c);
        }
    }
    Ok(abs)
}

/// Discover the snapshots (and live subvolumes) under `roots` (made absolute, duplicates dropped);
/// warnings go to stderr.
pub fn load_catalog(roots: &[PathBuf]) -> Result<Catalog> {
    let abs = canonical_roots(roots)?;
    let cat = catalog::discover(&abs, &FsProbe).map_err(|e| BadInput::new(e.to_string()))?;
    for w in &cat.warnings {
        eprintln!("wayback: warning: {}: {}", w.path.display(), w.message);
    }
    Ok(cat)
}

/// What `path` is for a command that wants a snapshot, in one call: a read-only subvolume (a snapshot,
/// with its catalog entry if `roots` hold it), a writable one (live data, never a snapshot: with what it
/// is and its snapshots under `roots`, oldest first), or not a subvolume. Roots that cannot be read are
/// skipped quietly; a `path` that does not exist is bad input.
// For `up` (a writable SNAPSHOT needs --from-live), wired in by the lead's branch.
#[allow(dead_code)]
pub fn inspect_path(path: &Path, roots: &[PathBuf]) -> Result<PathInfo> {
    let path = canonical(path, "snapshot")?;
    let abs: Vec<PathBuf> = roots
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .collect();
    let cat = catalog::discover_lenient(&abs, &FsProbe);
    Ok(catalog::inspect(&path, &cat, &FsProbe))
}

/// Resolve one selector to a snapshot path: a path is taken as it is; anything else is looked up in
/// the catalog of `roots` plus the selector's own ROOT, and only ever names a read-only snapshot.
pub fn resolve_path(text: &str, roots: &[PathBuf]) -> Result<PathBuf> {
    let sel: Selector = text.parse().map_err(|e| BadInput::new(format!("{e}")))?;
    let sel = canonical_selector(sel)?;
    if let Some(p) = sel.path() {
        return Ok(p.to_path_buf());
    }
    // The selector's own ROOT first: a snapshot found under several roots keeps the id the first one
    // gives it, so ROOT@N means the id `wayback snapshots ROOT` shows.
    let mut all: Vec<PathBuf> = sel.root().map(Path::to_path_buf).into_iter().collect();
    all.extend(roots.iter().cloned());
    if all.is_empty() {
        return Err(BadInput::new(format!(
            "{text}: which snapshots? give ROOT{text} (e.g. /persist{text}) or --root ROOT"
        ))
        .into());
    }
    let cat = load_catalog(&all)?;
    let snap = selector::resolve_in(&sel, &cat, now()).map_err(|e| BadInput::new(e.to_string()))?;
    Ok(snap.path.clone())
}

pub async fn run(cfg: &Config, args: SnapshotsArgs) -> Result<ExitCode> {
    let roots = if args.roots.is_empty() {
        cfg.snapshot_roots.clone()
    } else {
        args.roots.clone()
    };
    if roots.is_empty() {
        return Err(BadInput::new(
            "give a ROOT: e.g. `wayback snapshots /persist` (snapper), `/mnt/btr_pool/btrbk_snapshots` (btrbk), or set snapshot_roots in the config",
        )
        .into());
    }
    let cat = load_catalog(&roots)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&catalog::to_json(&cat))?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", catalog::render(&cat));
    if cat.snapshots.is_empty() {
        eprintln!(
            "wayback: no snapshots found under the given roots{}",
            if cat.live.is_empty() {
                ""
            } else {
                " (only writable subvolumes, listed above: they are live data, not snapshots)"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
