//! `wayback verify JOB... | --job FILE... | --all [--snapshot SELECTOR | --since-last] [--json] [--junit F]`
//! and `wayback verify history [JOB] [--json]`.
//!
//! Loads the jobs (every one is checked before anything runs: a bad job is exit 2), chooses each job's
//! snapshots (`wayback_core::verify::select`), runs them — up to `[verify] parallel` at once — through
//! `wayback_engine::verify::run`, prints each result as it ends, then writes the metrics file and the JUnit file
//! and runs the failure hook. Exit 0 only when every check of every run passed; 1 when one failed or was
//! interrupted; 2 for bad input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Subcommand};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Semaphore};
use wayback_core::catalog::Snapshot;
use wayback_core::selector::{self, Selector};
use wayback_core::verify::select::{self as choose, Mode};
use wayback_core::verify::{job, Job, Outcome, RunReport};
use wayback_core::Config;

use wayback_engine::error::BadInput;
use wayback_engine::progress::Progress;
use wayback_engine::verify::history::History;
use wayback_engine::verify::outputs;
use wayback_engine::verify::run::{self, Shared};

mod show;
mod upargs;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, after_help = show::AFTER_HELP)]
pub struct VerifyArgs {
    #[command(subcommand)]
    pub cmd: Option<VerifyCmd>,
    /// Jobs by name: JOB is `[verify] jobs_dir`/JOB.toml (default /etc/wayback/verify.d)
    #[arg(value_name = "JOB")]
    pub jobs: Vec<String>,
    /// A job file anywhere (repeatable); its name is the file's stem
    #[arg(long = "job", value_name = "FILE")]
    pub job_files: Vec<PathBuf>,
    /// Every job in `[verify] jobs_dir`
    #[arg(long, conflicts_with_all = ["jobs", "job_files"])]
    pub all: bool,
    /// Verify this snapshot (a selector among the job's snapshots: @12, @2w, @2026-11-14, or a path)
    /// instead of the newest not yet verified
    #[arg(long, value_name = "SELECTOR", conflicts_with = "since_last")]
    pub snapshot: Option<String>,
    /// Verify every snapshot taken since the newest verified one, oldest first (every snapshot of the
    /// series when none was verified yet)
    #[arg(long)]
    pub since_last: bool,
    /// Show which snapshots would be verified, with the `up` arguments; run nothing
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object: every run with its checks
    #[arg(long)]
    pub json: bool,
    /// Also write the runs as JUnit XML to FILE (one test suite per run, one test case per check)
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum VerifyCmd {
    /// Past runs, newest first: job, snapshot, when, how long, result, and why a run failed
    History(HistoryArgs),
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this job
    pub job: Option<String>,
    /// At most this many runs
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// One JSON array of runs, each with its checks
    #[arg(long)]
    pub json: bool,
}

impl VerifyArgs {
    /// Whether this invocation hosts instances (and so must not die of SIGPIPE).
    pub fn runs_instances(&self) -> bool {
        self.cmd.is_none() && !self.dry_run
    }
}

/// One snapshot of one job, to be verified.
struct Planned {
    job: Arc<Job>,
    snap: Snapshot,
}

pub async fn run(
    cfg: &Config,
    config_path: Option<PathBuf>,
    args: VerifyArgs,
    progress: Progress,
) -> Result<ExitCode> {
    if let Some(VerifyCmd::History(h)) = &args.cmd {
        return show::history(cfg, h);
    }
    let jobs = load_jobs(cfg, &args)?;
    for job in &jobs {
        // The job's [run] must parse as `up` arguments before anything starts.
        upargs::up_args(job, Path::new("/"), 0, &run::instance_name(&job.name, 0))?;
    }
    let history = History::open(cfg)?;
    let mut planned = Vec::new();
    let mut idle = Vec::new();
    for job in jobs {
        let job = Arc::new(job);
        let snaps = choose_snapshots(&job, &args, &history)?;
        if snaps.is_empty() {
            idle.push(job.name.clone());
        }
        planned.extend(snaps.into_iter().map(|snap| Planned {
            job: job.clone(),
            snap,
        }));
    }
    if args.dry_run {
        show::dry_run(
            &planned
                .iter()
                .map(|p| (&*p.job, &p.snap))
                .collect::<Vec<_>>(),
            &idle,
        );
        return Ok(ExitCode::SUCCESS);
    }
    for name in &idle {
        progress.note(format!(
            "{name}: nothing to verify (its newest snapshot was verified already; --since-last or --snapshot for others)"
        ));
    }
    let (stop_tx, stop_rx) = watch::channel(None);
    tokio::spawn(relay_signals(stop_tx));
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        config_path,
        history,
        plan_lock: tokio::sync::Mutex::new(()),
        interrupt: stop_rx,
        quiet: progress.quiet,
        request: Box::new(|cfg, job, snap, name, progress| {
            let args = upargs::up_args(job, &snap.path, snap.date, name)?;
            super::up::request::request(cfg, &args, progress)
        }),
    });
    let reports = run_all(&shared, planned, args.json).await?;
    finish(&shared, &args, &reports, &idle).await
}

/// Run everything, `[verify] parallel` at a time, started in the order planned (each job's snapshots
/// oldest first); reports in that order.
async fn run_all(
    shared: &Arc<Shared>,
    planned: Vec<Planned>,
    json: bool,
) -> Result<Vec<RunReport>> {
    let slots = Arc::new(Semaphore::new(shared.cfg.verify.parallel));
    let mut tasks = Vec::new();
    for p in planned {
        let slot = slots.clone().acquire_owned().await.expect("semaphore open");
        if shared.interrupt.borrow().is_some() {
            break;
        }
        let begun = match run::begin(shared, &p.job, &p.snap) {
            Ok(b) => b,
            Err(e) => {
                tasks.push(tokio::spawn(async move { Err(e) }));
                break;
            }
        };
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let _slot = slot;
            let r = run::run(&shared, &p.job, &p.snap, begun).await?;
            if !json {
                print!("{}", show::result(&r));
            }
            Ok::<_, anyhow::Error>(r)
        }));
    }
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(r)) => reports.push(r),
            Ok(Err(e)) => errors.push(wayback_engine::error::render(&e)),
            Err(e) => errors.push(format!("a run panicked: {e}")),
        }
    }
    if !errors.is_empty() {
        anyhow::bail!("{}", errors.join("\n"));
    }
    Ok(reports)
}

/// Summary, JSON, JUnit, metrics, hook; the exit status.
async fn finish(
    shared: &Shared,
    args: &VerifyArgs,
    reports: &[RunReport],
    idle: &[String],
) -> Result<ExitCode> {
    let all_passed =
        reports.iter().all(|r| r.result == Outcome::Passed) && shared.interrupt.borrow().is_none();
    let json = show::report_json(reports, idle);
    let text = serde_json::to_string_pretty(&json)?;
    if args.json {
        println!("{text}");
    } else if !reports.is_empty() {
        println!("{}", show::summary(reports));
    }
    let mut problems = Vec::new();
    if let Some(f) = &args.junit {
        if let Err(e) = outputs::write_atomic(f, &wayback_core::verify::report::junit(reports)) {
            problems.push(format!("--junit: {}", wayback_engine::error::render(&e)));
        }
    }
    if let Err(e) = outputs::write_metrics(&shared.cfg, &shared.history) {
        problems.push(wayback_engine::error::render(&e));
    }
    if !all_passed {
        if let Some(why) = outputs::run_hook(&shared.cfg, &text).await {
            eprintln!("wayback: warning: {why}");
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("\n"));
    }
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// SIGINT/SIGTERM: every run stops (its instance is torn down) and is recorded as interrupted.
async fn relay_signals(tx: watch::Sender<Option<String>>) {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let why = tokio::select! {
        _ = int.recv() => "interrupted",
        _ = term.recv() => "stopped (SIGTERM)",
    };
    let _ = tx.send(Some(why.into()));
}

/// The jobs named on the command line (or all), each loaded and checked.
fn load_jobs(cfg: &Config, args: &VerifyArgs) -> Result<Vec<Job>> {
    let dir = &cfg.verify.jobs_dir;
    let mut files: Vec<PathBuf> = args.job_files.clone();
    for name in &args.jobs {
        job::name_of(Path::new(&format!("{name}.toml"))).map_err(|e| BadInput::new(e.message))?;
        files.push(dir.join(format!("{name}.toml")));
    }
    if args.all {
        files.extend(jobs_in(dir)?);
    }
    if files.is_empty() {
        return Err(BadInput::new(format!(
            "which jobs? give JOB (a file {}/JOB.toml), --job FILE or --all (see docs/verify.md)",
            dir.display()
        ))
        .into());
    }
    let mut jobs: Vec<Job> = Vec::new();
    for f in files {
        if !f.is_file() {
            return Err(BadInput::new(format!("no verify job {}", f.display())).into());
        }
        let j = job::load(&f).map_err(|e| BadInput::new(e.to_string()))?;
        if let Some(o) = jobs.iter().find(|o| o.name == j.name) {
            return Err(BadInput::new(format!(
                "two jobs are named {}: {} and {}",
                j.name,
                o.file.display(),
                f.display()
            ))
            .into());
        }
        jobs.push(j);
    }
    Ok(jobs)
}

/// `*.toml` in the jobs directory, by name.
fn jobs_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        BadInput::new(format!(
            "cannot read the jobs directory {} ([verify] jobs_dir): {e}",
            dir.display()
        ))
    })?;
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(BadInput::new(format!(
            "no jobs in {} (NAME.toml files; see docs/verify.md)",
            dir.display()
        ))
        .into());
    }
    Ok(files)
}

/// Which snapshots of `job` this invocation verifies.
fn choose_snapshots(job: &Job, args: &VerifyArgs, history: &History) -> Result<Vec<Snapshot>> {
    let bad = |why: String| {
        BadInput::new(format!(
            "verify job {} ({}): root {}: {why}",
            job.name,
            job.file.display(),
            job.root.display()
        ))
    };
    let cat = wayback_engine::catalog::load_catalog(std::slice::from_ref(&job.root))
        .map_err(|e| bad(wayback_engine::error::render(&e)))?;
    let series = choose::series_of(&cat, job.series.as_deref()).map_err(bad)?;
    if let Some(text) = args.snapshot.as_ref().or(job.snapshot.as_ref()) {
        let sel: Selector = text.parse().map_err(|e| bad(format!("{e}")))?;
        let sel = wayback_engine::catalog::canonical_selector(sel)?;
        let snap = selector::resolve_in(&sel, &cat, wayback_engine::clock::now())
            .map_err(|e| bad(e.to_string()))?;
        return Ok(vec![snap.clone()]);
    }
    let mode = if args.since_last {
        Mode::SinceLast
    } else {
        Mode::Newest
    };
    let verified = history.verified(&job.name)?;
    Ok(choose::pending(&series, &verified, mode)
        .into_iter()
        .cloned()
        .collect())
}
