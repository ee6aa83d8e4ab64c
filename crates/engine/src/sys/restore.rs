//! Where `wayback restore` writes, and how the copy is put in place. The destination is a directory
//! descriptor and a name in it, resolved safely on the host:
//!
//! - the default (the path's place in the live subvolume): its directory is resolved below the live
//!   subvolume with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV`: a symlink on the way is
//!   refused (it is nothing the user named), and missing directories are made (with the snapshot's
//!   modes and owners);
//! - `--to DEST`: the directory the user named, as they named it (an existing directory means "into
//!   it", like cp); the last component is never followed.
//!
//! The copy is made under a temporary name beside the destination and renamed into place with
//! `RENAME_NOREPLACE`; with `--overwrite` the existing entry is first renamed (never written through, even
//! when it is a symlink) to `NAME.wayback-<UTC date>`. A failed copy leaves nothing behind: its temporary
//! entry is removed (only what this process made).

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::errno::Errno;
use nix::fcntl::{openat2, AtFlags, OFlag, OpenHow, RenameFlags, ResolveFlag};
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};

use crate::sys::copy::{names, Copier};
use crate::sys::inroot::{open_child, Entry, Tree};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{path} exists; give --overwrite to replace it (the current one is kept as {path}.wayback-<date>), or --to DEST to restore beside it")]
    Exists { path: PathBuf },
    #[error("{path}: {what} on the way in the live subvolume; wayback does not restore through it (give --to DEST)")]
    NotThrough { path: PathBuf, what: &'static str },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: Errno },
}

fn io(path: &Path) -> impl Fn(Errno) -> RestoreError + '_ {
    move |source| RestoreError::Io {
        path: path.into(),
        source,
    }
}

/// A destination: an entry `name` in the directory `dir` (which exists, unless `missing` names the
/// directories still to make below `dir`).
#[derive(Debug)]
pub struct Dest {
    pub dir: OwnedFd,
    pub name: OsString,
    /// The full destination path, for messages.
    pub path: PathBuf,
    /// Directories to make first, in order below `dir`: each one's name, and its path relative to the
    /// tree's root (where the snapshot's copy of it gives mode and owner).
    pub missing: Vec<(OsString, PathBuf)>,
}

fn beneath_how() -> OpenHow {
    OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        )
}

/// The place of `rel` in the live subvolume `live`.
pub fn in_live(live: &Path, rel: &Path) -> Result<Dest, RestoreError> {
    let path = live.join(rel);
    let root = nix::fcntl::open(
        live,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io(live))?;
    let name = rel.file_name().unwrap_or_default().to_os_string();
    let parent = rel.parent().unwrap_or(Path::new(""));
    // The deepest existing directory on the way, and the directories missing below it.
    let mut dir = root;
    let mut done = PathBuf::new();
    let mut missing: Vec<(OsString, PathBuf)> = Vec::new();
    for c in parent.components() {
        let Component::Normal(c) = c else { continue };
        done.push(c);
        if !missing.is_empty() {
            missing.push((c.to_os_string(), done.clone()));
            continue;
        }
        let here = live.join(&done);
        let refuse = |what| RestoreError::NotThrough {
            path: here.clone(),
            what,
        };
        match openat2(dir.as_fd(), c, beneath_how()) {
            Ok(fd) => dir = fd,
            Err(Errno::ENOENT) => missing.push((c.to_os_string(), done.clone())),
            Err(Errno::EXDEV) => return Err(refuse("another filesystem")),
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let st = fstatat(dir.as_fd(), c, AtFlags::AT_SYMLINK_NOFOLLOW);
                let link =
                    st.is_ok_and(|st| st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits());
                return Err(refuse(if link { "a symlink" } else { "not a directory" }));
            }
            Err(e) => return Err(io(&here)(e)),
        }
    }
    Ok(Dest {
        dir,
        name,
        path,
        missing,
    })
}

/// `--to DEST`: into DEST when it is an existing directory (a real one, or `DEST/` as written), else DEST
/// itself (its directory followed as the user named it; the last component never: a symlink there is
/// an existing entry, replaced only with --overwrite, never written through).
pub fn user(dest: &Path, src_name: &OsStr) -> Result<Dest, RestoreError> {
    let real_dir = std::fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir());
    if dest.as_os_str().as_encoded_bytes().ends_with(b"/") || real_dir {
        let dir = nix::fcntl::open(
            dest,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io(dest))?;
        return Ok(Dest {
            dir,
            name: src_name.to_os_string(),
            path: dest.join(src_name),
            missing: Vec::new(),
        });
    }
    let name = match dest.components().next_back() {
        Some(Component::Normal(n)) => n.to_os_string(),
        _ => {
            return Err(RestoreError::Io {
                path: dest.into(),
                source: Errno::EINVAL,
            })
        }
    };
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = nix::fcntl::open(
        parent,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io(parent))?;
    Ok(Dest {
        dir,
        name,
        path: dest.into(),
        missing: Vec::new(),
    })
}

impl Dest {
    /// What is at the destination now (`lstat`), if anything.
    pub fn existing(&self) -> Option<FileStat> {
        if !self.missing.is_empty() {
            return None;
        }
        fstatat(
            self.dir.as_fd(),
            self.name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ok()
    }

    /// Make the missing directories (mode and owner of the same directories in the snapshot).
    fn make_parents(&mut self, snap: &Tree) -> Result<(), RestoreError> {
        for (name, rel) in std::mem::take(&mut self.missing) {
            let st = snap.entry(&rel).ok().map(|e| e.stat);
            let mode = st.map_or(0o755, |s| s.st_mode & 0o7777);
            let at = self.path.parent().unwrap_or(&self.path).to_path_buf();
            let m = Mode::from_bits_truncate(mode);
            match nix::sys::stat::mkdirat(self.dir.as_fd(), name.as_os_str(), m) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(io(&at)(e)),
            }
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
            let fd = open_child(&self.dir, &name, flags).map_err(io(&at))?;
            if let Some(s) = st {
                let (u, g) = (Some(s.st_uid.into()), Some(s.st_gid.into()));
                let _ = nix::unistd::fchown(fd.as_fd(), u, g);
                let _ = nix::sys::stat::fchmod(fd.as_fd(), m);
            }
            self.dir = fd;
        }
        Ok(())
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `NAME.wayback-<UTC date>` (made unique with `-2`, `-3`… when taken).
fn keep_name(dir: &OwnedFd, name: &OsStr, now: &str) -> OsString {
    let mut n = 1;
    loop {
        let mut k = name.to_os_string();
        k.push(format!(".wayback-{now}"));
        if n > 1 {
            k.push(format!("-{n}"));
        }
        if fstatat(dir.as_fd(), k.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) == Err(Errno::ENOENT) {
            return k;
        }
        n += 1;
    }
}

/// Remove what this process made at `name` in `dir` (a file, link or tree), best effort.
fn remove_tree(dir: &OwnedFd, name: &OsStr) {
    if let Ok(st) = fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR {
            if let Ok(sub) = open_child(
                dir,
                &name.to_os_string(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            ) {
                let _ = nix::sys::stat::fchmod(sub.as_fd(), Mode::from_bits_truncate(0o700));
                for n in names(&sub).unwrap_or_default() {
                    remove_tree(&sub, &n);
                }
            }
            let _ = nix::unistd::unlinkat(dir.as_fd(), name, nix::unistd::UnlinkatFlags::RemoveDir);
        } else {
            let _ =
                nix::unistd::unlinkat(dir.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// What [`put`] did besides the copy.
#[derive(Debug, Default)]
pub struct Placed {
    /// Where the replaced entry was kept (with --overwrite).
    pub kept: Option<PathBuf>,
}

/// Copy the snapshot entry `src` (of `snap`) to `dest`: under a temporary name, then renamed into place;
/// an existing entry is an error unless `overwrite` (then it is kept as `NAME.wayback-<now>`).
pub fn put(
    snap: &Tree,
    src: &Entry,
    dest: &mut Dest,
    overwrite: bool,
    now: &str,
    copier: &mut Copier,
) -> Result<Placed, RestoreError> {
    if dest.existing().is_some() && !overwrite {
        return Err(RestoreError::Exists {
            path: dest.path.clone(),
        });
    }
    dest.make_parents(snap)?;
    let tmp = OsString::from(format!(
        ".{}.wayback-tmp-{}-{}",
        dest.name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let here = dest.path.clone();
    if let Err(e) = copier.copy(
        &src.dir,
        &src.name,
        &src.stat,
        &dest.dir,
        &tmp,
        Path::new(&tmp),
    ) {
        remove_tree(&dest.dir, &tmp);
        return Err(io(&here)(e));
    }
    let mut placed = Placed::default();
    let rename = |from: &OsStr, to: &OsStr| {
        nix::fcntl::renameat2(
            dest.dir.as_fd(),
            from,
            dest.dir.as_fd(),
            to,
            RenameFlags::RENAME_NOREPLACE,
        )
    };
    if dest.existing().is_some() {
        let keep = keep_name(&dest.dir, &dest.name, now);
        if let Err(e) = rename(&dest.name, &keep) {
            remove_tree(&dest.dir, &tmp);
            return Err(io(&here)(e));
        }
        placed.kept = Some(here.with_file_name(&keep));
    }
    if let Err(e) = rename(&tmp, &dest.name) {
        if let Some(k) = &placed.kept {
            let _ = rename(k.file_name().unwrap_or_default(), &dest.name);
        }
        remove_tree(&dest.dir, &tmp);
        return Err(match e {
            Errno::EEXIST => RestoreError::Exists { path: here },
            e => io(&here)(e),
        });
    }
    Ok(placed)
}

#[cfg(test)]
mod tests;
