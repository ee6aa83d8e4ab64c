//! Snapshot catalogs: what snapshots exist under a ROOT, read from the layouts other tools leave behind.
//!
//! - snapper: `ROOT/.snapshots/N/snapshot` with `N/info.xml` (num, UTC date, type, description,
//!   cleanup, userdata); also when ROOT itself is the `.snapshots` directory.
//! - btrbk: subvolumes named `<name>.<YYYYMMDD>[T<hhmm>[ss][±hhmm]][_N]` (`timestamp_format` short,
//!   long and long-iso); names without a zone are local time, converted by the caller's [`Probe`].
//! - plain: any other subvolume directly in ROOT, dated by its creation time (otime).
//!
//! Pure: parsing takes strings, and discovery asks a [`Probe`] for directory listings, file contents and
//! subvolume facts, so tests run on fixtures. Malformed entries are skipped with a [`Warning`], never a
//! panic. The binary's probe (btrfs ioctls, readdir) lives in `wayback::sys::walk`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::civil::{self, Civil};

mod formats;
pub use formats::{parse_btrbk_name, parse_snapper_info, BtrbkName, SnapperInfo};

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
    /// snapper: its number; btrbk and plain: position (from 1) in date order among the root's
    /// non-snapper snapshots.
    pub id: u64,
    /// Unix seconds, UTC.
    pub date: i64,
    /// Orders snapshots with the same date (btrbk's `_N` suffix).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seq: u32,
    pub source: Source,
    pub description: Option<String>,
    pub readonly: bool,
    /// The subvolume itself (for snapper: `.../.snapshots/N/snapshot`).
    pub path: PathBuf,
    /// The ROOT it was discovered under.
    pub root: PathBuf,
    pub uuid: Option<String>,
    pub parent_uuid: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Snapshot {
    /// The series this snapshot belongs to: one snapper config, one btrbk name, or a root's plain
    /// subvolumes. Runs in `find` and "newest before" in selectors are per series.
    pub fn series(&self) -> String {
        match &self.source {
            Source::Snapper { root, .. } => format!("snapper {}", root.display()),
            Source::Btrbk { name } => format!("btrbk {}/{name}", self.root.display()),
            Source::Plain => format!("plain {}", self.root.display()),
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

/// What discovery asks of the filesystem.
pub trait Probe {
    /// Entry names of a directory.
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<OsString>>;
    fn read_file(&self, path: &Path) -> std::io::Result<String>;
    /// `Some` when `path` is the root of a subvolume.
    fn subvolume(&self, path: &Path) -> Option<SubvolMeta>;
    /// Unix seconds of a local wall-clock time (btrbk names without a zone). Default: UTC.
    fn local_to_unix(&self, c: &Civil) -> i64 {
        c.to_unix_utc()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read snapshot root {path}: {message} (give a directory that holds snapshots: a snapper .snapshots, its parent, or a btrbk snapshot_dir)")]
    Root { path: PathBuf, message: String },
}

/// Every snapshot found, sorted by date, and what was skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Catalog {
    pub snapshots: Vec<Snapshot>,
    pub warnings: Vec<Warning>,
}

/// Names wayback and snapper use for their own directories: never listed as plain snapshots.
const NOT_SNAPSHOTS: &[&str] = &[".snapshots", ".wayback"];

/// Discover the snapshots under each root. A root that cannot be listed is an error; anything malformed
/// inside one is a warning.
pub fn discover(roots: &[PathBuf], probe: &dyn Probe) -> Result<Catalog, CatalogError> {
    let mut cat = Catalog::default();
    for root in roots {
        discover_root(root, probe, &mut cat)?;
    }
    cat.snapshots
        .sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    cat.snapshots.dedup_by(|a, b| a.path == b.path);
    Ok(cat)
}

fn discover_root(root: &Path, probe: &dyn Probe, cat: &mut Catalog) -> Result<(), CatalogError> {
    let entries = probe.list_dir(root).map_err(|e| CatalogError::Root {
        path: root.into(),
        message: e.to_string(),
    })?;
    if root.file_name().is_some_and(|n| n == ".snapshots") {
        let owner = root.parent().unwrap_or(root);
        snapper_dir(root, owner, root, &entries, probe, cat);
        return Ok(());
    }
    let dot = root.join(".snapshots");
    if entries.iter().any(|e| e == ".snapshots") {
        match probe.list_dir(&dot) {
            Ok(inner) => snapper_dir(&dot, root, root, &inner, probe, cat),
            Err(e) => warn(cat, &dot, format!("cannot list: {e}")),
        }
    }
    let mut others = Vec::new();
    let mut names: Vec<&OsString> = entries.iter().collect();
    names.sort();
    for name in names {
        let Some(name_str) = name.to_str() else {
            continue;
        };
        if NOT_SNAPSHOTS.contains(&name_str) {
            continue;
        }
        let path = root.join(name);
        let Some(meta) = probe.subvolume(&path) else {
            continue;
        };
        let (source, date, seq) = match parse_btrbk_name(name_str) {
            Ok(Some(b)) => {
                let date = match b.time.offset {
                    Some(_) => b.time.start_utc(),
                    None => probe.local_to_unix(&b.time.civil),
                };
                (Source::Btrbk { name: b.name }, date, b.seq)
            }
            Ok(None) => (Source::Plain, meta.otime, 0),
            Err(message) => {
                warn(cat, &path, message);
                continue;
            }
        };
        others.push(Snapshot {
            id: 0,
            date,
            seq,
            source,
            description: None,
            readonly: meta.readonly,
            path,
            root: root.into(),
            uuid: meta.uuid,
            parent_uuid: meta.parent_uuid,
        });
    }
    others.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    for (i, s) in others.iter_mut().enumerate() {
        s.id = i as u64 + 1;
    }
    cat.snapshots.extend(others);
    Ok(())
}

fn warn(cat: &mut Catalog, path: &Path, message: impl Into<String>) {
    cat.warnings.push(Warning {
        path: path.into(),
        message: message.into(),
    });
}

/// Read a snapper `.snapshots` directory whose entries are `entries`.
fn snapper_dir(
    dir: &Path,
    owner: &Path,
    root: &Path,
    entries: &[OsString],
    probe: &dyn Probe,
    cat: &mut Catalog,
) {
    let mut nums: Vec<u64> = entries
        .iter()
        .filter_map(|e| e.to_str()?.parse().ok())
        .collect();
    nums.sort_unstable();
    for n in nums {
        let info_path = dir.join(n.to_string()).join("info.xml");
        let snap_path = dir.join(n.to_string()).join("snapshot");
        let info = match probe.read_file(&info_path) {
            Ok(xml) => match parse_snapper_info(&xml) {
                Ok(i) => i,
                Err(e) => {
                    warn(cat, &info_path, format!("skipped: {e}"));
                    continue;
                }
            },
            Err(e) => {
                warn(cat, &info_path, format!("skipped: cannot read: {e}"));
                continue;
            }
        };
        if info.num != n {
            warn(
                cat,
                &info_path,
                format!("skipped: <num> is {} but the directory is {n}", info.num),
            );
            continue;
        }
        let Some(meta) = probe.subvolume(&snap_path) else {
            warn(cat, &snap_path, "skipped: missing or not a btrfs subvolume");
            continue;
        };
        cat.snapshots.push(Snapshot {
            id: n,
            date: info.date,
            seq: 0,
            source: Source::Snapper {
                root: owner.into(),
                kind: info.kind,
                cleanup: info.cleanup,
                pre_num: info.pre_num,
                userdata: info.userdata,
            },
            description: info.description,
            readonly: meta.readonly,
            path: snap_path,
            root: root.into(),
            uuid: meta.uuid,
            parent_uuid: meta.parent_uuid,
        });
    }
}

#[cfg(test)]
mod tests;
