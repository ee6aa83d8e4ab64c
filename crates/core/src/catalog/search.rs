//! The search of one ROOT: snapper's `.snapshots` (in ROOT, or ROOT itself), then ROOT and the
//! directories below it, breadth first, for btrbk and plain subvolumes. Each subvolume found is either a
//! snapshot (read-only) or live (writable, see [`super::live`]); the search never descends into a
//! subvolume, never goes deeper than [`MAX_DEPTH`] levels below ROOT, and stops after listing
//! [`MAX_DIRS`] directories (with a warning). What counts as a directory to descend into is the
//! [`Probe`]'s answer ([`Node::Dir`]): a real directory on ROOT's filesystem, never a symlink.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{
    parse_btrbk_name, parse_snapper_info, warn, Catalog, CatalogError, LiveKind, LiveSubvol, Node,
    Probe, Snapshot, Source, SubvolMeta,
};

/// How many levels below ROOT snapshots are looked for: ROOT/a/b/c/SNAP is the deepest found.
pub const MAX_DEPTH: usize = 4;

/// How many directories one ROOT's search lists at most (ROOT itself included).
pub const MAX_DIRS: usize = 4096;

/// Names wayback and snapper use for their own directories: never searched as plain snapshots.
const NOT_SNAPSHOTS: &[&str] = &[".snapshots", ".wayback"];

/// Discover what is under `root` into `cat`. A root that cannot be listed is an error.
pub(super) fn discover_root(
    root: &Path,
    probe: &dyn Probe,
    cat: &mut Catalog,
) -> Result<(), CatalogError> {
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
    // ROOT itself when it is writable: snapper's live subvolume, or a live subvolume given as ROOT.
    if let Some(meta) = probe.subvolume(root).filter(|m| !m.readonly) {
        let kind = LiveKind::plain(&meta);
        cat.live.push(LiveSubvol::new(root, root, kind, meta));
    }
    let mut others = search_below(root, entries, probe, cat);
    others.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    for (i, s) in others.iter_mut().enumerate() {
        s.id = i as u64 + 1;
    }
    cat.snapshots.extend(others);
    Ok(())
}

/// Breadth-first search of ROOT (whose entries are `entries`) and the directories below it. Returns
/// the btrbk and plain snapshots found (ids not yet assigned); live subvolumes go to `cat`.
fn search_below(
    root: &Path,
    entries: Vec<OsString>,
    probe: &dyn Probe,
    cat: &mut Catalog,
) -> Vec<Snapshot> {
    let mut found = Vec::new();
    let mut queue: VecDeque<(PathBuf, usize)> = VecDeque::new();
    let mut listed = 1;
    let mut next = Some((root.to_path_buf(), entries, 1));
    while let Some((dir, entries, depth)) = next.take() {
        let mut names: Vec<&OsString> = entries.iter().collect();
        names.sort();
        for name in names {
            let Some(name_str) = name.to_str() else {
                continue;
            };
            if NOT_SNAPSHOTS.contains(&name_str) {
                continue;
            }
            let path = dir.join(name);
            match probe.node(&path) {
                Node::Subvolume(meta) => {
                    found.extend(classify(root, &path, name_str, meta, probe, cat));
                }
                Node::Dir if depth < MAX_DEPTH => queue.push_back((path, depth + 1)),
                Node::Dir | Node::Other => {}
            }
        }
        while let Some((path, depth)) = queue.pop_front() {
            if listed >= MAX_DIRS {
                warn(
                    cat,
                    root,
                    format!(
                        "stopped after searching {MAX_DIRS} directories: snapshots further down \
                         (from {} on) are not listed; give a ROOT closer to them",
                        path.display()
                    ),
                );
                return found;
            }
            match probe.list_dir(&path) {
                Ok(inner) => {
                    listed += 1;
                    next = Some((path, inner, depth));
                    break;
                }
                Err(e) => warn(
                    cat,
                    &path,
                    format!("not searched for snapshots: cannot list: {e}"),
                ),
            }
        }
    }
    found
}

/// A subvolume found by the search: a snapshot (returned) when read-only, else a live entry in `cat`.
fn classify(
    root: &Path,
    path: &Path,
    name: &str,
    meta: SubvolMeta,
    probe: &dyn Probe,
    cat: &mut Catalog,
) -> Option<Snapshot> {
    let btrbk = parse_btrbk_name(name);
    if !meta.readonly {
        let kind = match btrbk {
            Ok(Some(b)) => {
                warn(
                    cat,
                    path,
                    format!(
                        "named like a btrbk snapshot of {:?} but writable (btrbk's snapshots and \
                         backups are read-only: an interrupted transfer, or made writable by hand?); \
                         listed as live, never used as a snapshot",
                        b.name
                    ),
                );
                LiveKind::Btrbk { name: b.name }
            }
            _ => LiveKind::plain(&meta),
        };
        cat.live.push(LiveSubvol::new(path, root, kind, meta));
        return None;
    }
    let (source, date, seq) = match btrbk {
        Ok(Some(b)) => {
            let date = match b.time.offset {
                Some(_) => b.time.start_utc(),
                None => probe.local_to_unix(&b.time.civil),
            };
            (Source::Btrbk { name: b.name }, date, b.seq)
        }
        Ok(None) => (Source::Plain, meta.otime, 0),
        Err(message) => {
            warn(cat, path, message);
            return None;
        }
    };
    Some(snapshot(root, path, source, date, seq, meta))
}

fn snapshot(
    root: &Path,
    path: &Path,
    source: Source,
    date: i64,
    seq: u32,
    meta: SubvolMeta,
) -> Snapshot {
    Snapshot {
        id: 0,
        date,
        seq,
        source,
        description: None,
        readonly: meta.readonly,
        path: path.into(),
        root: root.into(),
        uuid: meta.uuid,
        parent_uuid: meta.parent_uuid,
    }
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
        if !meta.readonly {
            warn(
                cat,
                &snap_path,
                format!(
                    "snapper snapshot #{n} is writable (snapper makes its snapshots read-only, so it \
                     was changed by hand: btrfs property set ro false?); listed as live, never used \
                     as a snapshot"
                ),
            );
            cat.live.push(LiveSubvol::new(
                &snap_path,
                root,
                LiveKind::Snapper { num: n },
                meta,
            ));
            continue;
        }
        let source = Source::Snapper {
            root: owner.into(),
            kind: info.kind,
            cleanup: info.cleanup,
            pre_num: info.pre_num,
            userdata: info.userdata,
        };
        let mut s = snapshot(root, &snap_path, source, info.date, 0, meta);
        s.id = n;
        s.description = info.description;
        cat.snapshots.push(s);
    }
}
