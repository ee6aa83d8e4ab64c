//! File history across snapshots, for `wayback versions`: the distinct versions of one path over the
//! snapshots of its series (oldest first), each with the range of snapshots it spans, and where the path
//! was absent (deleted, or not yet made); and, for `versions --deleted DIR`, the paths some snapshot holds
//! under a directory that the live subvolume no longer has.
//!
//! Two observations of the path are the same version when they are the same kind of thing and:
//! - directories: always (a directory's contents have their own history: `--deleted`, `diff`);
//! - symlinks: the same target;
//! - files: the same size and mtime (to the nanosecond), and either the same inode with the same ctime
//!   (snapshots of one subvolume keep inode numbers, and ctime cannot be set from user space, so nothing
//!   was written in between) or, failing that, the same content hash. The hash is asked for only then:
//!   when size and mtime cannot tell two versions apart (a file rewritten and its mtime put back).
//!
//! A change of mode or owner alone is not a new version. Pure: the binary gathers one [`Entry`] per
//! snapshot and hashes on request (see `wayback::sys::history`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::change::FileType;

mod deleted;
mod render;
pub use deleted::{deleted, Deleted};
pub use render::{render, to_json};

/// What `lstat` (and `readlink`) says about the path in one tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    #[serde(rename = "type")]
    pub kind: FileType,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    #[serde(skip)]
    pub ctime: i64,
    #[serde(skip)]
    pub ctime_nsec: u32,
    #[serde(skip)]
    pub ino: u64,
    /// Permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// A symlink's target (never followed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<PathBuf>,
}

/// A SHA-256 digest of a file's content.
pub type Digest = [u8; 32];

/// Lower-case hex of a digest.
pub fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two observations are the same version, as far as metadata can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Same {
    Yes,
    No,
    /// Same kind, size and mtime, but not provably unchanged: compare content hashes.
    NeedHash,
}

/// Compare two observations by metadata (see the module doc).
pub fn same(a: &Entry, b: &Entry) -> Same {
    if a.kind != b.kind {
        return Same::No;
    }
    match a.kind {
        FileType::Dir => Same::Yes,
        FileType::Symlink if a.target == b.target => Same::Yes,
        FileType::Symlink => Same::No,
        FileType::File | FileType::Other => {
            if (a.size, a.mtime, a.mtime_nsec) != (b.size, b.mtime, b.mtime_nsec) {
                Same::No
            } else if (a.ino, a.ctime, a.ctime_nsec) == (b.ino, b.ctime, b.ctime_nsec)
                || a.kind == FileType::Other
            {
                Same::Yes
            } else {
                Same::NeedHash
            }
        }
    }
}

/// One distinct version of the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    /// 1, 2, … in order of first appearance.
    pub number: usize,
    /// The observation (index into the snapshots) it was first seen in: its size, mtime, owner.
    #[serde(skip)]
    pub first_seen: usize,
    #[serde(flatten)]
    pub entry: Entry,
    /// Hex SHA-256, when it had to be computed to tell this version from another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Consecutive snapshots with the same state of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum State {
    /// Version `version` (1-based) of the path.
    Present { version: usize },
    /// Not there; `deleted` when an earlier snapshot had it.
    Absent { deleted: bool },
}

/// A run of snapshots (indices into the observations, inclusive) in one [`State`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub state: State,
    pub first: usize,
    pub last: usize,
}

/// The live subvolume's state of the path, against the versions in the snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Live {
    /// The live subvolume was not looked at (none known).
    Unknown,
    Absent,
    /// The same as this version.
    Version {
        version: usize,
    },
    /// There, but unlike every version in the snapshots (changed since the newest).
    New,
}

/// The history of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub spans: Vec<Span>,
    pub versions: Vec<Version>,
    pub live: Live,
    /// How many files were hashed to tell versions apart.
    pub hashed: usize,
}

/// Hashes by observation index (the live one is index `snaps.len()`), each asked for at most once.
struct Hashes<'h> {
    hash: &'h mut dyn FnMut(usize) -> Option<Digest>,
    cache: BTreeMap<usize, Option<Digest>>,
}

impl Hashes<'_> {
    fn get(&mut self, i: usize) -> Option<Digest> {
        if let Some(d) = self.cache.get(&i) {
            return *d;
        }
        let d = (self.hash)(i);
        self.cache.insert(i, d);
        d
    }

    /// Same version? A hash that cannot be computed counts as different (shown, not merged).
    fn same(&mut self, obs: &[Option<&Entry>], i: usize, j: usize) -> bool {
        let (Some(a), Some(b)) = (obs[i], obs[j]) else {
            return false;
        };
        match same(a, b) {
            Same::Yes => true,
            Same::No => false,
            Same::NeedHash => match (self.get(i), self.get(j)) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            },
        }
    }
}

/// Group the observations of one path (one per snapshot, oldest first; `None`: absent) into spans and
/// distinct versions, and place `live` (`None`: not looked at; `Some(None)`: absent) among them. `hash`
/// gives the SHA-256 of the file at an observation index (`snaps.len()` for live), or `None` if it cannot
/// be read; it is called only for files whose size and mtime cannot tell them apart.
pub fn group(
    snaps: &[Option<Entry>],
    live: Option<Option<Entry>>,
    hash: &mut dyn FnMut(usize) -> Option<Digest>,
) -> History {
    let mut obs: Vec<Option<&Entry>> = snaps.iter().map(Option::as_ref).collect();
    if let Some(l) = &live {
        obs.push(l.as_ref());
    }
    let mut h = Hashes {
        hash,
        cache: BTreeMap::new(),
    };
    let mut versions: Vec<Version> = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    // The version of each observation (0: absent).
    let mut number = vec![0usize; obs.len()];
    for i in 0..obs.len() {
        if obs[i].is_none() {
            continue;
        }
        // The previous observation first (the usual case), then every known version's first sighting.
        let prev = i.checked_sub(1).filter(|&p| number[p] != 0);
        number[i] = match prev {
            Some(p) if h.same(&obs, p, i) => number[p],
            // Not the previous one's version (already told apart): any other known one?
            _ => versions
                .iter()
                .filter(|v| prev.is_none_or(|p| number[p] != v.number))
                .find(|v| h.same(&obs, v.first_seen, i))
                .map_or(0, |v| v.number),
        };
        if number[i] == 0 {
            versions.push(Version {
                number: versions.len() + 1,
                first_seen: i,
                entry: obs[i].expect("present").clone(),
                sha256: None,
            });
            number[i] = versions.len();
        }
    }
    let mut seen_any = false;
    for (i, &n) in number.iter().enumerate().take(snaps.len()) {
        let state = if n == 0 {
            State::Absent { deleted: seen_any }
        } else {
            seen_any = true;
            State::Present { version: n }
        };
        match spans.last_mut() {
            Some(s) if s.state == state => s.last = i,
            _ => spans.push(Span {
                state,
                first: i,
                last: i,
            }),
        }
    }
    // A version's hash, when one of its observations had to be hashed.
    for v in &mut versions {
        v.sha256 = h
            .cache
            .iter()
            .find(|(i, d)| number[**i] == v.number && d.is_some())
            .and_then(|(_, d)| d.as_ref())
            .map(hex);
    }
    let live = match live {
        None => Live::Unknown,
        Some(None) => Live::Absent,
        Some(Some(_)) => {
            let n = number[snaps.len()];
            if versions[n - 1].first_seen == snaps.len() {
                versions.pop();
                Live::New
            } else {
                Live::Version { version: n }
            }
        }
    };
    let hashed = h.cache.len();
    History {
        spans,
        versions,
        live,
        hashed,
    }
}

impl History {
    /// The version seen in observation `i`, if the path was there.
    pub fn version_at(&self, i: usize) -> Option<&Version> {
        let s = self.spans.iter().find(|s| s.first <= i && i <= s.last)?;
        match s.state {
            State::Present { version } => self.versions.get(version - 1),
            State::Absent { .. } => None,
        }
    }

    /// The snapshots (indices) each version spans: several runs when a version came back.
    pub fn runs_of(&self, version: usize) -> Vec<&Span> {
        self.spans
            .iter()
            .filter(|s| s.state == State::Present { version })
            .collect()
    }
}

#[cfg(test)]
mod tests;
