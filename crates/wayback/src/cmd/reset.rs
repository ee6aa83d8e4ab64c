//! `wayback reset NAME SELECTOR [--dry-run] [--json]`: swap an instance the daemon hosts to another snapshot
//! (the engine's `reset`: a new clone, the processes restarted on it, the same name, hostname, gate and share
//! link; the old clone removed). The selector is checked here first (bad input: exit 2, nothing changed),
//! resolved to a path, and the daemon — which hosts the instance — checks it again and does the swap,
//! relaying its progress.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use wayback_core::{Config, InstanceName};
use wayback_engine::control;
use wayback_engine::progress::Progress;
use wayback_engine::state::InstanceDir;
use wayback_engine::status::InstanceStatus;

#[derive(Debug, Args)]
pub struct ResetArgs {
    pub name: InstanceName,
    /// The snapshot to run on: a path or a selector (`@11900`, `/persist@2026-11-14`, `@2w`)
    pub snapshot: String,
    /// Check and show what would change; change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cfg: &Config, a: ResetArgs, progress: Progress) -> Result<ExitCode> {
    let dir = InstanceDir::open(cfg, &a.name)?;
    wayback_engine::reset::check_host(&dir)?;
    let plan = dir.plan()?;
    let rp = wayback_engine::reset::plan(cfg, &plan, &a.snapshot)?;
    if a.dry_run {
        if a.json {
            println!("{}", serde_json::to_string_pretty(&rp)?);
        } else {
            println!(
                "reset {}: {} -> {}\n  new clone {} (made at {}, swapped in after the container stops)\n  old clone removed; name, hostname, gate, share link and publishes stay",
                rp.name,
                rp.from.path.display(),
                rp.to.path.display(),
                rp.clone.display(),
                rp.next.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let req = control::Request::Reset {
        name: a.name.clone(),
        snapshot: rp.to.path.display().to_string(),
    };
    let reply = control::call(cfg, &req, |line| {
        if !progress.quiet {
            eprintln!("{line}");
        }
    })
    .await?;
    if let control::Reply::Ready { status } = reply {
        if a.json {
            println!("{status}");
        } else {
            let s: InstanceStatus = serde_json::from_value(status)?;
            println!(
                "{} now runs on {}",
                s.ready_line(),
                s.source.as_deref().unwrap_or("?")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
