//! Paths inside a snapshot or a clone, resolved inside it and never on the host.
//!
//! A snapshot is content wayback does not trust: `srv/www -> /root`, `../../../root`, a symlinked parent
//! `srv -> /`, a link into the live subvolume. Every path wayback reads or writes in a snapshot or a clone
//! goes through a [`Tree`]: an `O_PATH` descriptor of the tree's root, and `openat2(2)` with
//! `RESOLVE_IN_ROOT` (symlinks, absolute or relative, and `..` are resolved as if the tree were `/`, so they
//! can never lead out of it), `RESOLVE_NO_MAGICLINKS` and `RESOLVE_NO_XDEV` (no other filesystem mounted
//! inside the tree is entered). What is found is returned as a descriptor, so what is checked is what is
//! used (a bind mount is made from that descriptor, not from a path looked up again on the host).
//!
//! Syscalls: openat2, fstat, readlink of /proc/self/fd/N (to name what a path resolved to), getdents.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, SFlag};

/// Why a path inside a tree could not be used. Every message names the tree and the path.
#[derive(Debug, thiserror::Error)]
pub enum InRootError {
    #[error("cannot open {root}: {source}")]
    Root { root: PathBuf, source: Errno },
    #[error("{path} does not exist in {root}{via}")]
    Missing {
        root: PathBuf,
        path: PathBuf,
        /// " (it is a symlink; inside the snapshot it leads to …)" when a link was followed.
        via: String,
    },
    #[error("{path} in {root} leads onto another filesystem mounted inside it; wayback does not follow it (give the path on that filesystem itself)")]
    OtherFilesystem { root: PathBuf, path: PathBuf },
    #[error("{path} in {root}: too many symlinks (a loop?)")]
    Loop { root: PathBuf, path: PathBuf },
    #[error("{path} in {root} is a {kind}, not a regular file or directory")]
    Kind {
        root: PathBuf,
        path: PathBuf,
        kind: &'static str,
    },
    #[error("{path} in {root}: {source}")]
    Io {
        root: PathBuf,
        path: PathBuf,
        source: io::Error,
    },
}

/// A directory tree whose paths are resolved inside it.
#[derive(Debug)]
pub struct Tree {
    root: PathBuf,
    fd: OwnedFd,
}

/// What a path resolved to inside a tree.
#[derive(Debug)]
pub struct Found {
    /// `O_PATH` descriptor of the object (usable for mounts and `*at` calls; not for reading).
    pub fd: OwnedFd,
    /// Where it led, absolute inside the tree (differs from `asked` when symlinks were followed).
    pub resolved: PathBuf,
    pub stat: FileStat,
}

impl Found {
    pub fn is_dir(&self) -> bool {
        file_kind(&self.stat) == SFlag::S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        file_kind(&self.stat) == SFlag::S_IFREG
    }
}

fn file_kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// `/a/./b/` → `/a/b`; relative paths are taken as relative to the tree's root. `..` is kept (the kernel
/// clamps it at the root).
pub fn absolute_inside(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => out.push(".."),
            Component::Normal(n) => out.push(n),
        }
    }
    out
}

const RESOLVE: ResolveFlag = ResolveFlag::RESOLVE_IN_ROOT
    .union(ResolveFlag::RESOLVE_NO_MAGICLINKS)
    .union(ResolveFlag::RESOLVE_NO_XDEV);

impl Tree {
    /// Open the tree at `root` (a path on the host, which wayback chose: a snapshot or a clone).
    pub fn open(root: &Path) -> Result<Tree, InRootError> {
        let fd = nix::fcntl::open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|source| InRootError::Root {
            root: root.into(),
            source,
        })?;
        Ok(Tree {
            root: root.into(),
            fd,
        })
    }

    fn open_how(&self, path: &Path, flags: OFlag) -> Result<OwnedFd, InRootError> {
        let asked = absolute_inside(path);
        // openat2 refuses O_NOCTTY (or any other flag) together with O_PATH.
        let extra = if flags.contains(OFlag::O_PATH) {
            OFlag::O_CLOEXEC
        } else {
            OFlag::O_CLOEXEC | OFlag::O_NOCTTY
        };
        let how = OpenHow::new().flags(flags | extra).resolve(RESOLVE);
        // Relative to the root's descriptor; with RESOLVE_IN_ROOT a leading '/' means the tree's root.
        openat2(self.fd.as_fd(), asked.as_path(), how).map_err(|e| self.error(&asked, e))
    }

    fn error(&self, asked: &Path, e: Errno) -> InRootError {
        let (root, path) = (self.root.clone(), asked.to_path_buf());
        match e {
            Errno::ENOENT | Errno::ENOTDIR => InRootError::Missing {
                via: self.dangling(asked),
                root,
                path,
            },
            Errno::EXDEV => InRootError::OtherFilesystem { root, path },
            Errno::ELOOP => InRootError::Loop { root, path },
            e => InRootError::Io {
                root,
                path,
                source: e.into(),
            },
        }
    }

    /// For a missing path: where its last existing symlink component points, as a hint.
    fn dangling(&self, asked: &Path) -> String {
        let mut prefix = PathBuf::from("/");
        for c in asked.components().skip(1) {
            prefix.push(c);
            let how = OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
                .resolve(RESOLVE);
            let Ok(fd) = openat2(self.fd.as_fd(), prefix.as_path(), how) else {
                break;
            };
            if let Ok(target) = nix::fcntl::readlinkat(fd.as_fd(), "") {
                return format!(
                    " ({} is a symlink to {}; symlinks in a snapshot are followed only inside it)",
                    prefix.display(),
                    PathBuf::from(target).display()
                );
            }
        }
        String::new()
    }

    /// Resolve `path` inside the tree (following symlinks inside it only).
    pub fn resolve(&self, path: &Path) -> Result<Found, InRootError> {
        let asked = absolute_inside(path);
        let fd = self.open_how(&asked, OFlag::O_PATH)?;
        let stat = fstat(fd.as_fd()).map_err(|e| self.error(&asked, e))?;
        let resolved = self.name_of(fd.as_fd()).unwrap_or_else(|| asked.clone());
        Ok(Found { fd, resolved, stat })
    }

    /// Where a descriptor from this tree is, as an absolute path inside the tree (from /proc/self/fd).
    fn name_of(&self, fd: BorrowedFd<'_>) -> Option<PathBuf> {
        let link = |fd: i32| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
        let root = link(self.fd.as_raw_fd())?;
        let here = link(fd.as_raw_fd())?;
        let rel = here.strip_prefix(&root).ok()?;
        Some(Path::new("/").join(rel))
    }

    /// Where the symlink at `path` points, as written in the tree; `None` when `path` is no symlink. The
    /// parents are resolved inside the tree; the link itself is not followed.
    pub fn read_link(&self, path: &Path) -> Result<Option<PathBuf>, InRootError> {
        let asked = absolute_inside(path);
        let fd = self.open_how(&asked, OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
        let stat = fstat(fd.as_fd()).map_err(|e| self.error(&asked, e))?;
        if file_kind(&stat) != SFlag::S_IFLNK {
            return Ok(None);
        }
        let target = nix::fcntl::readlinkat(fd.as_fd(), "").map_err(|e| self.error(&asked, e))?;
        Ok(Some(PathBuf::from(target)))
    }

    /// Whether `path` exists inside the tree.
    pub fn exists(&self, path: &Path) -> bool {
        self.open_how(path, OFlag::O_PATH).is_ok()
    }

    /// Open a regular file for reading (never a FIFO or device: those could block or be host devices).
    pub fn open_file(&self, path: &Path) -> Result<File, InRootError> {
        let asked = absolute_inside(path);
        let fd = self.open_how(&asked, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?;
        let stat = fstat(fd.as_fd()).map_err(|e| self.error(&asked, e))?;
        if file_kind(&stat) != SFlag::S_IFREG {
            return Err(InRootError::Kind {
                root: self.root.clone(),
                path: asked,
                kind: kind_name(&stat),
            });
        }
        Ok(File::from(fd))
    }

    /// The text of a regular file, at most `max` bytes (longer files are an error).
    pub fn read_to_string(&self, path: &Path, max: u64) -> Result<String, InRootError> {
        let io_err = |source| InRootError::Io {
            root: self.root.clone(),
            path: absolute_inside(path),
            source,
        };
        let mut text = String::new();
        let n = self
            .open_file(path)?
            .take(max + 1)
            .read_to_string(&mut text)
            .map_err(io_err)?;
        if n as u64 > max {
            return Err(io_err(io::Error::other(format!("larger than {max} bytes"))));
        }
        Ok(text)
    }

    /// Names in a directory (not `.`/`..`), sorted, with whether each is a directory (not following links).
    pub fn read_dir(&self, path: &Path) -> Result<Vec<(OsString, bool)>, InRootError> {
        let asked = absolute_inside(path);
        let fd = self.open_how(&asked, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        let dir = nix::dir::Dir::from_fd(fd).map_err(|e| self.error(&asked, e))?;
        let mut out = Vec::new();
        for e in dir {
            let e = e.map_err(|e| self.error(&asked, e))?;
            let name = e.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let is_dir = e.file_type() == Some(nix::dir::Type::Directory);
            out.push((OsString::from(std::ffi::OsStr::from_bytes(name)), is_dir));
        }
        out.sort();
        Ok(out)
    }

    /// A directory inside the tree opened for `*at` calls (`O_DIRECTORY`, readable), created with its
    /// missing parents (mode 0755) when `create` is set. Links on the way are followed inside the tree only.
    pub fn dir(&self, path: &Path, create: bool) -> Result<OwnedFd, InRootError> {
        let asked = absolute_inside(path);
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
        match self.open_how(&asked, flags) {
            Err(InRootError::Missing { .. }) if create => {}
            other => return other,
        }
        let mut at = PathBuf::from("/");
        for c in asked.components().skip(1) {
            let parent = self.open_how(&at, flags)?;
            at.push(c);
            match nix::sys::stat::mkdirat(
                parent.as_fd(),
                c.as_os_str(),
                nix::sys::stat::Mode::from_bits_truncate(0o755),
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(self.error(&at, e)),
            }
        }
        self.open_how(&asked, flags)
    }
}

/// A word for a file type, for messages.
pub fn kind_name(st: &FileStat) -> &'static str {
    match file_kind(st) {
        SFlag::S_IFDIR => "directory",
        SFlag::S_IFREG => "regular file",
        SFlag::S_IFLNK => "symlink",
        SFlag::S_IFIFO => "named pipe",
        SFlag::S_IFSOCK => "socket",
        SFlag::S_IFCHR => "character device",
        SFlag::S_IFBLK => "block device",
        _ => "special file",
    }
}

// A path's own entry (lstat, readlink, open without following): versions, show, restore (issue 16).
mod entry;
pub use entry::{open_child, Entry};

#[cfg(test)]
mod tests;
