//! The fast `wayback diff` of two snapshots of one subvolume, from btrfs metadata, as
//! `btrfs subvolume find-new` finds changes: a tree search (`BTRFS_IOC_TREE_SEARCH_V2`, btrfs-uapi) of the
//! newer snapshot's tree for metadata blocks written after the older snapshot was taken (its `otransid`):
//! every block both snapshots still share is skipped by the kernel without being read. Among the items
//! returned:
//!
//! - inode items whose own `transid` is newer: the inodes changed since (content, mode, owner, links,
//!   times all update the inode item);
//! - their inode refs: the names those inodes have (a parent directory and a name);
//! - file extents and xattr items written since: content and xattr/ACL hints (a rewrite that kept size
//!   and mtime still counts);
//! - directory index items written since: entries added to a directory.
//!
//! Entries removed from a changed directory are found without listing it: a btrfs directory's size is
//! twice the sum of its names' lengths, so `old size + 2 × added − new size` is twice what was removed;
//! only directories where that is not zero have their index items searched in both snapshots and
//! compared. Parent directories are named by `BTRFS_IOC_INO_LOOKUP`, multiply-linked files by
//! `INO_PATHS`. The candidate paths then go through the same `lstat` judgement as the send-stream diff
//! ([`snapdiff::judge`]), so the metadata only says where to look.
//!
//! Needs CAP_SYS_ADMIN (tree search); read-only.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use btrfs_uapi::raw::{
    BTRFS_DIR_INDEX_KEY, BTRFS_EXTENT_DATA_KEY, BTRFS_INODE_ITEM_KEY, BTRFS_INODE_REF_KEY,
    BTRFS_XATTR_ITEM_KEY,
};
use btrfs_uapi::subvolume::{self, SubvolumeFlags};
use btrfs_uapi::tree_search::tree_search_v2;
use wayback_core::change::{within, Change};

use crate::sys::snapdiff::{self, DiffError};

mod items;
use items::{
    dir_items, dir_size, filter, highest, ino_lookup, le16, le32, le64, removed, FIRST_FREE,
};

const S_IFDIR: u32 = 0o040000;
const S_IFMT: u32 = 0o170000;
/// Search buffer of the one big search: fewer round trips than the 64 KiB default.
const BUF: usize = 1 << 20;

/// What the search of the newer tree found.
#[derive(Default)]
struct Scan {
    /// Changed inodes: (is a directory, size).
    changed: HashMap<u64, (bool, u64)>,
    /// Names of changed inodes, from their refs: inode → (parent directory, name).
    refs: HashMap<u64, Vec<(u64, Vec<u8>)>>,
    /// Directory → entries added since (name, child inode).
    added: HashMap<u64, Vec<(Vec<u8>, u64)>>,
    content: HashSet<u64>,
    xattr: HashSet<u64>,
    acl: HashSet<u64>,
}

/// [`scan_range`] in two halves of the objectid range at once: the searching is the kernel's work, and
/// there are two cores or more. (An objectid's items are all in one half.)
fn scan(newer: BorrowedFd<'_>, since: u64) -> nix::Result<Scan> {
    let mid = FIRST_FREE + (highest(newer) - FIRST_FREE) / 2 + 1;
    let (a, b) = std::thread::scope(|sc| {
        let other = sc.spawn(move || scan_range(newer, since, mid, u64::MAX - 1));
        let a = scan_range(newer, since, FIRST_FREE, mid - 1);
        (a, other.join().unwrap_or(Err(nix::errno::Errno::EIO)))
    });
    let (mut s, b) = (a?, b?);
    s.changed.extend(b.changed);
    s.refs.extend(b.refs);
    s.added.extend(b.added);
    s.content.extend(b.content);
    s.xattr.extend(b.xattr);
    s.acl.extend(b.acl);
    Ok(s)
}

fn scan_range(newer: BorrowedFd<'_>, since: u64, from: u64, to: u64) -> nix::Result<Scan> {
    let mut s = Scan::default();
    let f = filter(from, to, 0, since + 1);
    let (mut items, mut bytes) = (0usize, 0usize);
    tree_search_v2(newer, f, Some(BUF), |h, d| {
        items += 1;
        bytes += d.len();
        match h.item_type {
            BTRFS_INODE_ITEM_KEY if le64(d, 8) > since => {
                let dir = le32(d, 52) & S_IFMT == S_IFDIR;
                s.changed.insert(h.objectid, (dir, le64(d, 16)));
            }
            // An inode's item sorts before its refs: names are kept for changed inodes only.
            BTRFS_INODE_REF_KEY if s.changed.contains_key(&h.objectid) => {
                let mut at = 0;
                while at + 10 <= d.len() {
                    let n = le16(d, at + 8);
                    let name = d.get(at + 10..at + 10 + n).unwrap_or_default().to_vec();
                    s.refs.entry(h.objectid).or_default().push((h.offset, name));
                    at += 10 + n;
                }
            }
            BTRFS_DIR_INDEX_KEY => {
                for it in dir_items(d).into_iter().filter(|i| i.transid > since) {
                    s.added
                        .entry(h.objectid)
                        .or_default()
                        .push((it.name, it.child));
                }
            }
            BTRFS_EXTENT_DATA_KEY if le64(d, 0) > since => {
                s.content.insert(h.objectid);
            }
            BTRFS_XATTR_ITEM_KEY => {
                for it in dir_items(d).into_iter().filter(|i| i.transid > since) {
                    if it.name.starts_with(b"system.posix_acl_") {
                        s.acl.insert(h.objectid);
                    } else {
                        s.xattr.insert(h.objectid);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    tracing::debug!("tree search returned {items} items, {bytes} bytes");
    Ok(s)
}

/// The path of inode `ino` in the subvolume of `fd` (INO_LOOKUP: for directories, and anything named by
/// its refs), relative to its root; cached.
struct Names<'a> {
    fd: BorrowedFd<'a>,
    cache: HashMap<u64, Option<PathBuf>>,
}

impl Names<'_> {
    fn dir(&mut self, ino: u64) -> Option<PathBuf> {
        if let Some(p) = self.cache.get(&ino) {
            return p.clone();
        }
        let p = ino_lookup(self.fd, ino);
        self.cache.insert(ino, p.clone());
        p
    }
}

/// Names a directory lost since A.
struct Loss {
    /// Where the directory was in A.
    olddir: Option<PathBuf>,
    ino: u64,
    gone: Vec<Vec<u8>>,
}

/// For each changed directory (inode, size in B, bytes of names added since A): the names it lost,
/// when its size says it lost any (see the module doc); two threads, the searches being the kernel's
/// work.
fn losses(
    older: BorrowedFd<'_>,
    newer: BorrowedFd<'_>,
    dirs: &[(u64, u64, u64)],
) -> nix::Result<Vec<Loss>> {
    let one = |&(ino, size, added): &(u64, u64, u64)| -> nix::Result<Option<Loss>> {
        match dir_size(older, ino)? {
            Some(old) if old + 2 * added != size => Ok(Some(Loss {
                olddir: ino_lookup(older, ino),
                ino,
                gone: removed(older, newer, ino)?,
            })),
            _ => Ok(None),
        }
    };
    let half = dirs.len().div_ceil(2).max(1);
    let parts: Vec<nix::Result<Vec<_>>> = std::thread::scope(|sc| {
        let hs: Vec<_> = dirs
            .chunks(half)
            .map(|c| sc.spawn(move || c.iter().map(one).collect::<nix::Result<Vec<_>>>()))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or(Err(nix::errno::Errno::EIO)))
            .collect()
    });
    let mut out = Vec::new();
    for p in parts {
        out.extend(p?.into_iter().flatten());
    }
    Ok(out)
}

/// Both read-only snapshots of one subvolume: (older, newer, the older one's creation transaction).
fn pair<'a>(a: &'a File, b: &'a File) -> Option<(&'a File, &'a File, u64)> {
    let (ia, ib) = (
        subvolume::subvolume_info(a.as_fd()).ok()?,
        subvolume::subvolume_info(b.as_fd()).ok()?,
    );
    let ro = |f: &File| {
        subvolume::subvolume_flags_get(f.as_fd()).is_ok_and(|x| x.contains(SubvolumeFlags::RDONLY))
    };
    if ia.parent_uuid.is_nil() || ia.parent_uuid != ib.parent_uuid || !ro(a) || !ro(b) {
        return None;
    }
    if ia.otransid <= ib.otransid {
        Some((a, b, ia.otransid))
    } else {
        Some((b, a, ib.otransid))
    }
}

/// Whether [`diff_tree`] can compare `a` and `b`: read-only snapshots of the same subvolume.
pub fn applicable(a: &Path, b: &Path) -> bool {
    match (File::open(a), File::open(b)) {
        (Ok(fa), Ok(fb)) => pair(&fa, &fb).is_some(),
        _ => false,
    }
}

fn err(what: &str, e: nix::Error) -> DiffError {
    DiffError::Send(format!("btrfs tree search ({what}): {e}"))
}

/// Changes from A to B (read-only snapshots of one subvolume, either order) from btrfs metadata.
pub fn diff_tree(a: &Path, b: &Path, prefix: Option<&Path>) -> Result<Vec<Change>, DiffError> {
    let open =
        |p: &Path| File::open(p).map_err(|e| DiffError::Send(format!("{}: {e}", p.display())));
    let (fa, fb) = (open(a)?, open(b)?);
    let (older, newer, since) = pair(&fa, &fb)
        .ok_or_else(|| DiffError::Send("not two read-only snapshots of one subvolume".into()))?;
    let t0 = std::time::Instant::now();
    let s = scan(newer.as_fd(), since).map_err(|e| err("changed inodes", e))?;
    tracing::debug!(
        "tree search: {} changed inodes, {} refs, {} dirs with additions in {:?}",
        s.changed.len(),
        s.refs.len(),
        s.added.len(),
        t0.elapsed()
    );
    let mut names = Names {
        fd: newer.as_fd(),
        cache: HashMap::new(),
    };
    let keep = |p: &Path| within(p, prefix) || prefix.is_some_and(|x| x.starts_with(p));
    let mut paths: BTreeSet<PathBuf> = BTreeSet::new();
    let named = |names: &mut Names, dir: u64, name: &[u8], out: &mut BTreeSet<PathBuf>| {
        if let Some(d) = names.dir(dir) {
            out.insert(d.join(OsString::from_vec(name.to_vec())));
        }
    };
    let mut dirs: Vec<(u64, u64, u64)> = Vec::new();
    for (&ino, &(is_dir, size)) in &s.changed {
        if is_dir {
            if let Some(p) = names.dir(ino) {
                paths.insert(p);
            }
            let mut added = 0u64;
            for (n, _) in s.added.get(&ino).into_iter().flatten() {
                added += n.len() as u64;
                named(&mut names, ino, n, &mut paths);
            }
            dirs.push((ino, size, added));
        } else {
            match s.refs.get(&ino) {
                Some(refs) if refs.len() == 1 => {
                    named(&mut names, refs[0].0, &refs[0].1, &mut paths);
                }
                _ => {
                    // Several names (or refs in an unchanged leaf): ask for all of them, in both.
                    for fd in [newer.as_fd(), older.as_fd()] {
                        if let Ok(all) = btrfs_uapi::inode::ino_paths(fd, ino) {
                            paths.extend(
                                all.iter().map(|n| PathBuf::from(n.trim_start_matches('/'))),
                            );
                        }
                    }
                }
            }
        }
    }
    // Entries removed from a directory: under its old name (in A) and its new one (a directory
    // renamed since, whose entries were removed too).
    let lost =
        losses(older.as_fd(), newer.as_fd(), &dirs).map_err(|e| err("directory index", e))?;
    for l in lost {
        for n in l.gone {
            if let Some(d) = &l.olddir {
                paths.insert(d.join(OsString::from_vec(n.clone())));
            }
            named(&mut names, l.ino, &n, &mut paths);
        }
    }
    paths.retain(|p| keep(p));
    paths.remove(Path::new(""));
    tracing::debug!("{} candidate paths after {:?}", paths.len(), t0.elapsed());
    snapdiff::judge(a, b, &paths, &s.content, &s.xattr, &s.acl, prefix)
}
