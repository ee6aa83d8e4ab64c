//! Owners of the bind paths and the host's users: gathers what `wayback_core::ownership` compares (stat of
//! each bind path in the snapshot, the host's and the snapshot's /etc/passwd and /etc/group), and applies the
//! resulting id changes to the clone (fchownat over the bind trees, walked by descriptors inside the clone;
//! the source is never touched).

use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, FileStat, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};

use wayback_core::ownership::{self, IdTable, Mismatch, PathOwner, Tables};
use wayback_core::plan::Chown;
use wayback_core::Plan;

use crate::sys::inroot::{InRootError, Tree};

fn table(path: &Path) -> Option<IdTable> {
    fs::read_to_string(path).ok().map(|t| IdTable::parse(&t))
}

/// A passwd/group file of a snapshot, read inside it.
fn snap_table(snap: Option<&Tree>, path: &str) -> Option<IdTable> {
    let text = snap?.read_to_string(Path::new(path), ID_FILE_MAX).ok()?;
    Some(IdTable::parse(&text))
}

/// Larger passwd/group files are not read (a snapshot's content is not trusted).
const ID_FILE_MAX: u64 = 16 << 20;

/// Mismatches between the owners of the plan's bind paths (as they are in the snapshot) and this host.
pub fn mismatches(plan: &Plan) -> Vec<Mismatch> {
    let host_users = table(Path::new("/etc/passwd")).unwrap_or_default();
    let host_groups = table(Path::new("/etc/group")).unwrap_or_default();
    let main = Tree::open(&plan.source.path).ok();
    let snap_users = snap_table(main.as_ref(), "/etc/passwd");
    let snap_groups = snap_table(main.as_ref(), "/etc/group");
    let owners: Vec<PathOwner> = plan
        .container
        .binds
        .iter()
        .filter_map(|b| {
            // The bind's path inside whichever clone it comes from, stat'ed in that clone's snapshot.
            let data = b.clone.as_ref()?;
            let snap = plan.snapshot_of(&data.root)?;
            let st = Tree::open(snap).ok()?.resolve(&data.path).ok()?.stat;
            Some(PathOwner {
                path: b.dest.clone(),
                uid: st.st_uid,
                gid: st.st_gid,
            })
        })
        .collect();
    ownership::check(
        &owners,
        &Tables {
            host_users: &host_users,
            host_groups: &host_groups,
            snap_users: snap_users.as_ref(),
            snap_groups: snap_groups.as_ref(),
        },
    )
}

/// Change mapped owners of the tree at `path` inside the clone at `root` (resolved inside the clone, walked
/// by file descriptors: no symlink is followed, no other filesystem entered). Returns how many entries
/// changed.
pub fn chown_tree(root: &Path, path: &Path, chown: &Chown) -> Result<u64, ChownError> {
    let found = Tree::open(root)?.resolve(path)?;
    let mut walk = Walk {
        chown,
        dev: found.stat.st_dev,
        changed: 0,
    };
    walk.entry(found.fd, found.stat)
        .map_err(|source| ChownError::Io {
            path: root.join(path.strip_prefix("/").unwrap_or(path)),
            source,
        })?;
    Ok(walk.changed)
}

#[derive(Debug, thiserror::Error)]
pub enum ChownError {
    #[error(transparent)]
    InRoot(#[from] InRootError),
    #[error("changing owners under {path}: {source}")]
    Io { path: PathBuf, source: nix::Error },
}

struct Walk<'a> {
    chown: &'a Chown,
    dev: u64,
    changed: u64,
}

impl Walk<'_> {
    /// One entry, given as an `O_PATH` descriptor (of the entry itself, never followed) and its stat.
    fn entry(&mut self, fd: OwnedFd, st: FileStat) -> nix::Result<()> {
        if st.st_dev != self.dev {
            return Ok(());
        }
        let uid = self.chown.uids.get(&st.st_uid).copied().map(Uid::from_raw);
        let gid = self.chown.gids.get(&st.st_gid).copied().map(Gid::from_raw);
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        let dir_or_file = kind == SFlag::S_IFDIR || kind == SFlag::S_IFREG;
        if uid.is_some() || gid.is_some() {
            fchownat(fd.as_fd(), "", uid, gid, AtFlags::AT_EMPTY_PATH)?;
            // chown clears setuid/setgid bits: put the mode back for regular files and directories.
            if dir_or_file && st.st_mode & 0o6000 != 0 {
                let real = reopen(&fd, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?;
                fchmod(real.as_fd(), Mode::from_bits_truncate(st.st_mode & 0o7777))?;
            }
            self.changed += 1;
        }
        if kind != SFlag::S_IFDIR {
            return Ok(());
        }
        let dir = Dir::from_fd(reopen(&fd, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?)?;
        let names: Vec<std::ffi::CString> = dir
            .into_iter()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_owned())
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .collect();
        for name in names {
            let child = openat(
                fd.as_fd(),
                name.as_c_str(),
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let st = fstat(child.as_fd())?;
            self.entry(child, st)?;
        }
        Ok(())
    }
}

/// A real descriptor for an `O_PATH` one (through /proc/self/fd, which names exactly that file).
fn reopen(fd: &OwnedFd, flags: OFlag) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    )
}
