//! btrfs subvolumes: check that a source is a subvolume (and whether it is read-only), make the writable
//! clone, and delete it again — only if it is the clone wayback made.
//!
//! Uses the btrfs ioctls through `btrfs-uapi` (SNAP_CREATE_V2, SNAP_DESTROY_V2, GET_SUBVOL_INFO,
//! SUBVOL_GETFLAGS) plus fstat/fstatfs. The read-only flag is read with `subvolume_flags_get`: the
//! info call does not report it.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use btrfs_uapi::subvolume::{self, SubvolumeFlags};

/// statfs f_type of btrfs.
pub const BTRFS_SUPER_MAGIC: i64 = 0x9123_683e;
/// Inode number of every subvolume's root directory.
pub const SUBVOL_ROOT_INO: u64 = 256;
/// Inode number of the empty directory that stands in a snapshot where a nested subvolume was.
const EMPTY_SUBVOL_DIR_INO: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum BtrfsError {
    #[error("snapshot {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not on a btrfs filesystem; SNAPSHOT must be a btrfs subvolume (is the backup disk mounted, and is it btrfs?)")]
    NotBtrfs { path: PathBuf },
    #[error("{path} is a directory on btrfs but not a subvolume; give the snapshot's subvolume itself (for snapper: .snapshots/N/snapshot)")]
    NotSubvolume { path: PathBuf },
    #[error("cannot read subvolume info of {path}: {source}")]
    Info { path: PathBuf, source: nix::Error },
    #[error("cannot snapshot {source_path} to {dest}: {source} (is {parent} on the same btrfs filesystem and writable?)")]
    Snapshot {
        source_path: PathBuf,
        dest: PathBuf,
        parent: PathBuf,
        source: nix::Error,
    },
    #[error(
        "refusing to delete {path}: it is not the clone wayback made of {source_uuid} ({why})"
    )]
    NotOurs {
        path: PathBuf,
        source_uuid: String,
        why: String,
    },
    #[error("cannot delete subvolume {path}: {source}")]
    Delete { path: PathBuf, source: nix::Error },
}

/// What wayback needs to know about a source subvolume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubvolInfo {
    pub path: PathBuf,
    pub uuid: String,
    pub parent_uuid: String,
    pub readonly: bool,
}

fn open_dir(path: &Path) -> Result<File, BtrfsError> {
    File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => BtrfsError::Missing { path: path.into() },
        _ => BtrfsError::Open {
            path: path.into(),
            source,
        },
    })
}

/// Inspect `path`: it must be the root of a btrfs subvolume.
pub fn inspect(path: &Path) -> Result<SubvolInfo, BtrfsError> {
    let dir = open_dir(path)?;
    let fs = nix::sys::statfs::fstatfs(dir.as_fd()).map_err(|e| BtrfsError::Open {
        path: path.into(),
        source: e.into(),
    })?;
    if fs.filesystem_type().0 as i64 != BTRFS_SUPER_MAGIC {
        return Err(BtrfsError::NotBtrfs { path: path.into() });
    }
    let meta = dir.metadata().map_err(|source| BtrfsError::Open {
        path: path.into(),
        source,
    })?;
    if !meta.is_dir() || meta.ino() != SUBVOL_ROOT_INO {
        return Err(BtrfsError::NotSubvolume { path: path.into() });
    }
    let info = subvolume::subvolume_info(dir.as_fd()).map_err(|source| BtrfsError::Info {
        path: path.into(),
        source,
    })?;
    let flags = subvolume::subvolume_flags_get(dir.as_fd()).map_err(|source| BtrfsError::Info {
        path: path.into(),
        source,
    })?;
    Ok(SubvolInfo {
        path: path.into(),
        uuid: info.uuid.to_string(),
        parent_uuid: info.parent_uuid.to_string(),
        readonly: flags.contains(SubvolumeFlags::RDONLY),
    })
}

/// What `path` (absolute inside the snapshot at `root`) is, resolved inside the snapshot: missing, present
/// (and where symlinks led), the empty stand-in of a nested subvolume, or unusable.
pub fn probe(root: &Path, path: &Path) -> wayback_core::plan::PathState {
    use crate::sys::inroot::{InRootError, Tree};
    use wayback_core::plan::PathState;
    let found = Tree::open(root).and_then(|t| t.resolve(path));
    match found {
        Ok(f) if f.is_dir() && f.stat.st_ino == EMPTY_SUBVOL_DIR_INO => PathState::NestedSubvolume,
        Ok(f) if f.is_dir() || f.is_file() => PathState::Present(f.resolved),
        Ok(f) => PathState::Refused(format!(
            "it is a {} (only directories and regular files can be bound)",
            crate::sys::inroot::kind_name(&f.stat)
        )),
        Err(InRootError::Missing { via, .. }) => PathState::Missing(via),
        Err(e) => PathState::Refused(e.to_string()),
    }
}

fn split(path: &Path) -> Result<(PathBuf, CString), BtrfsError> {
    let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let name = path
        .file_name()
        .ok_or_else(|| BtrfsError::Missing { path: path.into() })?;
    let c = CString::new(name.as_bytes()).map_err(|_| BtrfsError::Missing { path: path.into() })?;
    Ok((parent, c))
}

/// Make a writable snapshot of `source` at `dest` (whose parent directory must exist).
pub fn clone(source: &Path, dest: &Path) -> Result<(), BtrfsError> {
    let (parent, name) = split(dest)?;
    let src = open_dir(source)?;
    let par = open_dir(&parent)?;
    subvolume::snapshot_create(par.as_fd(), src.as_fd(), &name, false, &[]).map_err(|source_err| {
        BtrfsError::Snapshot {
            source_path: source.into(),
            dest: dest.into(),
            parent: parent.clone(),
            source: source_err,
        }
    })
}

/// Delete the clone at `path` if it is a snapshot of the subvolume `source_uuid`. Already gone: Ok.
pub fn delete_clone(path: &Path, source_uuid: &str) -> Result<(), BtrfsError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    let info = match inspect(path) {
        Ok(i) => i,
        Err(e) => {
            return Err(BtrfsError::NotOurs {
                path: path.into(),
                source_uuid: source_uuid.into(),
                why: e.to_string(),
            })
        }
    };
    if info.parent_uuid != source_uuid {
        return Err(BtrfsError::NotOurs {
            path: path.into(),
            source_uuid: source_uuid.into(),
            why: format!("its parent is {}", info.parent_uuid),
        });
    }
    let (parent, name) = split(path)?;
    let par = match open_dir(&parent) {
        Ok(p) => p,
        Err(BtrfsError::Missing { .. }) => return Ok(()), // gone meanwhile
        Err(e) => return Err(e),
    };
    match subvolume::subvolume_delete(par.as_fd(), &name) {
        Ok(()) | Err(nix::Error::ENOENT) => Ok(()),
        Err(source) => Err(BtrfsError::Delete {
            path: path.into(),
            source,
        }),
    }
}
