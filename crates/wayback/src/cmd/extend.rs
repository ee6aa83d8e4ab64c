//! `wayback extend NAME DURATION`: push an instance's expiry back. The owner re-reads the expiry every
//! second, so the new time takes effect at once.

use anyhow::Result;
use std::process::ExitCode;
use wayback_core::{Config, Duration, InstanceName};

use wayback_engine::state::InstanceDir;

pub fn extend(cfg: &Config, name: &InstanceName, by: Duration) -> Result<ExitCode> {
    let dir = InstanceDir::open(cfg, name)?;
    let now = wayback_engine::clock::now_secs();
    // Extending an instance that is about to expire counts from now, not from the old expiry.
    let expires = dir.expires().unwrap_or(now).max(now) + by.as_secs();
    dir.set_expires(expires)?;
    println!("{name} now expires in {}", Duration(expires - now));
    Ok(ExitCode::SUCCESS)
}
