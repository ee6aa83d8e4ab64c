//! `wayback find PATTERN`: which snapshots hold a path or glob (relative to the snapshot root), with
//! size and mtime, grouped into runs ("present in #11900–#11921, gone from #11922 on") so the last good
//! snapshot is obvious. Only read-only snapshots are searched, so "last good" never names live data: the
//! catalog lists writable subvolumes apart, and each snapshot's read-only flag is checked again right
//! before it is searched. Reads only: lists just the directories below the pattern's literal prefix.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use wayback_core::catalog::{Catalog, Snapshot};
use wayback_core::glob::Glob;
use wayback_core::presence::{self, Observation};
use wayback_core::selector;
use wayback_core::Config;

use wayback_engine::catalog::load_catalog;
use wayback_engine::clock::now;
use wayback_engine::error::BadInput;
use wayback_engine::sys::walk;

#[derive(Debug, clap::Args)]
#[command(after_help = FIND_HELP)]
pub struct FindArgs {
    /// A path or glob relative to the snapshot root: `*`, `?`, `[a-z]` within a name, `**` for any
    /// number of directories (e.g. var/lib/nextcloud/data/alice/files/**/report*.odt)
    pub pattern: String,
    /// Only these snapshots: a selector or a range (e.g. @11900..@11950, @2026-11-01.., ..@2w)
    #[arg(long = "in", value_name = "RANGE")]
    pub range: Option<String>,
    /// Where the snapshots are (repeat for several); a ROOT in --in counts too
    #[arg(long, value_name = "ROOT")]
    pub root: Vec<PathBuf>,
    /// One JSON object: per-snapshot matches, runs, and the last good snapshot per series
    #[arg(long)]
    pub json: bool,
}

const FIND_HELP: &str = "\
Examples:
  wayback find var/lib/nextcloud/data/alice/files/report.odt --root /persist
  wayback find 'var/lib/nextcloud/data/alice/files/**/report*.odt' --in /persist@2026-11-01..
  wayback find etc/nginx/sites-enabled/www.conf --root /mnt/btr_pool/btrbk_snapshots --json

Snapshot selectors for --in:
  @11921, /persist@11921, @2026-11-14, @2026-11-14T10:00[+01:00], @2w, @36h, or a path;
  ranges A..B, A.., ..B (each end inclusive; a date alone covers its whole day).";

/// Whether `s` is still a read-only subvolume (a snapshot made writable since discovery is live data
/// now: skipped, with a warning, so it can never be named "last good").
fn still_readonly(s: &Snapshot) -> bool {
    let ro = s.readonly && walk::subvol_meta(&s.path).is_some_and(|m| m.readonly);
    if !ro {
        eprintln!(
            "wayback: warning: {}: no longer read-only, skipped (writable subvolumes are never searched as snapshots)",
            s.path.display()
        );
    }
    ro
}

/// "No snapshots", naming the live subvolumes that were found instead, if any.
fn no_snapshots(cat: &Catalog) -> String {
    let live: Vec<String> = cat
        .live
        .iter()
        .map(|l| format!("{} ({})", l.path.display(), l.what()))
        .collect();
    if live.is_empty() {
        "no snapshots found under the given roots".into()
    } else {
        format!(
            "no snapshots found under the given roots, only writable subvolumes, which are live data and never searched as snapshots: {}",
            live.join(", ")
        )
    }
}

pub async fn run(cfg: &Config, args: FindArgs) -> Result<ExitCode> {
    let out = report(cfg, &args)?;
    if args.json {
        let mut out = out;
        if let Some(o) = out.as_object_mut() {
            o.remove("text");
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", out["text"].as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

/// `find PATTERN --json`, with the text rendering as `text` (the console's `/api/find`).
pub fn report(cfg: &Config, args: &FindArgs) -> Result<serde_json::Value> {
    let glob: Glob = args
        .pattern
        .parse()
        .map_err(|e| BadInput::new(format!("{e}")))?;
    let range = args
        .range
        .as_deref()
        .map(wayback_engine::catalog::canonical_range)
        .transpose()?;
    // The range's own ROOTs first: a snapshot found under several roots keeps the id the first one
    // gives it, so ROOT@N means the id `wayback snapshots ROOT` shows.
    let mut roots: Vec<PathBuf> = match &range {
        Some(r) => r.roots().into_iter().map(PathBuf::from).collect(),
        None => Vec::new(),
    };
    roots.extend(args.root.iter().cloned());
    if roots.is_empty() {
        roots = cfg.snapshot_roots.clone();
    }
    if roots.is_empty() {
        return Err(BadInput::new(
            "which snapshots? give --root ROOT (e.g. --root /persist), a ROOT in --in (e.g. --in /persist@2w..), or set snapshot_roots in the config",
        )
        .into());
    }
    let cat = load_catalog(&roots)?;
    let snaps: Vec<&Snapshot> = match &range {
        Some(r) => selector::select_in(r, &cat, now()).map_err(|e| BadInput::new(e.to_string()))?,
        None => cat.snapshots.iter().collect(),
    };
    let obs: Vec<Observation> = snaps
        .into_iter()
        .filter(|s| still_readonly(s))
        .map(|s| Observation::of(s, walk::find_hits(&s.path, &glob)))
        .collect();
    if obs.is_empty() {
        return Err(BadInput::new(no_snapshots(&cat)).into());
    }
    let good: Vec<serde_json::Value> = presence::last_good(&obs)
        .iter()
        .map(|o| serde_json::json!({ "series": o.series, "id": o.id, "path": o.path }))
        .collect();
    Ok(serde_json::json!({
        "pattern": args.pattern,
        "snapshots": obs,
        "runs": presence::runs(&obs),
        "last_good": good,
        "text": presence::render(&args.pattern, &obs),
    }))
}
