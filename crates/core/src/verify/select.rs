//! Which snapshots a verify run takes, from the job's series (oldest first) and what the history says was
//! verified already (a run with a verdict, passed or failed: an interrupted run verified nothing).
//!
//! - default: the newest snapshot, unless it was verified already (then nothing: a timer that fires more
//!   often than snapshots are taken does no work twice);
//! - `--since-last`: every snapshot newer than the newest verified one, oldest first (all of them when
//!   none was verified yet), so a series is proven snapshot by snapshot and the first bad one shows;
//! - a selector (`--snapshot` or the job's `snapshot`): exactly the snapshot it names, verified or not.

use std::collections::BTreeSet;

use crate::catalog::{Catalog, Snapshot};

use super::report::SnapshotRef;

/// How to choose among a series' snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Newest,
    SinceLast,
}

impl From<&Snapshot> for SnapshotRef {
    fn from(s: &Snapshot) -> SnapshotRef {
        SnapshotRef {
            id: s.id,
            path: s.path.display().to_string(),
            date: s.date,
            uuid: s.uuid.clone(),
            series: s.series(),
        }
    }
}

/// The snapshots of the job's series, oldest first. `wanted` names the series (as `Snapshot::series`
/// gives it); without it the catalog must hold exactly one.
pub fn series_of<'a>(cat: &'a Catalog, wanted: Option<&str>) -> Result<Vec<&'a Snapshot>, String> {
    let mut names: Vec<String> = cat.snapshots.iter().map(Snapshot::series).collect();
    names.sort();
    names.dedup();
    let pick = match (wanted, names.as_slice()) {
        (_, []) => return Err("no snapshots there (see `wayback snapshots ROOT`)".into()),
        (Some(w), _) if names.iter().any(|n| n == w) => w.to_string(),
        (Some(w), _) => return Err(format!("no series {w:?} there; series: {}", quoted(&names))),
        (None, [one]) => one.clone(),
        (None, _) => {
            return Err(format!(
                "it holds several series of snapshots: set series to one of {}",
                quoted(&names)
            ))
        }
    };
    Ok(cat
        .snapshots
        .iter()
        .filter(|s| s.series() == pick)
        .collect())
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The snapshots to verify, oldest first. `verified` holds the keys ([`SnapshotRef::key`]) of snapshots
/// with a verdict in the history.
pub fn pending<'a>(
    series: &[&'a Snapshot],
    verified: &BTreeSet<String>,
    mode: Mode,
) -> Vec<&'a Snapshot> {
    let done = |s: &Snapshot| verified.contains(&SnapshotRef::from(s).key());
    match mode {
        Mode::Newest => series
            .last()
            .filter(|s| !done(s))
            .map(|s| vec![*s])
            .unwrap_or_default(),
        Mode::SinceLast => {
            let after = series.iter().rposition(|s| done(s)).map_or(0, |i| i + 1);
            series[after..].to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Source;
    use std::path::PathBuf;

    fn snap(id: u64, dir: &str) -> Snapshot {
        Snapshot {
            id,
            date: 1_700_000_000 + id as i64 * 3600,
            seq: 0,
            source: Source::Plain,
            description: None,
            readonly: true,
            path: PathBuf::from(format!("/pool/{dir}/s{id}")),
            root: PathBuf::from("/pool"),
            uuid: Some(format!("uuid-{dir}-{id}")),
            parent_uuid: None,
        }
    }

    fn catalog() -> Catalog {
        Catalog {
            snapshots: (1..=6).map(|i| snap(i, "snaps")).collect(),
            ..Catalog::default()
        }
    }

    fn ids(v: &[&Snapshot]) -> Vec<u64> {
        v.iter().map(|s| s.id).collect()
    }

    #[test]
    fn newest_unless_verified() {
        let cat = catalog();
        let series = series_of(&cat, None).unwrap();
        let none = BTreeSet::new();
        assert_eq!(ids(&pending(&series, &none, Mode::Newest)), [6]);
        let six: BTreeSet<String> = ["uuid-snaps-6".to_string()].into();
        assert!(pending(&series, &six, Mode::Newest).is_empty());
    }

    #[test]
    fn since_last_starts_after_the_newest_verified() {
        let cat = catalog();
        let series = series_of(&cat, None).unwrap();
        assert_eq!(
            ids(&pending(&series, &BTreeSet::new(), Mode::SinceLast)),
            [1, 2, 3, 4, 5, 6]
        );
        let v: BTreeSet<String> = ["uuid-snaps-1".into(), "uuid-snaps-3".into()].into();
        assert_eq!(ids(&pending(&series, &v, Mode::SinceLast)), [4, 5, 6]);
        let all: BTreeSet<String> = ["uuid-snaps-6".into()].into();
        assert!(pending(&series, &all, Mode::SinceLast).is_empty());
    }

    #[test]
    fn several_series_need_a_name() {
        let mut cat = catalog();
        cat.snapshots.push(snap(7, "other"));
        let e = series_of(&cat, None).unwrap_err();
        assert!(
            e.contains("plain /pool/other") && e.contains("plain /pool/snaps"),
            "{e}"
        );
        let s = series_of(&cat, Some("plain /pool/other")).unwrap();
        assert_eq!(ids(&s), [7]);
        assert!(series_of(&cat, Some("nope"))
            .unwrap_err()
            .contains("no series"));
        assert!(series_of(&Catalog::default(), None).is_err());
    }
}
