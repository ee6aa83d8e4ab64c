//! Snapshot selectors, as `up`, `find --in` and `diff` accept them, and their resolution against a
//! catalog ([`crate::catalog`]):
//!
//! - a path: `/persist/.snapshots/11921/snapshot`
//! - an id: `@11921` (snapper number, or list id for btrbk/plain), `/persist@11921` within one ROOT
//! - a time: `@2026-11-14`, `@2026-11-14T10:00`, `@2026-11-14T10:00+01:00` — the newest snapshot at or
//!   before it (UTC unless a zone is given; a date alone means the end of that day)
//! - an age: `@2w`, `@36h` — the newest snapshot at least that old
//! - ranges for `find --in`: `@100..@120`, `@2026-11-01..`, `..@2w`, a single selector, or `..` (all)
//!
//! Only snapshots are ever picked: [`resolve_in`] and [`select_in`] work on a whole
//! [`Catalog`](crate::catalog::Catalog), whose live (writable) subvolumes are never candidates; a path to
//! one is an error that says what it is, and an empty selection names the live subvolumes it passed over.
//!
//! Pure: no clock (the caller passes `now`), no filesystem. An ambiguous or empty selection is an error
//! that lists the candidates.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::catalog::Snapshot;
use crate::civil::{self, ParsedTime};
use crate::duration::Duration;

pub const EXAMPLES: &str = "examples: /persist/.snapshots/11921/snapshot, @11921, /persist@11921, \
                            @2026-11-14, @2026-11-14T10:00, @2w, @36h";

/// What follows the `@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Id(u64),
    Time(ParsedTime),
    Ago(Duration),
}

/// A parsed selector; `text` is what the user wrote (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub text: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Path(PathBuf),
    At {
        root: Option<PathBuf>,
        target: Target,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error("invalid snapshot selector {input:?}: {why} ({EXAMPLES})")]
    Parse { input: String, why: String },
    #[error("no snapshot matches {selector}{hint}")]
    Empty { selector: String, hint: String },
    #[error("{selector} is ambiguous; it matches:\n  {}\npick one with ROOT@N (e.g. /persist@11921) or give its path", candidates.join("\n  "))]
    Ambiguous {
        selector: String,
        candidates: Vec<String>,
    },
    #[error("{path} is not a snapshot in the catalog of the given roots (run `wayback snapshots ROOT` to list them)")]
    NotInCatalog { path: PathBuf },
    /// A path to a live (writable) subvolume where a snapshot is needed (`message` names the path).
    #[error("{message}")]
    Live { selector: String, message: String },
}

fn parse_target(s: &str) -> Result<Target, String> {
    if s.is_empty() {
        return Err("nothing after '@'".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(Target::Id)
            .map_err(|_| "number too large".into());
    }
    if s.len() >= 10 && s.as_bytes()[4] == b'-' {
        return civil::parse_datetime(s)
            .map(Target::Time)
            .ok_or_else(|| "not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][zone]".into());
    }
    s.parse::<Duration>()
        .map(Target::Ago)
        .map_err(|e| e.to_string())
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: String| SelectorError::Parse {
            input: s.into(),
            why,
        };
        if s.is_empty() {
            return Err(err("empty".into()));
        }
        let kind = match s.rsplit_once('@') {
            // A leading '@' always selects; elsewhere only when what follows parses (so a path like
            // /mnt/@home stays a path).
            Some(("", t)) => Kind::At {
                root: None,
                target: parse_target(t).map_err(err)?,
            },
            Some((root, t)) => match parse_target(t) {
                Ok(target) => Kind::At {
                    root: Some(PathBuf::from(root)),
                    target,
                },
                Err(_) => Kind::Path(s.into()),
            },
            None => Kind::Path(s.into()),
        };
        Ok(Selector {
            text: s.into(),
            kind,
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Selector {
    /// The path, when the selector is one (not resolved against a catalog: `up` takes any subvolume).
    pub fn path(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Path(p) => Some(p),
            Kind::At { .. } => None,
        }
    }
    /// The ROOT of `ROOT@...`, which the caller should include in discovery.
    pub fn root(&self) -> Option<&Path> {
        match &self.kind {
            Kind::At { root, .. } => root.as_deref(),
            Kind::Path(_) => None,
        }
    }
}

/// Whether `s` lies under ROOT (the discovery root, snapper's root, or a prefix of its path).
fn in_root(s: &Snapshot, root: Option<&Path>) -> bool {
    root.is_none_or(|r| s.root == r || s.path.starts_with(r))
}

fn labels<'a>(it: impl IntoIterator<Item = &'a Snapshot>) -> Vec<String> {
    it.into_iter()
        .map(|s| format!("{}  ({})", s.label(), s.series()))
        .collect()
}

/// The newest snapshot of each series at or before `t`; ties within a series are all returned.
fn newest_at_or_before<'a>(pool: &[&'a Snapshot], t: i64) -> Vec<Vec<&'a Snapshot>> {
    let mut per_series: Vec<(String, Vec<&'a Snapshot>)> = Vec::new();
    for s in pool.iter().copied().filter(|s| s.date <= t) {
        let key = s.series();
        match per_series.iter_mut().find(|(k, _)| *k == key) {
            None => per_series.push((key, vec![s])),
            Some((_, best)) => {
                let (bd, bs) = (best[0].date, best[0].seq);
                if (s.date, s.seq) > (bd, bs) {
                    *best = vec![s];
                } else if (s.date, s.seq) == (bd, bs) {
                    best.push(s);
                }
            }
        }
    }
    per_series.into_iter().map(|(_, v)| v).collect()
}

/// Resolve a selector to exactly one snapshot of `snaps`. `now` is unix seconds (for `@2w`).
pub fn resolve<'a>(
    sel: &Selector,
    snaps: &'a [Snapshot],
    now: i64,
) -> Result<&'a Snapshot, SelectorError> {
    let (root, target) = match &sel.kind {
        Kind::Path(p) => {
            return snaps
                .iter()
                .find(|s| s.path == *p)
                .ok_or_else(|| SelectorError::NotInCatalog { path: p.clone() })
        }
        Kind::At { root, target } => (root.as_deref(), target),
    };
    let pool: Vec<&Snapshot> = snaps.iter().filter(|s| in_root(s, root)).collect();
    let empty = |hint: String| SelectorError::Empty {
        selector: sel.text.clone(),
        hint,
    };
    if pool.is_empty() {
        return Err(empty(match root {
            Some(r) => format!(" (no snapshots under {})", r.display()),
            None => " (no snapshots found in the given roots)".into(),
        }));
    }
    let t = match target {
        Target::Id(n) => {
            let hits: Vec<&Snapshot> = pool.iter().copied().filter(|s| s.id == *n).collect();
            return match hits.as_slice() {
                [one] => Ok(one),
                [] => {
                    let lo = pool.iter().map(|s| s.id).min().unwrap_or(0);
                    let hi = pool.iter().map(|s| s.id).max().unwrap_or(0);
                    Err(empty(format!(
                        " (ids present: {lo}..{hi}, not all of them)"
                    )))
                }
                many => Err(SelectorError::Ambiguous {
                    selector: sel.text.clone(),
                    candidates: labels(many.iter().copied()),
                }),
            };
        }
        Target::Time(pt) => pt.end_utc(),
        Target::Ago(d) => now.saturating_sub(d.as_secs() as i64),
    };
    let picks = newest_at_or_before(&pool, t);
    match picks.as_slice() {
        [one] if one.len() == 1 => Ok(one[0]),
        [] => {
            let oldest = pool
                .iter()
                .min_by_key(|s| s.order_key())
                .expect("non-empty");
            Err(empty(format!(
                " (nothing at or before {} UTC; the oldest is {})",
                civil::format_utc(t),
                oldest.label()
            )))
        }
        many => Err(SelectorError::Ambiguous {
            selector: sel.text.clone(),
            candidates: labels(many.iter().flatten().copied()),
        }),
    }
}

/// A range of snapshots for `find --in`: either bound may be open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub from: Option<Selector>,
    pub to: Option<Selector>,
    pub text: String,
}

/// Where `A..B` splits: the first `..` that is not a path component of its own (`../x`, `/a/../b`).
fn split_range(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(off) = s[i..].find("..") {
        let at = i + off;
        let before_sep = at == 0 || b[at - 1] == b'/';
        let after_sep = at + 2 == b.len() || b[at + 2] == b'/';
        if !(before_sep && after_sep) || s == ".." {
            return Some((&s[..at], &s[at + 2..]));
        }
        i = at + 2;
    }
    None
}

impl FromStr for Range {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bound = |t: &str| -> Result<Option<Selector>, SelectorError> {
            if t.is_empty() {
                Ok(None)
            } else {
                t.parse().map(Some)
            }
        };
        let (from, to) = match split_range(s) {
            Some((a, b)) => (bound(a)?, bound(b)?),
            None => {
                let one = bound(s)?;
                (one.clone(), one)
            }
        };
        Ok(Range {
            from,
            to,
            text: s.into(),
        })
    }
}

impl Range {
    /// Every root a bound names (`ROOT@...`), for discovery.
    pub fn roots(&self) -> Vec<&Path> {
        [&self.from, &self.to]
            .into_iter()
            .flatten()
            .filter_map(Selector::root)
            .collect()
    }
}

/// A resolved bound: a time, or one snapshot (which also restricts the range to its series).
enum Bound<'a> {
    Time(i64),
    Snap(&'a Snapshot),
}

fn bound<'a>(
    sel: &Selector,
    now: i64,
    lower: bool,
    one: &dyn Fn(&Selector) -> Result<&'a Snapshot, SelectorError>,
) -> Result<Bound<'a>, SelectorError> {
    match &sel.kind {
        Kind::At {
            target: Target::Time(t),
            ..
        } => Ok(Bound::Time(if lower { t.start_utc() } else { t.end_utc() })),
        Kind::At {
            target: Target::Ago(d),
            ..
        } => Ok(Bound::Time(now.saturating_sub(d.as_secs() as i64))),
        _ => one(sel).map(Bound::Snap),
    }
}

/// The snapshots of `snaps` inside `range`, in catalog order. Empty is an error.
pub fn select<'a>(
    range: &Range,
    snaps: &'a [Snapshot],
    now: i64,
) -> Result<Vec<&'a Snapshot>, SelectorError> {
    select_by(range, snaps, now, &|s| resolve(s, snaps, now))
}

/// [`select`], resolving bounds that name one snapshot with `one`.
fn select_by<'a>(
    range: &Range,
    snaps: &'a [Snapshot],
    now: i64,
    one: &dyn Fn(&Selector) -> Result<&'a Snapshot, SelectorError>,
) -> Result<Vec<&'a Snapshot>, SelectorError> {
    let from = range
        .from
        .as_ref()
        .map(|s| bound(s, now, true, one))
        .transpose()?;
    let to = range
        .to
        .as_ref()
        .map(|s| bound(s, now, false, one))
        .transpose()?;
    let roots = range.roots();
    let series: Vec<String> = [&from, &to]
        .into_iter()
        .flatten()
        .filter_map(|b| match b {
            Bound::Snap(s) => Some(s.series()),
            Bound::Time(_) => None,
        })
        .collect();
    let out: Vec<&Snapshot> = snaps
        .iter()
        .filter(|s| roots.iter().all(|r| in_root(s, Some(r))))
        .filter(|s| series.iter().all(|k| *k == s.series()))
        .filter(|s| match &from {
            None => true,
            Some(Bound::Time(t)) => s.date >= *t,
            Some(Bound::Snap(b)) => s.order_key() >= b.order_key(),
        })
        .filter(|s| match &to {
            None => true,
            Some(Bound::Time(t)) => s.date <= *t,
            Some(Bound::Snap(b)) => s.order_key() <= b.order_key(),
        })
        .collect();
    if out.is_empty() {
        return Err(SelectorError::Empty {
            selector: range.text.clone(),
            hint: format!(" (the catalog has {} snapshots)", snaps.len()),
        });
    }
    Ok(out)
}

mod in_catalog;
pub use in_catalog::{resolve_in, select_in};

#[cfg(test)]
mod tests;
