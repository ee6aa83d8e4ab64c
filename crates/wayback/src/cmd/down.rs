//! `wayback down` and `wayback gc`: stop instances and remove what they created.
//!
//! An instance whose owner (the foreground `up`) is alive is asked to stop with SIGTERM, and we wait for
//! its directory to disappear (woken by the owner's exit through a pidfd). An instance without a live
//! owner is torn down here from its journal.
//! Names are validated by clap ([`InstanceName`]) before anything is read; `--all` and `gc` see only what
//! `state::list` accepts as instances, so a stray entry in the state directory is never torn down.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use wayback_core::{Config, InstanceName};

use wayback_engine::control;
use wayback_engine::progress::Progress;
use wayback_engine::state::{self, InstanceDir};
use wayback_engine::sys::pidfd::{self, Pidfd};
use wayback_engine::teardown;

/// How long to wait for an owner to finish tearing its instance down.
const OWNER_WAIT: Duration = Duration::from_secs(90);

pub async fn down(
    cfg: &Config,
    names: Vec<InstanceName>,
    all: bool,
    progress: Progress,
) -> Result<ExitCode> {
    let names = if all { state::list(cfg) } else { names };
    let dirs = names
        .iter()
        .map(|n| InstanceDir::open(cfg, n))
        .collect::<Result<Vec<_>, _>>()?;
    let mut failed = Vec::new();
    for dir in dirs {
        if let Err(e) = down_one(cfg, &dir, &progress).await {
            failed.push(format!("{}: {e:#}", dir.name));
        }
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(anyhow!("{}", failed.join("\n")))
    }
}

async fn down_one(cfg: &Config, dir: &InstanceDir, progress: &Progress) -> Result<()> {
    if dir.owner().is_some_and(|o| o.daemon && o.alive()) {
        progress.note(format!("asking the daemon to stop {}", dir.name));
        control::call(
            cfg,
            &control::Request::Down {
                name: dir.name.clone(),
            },
            |l| progress.note(l),
        )
        .await?;
        progress.note(format!("{} removed", dir.name));
        return Ok(());
    }
    if let Some(owner) = dir
        .owner()
        .filter(|o| o.alive() && o.pid != std::process::id() as i32)
    {
        progress.note(format!("asking {} (pid {}) to stop", dir.name, owner.pid));
        match kill(Pid::from_raw(owner.pid), Signal::SIGTERM) {
            Ok(()) | Err(nix::Error::ESRCH) => {}
            Err(e) => {
                return Err(anyhow!(
                    "cannot signal owner pid {} of {}: {e}",
                    owner.pid,
                    dir.name
                ))
            }
        }
        // Held by a pidfd, the owner's exit wakes us at once; the directory is looked at every 5 ms
        // meanwhile (an owner that removed it may still be printing). No pidfd: look every 20 ms.
        let pidfd = Pidfd::open(owner.pid, Some(owner.start_time))
            .ok()
            .flatten()
            .map(std::sync::Arc::new);
        let start = Instant::now();
        while dir.path.exists() && owner.alive() {
            if start.elapsed() > OWNER_WAIT {
                return Err(anyhow!(
                    "{} did not stop within {}s (owner pid {})",
                    dir.name,
                    OWNER_WAIT.as_secs(),
                    owner.pid
                ));
            }
            match &pidfd {
                Some(fd) => {
                    let fd = fd.clone();
                    tokio::task::spawn_blocking(move || {
                        pidfd::wait_all(&[&fd], Duration::from_millis(5))
                    })
                    .await?;
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        if !dir.path.exists() {
            progress.note(format!("{} removed", dir.name));
            return Ok(());
        }
        // The owner died while stopping: finish its work below.
    }
    teardown(dir, progress).await
}

async fn teardown(dir: &InstanceDir, progress: &Progress) -> Result<()> {
    let td = teardown::teardown(dir, progress).await;
    if td.errors.is_empty() {
        progress.note(format!("{} removed", dir.name));
        Ok(())
    } else {
        Err(anyhow!(
            "teardown incomplete:\n  {}",
            td.errors.join("\n  ")
        ))
    }
}

/// Remove every instance whose owner is gone.
pub async fn gc(cfg: &Config, json: bool, progress: Progress) -> Result<ExitCode> {
    let mut report = Vec::new();
    let mut failed = false;
    for name in state::list(cfg) {
        let dir = match InstanceDir::open(cfg, &name) {
            Ok(d) => d,
            Err(e @ wayback_engine::state::StateError::Format(_)) => {
                // A later release's instance: left alone, and said so.
                eprintln!("{name}: left alone: {e}");
                failed = true;
                continue;
            }
            Err(e) => {
                // Changed since it was listed (removed by its owner meanwhile, or replaced).
                tracing::debug!("{name}: {e}");
                continue;
            }
        };
        if dir.owner().is_some_and(|o| o.alive()) {
            continue;
        }
        // A daemon's instance whose container runs is adopted by the next `wayback serve` (gc from cron
        // during a daemon restart must not remove it).
        if wayback_engine::status::State::of(&dir) == wayback_engine::status::State::DaemonDown {
            if !json {
                eprintln!(
                    "{name}: kept: its daemon is down and adopts it when it starts (`wayback down {name}` removes it)"
                );
            }
            continue;
        }
        let td = teardown::teardown(&dir, &progress).await;
        failed |= !td.errors.is_empty();
        if !json {
            for r in &td.removed {
                println!("{name}: removed {r}");
            }
            for l in &td.left {
                println!("{name}: {l}");
            }
            for e in &td.errors {
                eprintln!("{name}: {e}");
            }
        }
        report.push(serde_json::json!({
            "name": name,
            "removed": td.removed,
            "left": td.left,
            "errors": td.errors,
        }));
    }
    // Logs of failed starts, once older than keep_failed_logs.
    for name in wayback_engine::state::failed::collect(cfg, cfg.keep_failed_logs.as_secs()) {
        if !json {
            println!("{name}: removed the logs of a failed start");
        }
        report.push(serde_json::json!({ "name": name, "removed": ["logs of a failed start"] }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.is_empty() {
        eprintln!("nothing to collect");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
