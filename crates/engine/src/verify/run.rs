//! One verify run: a snapshot of a job resurrected exactly as `up` would (the job's `[run]` parsed as
//! `up`'s own arguments, then `up`'s request, planning and instance lifecycle), never published (no proxy
//! route, no port), its checks run in order, torn down whatever happened, and recorded.
//!
//! The instance is `verify-JOB-ID` (ID: the run's row in the history), owned by this process like a
//! foreground `up`: when `verify` is killed, `wayback gc` removes it. The run's `timeout` bounds start and
//! checks; a signal to `verify` ends the run the same way, as `interrupted`.

use std::time::Instant;

use anyhow::Result;
use tokio::sync::watch;
use wayback_core::catalog::Snapshot;
use wayback_core::plan::UpRequest;
use wayback_core::verify::{CheckOutcome, CheckResult, Job, Outcome, RunReport, SnapshotRef};
use wayback_core::Config;

use super::checks;
use super::history::History;
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
    /// `up`'s request for one run of a job on one snapshot under an instance name: the binary parses the
    /// job's `[run]` with `up`'s own command line parser, so every check of `up` applies.
    pub request: RequestFn,
}

/// Builds `up`'s request for one run: (config, job, snapshot, instance name, progress).
pub type RequestFn =
    Box<dyn Fn(&Config, &Job, &Snapshot, &str, &Progress) -> Result<UpRequest> + Send + Sync>;

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
    let started = crate::clock::now();
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
    let req = (shared.request)(&cfg, job, snap, name, progress)?;
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
        () = tokio::time::sleep_until(deadline.into()) => format!("the run's timeout ({timeout}) passed"),
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
