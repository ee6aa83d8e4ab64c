//! One verify run: a snapshot of a job resurrected exactly as `up` would (the job's `[run]` parsed as
//! `up`'s own arguments, then `up`'s request, planning and instance lifecycle), never published (no proxy
//! route, no port), its checks run in order, torn down whatever happened, and recorded.
//!
//! The instance is `verify-JOB-ID` (ID: the run's row in the history), owned by this process like a
//! foreground `up`: when `verify` is killed, `wayback gc` removes it. The run's `timeout` bounds start and
//! checks; a signal to `verify` ends the run the same way, as `interrupted`.

use std::time::Instant;

use anyhow::{anyhow, Result};
use clap::Parser;
use tokio::sync::watch;
use wayback_core::catalog::Snapshot;
use wayback_core::verify::{CheckOutcome, CheckResult, Job, Outcome, RunReport, SnapshotRef};
use wayback_core::{Config, InstanceName};

use super::checks;
use super::history::History;
use crate::cli::{Cli, Cmd, UpArgs};
use crate::error::BadInput;
use crate::instance::{self, Hosted};
use crate::planning;
use crate::progress::Progress;
use crate::state::Owner;

/// What every run of one `verify` shares.
pub struct Shared {
    pub cfg: Config,
    /// The config file this process read, for the `wayback exec` of checks.
    pub config_path: Option<std::path::PathBuf>,
    pub history: History,
    /// Planning takes the allocation lock with a blocking flock: one run of this process at a time.
    pub plan_lock: tokio::sync::Mutex<()>,
    /// Set (with the reason) when `verify` is asked to stop.
    pub interrupt: watch::Receiver<Option<String>>,
    pub quiet: bool,
}

/// `verify-JOB-ID`.
pub fn instance_name(job: &str, id: i64) -> String {
    format!("verify-{job}-{id}")
}

/// A run recorded as started.
pub struct Begun {
    pub id: i64,
    started: i64,
    t0: Instant,
}

/// Record that a run of `job` on `snap` starts now (its row gives it its number and instance name).
pub fn begin(shared: &Shared, job: &Job, snap: &Snapshot) -> Result<Begun> {
    let started = crate::cmd::snapshots::now();
    let t0 = Instant::now();
    let id = shared
        .history
        .begin(&job.name, &SnapshotRef::from(snap), started, |id| {
            instance_name(&job.name, id)
        })?;
    Ok(Begun { id, started, t0 })
}

/// Bring `snap` up for `job`, check it, tear it down, record it. Err only when the history cannot be
/// written (the run itself, failed or not, is in the report).
pub async fn run(shared: &Shared, job: &Job, snap: &Snapshot, begun: Begun) -> Result<RunReport> {
    let Begun { id, started, t0 } = begun;
    let sref = SnapshotRef::from(snap);
    let name = instance_name(&job.name, id);
    let progress = progress_for(shared.quiet, format!("{} #{} ({name})", job.name, snap.id));
    let mut checks = lifecycle(shared, job, snap, &name, t0, &progress).await;
    // A signal that came after every step had passed changes nothing.
    let interrupted = shared.interrupt.borrow().is_some()
        && checks.iter().any(|c| c.result != CheckOutcome::Passed);
    let failed = checks.iter().find(|c| c.result == CheckOutcome::Failed);
    let (result, reason) = match failed {
        _ if interrupted => (
            Outcome::Interrupted,
            shared
                .interrupt
                .borrow()
                .clone()
                .map(|w| format!("{w}: the run did not finish")),
        ),
        Some(c) => (
            Outcome::Failed,
            Some(format!(
                "{} ({}): {}",
                c.name,
                c.kind,
                c.reason.as_deref().unwrap_or("failed")
            )),
        ),
        None => (Outcome::Passed, None),
    };
    if result == Outcome::Interrupted {
        for c in checks
            .iter_mut()
            .filter(|c| c.result == CheckOutcome::Failed)
        {
            c.result = CheckOutcome::Skipped;
        }
    }
    let report = RunReport {
        id,
        job: job.name.clone(),
        snapshot: sref,
        instance: name,
        started,
        duration_ms: t0.elapsed().as_millis() as u64,
        result,
        reason,
        checks,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    shared.history.finish(&report)?;
    Ok(report)
}

/// Start, checks, teardown: one result per step (`start`, each check, and `teardown` when it fails).
async fn lifecycle(
    shared: &Shared,
    job: &Job,
    snap: &Snapshot,
    name: &str,
    t0: Instant,
    progress: &Progress,
) -> Vec<CheckResult> {
    let deadline = t0 + job.timeout.as_std();
    let t = Instant::now();
    let hosted = match start(shared, job, snap, name, deadline, progress).await {
        Ok(h) => h,
        Err(e) => {
            let mut out = vec![step("start", "start", Err(e), t)];
            out.extend(job.checks.iter().map(|c| skipped(c, "the start failed")));
            return out;
        }
    };
    let mut out = vec![step("start", "start", Ok(()), t)];
    let target = checks::Target {
        plan: &hosted.plan,
        config: shared.config_path.as_deref(),
        snapshot_date: snap.date,
    };
    let mut stopped: Option<String> = None;
    for c in &job.checks {
        if let Some(why) = &stopped {
            out.push(skipped(c, why));
            continue;
        }
        let t = Instant::now();
        let r = tokio::select! {
            r = checks::run(&target, c) => r,
            why = stop(deadline, job, shared.interrupt.clone()) => {
                stopped = Some(why.clone());
                Err(why)
            }
        };
        out.push(CheckResult {
            name: c.name.clone(),
            kind: c.kind.label().into(),
            result: if r.is_ok() {
                CheckOutcome::Passed
            } else {
                CheckOutcome::Failed
            },
            reason: r.err(),
            duration_ms: t.elapsed().as_millis() as u64,
        });
    }
    let t = Instant::now();
    if let Err(e) = hosted.finish(progress).await {
        out.push(step("teardown", "teardown", Err(e), t));
    }
    out
}

async fn start(
    shared: &Shared,
    job: &Job,
    snap: &Snapshot,
    name: &str,
    deadline: Instant,
    progress: &Progress,
) -> Result<Hosted> {
    let mut cfg = shared.cfg.clone();
    if let Some(t) = job.start_timeout {
        cfg.ready_timeout = t;
    }
    let args = up_args(job, &snap.path, snap.date, name)?;
    let req = crate::cmd::up::request::request(&cfg, &args, progress)?;
    let prepared = {
        let _one = shared.plan_lock.lock().await;
        let (mut plan, alloc) = planning::plan(&cfg, &req).await?;
        // Checks dial inside the instance: it is never published (no proxy route, no host proxy vhost).
        plan.http = None;
        instance::prepare(&cfg, plan, alloc, Owner::current()).await?
    };
    let interrupt = stop(deadline, job, shared.interrupt.clone());
    instance::start(&cfg, prepared, progress, interrupt).await
}

/// Resolves when the run must end: its timeout, or `verify` asked to stop.
async fn stop(
    deadline: Instant,
    job: &Job,
    mut interrupt: watch::Receiver<Option<String>>,
) -> String {
    let timeout = job.timeout;
    tokio::select! {
        _ = tokio::time::sleep_until(deadline.into()) => format!("the run's timeout ({timeout}) passed"),
        r = interrupt.wait_for(Option::is_some) => match r {
            Ok(why) => why.clone().unwrap_or_default(),
            Err(_) => "interrupted".into(),
        },
    }
}

fn step(name: &str, kind: &str, r: Result<()>, t: Instant) -> CheckResult {
    CheckResult {
        name: name.into(),
        kind: kind.into(),
        result: if r.is_ok() {
            CheckOutcome::Passed
        } else {
            CheckOutcome::Failed
        },
        reason: r.err().map(|e| crate::error::render(&e)),
        duration_ms: t.elapsed().as_millis() as u64,
    }
}

fn skipped(c: &wayback_core::verify::Check, why: &str) -> CheckResult {
    CheckResult {
        name: c.name.clone(),
        kind: c.kind.label().into(),
        result: CheckOutcome::Skipped,
        reason: Some(why.to_string()),
        duration_ms: 0,
    }
}

/// The job's `[run]` as `up`'s command line, parsed by `up`'s own parser (so every check of the command
/// line applies); errors name the job's key.
pub fn up_args(job: &Job, snapshot: &std::path::Path, date: i64, name: &str) -> Result<UpArgs> {
    InstanceName::new(name)?;
    let mut argv = vec!["wayback".to_string(), "up".into()];
    match &job.run.at {
        Some(live) => {
            argv.push(live.display().to_string());
            let at = wayback_core::civil::format_utc(date).replace(' ', "T");
            argv.push(format!("--at={at}Z"));
        }
        None => argv.push(snapshot.display().to_string()),
    }
    argv.push(format!("--name={name}"));
    argv.push(format!("--ttl={}", job.timeout));
    argv.extend(job.run.up_args());
    match Cli::try_parse_from(&argv) {
        Ok(Cli {
            cmd: Cmd::Up(args), ..
        }) => Ok(*args),
        Ok(_) => Err(anyhow!(
            "internal: `up` arguments parsed as another command"
        )),
        Err(e) => Err(clap_error(job, &e).into()),
    }
}

/// A refusal of `up`'s parser as a job error: the key (`run.unit`), what is wrong, no value.
fn clap_error(job: &Job, e: &clap::Error) -> BadInput {
    use clap::error::{ContextKind, ErrorKind};
    let key = |k: ContextKind| {
        e.get(k).map(|v| {
            let flag = v.to_string();
            let flag = flag
                .split([' ', '='])
                .next()
                .unwrap_or_default()
                .to_string();
            format!("run.{}", flag.trim_start_matches('-').replace('-', "_"))
        })
    };
    let what = match e.kind() {
        ErrorKind::ArgumentConflict => format!(
            "cannot be combined with {}",
            key(ContextKind::PriorArg).map_or_else(|| "another key".into(), |k| format!("`{k}`"))
        ),
        ErrorKind::MissingRequiredArgument => {
            "needs a key it goes with (see `wayback up --help`)".into()
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => "invalid value".into(),
        k => k
            .as_str()
            .unwrap_or("refused as `up` would refuse it")
            .into(),
    };
    let key = key(ContextKind::InvalidArg).unwrap_or_else(|| "run".into());
    BadInput::new(format!(
        "invalid verify job {}: key `{key}`: {what}",
        job.file.display()
    ))
}

/// Progress lines of one run, prefixed with what it is.
fn progress_for(quiet: bool, label: String) -> Progress {
    if quiet {
        return Progress {
            quiet: true,
            sink: None,
        };
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            let rest = line.strip_prefix("wayback: ").unwrap_or(&line);
            eprintln!("wayback: {label}: {rest}");
        }
    });
    Progress {
        quiet: false,
        sink: Some(tx),
    }
}
