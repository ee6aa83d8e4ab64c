//! The filesystem side of `snapshots`, `find` and the plain `diff`: the catalog [`Probe`] (directory
//! listings, file reads and subvolume facts — GET_SUBVOL_INFO + SUBVOL_GETFLAGS via `btrfs-uapi`,
//! fstatfs — all through `openat2(RESOLVE_NO_SYMLINKS)`, and entries opened from their parent with
//! `RESOLVE_NO_XDEV`, so the search below a snapshot root never follows a symlink out of it nor crosses
//! a mount point), `lstat` into [`Meta`], the glob walk for `find`, and whole-tree walks for the diff
//! fallback.
//!
//! Read-only: nothing here writes anywhere. Walks stay on one device (they do not descend into nested
//! subvolumes or mounts) and never follow symlinks.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use btrfs_uapi::subvolume::{self, SubvolumeFlags};
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use wayback_core::catalog::{Node, Probe, SubvolMeta};
use wayback_core::change::{FileType, Meta};
use wayback_core::civil::{self, Civil};
use wayback_core::glob::Glob;
use wayback_core::presence::Hit;

use crate::sys::btrfs::{BTRFS_SUPER_MAGIC, SUBVOL_ROOT_INO};

/// Set when the user interrupts a long walk (Ctrl-C); walks stop early and callers report it.
pub static CANCELLED: AtomicBool = AtomicBool::new(false);

pub fn cancelled() -> bool {
    CANCELLED.load(Ordering::Relaxed)
}

/// The real filesystem, for catalog discovery. Give it canonical paths (no symlinks in them): any
/// symlink met on the way is refused, as an entry that leads elsewhere or was swapped in meanwhile.
pub struct FsProbe;

/// Largest `info.xml` read (snapper's are a few hundred bytes).
const MAX_INFO_BYTES: u64 = 1 << 20;

fn unix_secs(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Subvolume facts of `path`, when it is the root of a btrfs subvolume (a symlink at `path` is
/// followed: for paths the user gave).
pub fn subvol_meta(path: &Path) -> Option<SubvolMeta> {
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    meta_of_dir(dir.as_fd())
}

/// Subvolume facts of an open directory, when it is the root of a btrfs subvolume.
fn meta_of_dir(dir: BorrowedFd<'_>) -> Option<SubvolMeta> {
    let fs = nix::sys::statfs::fstatfs(dir).ok()?;
    if fs.filesystem_type().0 as i64 != BTRFS_SUPER_MAGIC {
        return None;
    }
    let st = nix::sys::stat::fstat(dir).ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR || st.st_ino != SUBVOL_ROOT_INO {
        return None;
    }
    let info = subvolume::subvolume_info(dir).ok()?;
    let flags = subvolume::subvolume_flags_get(dir).ok()?;
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

/// `openat2` of `path` that fails (ELOOP) on a symlink anywhere in it.
fn open_strict(path: &Path, flags: OFlag) -> std::io::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    nix::fcntl::openat2(nix::fcntl::AT_FDCWD, path, how).map_err(std::io::Error::from)
}

fn open_dir_strict(path: &Path) -> std::io::Result<OwnedFd> {
    open_strict(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
}

/// The entry names of an open directory (without `.` and `..`).
fn list_fd(fd: OwnedFd) -> std::io::Result<Vec<OsString>> {
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` is an open directory descriptor we own; on success fdopendir takes it over.
    let dir = unsafe { libc::fdopendir(raw) };
    if dir.is_null() {
        let e = std::io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `raw` is still ours, and closed exactly once here.
        unsafe { libc::close(raw) };
        return Err(e);
    }
    let mut names = Vec::new();
    let result = loop {
        nix::errno::Errno::clear();
        // SAFETY: `dir` is a valid stream until the closedir below.
        let ent = unsafe { libc::readdir(dir) };
        if ent.is_null() {
            break match nix::errno::Errno::last_raw() {
                0 => Ok(()),
                n => Err(std::io::Error::from_raw_os_error(n)),
            };
        }
        // SAFETY: readdir returned a valid entry whose d_name is NUL-terminated; it stays valid until
        // the next readdir on `dir`, and we copy it out before that.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    };
    // SAFETY: `dir` is valid and closed exactly once (this also closes `raw`).
    unsafe { libc::closedir(dir) };
    result.map(|()| names)
}

impl Probe for FsProbe {
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<OsString>> {
        list_fd(open_dir_strict(dir)?)
    }
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        // O_NONBLOCK: a FIFO put in place of info.xml must not hang discovery.
        let f = File::from(open_strict(path, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?);
        if !f.metadata()?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        let mut text = String::new();
        f.take(MAX_INFO_BYTES).read_to_string(&mut text)?;
        Ok(text)
    }
    fn subvolume(&self, path: &Path) -> Option<SubvolMeta> {
        meta_of_dir(open_dir_strict(path).ok()?.as_fd())
    }
    /// A subvolume root; else a directory (opened from its parent with RESOLVE_NO_XDEV, so a mount
    /// point of any filesystem is not one); else (files, symlinks, mount points, unreadable) nothing
    /// to search.
    fn node(&self, path: &Path) -> Node {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Node::Other;
        };
        let Ok(dir) = open_dir_strict(parent) else {
            return Node::Other;
        };
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(
                ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_XDEV
                    | ResolveFlag::RESOLVE_BENEATH,
            );
        match nix::fcntl::openat2(dir.as_fd(), name, how) {
            Ok(fd) => meta_of_dir(fd.as_fd()).map_or(Node::Dir, Node::Subvolume),
            Err(_) => Node::Other,
        }
    }
    /// btrbk names its snapshots in local time: read them with the system's zone rules (`TZ`, else
    /// /etc/localtime, as libc does).
    fn local_to_unix(&self, c: &Civil) -> i64 {
        civil::unix_in(c, &jiff::tz::TimeZone::system())
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
