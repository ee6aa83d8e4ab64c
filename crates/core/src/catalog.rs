//! Snapshot catalogs: what snapshots exist under a ROOT, read from the layouts other tools leave behind,
//! and which subvolumes there are live data instead (never a snapshot, whatever their name or place).
//!
//! - snapper: `ROOT/.snapshots/N/snapshot` with `N/info.xml` (num, UTC date, type, description,
//!   cleanup, userdata); also when ROOT itself is the `.snapshots` directory.
//! - btrbk: subvolumes named `<name>.<YYYYMMDD>[T<hhmm>[ss][±hhmm]][_N]` (`timestamp_format` short,
//!   long and long-iso); names without a zone are local time, converted by the caller's [`Probe`].
//! - plain: any other read-only subvolume in ROOT or below it (ROOT/snaps/N, up to [`MAX_DEPTH`] levels),
//!   dated by its creation time (otime). The search does not descend into subvolumes, follow symlinks or
//!   leave ROOT's filesystem.
//! - live: a writable subvolume is never a snapshot. It goes to [`Catalog::live`] (with what it is: live
//!   data, a writable snapshot made by hand, or a snapper/btrbk snapshot someone made writable), so
//!   selectors and `find` cannot pick it.
//!
//! Pure: parsing takes strings, and discovery asks a [`Probe`] for directory listings, file contents and
//! subvolume facts, so tests run on fixtures. Malformed entries are skipped with a [`Warning`], never a
//! panic. The binary's probe (btrfs ioctls, openat2 without symlinks) lives in `wayback::sys::walk`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::civil::{self, Civil};

mod formats;
mod live;
mod render;
mod search;
pub use formats::{parse_btrbk_name, parse_snapper_info, BtrbkName, SnapperInfo};
pub use live::{inspect, LiveKind, LiveSubvol, PathInfo};
pub use render::{render, to_json};
pub use search::{MAX_DEPTH, MAX_DIRS};

/// Where a snapshot's catalog entry came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// `root` is the directory holding `.snapshots` (the subvolume snapper's config manages).
    Snapper {
        root: PathBuf,
        /// single, pre or post.
        #[serde(rename = "type")]
        kind: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        cleanup: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pre_num: Option<u64>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        userdata: BTreeMap<String, String>,
    },
    Btrbk {
        name: String,
    },
    Plain,
}

/// One snapshot, from whichever catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// snapper: its number; btrbk and plain: position (from 1) in date order among the root's btrbk and
    /// plain snapshots (in ROOT and the directories below it).
    pub id: u64,
    /// Unix seconds, UTC.
    pub date: i64,
    /// Orders snapshots with the same date (btrbk's `_N` suffix).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seq: u32,
    pub source: Source,
    pub description: Option<String>,
    /// Always true: a writable subvolume is never a snapshot (it goes to [`Catalog::live`]). Kept so
    /// `snapshots --json` says so explicitly.
    pub readonly: bool,
    /// The subvolume itself (for snapper: `.../.snapshots/N/snapshot`).
    pub path: PathBuf,
    /// The ROOT it was discovered under.
    pub root: PathBuf,
    pub uuid: Option<String>,
    pub parent_uuid: Option<String>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Snapshot {
    /// The series this snapshot belongs to: one snapper config, one btrbk name in one directory, or the
    /// plain snapshots of one directory. Runs in `find` and "newest before" in selectors are per series.
    pub fn series(&self) -> String {
        let dir = self.path.parent().unwrap_or(&self.root).display();
        match &self.source {
            Source::Snapper { root, .. } => format!("snapper {}", root.display()),
            Source::Btrbk { name } => format!("btrbk {dir}/{name}"),
            Source::Plain => format!("plain {dir}"),
        }
    }

    /// Sort key: date, then btrbk sequence, then path.
    pub fn order_key(&self) -> (i64, u32, &Path) {
        (self.date, self.seq, &self.path)
    }

    /// One line for lists and error messages: `#12  2026-11-14 10:00:00  /path`.
    pub fn label(&self) -> String {
        format!(
            "#{}  {}  {}",
            self.id,
            civil::format_utc(self.date),
            self.path.display()
        )
    }
}

/// A catalog entry that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub path: PathBuf,
    pub message: String,
}

/// Facts about a subvolume, from the filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubvolMeta {
    /// Creation time, unix seconds.
    pub otime: i64,
    pub readonly: bool,
    pub uuid: Option<String>,
    pub parent_uuid: Option<String>,
}

/// What is at a path, as far as the search for snapshots goes (symlinks are never followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// The root of a btrfs subvolume: classified, never descended into.
    Subvolume(SubvolMeta),
    /// A real directory on the same filesystem (and subvolume) as its parent: searched further.
    Dir,
    /// Anything else: a file, a symlink, a mount point of another filesystem, something unreadable.
    Other,
}

/// What discovery asks of the filesystem.
pub trait Probe {
    /// Entry names of a directory.
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<OsString>>;
    fn read_file(&self, path: &Path) -> std::io::Result<String>;
    /// `Some` when `path` is the root of a subvolume.
    fn subvolume(&self, path: &Path) -> Option<SubvolMeta>;
    /// What `path` is. The default knows only subvolumes, so a probe that does not implement it
    /// makes discovery look only directly in each root.
    fn node(&self, path: &Path) -> Node {
        match self.subvolume(path) {
            Some(m) => Node::Subvolume(m),
            None => Node::Other,
        }
    }
    /// Unix seconds of a local wall-clock time (btrbk names without a zone). Default: UTC.
    fn local_to_unix(&self, c: &Civil) -> i64 {
        civil::unix_utc(c)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read snapshot root {path}: {message} (give a directory that holds snapshots: a snapper .snapshots, its parent, or a btrbk snapshot_dir)")]
    Root { path: PathBuf, message: String },
}

/// Every snapshot found, sorted by date; the writable subvolumes found beside them, by path; and what
/// was skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Catalog {
    /// Read-only subvolumes only.
    pub snapshots: Vec<Snapshot>,
    /// Writable subvolumes: never snapshots, never picked by a selector.
    pub live: Vec<LiveSubvol>,
    pub warnings: Vec<Warning>,
}

impl Catalog {
    /// The snapshots taken of the subvolume with this uuid (their parent_uuid), oldest first.
    pub fn snapshots_of(&self, uuid: &str) -> Vec<&Snapshot> {
        self.snapshots
            .iter()
            .filter(|s| s.parent_uuid.as_deref() == Some(uuid))
            .collect()
    }

    /// The live (writable) subvolume at `path`, if discovery found one there.
    pub fn live_at(&self, path: &Path) -> Option<&LiveSubvol> {
        self.live.iter().find(|l| l.path == path)
    }

    /// The path of the subvolume with this uuid, snapshot or live, if discovery found it.
    pub fn path_of_uuid(&self, uuid: &str) -> Option<&Path> {
        let snap = self.snapshots.iter().map(|s| (&s.uuid, &s.path));
        let live = self.live.iter().map(|l| (&l.uuid, &l.path));
        snap.chain(live)
            .find(|(u, _)| u.as_deref() == Some(uuid))
            .map(|(_, p)| p.as_path())
    }
}

/// Discover the snapshots (and live subvolumes) under each root. A root that cannot be listed is an
/// error; anything malformed inside one is a warning. A snapshot found under several (nested) roots is
/// listed once, with the id and root of the first of them: put the root a selector names first.
pub fn discover(roots: &[PathBuf], probe: &dyn Probe) -> Result<Catalog, CatalogError> {
    let mut cat = Catalog::default();
    for root in roots {
        search::discover_root(root, probe, &mut cat)?;
    }
    finish(&mut cat);
    Ok(cat)
}

/// Like [`discover`], but a root that cannot be listed is a warning too: for callers that consult the
/// configured roots on the side (`up` asking what a SNAPSHOT path is) and must not fail on one stale root.
pub fn discover_lenient(roots: &[PathBuf], probe: &dyn Probe) -> Catalog {
    let mut cat = Catalog::default();
    for root in roots {
        if let Err(e) = search::discover_root(root, probe, &mut cat) {
            warn(&mut cat, root, e.to_string());
        }
    }
    finish(&mut cat);
    cat
}

/// Sort, drop what overlapping roots found twice, and name where each writable snapshot came from.
fn finish(cat: &mut Catalog) {
    cat.snapshots
        .sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    cat.snapshots.dedup_by(|a, b| a.path == b.path);
    cat.live.sort_by(|a, b| a.path.cmp(&b.path));
    cat.live.dedup_by(|a, b| a.path == b.path);
    let origins: Vec<Option<PathBuf>> = cat
        .live
        .iter()
        .map(|l| {
            let uuid = l.parent_uuid.as_deref()?;
            cat.path_of_uuid(uuid).map(Path::to_path_buf)
        })
        .collect();
    for (l, o) in cat.live.iter_mut().zip(origins) {
        l.origin = o;
    }
}

fn warn(cat: &mut Catalog, path: &Path, message: impl Into<String>) {
    cat.warnings.push(Warning {
        path: path.into(),
        message: message.into(),
    });
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_live;
