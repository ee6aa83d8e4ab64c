//! Configuration drift: the units' configuration files (from `--unit`) that the snapshot holds too,
//! compared with the host's copies — a password kept in /etc, an old pool config. The plan lists them;
//! `--bind-config` binds the snapshot's copies over the host's. The snapshot is read inside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wayback_core::plan::{ConfigDrift, Looked};

use crate::sys::inroot::Tree;

/// Files larger than this are compared by size only.
const COMPARE_MAX: u64 = 4 << 20;
/// Entries compared below a configuration directory.
const DIR_MAX: usize = 1000;

/// The configuration files and directories the snapshot at `snapshot` holds, each marked as differing from
/// the host's or not.
pub fn config_drift(snapshot: &Path, configs: &[Looked]) -> Vec<ConfigDrift> {
    let Ok(tree) = Tree::open(snapshot) else {
        return Vec::new();
    };
    let mut out: Vec<ConfigDrift> = Vec::new();
    for c in configs {
        if out.iter().any(|d| d.path == c.path) || !tree.exists(&c.path) {
            continue;
        }
        out.push(ConfigDrift {
            path: c.path.clone(),
            reason: c.reason.clone(),
            differs: contents(&tree, &c.path) != host_contents(&c.path),
            used: false,
        });
    }
    out
}

/// A file's bytes (or a directory's files' bytes by relative path), as the snapshot has them.
fn contents(tree: &Tree, path: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = under(path, &rel);
        match tree.read_dir(&p) {
            Ok(entries) => {
                for (name, _) in entries {
                    if out.len() + stack.len() < DIR_MAX {
                        stack.push(rel.join(name));
                    }
                }
            }
            Err(_) => {
                let bytes = tree
                    .open_file(&p)
                    .ok()
                    .map(|f| read_bounded(f, COMPARE_MAX))
                    .unwrap_or_default();
                out.insert(rel, bytes);
            }
        }
    }
    out
}

/// The same for the host's copy (the host's own files are trusted).
fn host_contents(path: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = under(path, &rel);
        match std::fs::read_dir(&p) {
            Ok(entries) => {
                for e in entries.flatten() {
                    if out.len() + stack.len() < DIR_MAX {
                        stack.push(rel.join(e.file_name()));
                    }
                }
            }
            Err(_) => {
                let bytes = std::fs::File::open(&p)
                    .ok()
                    .map(|f| read_bounded(f, COMPARE_MAX))
                    .unwrap_or_default();
                if std::fs::symlink_metadata(&p).is_ok() {
                    out.insert(rel, bytes);
                }
            }
        }
    }
    out
}

/// `path/rel`, and `path` itself for an empty `rel`: `Path::join("")` appends a `/`, which makes opening a
/// file fail (ENOTDIR), so every file would look different from the host's.
fn under(path: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        path.to_path_buf()
    } else {
        path.join(rel)
    }
}

/// At most `max` bytes; beyond that only the length counts (as a marker).
fn read_bounded(f: std::fs::File, max: u64) -> Vec<u8> {
    use std::io::Read;
    let len = f.metadata().map_or(0, |m| m.len());
    if len > max {
        return format!("<{len} bytes>").into_bytes();
    }
    let mut buf = Vec::new();
    let _ = f.take(max).read_to_end(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn looked(p: &Path) -> Looked {
        Looked {
            path: p.to_path_buf(),
            reason: "test".into(),
        }
    }

    /// The "snapshot" is a temp dir holding a copy of host paths (a temp dir's files) at the same absolute
    /// paths, as a snapshot of `/` would.
    #[test]
    fn files_and_directories_compare_by_content() {
        let host = tempfile::tempdir().unwrap();
        let snap = tempfile::tempdir().unwrap();
        let in_snap = |p: &Path| snap.path().join(p.strip_prefix("/").unwrap());
        let same = host.path().join("same.conf");
        let changed = host.path().join("passwd");
        let dir = host.path().join("conf.d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&same, "listener 1883\n").unwrap();
        std::fs::write(&changed, "user:new\n").unwrap();
        std::fs::write(dir.join("local.conf"), "a\n").unwrap();
        std::fs::create_dir_all(in_snap(&dir)).unwrap();
        std::fs::write(in_snap(&same), "listener 1883\n").unwrap();
        std::fs::write(in_snap(&changed), "user:old\n").unwrap();
        std::fs::write(in_snap(&dir).join("local.conf"), "a\n").unwrap();
        let missing = host.path().join("not-in-the-snapshot");
        std::fs::write(&missing, "x").unwrap();

        let configs: Vec<Looked> = [&same, &changed, &dir, &missing]
            .into_iter()
            .map(|p| looked(p))
            .collect();
        let drift = config_drift(snap.path(), &configs);
        let seen: Vec<(PathBuf, bool)> =
            drift.iter().map(|d| (d.path.clone(), d.differs)).collect();
        assert_eq!(
            seen,
            [
                (same.clone(), false),
                (changed.clone(), true),
                (dir.clone(), false)
            ]
        );

        std::fs::write(in_snap(&dir).join("local.conf"), "b\n").unwrap();
        let drift = config_drift(snap.path(), &configs[2..3]);
        assert!(drift[0].differs, "a file changed below a directory");
    }
}
