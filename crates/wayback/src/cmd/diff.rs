//! `wayback diff A [B]`: added / removed / modified paths between two snapshots, or between a
//! snapshot and the live subvolume it was taken from (only when B is left out, and said so: a selector
//! never resolves to a live subvolume). On btrfs only what changed is looked at: for two snapshots of
//! one subvolume, from the filesystem's own metadata (`sys::treediff`: a tree search for what was
//! written since the older one); for other pairs, from the send stream (`btrfs send --no-data -p A B`).
//! A writable side is first frozen as a temporary read-only snapshot in wayback's clone dir, deleted
//! again afterwards (also on error and Ctrl-C). Elsewhere, or if both fail, both trees are walked.
//! `diff PATH --from SELECTOR [--to SELECTOR]` compares one file instead (`cmd::filediff`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use tokio::signal::unix::{signal, SignalKind};
use wayback_core::change::{self, Change};
use wayback_core::Config;

use crate::cmd::snapshots::SELECTOR_HELP;
use wayback_engine::catalog::resolve_path;
use wayback_engine::error::BadInput;
use wayback_engine::sys::snapdiff::{self, DiffError, TempSnapshot};
use wayback_engine::sys::{mountinfo, treediff, walk};

#[derive(Debug, clap::Args)]
#[command(after_help = SELECTOR_HELP)]
pub struct DiffArgs {
    /// The older side: a snapshot selector (e.g. @11921, /persist@2w, or a path); with --from: the one
    /// file to compare (absolute, or relative to the snapshot root)
    pub a: String,
    /// The newer side [default: the live subvolume A was taken from]
    #[arg(conflicts_with = "from")]
    pub b: Option<String>,
    /// One file: its version in this snapshot (e.g. @11921, @2w) against --to, as a unified diff
    #[arg(long, value_name = "SELECTOR")]
    pub from: Option<String>,
    /// With --from: the other snapshot [default: live]
    #[arg(long, value_name = "SELECTOR", requires = "from")]
    pub to: Option<String>,
    /// Only paths at or below PREFIX (relative to the snapshot root, e.g. var/lib/postgresql)
    #[arg(long, value_name = "PREFIX")]
    pub path: Option<PathBuf>,
    /// Where to look up @N / @DATE selectors (repeat for several)
    #[arg(long, value_name = "ROOT")]
    pub root: Vec<PathBuf>,
    /// Compare by walking both trees (the same as --method walk)
    #[arg(long, conflicts_with = "method")]
    pub walk: bool,
    /// How to find what changed: tree (btrfs metadata: snapshots of one subvolume), send (the btrfs
    /// send stream), walk (both trees, any filesystem), or auto: the first of these that applies
    #[arg(long, value_enum, default_value_t = Method::Auto)]
    pub method: Method,
    /// One JSON object: {"a", "b", "b_live", "method", "changes": [...], "summary"}
    #[arg(long)]
    pub json: bool,
}

/// How `diff A B` finds the changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    Auto,
    Tree,
    Send,
    Walk,
}

/// `var/lib/x/` → `var/lib/x`; `..` is refused.
fn prefix_of(p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                return Err(BadInput::new(format!(
                    "--path {}: '..' would leave the snapshot; give a path relative to its root",
                    p.display()
                ))
                .into())
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Where temporary snapshots of `side` go: the config's clone_dir on its filesystem.
fn temp_dir(cfg: &Config, side: &Path) -> Option<PathBuf> {
    if cfg.clone_dir.is_absolute() {
        return Some(cfg.clone_dir.clone());
    }
    let mounts = mountinfo::read_self().ok()?;
    let m = mountinfo::mount_of(&mounts, side)?;
    Some(m.mount_point.join(&cfg.clone_dir))
}

fn same_btrfs(a: &Path, b: &Path) -> bool {
    let Ok(mounts) = mountinfo::read_self() else {
        return false;
    };
    let src = |p: &Path| {
        mountinfo::mount_of(&mounts, p)
            .filter(|m| m.fs_type == "btrfs")
            .map(|m| m.source.clone())
    };
    walk::subvol_meta(a).is_some()
        && walk::subvol_meta(b).is_some()
        && src(a).is_some()
        && src(a) == src(b)
}

/// The diff itself (blocking). Returns the changes and the method used.
fn compute(
    cfg: &Config,
    a: &Path,
    b: &Path,
    prefix: Option<&Path>,
    method: Method,
) -> Result<(Vec<Change>, &'static str), DiffError> {
    if method != Method::Walk && same_btrfs(a, b) {
        let attempt = || -> Result<(Vec<Change>, &'static str), DiffError> {
            // Keep the guards alive until the diff is done: dropping them deletes the snapshots.
            let mut guards = Vec::new();
            let mut frozen = |side: &Path| -> Result<PathBuf, DiffError> {
                if walk::subvol_meta(side).is_some_and(|m| m.readonly) {
                    return Ok(side.into());
                }
                let dir = temp_dir(cfg, side).ok_or_else(|| {
                    DiffError::Send(format!("cannot tell which mount holds {}", side.display()))
                })?;
                let t = TempSnapshot::create(side, &dir)?;
                let p = t.path.clone();
                guards.push(t);
                Ok(p)
            };
            let (fa, fb) = (frozen(a)?, frozen(b)?);
            if method != Method::Send && treediff::applicable(&fa, &fb) {
                match treediff::diff_tree(&fa, &fb, prefix) {
                    Ok(c) => return Ok((c, "tree")),
                    Err(DiffError::Interrupted) => return Err(DiffError::Interrupted),
                    Err(e) => eprintln!("wayback: {e}; reading the send stream instead"),
                }
            }
            snapdiff::diff_send(&fa, &fb, prefix).map(|c| (c, "send"))
        };
        match attempt() {
            Ok(x) => return Ok(x),
            Err(DiffError::Interrupted) => return Err(DiffError::Interrupted),
            Err(e) => eprintln!("wayback: {e}; comparing by walking both trees instead"),
        }
    }
    snapdiff::diff_walk(a, b, prefix).map(|c| (c, "walk"))
}

pub async fn run(cfg: &Config, args: DiffArgs) -> Result<ExitCode> {
    if let Some(from) = &args.from {
        return crate::cmd::filediff::run(
            cfg,
            &args.a,
            from,
            args.to.as_deref(),
            &args.root,
            args.json,
        );
    }
    let roots = if args.root.is_empty() {
        cfg.snapshot_roots.clone()
    } else {
        args.root.clone()
    };
    let a = resolve_path(&args.a, &roots)?;
    let b = match &args.b {
        Some(b) => resolve_path(b, &roots)?,
        None => snapdiff::live_of(&a).map_err(|e| BadInput::new(e.to_string()))?,
    };
    for side in [&a, &b] {
        if !side.is_dir() {
            return Err(BadInput::new(format!("{} is not a directory", side.display())).into());
        }
    }
    let prefix = args.path.as_deref().map(prefix_of).transpose()?;
    let prefix = prefix.filter(|p| !p.as_os_str().is_empty());

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let method = if args.walk { Method::Walk } else { args.method };
    let (cfg2, a2, b2, p2, w) = (cfg.clone(), a.clone(), b.clone(), prefix.clone(), method);
    let mut task = tokio::task::spawn_blocking(move || compute(&cfg2, &a2, &b2, p2.as_deref(), w));
    let result = tokio::select! {
        r = &mut task => r,
        _ = sigint.recv() => { snapdiff::interrupt(); task.await }
        _ = sigterm.recv() => { snapdiff::interrupt(); task.await }
    };
    let (changes, method) = match result.map_err(|e| anyhow!("diff task failed: {e}"))? {
        Ok(x) => x,
        Err(DiffError::Interrupted) => {
            eprintln!("wayback: interrupted; temporary snapshots removed");
            return Ok(ExitCode::from(130));
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        let out = serde_json::json!({
            "a": a,
            "b": b,
            "b_live": args.b.is_none(),
            "method": method,
            "prefix": prefix,
            "changes": changes,
            "summary": change::summary(&changes),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let live = if args.b.is_none() {
            " (live: today's state)"
        } else {
            ""
        };
        eprintln!("{} -> {}{live} ({method})", a.display(), b.display());
        print!("{}", change::render(&changes));
    }
    Ok(ExitCode::SUCCESS)
}
