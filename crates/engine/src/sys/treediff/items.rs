//! The raw side of [`super`]: reading btrfs items (little-endian, as on disk) out of tree-search
//! results, and the small searches it makes besides the big one — the highest inode number, one
//! directory's size, one directory's index, one inode's path.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use btrfs_uapi::raw::{
    btrfs_ioc_ino_lookup, btrfs_ioctl_ino_lookup_args, BTRFS_DIR_INDEX_KEY, BTRFS_INODE_ITEM_KEY,
};
use btrfs_uapi::tree_search::{tree_search_v2, Key, SearchFilter};

/// The first inode number of a subvolume's own files (its root directory).
pub(super) const FIRST_FREE: u64 = 256;
/// Search buffer per directory (allocated and zeroed per search: kept small).
const DIR_BUF: usize = 64 << 10;

/// Little-endian integers in item data (0 past the end: a short item reads as empty, never panics).
pub(super) fn le64(d: &[u8], at: usize) -> u64 {
    d.get(at..at + 8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}
pub(super) fn le32(d: &[u8], at: usize) -> u32 {
    d.get(at..at + 4)
        .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
}
pub(super) fn le16(d: &[u8], at: usize) -> usize {
    d.get(at..at + 2).map_or(0, |b| {
        u16::from_le_bytes(b.try_into().expect("2 bytes")) as usize
    })
}

/// `btrfs_dir_item` (also xattr items): location key (17 bytes), transid, data_len, name_len, type.
pub(super) struct DirItem {
    pub(super) child: u64,
    pub(super) transid: u64,
    pub(super) name: Vec<u8>,
}

pub(super) fn dir_items(d: &[u8]) -> Vec<DirItem> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 30 <= d.len() {
        let (data_len, name_len) = (le16(d, at + 25), le16(d, at + 27));
        let name = d
            .get(at + 30..at + 30 + name_len)
            .unwrap_or_default()
            .to_vec();
        out.push(DirItem {
            child: le64(d, at),
            transid: le64(d, at + 17),
            name,
        });
        at += 30 + name_len + data_len;
    }
    out
}

/// Items with objectids `min_obj..=max_obj` (of type `ty` only when that is one objectid), in leaves
/// written at or after `min_transid`, in the tree of the subvolume the descriptor is in.
pub(super) fn filter(min_obj: u64, max_obj: u64, ty: u32, min_transid: u64) -> SearchFilter {
    SearchFilter {
        tree_id: 0, // the tree of the subvolume the descriptor is in
        start: Key {
            objectid: min_obj,
            item_type: if min_obj == max_obj { ty } else { 0 },
            offset: 0,
        },
        end: Key {
            objectid: max_obj,
            item_type: if min_obj == max_obj { ty } else { u32::MAX },
            offset: u64::MAX,
        },
        min_transid,
        max_transid: u64::MAX,
    }
}

/// Objectids up to which a subvolume's own files go (above: orphan and other special items).
pub(super) const LAST_FREE: u64 = u64::MAX - 256;

/// Whether the tree of `fd` holds any item with an objectid in `from..=LAST_FREE`.
pub(super) fn any_from(fd: BorrowedFd<'_>, from: u64) -> bool {
    let mut found = false;
    let f = filter(from, LAST_FREE, 0, 0);
    let _ = tree_search_v2(fd, f, Some(4096), |_, _| {
        found = true;
        Err(nix::errno::Errno::ECANCELED) // one is enough
    });
    found
}

/// The highest objectid of the subvolume's files (a binary search of a few dozen one-item searches).
pub(super) fn highest(fd: BorrowedFd<'_>) -> u64 {
    let (mut lo, mut hi) = (FIRST_FREE, FIRST_FREE * 2);
    while hi < LAST_FREE / 2 && any_from(fd, hi) {
        (lo, hi) = (hi, hi * 2);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if any_from(fd, mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The path of inode `ino` in the subvolume of `fd` (INO_LOOKUP), relative to its root.
pub(super) fn ino_lookup(fd: BorrowedFd<'_>, ino: u64) -> Option<PathBuf> {
    if ino == FIRST_FREE {
        return Some(PathBuf::new());
    }
    // SAFETY: the all-zero value is valid for this plain C struct (integers and a char array).
    let mut args: btrfs_ioctl_ino_lookup_args = unsafe { std::mem::zeroed() };
    args.objectid = ino;
    // SAFETY: `args` is a valid, initialised argument struct that outlives the call; `fd` is open.
    unsafe { btrfs_ioc_ino_lookup(fd.as_raw_fd(), &raw mut args) }.ok()?;
    let bytes: Vec<u8> = args
        .name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    let s = OsString::from_vec(bytes);
    Some(PathBuf::from(s).components().collect())
}

/// The names directory `dir` has in `older` and no longer in `newer` (by directory index number, which
/// is never reused: a name removed and made again has a new one).
pub(super) fn removed(
    older: BorrowedFd<'_>,
    newer: BorrowedFd<'_>,
    dir: u64,
) -> nix::Result<Vec<Vec<u8>>> {
    let f = || filter(dir, dir, BTRFS_DIR_INDEX_KEY, 0);
    let mut keys: Vec<u64> = Vec::new(); // ascending: the search returns keys in order
    tree_search_v2(newer, f(), Some(DIR_BUF), |h, _| {
        if h.item_type == BTRFS_DIR_INDEX_KEY {
            keys.push(h.offset);
        }
        Ok(())
    })?;
    let mut gone = Vec::new();
    tree_search_v2(older, f(), Some(DIR_BUF), |h, d| {
        if h.item_type == BTRFS_DIR_INDEX_KEY && keys.binary_search(&h.offset).is_err() {
            gone.extend(dir_items(d).into_iter().next().map(|i| i.name));
        }
        Ok(())
    })?;
    Ok(gone)
}

/// The size of directory `dir` in the subvolume of `fd` (its inode item), if it exists there.
pub(super) fn dir_size(fd: BorrowedFd<'_>, dir: u64) -> nix::Result<Option<u64>> {
    let mut size = None;
    tree_search_v2(
        fd,
        filter(dir, dir, BTRFS_INODE_ITEM_KEY, 0),
        Some(4096),
        |h, d| {
            if h.item_type == BTRFS_INODE_ITEM_KEY {
                size = Some(le64(d, 16));
            }
            Ok(())
        },
    )?;
    Ok(size)
}
