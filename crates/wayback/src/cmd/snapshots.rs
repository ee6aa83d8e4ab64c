//! `wayback snapshots [ROOT...]`: list the snapshots snapper, btrbk and plain read-only subvolumes left in
//! and below the given roots (id, date, source, description, path), sorted by date, and apart from them
//! the live (writable) subvolumes found there, which are never snapshots.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use wayback_core::catalog;
use wayback_core::Config;
use wayback_engine::catalog::load_catalog;
use wayback_engine::error::BadInput;

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
