//! Which VolumeSnapshot each claim comes back from, by the host's `--at` rules: the newest *ready*
//! snapshot of that PVC taken at or before TIME; a tie is an error that lists the candidates; the skew
//! between the chosen snapshots is reported. TIME is parsed exactly like the host's `--at`
//! (`2026-11-14T10:00`, `2026-11-14` meaning the end of that day, zones, or an age such as `2w`).
//!
//! Pure: the caller passes the snapshots and `now`.

use jiff::Timestamp;
use wayback_core::civil;
use wayback_core::Duration;

use crate::crd::SnapshotSource;
use crate::snapshot::VolumeSnapshot;

/// `YYYY-MM-DD HH:MM:SS UTC`, as the host prints snapshot times.
pub fn fmt_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid time {input:?}: use 2026-11-14T10:00 (UTC unless a zone like +01:00 follows), 2026-11-14 (its end), or an age like 2w or 36h")]
pub struct TimeError {
    pub input: String,
}

/// TIME as `--at` takes it, resolved against `now`.
pub fn parse_time(s: &str, now: Timestamp) -> Result<Timestamp, TimeError> {
    let err = || TimeError { input: s.into() };
    if s.len() >= 10 && s.as_bytes().get(4) == Some(&b'-') {
        let t = civil::parse_datetime(s).ok_or_else(err)?;
        return Timestamp::from_second(t.end_utc()).map_err(|_| err());
    }
    let d: Duration = s.parse().map_err(|_| err())?;
    let secs = i64::try_from(d.as_secs()).map_err(|_| err())?;
    Timestamp::from_second(now.as_second().saturating_sub(secs)).map_err(|_| err())
}

/// One claim's snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub claim: String,
    pub snapshot: String,
    pub taken_at: Timestamp,
    /// Named by the user rather than chosen by time.
    pub explicit: bool,
    /// Newer snapshots at or before TIME that were passed over because they are not ready (name, why).
    pub passed_over: Vec<(String, String)>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ChoiceError {
    #[error("no VolumeSnapshot of PVC {claim} was taken at or before {at}{hint}")]
    Missing {
        claim: String,
        at: String,
        hint: String,
    },
    #[error("no snapshot of PVC {claim} at or before {at} is ready: {}; wait, or name an older one with --snapshot {claim}=NAME", list(.candidates))]
    NotReady {
        claim: String,
        at: String,
        candidates: Vec<(String, String)>,
    },
    #[error("the newest ready snapshots of PVC {claim} at or before {at} were taken at the same second: {}; name one with --snapshot {claim}=NAME", .names.join(", "))]
    Ambiguous {
        claim: String,
        at: String,
        names: Vec<String>,
    },
    #[error("VolumeSnapshot {name} (for PVC {claim}) does not exist in this namespace{hint}")]
    Unknown {
        claim: String,
        name: String,
        hint: String,
    },
    #[error("VolumeSnapshot {name} (for PVC {claim}) is not ready: {reason}")]
    ExplicitNotReady {
        claim: String,
        name: String,
        reason: String,
    },
    #[error("--snapshot names PVC {claim}, which the workload does not use (its claims: {})", .claims.join(", "))]
    UnknownClaim { claim: String, claims: Vec<String> },
}

impl ChoiceError {
    /// Whether waiting can fix it (a snapshot that is not ready yet).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ChoiceError::NotReady { .. } | ChoiceError::ExplicitNotReady { .. }
        )
    }
}

fn list(c: &[(String, String)]) -> String {
    c.iter()
        .map(|(n, why)| format!("{n} ({why})"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn name(s: &VolumeSnapshot) -> String {
    s.metadata.name.clone().unwrap_or_default()
}

/// Choose a snapshot for every claim: the explicit ones first, the others by time.
pub fn choose(
    claims: &[String],
    explicit: &[SnapshotSource],
    at: Timestamp,
    snaps: &[VolumeSnapshot],
) -> Result<Vec<Choice>, ChoiceError> {
    if let Some(e) = explicit.iter().find(|e| !claims.contains(&e.claim)) {
        return Err(ChoiceError::UnknownClaim {
            claim: e.claim.clone(),
            claims: claims.to_vec(),
        });
    }
    claims
        .iter()
        .map(|claim| match explicit.iter().find(|e| e.claim == *claim) {
            Some(e) => named(claim, &e.volume_snapshot, snaps),
            None => by_time(claim, at, snaps),
        })
        .collect()
}

fn named(claim: &str, wanted: &str, snaps: &[VolumeSnapshot]) -> Result<Choice, ChoiceError> {
    let Some(s) = snaps.iter().find(|s| name(s) == wanted) else {
        let of_claim: Vec<String> = snaps
            .iter()
            .filter(|s| s.claim() == Some(claim))
            .map(name)
            .collect();
        let hint = if of_claim.is_empty() {
            String::new()
        } else {
            format!(" (snapshots of {claim}: {})", of_claim.join(", "))
        };
        return Err(ChoiceError::Unknown {
            claim: claim.into(),
            name: wanted.into(),
            hint,
        });
    };
    let not_ready = |reason: String| ChoiceError::ExplicitNotReady {
        claim: claim.into(),
        name: wanted.into(),
        reason,
    };
    if !s.is_ready() {
        return Err(not_ready(s.not_ready_reason()));
    }
    let taken_at = s
        .taken_at()
        .ok_or_else(|| not_ready("no creation time".into()))?;
    Ok(Choice {
        claim: claim.into(),
        snapshot: wanted.into(),
        taken_at,
        explicit: true,
        passed_over: Vec::new(),
    })
}

fn by_time(claim: &str, at: Timestamp, snaps: &[VolumeSnapshot]) -> Result<Choice, ChoiceError> {
    let at_s = fmt_time(at);
    let of_claim: Vec<(&VolumeSnapshot, Timestamp)> = snaps
        .iter()
        .filter(|s| s.claim() == Some(claim))
        .filter_map(|s| Some((s, s.taken_at()?)))
        .collect();
    let mut before: Vec<(&VolumeSnapshot, Timestamp)> =
        of_claim.iter().copied().filter(|(_, t)| *t <= at).collect();
    if before.is_empty() {
        let hint = match of_claim.iter().min_by_key(|(_, t)| *t) {
            Some((s, t)) => format!(" (the oldest is {}, {})", name(s), fmt_time(*t)),
            None => format!(
                " (it has no VolumeSnapshot in this namespace: take one, or name one with --snapshot {claim}=NAME)"
            ),
        };
        return Err(ChoiceError::Missing {
            claim: claim.into(),
            at: at_s,
            hint,
        });
    }
    // Newest first; names break ties only for a stable order in messages.
    before.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| name(a.0).cmp(&name(b.0))));
    let Some(pos) = before.iter().position(|(s, _)| s.is_ready()) else {
        return Err(ChoiceError::NotReady {
            claim: claim.into(),
            at: at_s,
            candidates: before
                .iter()
                .map(|(s, _)| (name(s), s.not_ready_reason()))
                .collect(),
        });
    };
    let (best, t) = before[pos];
    let ties: Vec<String> = before[pos..]
        .iter()
        .filter(|(s, tt)| *tt == t && s.is_ready())
        .map(|(s, _)| name(s))
        .collect();
    if ties.len() > 1 {
        return Err(ChoiceError::Ambiguous {
            claim: claim.into(),
            at: at_s,
            names: ties,
        });
    }
    Ok(Choice {
        claim: claim.into(),
        snapshot: name(best),
        taken_at: t,
        explicit: false,
        passed_over: before[..pos]
            .iter()
            .map(|(s, _)| (name(s), s.not_ready_reason()))
            .collect(),
    })
}

/// Seconds between the oldest and the newest choice (with two or more).
pub fn skew(choices: &[Choice]) -> Option<i64> {
    if choices.len() < 2 {
        return None;
    }
    let secs = choices.iter().map(|c| c.taken_at.as_second());
    let (lo, hi) = secs.fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)));
    Some(hi - lo)
}

#[cfg(test)]
mod tests;
