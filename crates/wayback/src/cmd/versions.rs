//! `wayback versions PATH`: the distinct versions of a file (or directory entry) across the snapshots of
//! its series, oldest first, each with the snapshots it spans, size and mtime (and a content hash only
//! where size and mtime cannot tell two versions apart), the runs where it was deleted, and where live
//! stands. `wayback versions --deleted DIR`: what some snapshot holds under DIR and live does not.
//! Reads only, through [`Tree`] (inside each snapshot, never following the path's own symlink).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use wayback_core::catalog::Snapshot;
use wayback_core::change::{display_path, FileType};
use wayback_core::civil::format_utc;
use wayback_core::history::{self, Entry};
use wayback_core::Config;

use crate::cmd::subject::Subject;
use wayback_engine::error::BadInput;
use wayback_engine::sys::history as fs;
use wayback_engine::sys::inroot::Tree;

#[derive(Debug, clap::Args)]
#[command(after_help = VERSIONS_HELP)]
pub struct VersionsArgs {
    /// The file or directory: an absolute path (in the live subvolume, or in a snapshot) or a path
    /// relative to the snapshot root (with --root)
    pub path: String,
    /// Only these snapshots: a selector or a range (e.g. @100..@120, @2026-11-01.., ..@2w)
    #[arg(long = "in", value_name = "RANGE")]
    pub range: Option<String>,
    /// Where the snapshots are (repeat for several) [default: the subvolume holding PATH, and the
    /// config's snapshot_roots]
    #[arg(long, value_name = "ROOT")]
    pub root: Vec<PathBuf>,
    /// PATH is a directory: list what some snapshot holds below it and live does not
    #[arg(long)]
    pub deleted: bool,
    /// One JSON object
    #[arg(long)]
    pub json: bool,
}

const VERSIONS_HELP: &str = "\
Examples:
  wayback versions /persist/var/lib/app/report.odt
  wayback versions var/lib/app/report.odt --root /persist --in @2026-11-01..
  wayback versions --deleted /persist/var/lib/app/files
Then: wayback show PATH --from @N, wayback diff PATH --from @N, wayback restore PATH --from @N";

/// Trees of the snapshots, opened in parallel per chunk; each observation through its own tree.
fn observe_all(snaps: &[Snapshot], rel: &Path) -> Result<Vec<Option<Entry>>> {
    let threads = std::thread::available_parallelism()
        .map_or(2, std::num::NonZero::get)
        .min(8);
    let chunk = snaps.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<Option<Entry>>>> = std::thread::scope(|s| {
        let handles: Vec<_> = snaps
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|snap| {
                            let t = Tree::open(&snap.path)?;
                            Ok(fs::observe(&t, rel)?)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a reader thread failed")))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(snaps.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

fn hash_at(
    snaps: &[Snapshot],
    live: Option<&Path>,
    rel: &Path,
    i: usize,
) -> Option<history::Digest> {
    let root = snaps.get(i).map(|s| s.path.as_path()).or(live)?;
    let t = Tree::open(root).ok()?;
    match fs::hash(&t, rel) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("wayback: warning: cannot hash: {e}");
            None
        }
    }
}

pub async fn run(cfg: &Config, args: VersionsArgs) -> Result<ExitCode> {
    match versions(cfg, &args)? {
        Outcome::Json(v) => println!("{}", serde_json::to_string_pretty(&v)?),
        Outcome::Printed(code) => return Ok(code),
    }
    Ok(ExitCode::SUCCESS)
}

/// `versions PATH --json` as a value (the console's `/api/versions`).
pub fn report(cfg: &Config, path: &str) -> Result<serde_json::Value> {
    let args = VersionsArgs {
        path: path.to_string(),
        range: None,
        root: Vec::new(),
        deleted: false,
        json: true,
    };
    match versions(cfg, &args)? {
        Outcome::Json(v) => Ok(v),
        Outcome::Printed(_) => unreachable!("--json is set"),
    }
}

/// What `versions` did: the JSON report (with --json), or printed its text.
enum Outcome {
    Json(serde_json::Value),
    Printed(ExitCode),
}

fn versions(cfg: &Config, args: &VersionsArgs) -> Result<Outcome> {
    let subject = Subject::resolve(cfg, &args.path, &args.root, args.range.as_deref(), None)?;
    if args.deleted {
        return deleted(&subject, args.json).map(Outcome::Printed);
    }
    let s = &subject;
    let obs = observe_all(&s.snaps, &s.rel)?;
    let live = match &s.live {
        Some(l) => Some(fs::observe(&Tree::open(l)?, &s.rel)?),
        None => None,
    };
    let mut hash = |i: usize| hash_at(&s.snaps, s.live.as_deref(), &s.rel, i);
    let h = history::group(&obs, live, &mut hash);
    let refs: Vec<&Snapshot> = s.snaps.iter().collect();
    let shown = s.text.clone();
    if args.json {
        let mut v = history::to_json(&shown, &s.series, &refs, &h);
        v["live_path"] = serde_json::to_value(&s.live)?;
        return Ok(Outcome::Json(v));
    }
    print!("{}", history::render(&shown, &s.series, &refs, &h));
    if h.versions.is_empty() {
        eprintln!(
            "wayback: {shown} is in none of the {} snapshots of {}",
            s.snaps.len(),
            s.series
        );
    }
    Ok(Outcome::Printed(ExitCode::SUCCESS))
}

fn deleted(s: &Subject, json: bool) -> Result<ExitCode> {
    let Some(live) = &s.live else {
        return Err(BadInput::new(format!(
            "{}: no live subvolume is known for {}, so nothing can be missing from it",
            s.text, s.series
        ))
        .into());
    };
    let live_tree = Tree::open(live)?;
    if fs::observe(&live_tree, &s.rel)?.is_some_and(|e| e.kind != FileType::Dir) {
        return Err(BadInput::new(format!("{}: not a directory in live", s.text)).into());
    }
    let live_set: BTreeSet<PathBuf> = fs::listing(&live_tree, &s.rel)?.into_keys().collect();
    let mut lists: Vec<BTreeMap<PathBuf, Entry>> = Vec::with_capacity(s.snaps.len());
    for snap in &s.snaps {
        lists.push(fs::listing(&Tree::open(&snap.path)?, &s.rel)?);
    }
    let gone = history::deleted(&lists, &live_set);
    if json {
        let items: Vec<serde_json::Value> = gone
            .iter()
            .map(|d| {
                let mut v = serde_json::to_value(d).expect("serialisable");
                let last = &s.snaps[d.last];
                v["last"] = serde_json::json!({"id": last.id, "date_utc": format_utc(last.date), "path": last.path});
                v["first_id"] = s.snaps[d.first].id.into();
                v
            })
            .collect();
        let out = serde_json::json!({
            "dir": display_path(&s.rel), "series": s.series, "live": live,
            "snapshots": s.snaps.len(), "deleted": items,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: {} path{} in the {} snapshots of {} but not in live ({})",
        display_path(&s.rel),
        gone.len(),
        if gone.len() == 1 { "" } else { "s" },
        s.snaps.len(),
        s.series,
        live.display()
    );
    for d in gone.iter().filter(|d| !d.under_deleted_dir) {
        let last = &s.snaps[d.last];
        let what = match d.entry.kind {
            FileType::Dir => {
                let below = gone
                    .iter()
                    .filter(|x| x.path.starts_with(&d.path) && x.path != d.path)
                    .count();
                format!("directory, {below} entries below")
            }
            FileType::Symlink => format!(
                "symlink -> {}",
                d.entry
                    .target
                    .as_deref()
                    .unwrap_or(Path::new("?"))
                    .display()
            ),
            _ => format!(
                "{} bytes  mtime {}",
                d.entry.size,
                format_utc(d.entry.mtime)
            ),
        };
        println!(
            "  {}  last in #{} ({})  {what}",
            display_path(&d.path),
            last.id,
            format_utc(last.date)
        );
    }
    if let Some(d) = gone.first() {
        let last = &s.snaps[d.last];
        println!(
            "  restore one: wayback restore {} --from @{}",
            display_path(&live.join(&d.path)),
            last.id
        );
    }
    Ok(ExitCode::SUCCESS)
}
