//! `wayback snapshots [ROOT...]`: list the snapshots snapper, btrbk and plain subvolumes left under the
//! given roots (id, date, source, read-only flag, description, path), sorted by date. Also the catalog
//! and selector helpers `find` and `diff` share. Reads only (readdir, info.xml, subvolume ioctls).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use wayback_core::catalog::{self, Catalog, Snapshot, Source};
use wayback_core::civil::format_utc;
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
An ambiguous or empty selection is an error (exit 2) listing the candidates.";

#[derive(Debug, clap::Args)]
#[command(after_help = SELECTOR_HELP)]
pub struct SnapshotsArgs {
    /// Where to look: a snapper `.snapshots` directory or its parent, a btrbk snapshot_dir, or any
    /// directory holding subvolumes
    #[arg(value_name = "ROOT")]
    pub roots: Vec<PathBuf>,
    /// One JSON object: {"snapshots": [...], "warnings": [...]}
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

/// Discover the snapshots under `roots` (made absolute, duplicates dropped); warnings go to stderr.
pub fn load_catalog(roots: &[PathBuf]) -> Result<Catalog> {
    let mut abs: Vec<PathBuf> = Vec::new();
    for r in roots {
        let c = canonical(r, "snapshot root")?;
        if !abs.contains(&c) {
            abs.push(c);
        }
    }
    let cat = catalog::discover(&abs, &FsProbe).map_err(|e| BadInput::new(e.to_string()))?;
    for w in &cat.warnings {
        eprintln!("wayback: warning: {}: {}", w.path.display(), w.message);
    }
    Ok(cat)
}

/// Resolve one selector to a snapshot path: a path is taken as it is; anything else is looked up in
/// the catalog of `roots` plus the selector's own ROOT.
pub fn resolve_path(text: &str, roots: &[PathBuf]) -> Result<PathBuf> {
    let sel: Selector = text.parse().map_err(|e| BadInput::new(format!("{e}")))?;
    let sel = canonical_selector(sel)?;
    if let Some(p) = sel.path() {
        return Ok(p.to_path_buf());
    }
    let mut all: Vec<PathBuf> = roots.to_vec();
    all.extend(sel.root().map(Path::to_path_buf));
    if all.is_empty() {
        return Err(BadInput::new(format!(
            "{text}: which snapshots? give ROOT{text} (e.g. /persist{text}) or --root ROOT"
        ))
        .into());
    }
    let cat = load_catalog(&all)?;
    let snap =
        selector::resolve(&sel, &cat.snapshots, now()).map_err(|e| BadInput::new(e.to_string()))?;
    Ok(snap.path.clone())
}

fn source_col(s: &Snapshot) -> String {
    match &s.source {
        Source::Snapper { kind, .. } => format!("snapper/{kind}"),
        Source::Btrbk { name } => format!("btrbk {name}"),
        Source::Plain => "plain".into(),
    }
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
        let snaps: Vec<serde_json::Value> = cat
            .snapshots
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s).expect("serialisable");
                v["date_utc"] = format_utc(s.date).into();
                v["series"] = s.series().into();
                v
            })
            .collect();
        let out = serde_json::json!({ "snapshots": snaps, "warnings": cat.warnings });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>7}  {:<19}  {:<16}  {:<2}  {:<24}  PATH",
        "ID", "DATE (UTC)", "SOURCE", "RO", "DESCRIPTION"
    );
    for s in &cat.snapshots {
        println!(
            "{:>7}  {:<19}  {:<16}  {:<2}  {:<24}  {}",
            format!("#{}", s.id),
            format_utc(s.date),
            source_col(s),
            if s.readonly { "ro" } else { "rw" },
            s.description.as_deref().unwrap_or("-"),
            s.path.display()
        );
    }
    if cat.snapshots.is_empty() {
        eprintln!("wayback: no snapshots found under the given roots");
    }
    Ok(ExitCode::SUCCESS)
}
