//! The small lifecycle verbs on a running instance — `extend` and `keep` — as the CLI, the daemon's API and
//! the console call them: the same validation and the same messages everywhere. Each changes one file in
//! the instance directory that the hosting process re-reads every second (`expires.json`, `keep.json`), so
//! they work the same for instances the daemon hosts and for foreground `up`s.

use anyhow::Result;
use serde::Serialize;
use wayback_core::{Config, Duration, InstanceName};

use crate::error::BadInput;
use crate::state::{self, InstanceDir, Keep};

/// What `extend` did.
#[derive(Debug, Clone, Serialize)]
pub struct Extended {
    pub name: String,
    /// The new expiry (unix seconds).
    pub expires: u64,
    /// Time left from now.
    pub left: String,
}

/// Move the expiry `by` later; an instance about to expire counts from now, not from the old expiry.
pub fn extend(cfg: &Config, name: &InstanceName, by: Duration) -> Result<Extended> {
    let dir = InstanceDir::open(cfg, name)?;
    let now = crate::clock::now_secs();
    let expires = dir.expires().unwrap_or(now).max(now) + by.as_secs();
    dir.set_expires(expires)?;
    Ok(Extended {
        name: name.to_string(),
        expires,
        left: Duration(expires - now).to_string(),
    })
}

/// What `keep` should do (also on the daemon's socket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepRequest {
    /// Until `keep --off`.
    Forever,
    /// Until TIME (`--until`: a duration from now or a date and time).
    Until(String),
    /// End the protection.
    Off,
}

/// What `keep` did.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub name: String,
    pub kept: bool,
    /// The end of the protection (unix seconds), if it has one.
    pub until: Option<u64>,
    /// What happens now, in words.
    pub message: String,
}

/// Protect an instance from TTL and idle expiry, or end that. A bad `--until` is bad input (exit 2).
pub fn keep(cfg: &Config, name: &InstanceName, req: &KeepRequest) -> Result<Kept> {
    let dir = InstanceDir::open(cfg, name)?;
    let now = crate::clock::now_secs();
    let record = match req {
        KeepRequest::Forever => Some(Keep { until: None }),
        KeepRequest::Until(text) => Some(Keep {
            until: Some(state::parse_until(text, now).map_err(BadInput::new)?),
        }),
        KeepRequest::Off => None,
    };
    dir.set_keep(record)?;
    let expires = dir.expires().unwrap_or(now);
    let message = match record {
        Some(Keep { until: None }) => format!(
            "{name} is kept: no TTL or idle expiry until `wayback keep {name} --off`"
        ),
        Some(Keep { until: Some(u) }) => format!(
            "{name} is kept until {} UTC; then its TTL and idle time apply again",
            wayback_core::civil::format_utc(u as i64)
        ),
        None if expires <= now => format!(
            "{name} is no longer kept; its TTL has passed, so it is removed now (`wayback extend {name} DURATION` first to keep it running)"
        ),
        None => format!(
            "{name} is no longer kept; it expires in {}",
            Duration(expires - now)
        ),
    };
    Ok(Kept {
        name: name.to_string(),
        kept: record.is_some(),
        until: record.and_then(|k| k.until),
        message,
    })
}
