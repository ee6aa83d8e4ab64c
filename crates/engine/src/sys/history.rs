//! The filesystem side of `versions`, `show` and `diff PATH`: one path's entry in a snapshot (or the live
//! subvolume) as a [`history::Entry`], its content hash (SHA-256) and bytes, and the listing of everything
//! below a directory for `versions --deleted`. Every path goes through a [`Tree`]: resolved inside the
//! tree, the last component never followed, no other filesystem entered.
//!
//! Read-only: nothing here writes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat, SFlag};
use sha2::{Digest as _, Sha256};
use wayback_core::change::FileType;
use wayback_core::history::{Digest, Entry};

use crate::sys::inroot::{self, InRootError, Tree};

fn kind(st: &FileStat) -> FileType {
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => FileType::Dir,
        SFlag::S_IFREG => FileType::File,
        SFlag::S_IFLNK => FileType::Symlink,
        _ => FileType::Other,
    }
}

/// A [`history::Entry`] from an `lstat` (and the link target, for symlinks).
pub fn entry_of(st: &FileStat, target: Option<OsString>) -> Entry {
    Entry {
        kind: kind(st),
        size: st.st_size as u64,
        mtime: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec as u32,
        ctime: st.st_ctime,
        ctime_nsec: st.st_ctime_nsec as u32,
        ino: st.st_ino,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        target: target.map(PathBuf::from),
    }
}

/// The path's entry in `tree`; `None` when it (or a directory on the way) does not exist.
pub fn observe(tree: &Tree, rel: &Path) -> Result<Option<Entry>, InRootError> {
    match tree.entry(rel) {
        Ok(e) => {
            let target = (kind(&e.stat) == FileType::Symlink)
                .then(|| e.readlink().ok())
                .flatten();
            Ok(Some(entry_of(&e.stat, target)))
        }
        Err(InRootError::Missing { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Open the regular file at `rel` for reading (a symlink there is not followed; FIFOs and devices are
/// refused, so nothing can block or read a host device).
pub fn open_file(tree: &Tree, rel: &Path) -> Result<File, InRootError> {
    let e = tree.entry(rel)?;
    let io = |source: std::io::Error| InRootError::Io {
        root: tree.root().into(),
        path: e.asked.clone(),
        source,
    };
    if kind(&e.stat) != FileType::File {
        return Err(InRootError::Kind {
            root: tree.root().into(),
            path: e.asked.clone(),
            kind: inroot::kind_name(&e.stat),
        });
    }
    let fd = e
        .open(OFlag::O_RDONLY | OFlag::O_NONBLOCK)
        .map_err(|n| io(n.into()))?;
    Ok(File::from(fd))
}

/// SHA-256 of the regular file at `rel`.
pub fn hash(tree: &Tree, rel: &Path) -> Result<Digest, InRootError> {
    let mut f = open_file(tree, rel)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|source| InRootError::Io {
            root: tree.root().into(),
            path: rel.into(),
            source,
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// The bytes of the regular file at `rel`, at most `max` (longer is an error naming the size).
pub fn read(tree: &Tree, rel: &Path, max: u64) -> Result<Vec<u8>, InRootError> {
    let f = open_file(tree, rel)?;
    let mut out = Vec::new();
    let io = |source| InRootError::Io {
        root: tree.root().into(),
        path: rel.into(),
        source,
    };
    f.take(max + 1).read_to_end(&mut out).map_err(io)?;
    if out.len() as u64 > max {
        return Err(io(std::io::Error::other(format!(
            "larger than {max} bytes"
        ))));
    }
    Ok(out)
}

/// The names in the directory at `rel` (not following a symlink there), sorted.
pub fn list(tree: &Tree, rel: &Path) -> Result<Vec<(OsString, Entry)>, InRootError> {
    let e = tree.entry(rel)?;
    let io = |n: nix::Error| InRootError::Io {
        root: tree.root().into(),
        path: e.asked.clone(),
        source: n.into(),
    };
    let fd = e.open(OFlag::O_RDONLY | OFlag::O_DIRECTORY).map_err(io)?;
    let dirfd = fd
        .try_clone()
        .map_err(|s| io(nix::Error::from_raw(s.raw_os_error().unwrap_or(0))))?;
    let dir = nix::dir::Dir::from_fd(dirfd).map_err(io)?;
    let mut out = Vec::new();
    for d in dir {
        let d = d.map_err(io)?;
        let name = d.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsString::from(std::ffi::OsStr::from_bytes(name));
        let Ok(st) = fstatat(fd.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue; // gone meanwhile (live)
        };
        let target = (kind(&st) == FileType::Symlink)
            .then(|| nix::fcntl::readlinkat(fd.as_fd(), name.as_os_str()).ok())
            .flatten();
        out.push((name, entry_of(&st, target)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Everything below the directory at `rel` (relative paths from the tree's root), not following
/// symlinks and staying on the tree's filesystem (a nested subvolume or mount is listed as the empty
/// directory it is in a snapshot). Missing: empty.
pub fn listing(tree: &Tree, rel: &Path) -> Result<BTreeMap<PathBuf, Entry>, InRootError> {
    let mut out = BTreeMap::new();
    let top = match tree.entry(rel) {
        Ok(e) => e,
        Err(InRootError::Missing { .. }) => return Ok(out),
        Err(e) => return Err(e),
    };
    if kind(&top.stat) != FileType::Dir {
        return Ok(out);
    }
    let dev = top.stat.st_dev;
    let mut stack = vec![rel.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match list(tree, &dir) {
            Ok(v) => v,
            Err(InRootError::Missing { .. } | InRootError::OtherFilesystem { .. }) => continue,
            Err(e) => return Err(e),
        };
        for (name, e) in entries {
            let p = dir.join(&name);
            if e.kind == FileType::Dir && same_dev(tree, &p, dev) {
                stack.push(p.clone());
            }
            out.insert(p, e);
        }
    }
    Ok(out)
}

fn same_dev(tree: &Tree, p: &Path, dev: u64) -> bool {
    tree.entry(p).is_ok_and(|e| e.stat.st_dev == dev)
}
