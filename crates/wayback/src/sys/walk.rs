//! The filesystem side of `snapshots`, `find` and the plain `diff`: the catalog [`Probe`] (readdir,
//! file reads, and for subvolumes GET_SUBVOL_INFO + SUBVOL_GETFLAGS via `btrfs-uapi`, fstatfs), `lstat`
//! into [`Meta`], the glob walk for `find`, and whole-tree walks for the diff fallback.
//!
//! Read-only: nothing here writes anywhere. Walks stay on one device (they do not descend into nested
//! subvolumes or mounts) and never follow symlinks.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use btrfs_uapi::subvolume::{self, SubvolumeFlags};
use wayback_core::catalog::{Probe, SubvolMeta};
use wayback_core::change::{FileType, Meta};
use wayback_core::civil::Civil;
use wayback_core::glob::Glob;
use wayback_core::presence::Hit;

use crate::sys::btrfs::{BTRFS_SUPER_MAGIC, SUBVOL_ROOT_INO};

/// Set when the user interrupts a long walk (Ctrl-C); walks stop early and callers report it.
pub static CANCELLED: AtomicBool = AtomicBool::new(false);

pub fn cancelled() -> bool {
    CANCELLED.load(Ordering::Relaxed)
}

/// The real filesystem, for catalog discovery.
pub struct FsProbe;

fn unix_secs(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Subvolume facts of `path`, when it is the root of a btrfs subvolume.
pub fn subvol_meta(path: &Path) -> Option<SubvolMeta> {
    let dir = File::open(path).ok()?;
    let fs = nix::sys::statfs::fstatfs(dir.as_fd()).ok()?;
    if fs.filesystem_type().0 as i64 != BTRFS_SUPER_MAGIC {
        return None;
    }
    let meta = dir.metadata().ok()?;
    if !meta.is_dir() || meta.ino() != SUBVOL_ROOT_INO {
        return None;
    }
    let info = subvolume::subvolume_info(dir.as_fd()).ok()?;
    let flags = subvolume::subvolume_flags_get(dir.as_fd()).ok()?;
    let uuid = |u: &btrfs_uapi::subvolume::SubvolumeInfo, parent: bool| {
        let id = if parent { u.parent_uuid } else { u.uuid };
        (!id.is_nil()).then(|| id.to_string())
    };
    Some(SubvolMeta {
        otime: unix_secs(info.otime),
        readonly: flags.contains(SubvolumeFlags::RDONLY),
        uuid: uuid(&info, false),
        parent_uuid: uuid(&info, true),
    })
}

impl Probe for FsProbe {
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn subvolume(&self, path: &Path) -> Option<SubvolMeta> {
        subvol_meta(path)
    }
    /// btrbk names its snapshots in local time: mktime knows the zone rules.
    fn local_to_unix(&self, c: &Civil) -> i64 {
        // SAFETY: an all-zero `tm` is a valid value (plain integers and a null zone pointer).
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        tm.tm_year = c.year - 1900;
        tm.tm_mon = i32::from(c.month) - 1;
        tm.tm_mday = i32::from(c.day);
        tm.tm_hour = i32::from(c.hour);
        tm.tm_min = i32::from(c.minute);
        tm.tm_sec = i32::from(c.second);
        tm.tm_isdst = -1;
        // SAFETY: `tm` is a valid, initialised struct we own; mktime only reads and normalises it.
        let t = unsafe { libc::mktime(&mut tm) };
        if t == -1 {
            c.to_unix_utc()
        } else {
            t
        }
    }
}

fn kind_of(ft: std::fs::FileType) -> FileType {
    if ft.is_dir() {
        FileType::Dir
    } else if ft.is_file() {
        FileType::File
    } else if ft.is_symlink() {
        FileType::Symlink
    } else {
        FileType::Other
    }
}

pub fn meta_of(m: &std::fs::Metadata) -> Meta {
    Meta {
        kind: kind_of(m.file_type()),
        size: m.len(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec() as u32,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        ino: m.ino(),
        nlink: m.nlink(),
    }
}

/// `lstat`, as [`Meta`]; `None` when the path does not exist (or cannot be read).
pub fn lstat(path: &Path) -> Option<Meta> {
    std::fs::symlink_metadata(path).ok().map(|m| meta_of(&m))
}

/// `lstat` of paths inside one tree that never follows a symlink in a parent component (a snapshot's
/// `var/lib/app -> /srv/app` must not lead to the host's /srv). Directories already checked are
/// remembered, so each costs one `lstat` per tree.
pub struct Tree<'a> {
    root: &'a Path,
    dirs: HashSet<PathBuf>,
}

impl<'a> Tree<'a> {
    pub fn new(root: &'a Path) -> Tree<'a> {
        Tree {
            root,
            dirs: HashSet::new(),
        }
    }

    /// Whether `rel` (relative) is reached through real directories only (`rel` itself included).
    pub fn is_dir_path(&mut self, rel: &Path) -> bool {
        let mut cur = PathBuf::new();
        for c in rel.components() {
            cur.push(c);
            if self.dirs.contains(&cur) {
                continue;
            }
            match std::fs::symlink_metadata(self.root.join(&cur)) {
                Ok(m) if m.is_dir() => {
                    self.dirs.insert(cur.clone());
                }
                _ => return false,
            }
        }
        true
    }

    /// `lstat` of `rel`, or `None` if it is missing or a parent component is not a real directory.
    pub fn lstat(&mut self, rel: &Path) -> Option<Meta> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        if !self.is_dir_path(parent) {
            return None;
        }
        lstat(&self.root.join(rel))
    }
}

/// `(name, is_directory)` of the entries of `dir`; empty when it does not exist.
fn list(dir: &Path) -> Vec<(OsString, bool)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .map(|e| {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            (e.file_name(), is_dir)
        })
        .collect()
}

/// The paths in the snapshot at `root` that match `glob`, with their size and mtime. Lists only the
/// directories below the pattern's literal prefix.
pub fn find_hits(root: &Path, glob: &Glob) -> Vec<Hit> {
    let tree = std::cell::RefCell::new(Tree::new(root));
    let mut lister = |rel: &Path| {
        if tree.borrow_mut().is_dir_path(rel) {
            list(&root.join(rel))
        } else {
            Vec::new()
        }
    };
    let found = glob.walk(&mut lister);
    let mut tree = tree.into_inner();
    found
        .into_iter()
        .filter_map(|rel| {
            let m = tree.lstat(&rel)?;
            glob.matches(&rel).then_some(Hit {
                kind: m.kind,
                size: m.size,
                mtime: m.mtime,
                path: rel,
            })
        })
        .collect()
}

/// Every path below `root/start` (relative to `root`, `start` itself excluded), with its [`Meta`].
/// Stays on `root`'s device. Stops early (returning what it has) when [`CANCELLED`] is set.
pub fn walk_tree(root: &Path, start: &Path) -> std::io::Result<HashMap<PathBuf, Meta>> {
    let dev = std::fs::symlink_metadata(root)?.dev();
    let mut out = HashMap::new();
    let mut stack = vec![start.to_path_buf()];
    while let Some(rel) = stack.pop() {
        if cancelled() {
            break;
        }
        let Ok(rd) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            let Ok(m) = e.metadata() else { continue };
            let child = rel.join(e.file_name());
            if m.is_dir() && m.dev() == dev {
                stack.push(child.clone());
            }
            out.insert(child, meta_of(&m));
        }
    }
    Ok(out)
}
