//! `wayback extend NAME DURATION` and `wayback keep NAME [--until TIME | --off]`: push an instance's expiry
//! back, or suspend it. The owner re-reads both every second, so they take effect at once (the engine's
//! `verbs`, shared with the console).

use anyhow::Result;
use clap::Args;
use std::process::ExitCode;
use wayback_core::{Config, Duration, InstanceName};

use wayback_engine::verbs::{self, KeepRequest};

pub fn extend(cfg: &Config, name: &InstanceName, by: Duration) -> Result<ExitCode> {
    let e = verbs::extend(cfg, name, by)?;
    println!("{name} now expires in {}", e.left);
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct KeepArgs {
    pub name: InstanceName,
    /// Keep it only until TIME: a duration from now (4h, 2d) or a time (2026-12-24T10:00; UTC unless a zone
    /// is given)
    #[arg(long, value_name = "TIME", conflicts_with = "off")]
    pub until: Option<String>,
    /// End the protection: the TTL and idle time apply again
    #[arg(long)]
    pub off: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn keep(cfg: &Config, a: KeepArgs) -> Result<ExitCode> {
    let req = match (a.off, a.until) {
        (true, _) => KeepRequest::Off,
        (false, Some(t)) => KeepRequest::Until(t),
        (false, None) => KeepRequest::Forever,
    };
    let k = verbs::keep(cfg, &a.name, &req)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&k)?);
    } else {
        println!("{}", k.message);
    }
    Ok(ExitCode::SUCCESS)
}
