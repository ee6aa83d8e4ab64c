//! `versions --deleted DIR`: the paths that some snapshot holds under DIR and the live subvolume does not,
//! each with the last snapshot that still had it (what `restore --from` wants) and what it was there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use super::Entry;

/// A path gone from live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deleted {
    /// Relative to the snapshot root.
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
    /// Index of the first and of the last snapshot (of those given) holding it.
    #[serde(skip)]
    pub first: usize,
    #[serde(skip)]
    pub last: usize,
    /// How many of the snapshots hold it.
    pub snapshots: usize,
    /// What it was in the last snapshot holding it.
    #[serde(flatten)]
    pub entry: Entry,
    /// Whether its parent directory is gone from live too (listed itself): the text output folds these.
    pub under_deleted_dir: bool,
}

fn lossy<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

/// The paths in any of `snaps` (one listing per snapshot, oldest first: relative path → entry) that are
/// not in `live`, sorted by path.
pub fn deleted(snaps: &[BTreeMap<PathBuf, Entry>], live: &BTreeSet<PathBuf>) -> Vec<Deleted> {
    let mut out: BTreeMap<&Path, Deleted> = BTreeMap::new();
    for (i, listing) in snaps.iter().enumerate() {
        for (p, e) in listing.iter().filter(|(p, _)| !live.contains(*p)) {
            out.entry(p)
                .and_modify(|d| {
                    d.last = i;
                    d.snapshots += 1;
                    d.entry = e.clone();
                })
                .or_insert_with(|| Deleted {
                    path: p.clone(),
                    first: i,
                    last: i,
                    snapshots: 1,
                    entry: e.clone(),
                    under_deleted_dir: false,
                });
        }
    }
    let gone: BTreeSet<PathBuf> = out.keys().map(|p| p.to_path_buf()).collect();
    out.into_values()
        .map(|mut d| {
            d.under_deleted_dir = d.path.parent().is_some_and(|p| gone.contains(p));
            d
        })
        .collect()
}
