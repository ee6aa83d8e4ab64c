//! `wayback keep`: an instance protected from TTL and idle expiry, until a time or until `keep --off`.
//! Kept in `keep.json` of the instance directory (written in the instance's format, like the expiry, so the
//! process hosting it reads it); no file means not kept. The hosting process reads it every second.
//!
//! The record is a new file, not a new field of an existing one: an instance an earlier release started has
//! none and reads as "not kept"; an earlier release hosting an instance ignores the file (it cannot know
//! it), which `keep` says when the owner's format predates it.

use serde::{Deserialize, Serialize};
use wayback_core::format::Persisted;

use super::{InstanceDir, StateError};

/// Protection from expiry: until `until` (unix seconds), or indefinitely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keep {
    #[serde(default)]
    pub until: Option<u64>,
}

impl Persisted for Keep {
    const KIND: &'static str = "keep record";
}

impl Keep {
    /// Whether the keep still protects the instance at `now`.
    pub fn active(&self, now: u64) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}

/// `keep --until TIME`: a duration from `now` (`4h`, `2d`) or a date and time (`2026-12-24`,
/// `2026-12-24T10:00`, with a zone or UTC) that must lie in the future. The error is the user's (bad input).
pub fn parse_until(text: &str, now: u64) -> Result<u64, String> {
    if let Ok(d) = text.parse::<wayback_core::Duration>() {
        return Ok(now + d.as_secs());
    }
    let t = wayback_core::civil::parse_datetime(text).ok_or_else(|| {
        format!("--until {text:?}: give a duration (4h, 2d) or a time (2026-12-24T10:00, UTC unless a zone is given)")
    })?;
    let at = t.start_utc();
    if at <= now as i64 {
        return Err(format!(
            "--until {text}: {} UTC is not in the future",
            wayback_core::civil::format_utc(at)
        ));
    }
    Ok(at as u64)
}

const FILE: &str = "keep.json";

impl InstanceDir {
    /// The keep record, if any (an unreadable one counts as none: expiry is the safe default).
    pub fn keep(&self) -> Option<Keep> {
        super::read_json(&self.path.join(FILE)).ok()
    }

    /// Whether TTL and idle expiry are suspended at `now`.
    pub fn kept(&self, now: u64) -> bool {
        self.keep().is_some_and(|k| k.active(now))
    }

    /// Protect the instance (`Some`), or end the protection (`None`; already none is fine).
    pub fn set_keep(&self, keep: Option<Keep>) -> Result<(), StateError> {
        let path = self.path.join(FILE);
        match keep {
            Some(k) => super::write_json_in(self.format(), &path, &k),
            None => match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(StateError::Write { path, source }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_until_a_time_or_forever() {
        assert!(Keep { until: None }.active(u64::MAX - 1));
        let k = Keep { until: Some(100) };
        assert!(k.active(99));
        assert!(!k.active(100));
    }

    #[test]
    fn until_durations_and_times() {
        assert_eq!(parse_until("4h", 1000), Ok(1000 + 4 * 3600));
        assert_eq!(parse_until("2030-01-01", 1000), Ok(1_893_456_000));
        assert_eq!(
            parse_until("2030-01-01T01:00+01:00", 1000),
            Ok(1_893_456_000)
        );
        assert!(parse_until("2000-01-01", 1_000_000_000)
            .unwrap_err()
            .contains("not in the future"));
        assert!(parse_until("tomorrow", 0)
            .unwrap_err()
            .contains("give a duration"));
    }

    #[test]
    fn format_0_and_1_records_read() {
        let v0: serde_json::Value = serde_json::json!({"until": 5});
        let k: Keep = wayback_core::format::decode(v0, std::path::Path::new("keep.json")).unwrap();
        assert_eq!(k.until, Some(5));
        let v1 = wayback_core::format::encode(&Keep { until: None }).unwrap();
        assert_eq!(v1, serde_json::json!({"format": 1, "until": null}));
    }
}
