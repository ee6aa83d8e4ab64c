//! Writable subvolumes: today's data, never a snapshot. Discovery lists them apart ([`LiveSubvol`], with
//! what each one is), and [`inspect`] answers in one call what `up` must know about a SNAPSHOT path: is it
//! a snapshot, or live data, and if live, which snapshots of it the catalog has.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{parse_btrbk_name, Catalog, Probe, Snapshot, SubvolMeta};
use crate::civil::format_utc;

/// What a writable subvolume is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveKind {
    /// Live data: a writable subvolume that is not a snapshot of another one.
    Live,
    /// A writable snapshot of another subvolume (`btrfs subvolume snapshot` without `-r`, or the root a
    /// rollback made): its own changes since, not a moment in the past.
    WritableSnapshot,
    /// A snapper snapshot that is writable: snapper makes them read-only, so someone changed it.
    Snapper { num: u64 },
    /// Named like a btrbk snapshot but writable: an interrupted transfer, or changed by hand.
    Btrbk { name: String },
}

impl LiveKind {
    /// A writable subvolume outside snapper's and btrbk's layouts: a writable snapshot when it has a
    /// parent, else live data.
    pub fn plain(meta: &SubvolMeta) -> LiveKind {
        if meta.parent_uuid.is_some() {
            LiveKind::WritableSnapshot
        } else {
            LiveKind::Live
        }
    }
}

/// A writable subvolume found under a root (or asked about by path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveSubvol {
    pub path: PathBuf,
    /// The ROOT it was discovered under ([`inspect`] of a path outside every root: its parent).
    pub root: PathBuf,
    #[serde(flatten)]
    pub kind: LiveKind,
    /// Creation time (otime), unix seconds.
    pub created: i64,
    pub uuid: Option<String>,
    pub parent_uuid: Option<String>,
    /// The subvolume `parent_uuid` names, when discovery found it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<PathBuf>,
}

impl LiveSubvol {
    pub fn new(path: &Path, root: &Path, kind: LiveKind, meta: SubvolMeta) -> LiveSubvol {
        LiveSubvol {
            path: path.into(),
            root: root.into(),
            kind,
            created: meta.otime,
            uuid: meta.uuid,
            parent_uuid: meta.parent_uuid,
            origin: None,
        }
    }

    /// What it is, in a few words: "live data", "writable snapshot of /pool/snaps/3", …
    pub fn what(&self) -> String {
        let of = || match (&self.origin, &self.parent_uuid) {
            (Some(p), _) => format!(" of {}", p.display()),
            (None, Some(u)) => format!(" of subvolume {u} (not under the given roots)"),
            (None, None) => String::new(),
        };
        match &self.kind {
            LiveKind::Live => "live data".into(),
            LiveKind::WritableSnapshot => format!("writable snapshot{}", of()),
            LiveKind::Snapper { num } => {
                format!("snapper snapshot #{num} made writable (changed by hand?)")
            }
            LiveKind::Btrbk { name } => {
                format!("btrbk-style name ({name}) but writable (an interrupted transfer?)")
            }
        }
    }

    /// Why this is no snapshot, and which snapshots of it there are (`snapshots`: the catalog's
    /// snapshots of it, oldest first). For messages that refuse it where a snapshot is needed.
    pub fn not_a_snapshot(&self, snapshots: &[Snapshot]) -> String {
        let head = format!(
            "{} is a writable subvolume ({}): today's state, not a snapshot",
            self.path.display(),
            self.what()
        );
        match snapshots.last() {
            Some(s) => format!(
                "{head}; its newest snapshot is {} ({} in all, `wayback snapshots` lists them)",
                s.label(),
                snapshots.len()
            ),
            None => format!("{head}; no snapshot of it was found under the snapshot roots"),
        }
    }
}

/// What a path is, for a command that wants a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathInfo {
    /// A read-only subvolume: a snapshot (`listed`: its catalog entry, when a root holds it).
    Snapshot { listed: Option<Snapshot> },
    /// A writable subvolume: live data or a writable copy, never a snapshot; `snapshots`: the
    /// catalog's snapshots of it (their parent_uuid is its uuid), oldest first.
    Live {
        subvol: LiveSubvol,
        snapshots: Vec<Snapshot>,
    },
    /// Not the root of a btrfs subvolume (a plain directory, another filesystem, missing).
    NotSubvolume,
}

/// Is `path` a snapshot, or a live (writable) subvolume, and what are its snapshots in `cat`? `path`
/// should be absolute and canonical, like the catalog's paths.
pub fn inspect(path: &Path, cat: &Catalog, probe: &dyn Probe) -> PathInfo {
    let Some(meta) = probe.subvolume(path) else {
        return PathInfo::NotSubvolume;
    };
    if meta.readonly {
        let listed = cat.snapshots.iter().find(|s| s.path == path).cloned();
        return PathInfo::Snapshot { listed };
    }
    let subvol = match cat.live_at(path) {
        Some(l) => l.clone(),
        None => {
            let parent = path.parent().unwrap_or(path);
            let mut l = LiveSubvol::new(path, parent, kind_by_place(path, &meta), meta);
            l.origin = l
                .parent_uuid
                .as_deref()
                .and_then(|u| cat.path_of_uuid(u))
                .map(Path::to_path_buf);
            l
        }
    };
    let snapshots = match subvol.uuid.as_deref() {
        Some(u) => cat.snapshots_of(u).into_iter().cloned().collect(),
        None => Vec::new(),
    };
    PathInfo::Live { subvol, snapshots }
}

/// The kind of a writable subvolume from where it is: `.snapshots/N/snapshot`, a btrbk name, or neither.
fn kind_by_place(path: &Path, meta: &SubvolMeta) -> LiveKind {
    fn name(p: Option<&Path>) -> Option<&str> {
        p.and_then(Path::file_name).and_then(|n| n.to_str())
    }
    let num = path.parent();
    if name(Some(path)) == Some("snapshot")
        && name(num.and_then(Path::parent)) == Some(".snapshots")
    {
        if let Some(n) = name(num).and_then(|n| n.parse().ok()) {
            return LiveKind::Snapper { num: n };
        }
    }
    match name(Some(path)).map(parse_btrbk_name) {
        Some(Ok(Some(b))) => LiveKind::Btrbk { name: b.name },
        _ => LiveKind::plain(meta),
    }
}

/// `created_utc` for JSON and the listing.
pub(super) fn created_utc(l: &LiveSubvol) -> String {
    format_utc(l.created)
}
