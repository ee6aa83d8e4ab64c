//! Nested subvolumes: a path that is its own subvolume on the live system (e.g. /var/lib/mysql) is an empty
//! directory in a snapshot of its parent. Given such a bind path, find the live subvolume that really holds
//! it and, in the configured snapshot catalogs, that subvolume's snapshot from the same moment — so `up`
//! can say exactly which snapshot to use instead.
//!
//! Reads subvolume info (GET_SUBVOL_INFO via `sys::walk`) and the snapshot catalogs; changes nothing.

use std::path::{Path, PathBuf};

use wayback_core::catalog::Snapshot;
use wayback_core::Config;

use crate::catalog::load_catalog;
use crate::sys::{snapdiff, walk};

/// Where the data of a nested bind path lives.
pub struct Nested {
    /// The live subvolume at the bind path.
    pub live: PathBuf,
    /// Its newest snapshot at or before the moment of the source snapshot.
    pub at_or_before: Option<Snapshot>,
    /// Its oldest snapshot (when none is old enough).
    pub oldest: Option<Snapshot>,
}

/// Look up the live subvolume behind `bind` (absolute, as inside the snapshot) of `snapshot`, and its
/// snapshots in `cfg.snapshot_roots`.
pub fn find(cfg: &Config, snapshot: &Path, bind: &Path) -> Option<Nested> {
    let live_root = snapdiff::live_of(snapshot).ok()?;
    let live = live_root.join(bind.strip_prefix("/").unwrap_or(bind));
    let live_meta = walk::subvol_meta(&live)?;
    let catalog = load_catalog(&cfg.snapshot_roots)
        .map(|c| c.snapshots)
        .unwrap_or_default();
    // The source's moment: its catalog date (snapper's info.xml, a btrbk name), else its creation time.
    let moment = match catalog.iter().find(|s| s.path == snapshot) {
        Some(s) => s.date,
        None => walk::subvol_meta(snapshot)?.otime,
    };
    let mut snaps: Vec<Snapshot> = catalog
        .into_iter()
        .filter(|s| s.parent_uuid.is_some() && s.parent_uuid == live_meta.uuid)
        .collect();
    snaps.sort_by_key(|s| (s.date, s.seq));
    Some(Nested {
        live,
        at_or_before: snaps.iter().rev().find(|s| s.date <= moment).cloned(),
        oldest: snaps.first().cloned(),
    })
}

/// A sentence for the refusal message.
pub fn hint(cfg: &Config, snapshot: &Path, bind: &Path) -> String {
    let Some(n) = find(cfg, snapshot, bind) else {
        return String::new();
    };
    let when = |s: &Snapshot| wayback_core::civil::format_utc(s.date);
    match (&n.at_or_before, &n.oldest, cfg.snapshot_roots.is_empty()) {
        (Some(s), _, _) => format!(
            "\n{} is the live subvolume {}; its snapshot from the same moment is {} ({}).",
            bind.display(),
            n.live.display(),
            s.path.display(),
            when(s)
        ),
        (None, Some(o), _) => format!(
            "\n{} is the live subvolume {}; it has no snapshot that old (its oldest is {}, {}).",
            bind.display(),
            n.live.display(),
            o.path.display(),
            when(o)
        ),
        (None, None, true) => format!(
            "\n{} is the live subvolume {}; set snapshot_roots in the config so wayback can find its snapshots.",
            bind.display(),
            n.live.display()
        ),
        (None, None, false) => format!(
            "\n{} is the live subvolume {}; no snapshot of it was found under snapshot_roots.",
            bind.display(),
            n.live.display()
        ),
    }
}
