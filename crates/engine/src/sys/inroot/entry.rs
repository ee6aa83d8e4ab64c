//! A path's own directory entry inside a [`Tree`], for `versions`, `show` and `restore`: its parent is
//! resolved inside the tree (links on the way followed inside it only), and the last component is never
//! followed (`lstat`, `readlink`), so a symlink in a snapshot is seen, and restored, as a symlink.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstatat, FileStat};

use super::{absolute_inside, InRootError, Tree};

/// A path's entry: the directory holding it (readable, for `*at` calls) and its name there.
#[derive(Debug)]
pub struct Entry {
    pub dir: OwnedFd,
    /// Empty for the tree's root itself (then `dir` is the root directory).
    pub name: OsString,
    /// `lstat` of the entry (the root: `fstat` of it).
    pub stat: FileStat,
    /// The path asked for, absolute inside the tree.
    pub asked: PathBuf,
}

impl Tree {
    /// The entry at `path` (not following a symlink there). `..` is refused as a last component.
    pub fn entry(&self, path: &Path) -> Result<Entry, InRootError> {
        let asked = absolute_inside(path);
        let name = match asked.components().next_back() {
            Some(Component::Normal(n)) => n.to_os_string(),
            Some(Component::RootDir) | None => OsString::new(),
            Some(_) => {
                return Err(InRootError::Io {
                    root: self.root.clone(),
                    path: asked,
                    source: std::io::Error::other("a path ending in '..' names no entry"),
                })
            }
        };
        let parent = asked.parent().unwrap_or(Path::new("/"));
        let dir = self.open_how(parent, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        let stat = if name.is_empty() {
            nix::sys::stat::fstat(dir.as_fd())
        } else {
            fstatat(dir.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
        }
        .map_err(|e| self.error(&asked, e))?;
        Ok(Entry {
            dir,
            name,
            stat,
            asked,
        })
    }

    /// The tree's root as given to [`Tree::open`].
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Entry {
    /// Open the entry itself (`flags` plus `O_NOFOLLOW`; never crossing into another filesystem).
    pub fn open(&self, flags: OFlag) -> nix::Result<OwnedFd> {
        open_child(&self.dir, &self.name, flags)
    }

    /// A symlink's target, as stored (never followed).
    pub fn readlink(&self) -> nix::Result<OsString> {
        nix::fcntl::readlinkat(self.dir.as_fd(), self.name.as_os_str())
    }
}

/// `openat2(dir, name)` of a direct child: no symlink, no `..`, no other filesystem.
pub fn open_child(dir: &OwnedFd, name: &OsString, flags: OFlag) -> nix::Result<OwnedFd> {
    let name: &Path = if name.is_empty() {
        Path::new(".")
    } else {
        Path::new(name)
    };
    // openat2 refuses O_NOCTTY together with O_PATH.
    let extra = if flags.contains(OFlag::O_PATH) {
        OFlag::O_CLOEXEC
    } else {
        OFlag::O_CLOEXEC | OFlag::O_NOCTTY
    };
    let how = OpenHow::new()
        .flags(flags | extra | OFlag::O_NOFOLLOW)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    openat2(dir.as_fd(), name, how)
}
