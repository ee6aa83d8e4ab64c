//! What `verify` prints: each run's result as it ends, the summary, the JSON report, `--dry-run`'s list,
//! and `verify history`.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use wayback_core::catalog::Snapshot;
use wayback_core::civil::format_utc;
use wayback_core::verify::{CheckOutcome, Job, Outcome, RunReport};
use wayback_core::Config;

use super::HistoryArgs;
use wayback_engine::error::BadInput;
use wayback_engine::verify::history::History;

pub const AFTER_HELP: &str = "\
Examples:
  wayback verify pg                 # the newest snapshot of job /etc/wayback/verify.d/pg.toml, unless verified
  wayback verify --all --since-last # every job, every snapshot since the last verified one
  wayback verify pg --snapshot @2w  # one snapshot, verified or not
  wayback verify history pg         # past runs

Exit status: 0 every check of every run passed (or nothing was new), 1 a run failed or was interrupted,
2 bad input (a job, a selector). See docs/verify.md.";

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn word(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "PASS",
        Outcome::Failed => "FAIL",
        Outcome::Running => "RUNNING",
        Outcome::Interrupted => "INTERRUPTED",
    }
}

/// One run: a line, and for a run that did not pass, each failed check with its reason.
pub fn result(r: &RunReport) -> String {
    let mut out = format!(
        "{:<5} {}  #{}  {}  {}  ({}, run {})\n",
        word(r.result),
        r.job,
        r.snapshot.id,
        format_utc(r.snapshot.date),
        r.snapshot.path,
        secs(r.duration_ms),
        r.id
    );
    if r.result != Outcome::Passed {
        for c in r.checks.iter().filter(|c| c.result == CheckOutcome::Failed) {
            let reason = c
                .reason
                .as_deref()
                .unwrap_or("failed")
                .replace('\n', "\n        ");
            let _ = writeln!(out, "      {} ({}): {reason}", c.name, c.kind);
        }
        if let (Outcome::Interrupted, Some(why)) = (r.result, &r.reason) {
            let _ = writeln!(out, "      {why}");
        }
    }
    out
}

pub fn summary(reports: &[RunReport]) -> String {
    let n = |o: Outcome| reports.iter().filter(|r| r.result == o).count();
    let mut s = format!(
        "verified {} snapshot(s): {} passed, {} failed",
        reports.len(),
        n(Outcome::Passed),
        n(Outcome::Failed)
    );
    if n(Outcome::Interrupted) > 0 {
        let _ = write!(s, ", {} interrupted", n(Outcome::Interrupted));
    }
    s
}

pub fn report_json(reports: &[RunReport], idle: &[String]) -> serde_json::Value {
    let n = |o: Outcome| reports.iter().filter(|r| r.result == o).count();
    serde_json::json!({
        "passed": reports.iter().all(|r| r.result == Outcome::Passed),
        "counts": {
            "passed": n(Outcome::Passed),
            "failed": n(Outcome::Failed),
            "interrupted": n(Outcome::Interrupted),
        },
        "nothing_new": idle,
        "runs": reports,
    })
}

pub fn dry_run(planned: &[(&Job, &Snapshot)], idle: &[String]) {
    for (job, snap) in planned {
        let args = job.run.up_args().join(" ");
        println!(
            "{}  #{}  {}  {}\n      wayback up {} {args}",
            job.name,
            snap.id,
            format_utc(snap.date),
            snap.path.display(),
            match &job.run.at {
                Some(live) => format!("{} --at {}", live.display(), format_utc(snap.date)),
                None => snap.path.display().to_string(),
            }
        );
    }
    for name in idle {
        println!("{name}: nothing to verify");
    }
}

/// `wayback verify history [JOB] [--json]`.
pub fn history(cfg: &Config, a: &HistoryArgs) -> Result<ExitCode> {
    if let Some(j) = &a.job {
        wayback_core::verify::job::name_of(std::path::Path::new(&format!("{j}.toml")))
            .map_err(|e| BadInput::new(e.message))?;
    }
    let h = History::open(cfg)?;
    let runs = h.runs(a.job.as_deref(), a.limit)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        eprintln!("no verify runs recorded yet (`wayback verify JOB` makes one)");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<6} {:<16} {:<7} {:<19} {:<19} {:>8}  {:<11} WHY",
        "RUN", "JOB", "SNAP", "SNAPSHOT DATE", "STARTED", "TOOK", "RESULT"
    );
    for r in &runs {
        println!(
            "{:<6} {:<16} {:<7} {:<19} {:<19} {:>8}  {:<11} {}",
            r.id,
            r.job,
            format!("#{}", r.snapshot.id),
            format_utc(r.snapshot.date),
            format_utc(r.started),
            secs(r.duration_ms),
            r.result.as_str(),
            first_line(r.reason.as_deref().unwrap_or(""))
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A reason's first line (start failures carry the log's tail after it).
fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}
