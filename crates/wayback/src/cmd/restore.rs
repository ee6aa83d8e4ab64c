//! `wayback restore PATH --from SELECTOR [--to DEST] [--dry-run] [--overwrite]`: copy a file, a symlink
//! or a directory tree out of a snapshot — as a reflink when source and destination share a btrfs
//! filesystem (milliseconds whatever the size), else by copying — keeping mode, owner, times, xattrs
//! and ACLs. By default it goes back to its place in the live subvolume; never over an existing entry
//! unless `--overwrite`, which first keeps that one as `PATH.wayback-<UTC date>`. Everything that can be
//! checked is checked before anything is written (exit 2); `--dry-run` stops there and says what it
//! would do.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use wayback_core::change::display_path;
use wayback_core::civil::format_utc;
use wayback_core::Config;

use crate::cmd::subject::Subject;
use wayback_engine::error::BadInput;
use wayback_engine::sys::copy::{self, Copier};
use wayback_engine::sys::inroot::{InRootError, Tree};
use wayback_engine::sys::restore::{self, Dest, RestoreError};

#[derive(Debug, clap::Args)]
#[command(after_help = RESTORE_HELP)]
pub struct RestoreArgs {
    /// What to restore: an absolute path (in the live subvolume, or in a snapshot) or a path relative to
    /// the snapshot root (with --root)
    pub path: String,
    /// The snapshot to take it from: a selector among PATH's snapshots (e.g. @11921, @2026-11-14, @2w)
    #[arg(long, value_name = "SELECTOR")]
    pub from: String,
    /// Where to put it [default: its place in the live subvolume]; an existing directory means into it
    #[arg(long, value_name = "DEST")]
    pub to: Option<PathBuf>,
    /// Replace what is at the destination, keeping it as DEST.wayback-<UTC date>
    #[arg(long)]
    pub overwrite: bool,
    /// Say what would be restored, where and how; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Where the snapshots are (repeat for several)
    #[arg(long, value_name = "ROOT")]
    pub root: Vec<PathBuf>,
    /// One JSON object
    #[arg(long)]
    pub json: bool,
}

const RESTORE_HELP: &str = "\
Examples:
  wayback versions /persist/var/lib/app/report.odt
  wayback restore /persist/var/lib/app/report.odt --from @11921 --to /root/report.v2.odt
  wayback restore /persist/srv/wiki/images --from @2w --dry-run
  wayback restore /persist/etc/app.conf --from @11921 --overwrite
(--overwrite keeps the replaced one as PATH.wayback-<UTC date>)";

fn bad(e: RestoreError) -> anyhow::Error {
    match e {
        RestoreError::Io { .. } => e.into(),
        _ => BadInput::new(e.to_string()).into(),
    }
}

pub async fn run(cfg: &Config, args: RestoreArgs) -> Result<ExitCode> {
    let s = Subject::resolve(cfg, &args.path, &args.root, None, Some(&args.from))?;
    let snap = s.select(&args.from)?;
    if s.rel.as_os_str().is_empty() {
        return Err(BadInput::new(format!(
            "{}: that is the whole snapshot; restore a path inside it (or resurrect the snapshot with `wayback up`)",
            s.text
        ))
        .into());
    }
    let tree = Tree::open(&snap.path)?;
    let src = tree.entry(&s.rel).map_err(|e| match e {
        InRootError::Missing { .. } => BadInput::new(format!(
            "{} is not in snapshot #{} ({}); `wayback versions {}` shows where it is",
            display_path(&s.rel),
            snap.id,
            format_utc(snap.date),
            s.text
        ))
        .into(),
        e => anyhow::Error::new(e),
    })?;
    let mut dest: Dest = match (&args.to, &s.live) {
        (Some(to), _) => restore::user(to, &src.name).map_err(bad)?,
        (None, Some(live)) => restore::in_live(live, &s.rel).map_err(bad)?,
        (None, None) => {
            return Err(BadInput::new(format!(
                "no live subvolume is known for {}: give --to DEST",
                s.series
            ))
            .into())
        }
    };
    let existing = dest.existing();
    if existing.is_some() && !args.overwrite {
        return Err(bad(RestoreError::Exists {
            path: dest.path.clone(),
        }));
    }
    let now = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let reflink = copy::same_btrfs(src.dir.as_fd(), dest.dir.as_fd());
    let made: Vec<PathBuf> = dest.missing.iter().map(|(_, p)| p.clone()).collect();
    let mut copier = Copier::new(args.dry_run);
    let placed = if args.dry_run {
        copier
            .copy(
                &src.dir,
                &src.name,
                &src.stat,
                &src.dir,
                &src.name,
                src.name.as_ref(),
            )
            .map_err(|e| anyhow::anyhow!("{}: {e}", display_path(&s.rel)))?;
        None
    } else {
        Some(restore::put(&tree, &src, &mut dest, args.overwrite, &now, &mut copier).map_err(bad)?)
    };
    let st = &copier.stats;
    let kept = placed.as_ref().and_then(|p| p.kept.clone()).or_else(|| {
        (args.dry_run && existing.is_some()).then(|| {
            let mut k = dest.path.clone().into_os_string();
            k.push(format!(".wayback-{now}"));
            PathBuf::from(k)
        })
    });
    let how = if args.dry_run {
        if reflink {
            "reflink"
        } else {
            "copy"
        }
    } else if st.copied == 0 && st.files > 0 {
        "reflink"
    } else if st.reflinked == 0 {
        "copy"
    } else {
        "reflink and copy"
    };
    for w in &st.warnings {
        eprintln!("wayback: warning: {w}");
    }
    if args.json {
        let out = serde_json::json!({
            "path": display_path(&s.rel),
            "from": {"id": snap.id, "date_utc": format_utc(snap.date), "path": snap.path},
            "to": dest.path,
            "dry_run": args.dry_run,
            "method": how,
            "kept": kept,
            "made_dirs": made,
            "stats": st,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if args.dry_run {
        "would restore"
    } else {
        "restored"
    };
    let mut counts = vec![format!("{} bytes", st.bytes)];
    for (n, what) in [
        (st.files, "file"),
        (st.dirs, "dir"),
        (st.symlinks, "symlink"),
        (st.hard_links, "hard link"),
        (st.fifos, "fifo"),
        (st.skipped, "skipped"),
    ] {
        if n > 0 {
            counts.push(format!(
                "{n} {what}{}",
                if n == 1 || what == "skipped" { "" } else { "s" }
            ));
        }
    }
    let how_text = if st.files > 0 {
        format!(" as a {how}")
    } else {
        String::new()
    };
    println!(
        "{verb} {} from #{} ({}) to {}{how_text}: {}",
        display_path(&s.rel),
        snap.id,
        format_utc(snap.date),
        dest.path.display(),
        counts.join(", ")
    );
    if !made.is_empty() {
        let verb = if args.dry_run { "would make" } else { "made" };
        println!(
            "{verb} {} missing director{} on the way",
            made.len(),
            if made.len() == 1 { "y" } else { "ies" }
        );
    }
    if let Some(k) = kept {
        let verb = if args.dry_run { "would keep" } else { "kept" };
        println!("{verb} the replaced one as {}", k.display());
    }
    Ok(ExitCode::SUCCESS)
}
