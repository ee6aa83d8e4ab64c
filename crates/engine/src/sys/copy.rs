//! Copying a file, a symlink or a directory tree out of a snapshot, descriptor to descriptor: regular
//! files as a reflink (`FICLONERANGE`, through btrfs-uapi) when source and destination share a btrfs
//! filesystem, else by `copy_file_range` (std's `io::copy`); symlinks as symlinks (never followed);
//! directories recursively; hard links inside a restored tree kept as hard links; FIFOs re-made; devices
//! and sockets skipped (counted). Each copy gets its source's owner, extended attributes (POSIX ACLs are
//! the `system.posix_acl_*` xattrs), mode and times, in that order (chown clears set-id bits and
//! capabilities; the mode after the ACL keeps its mask; times last, after the contents).
//!
//! The source side is opened child by child with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV`,
//! so the walk never leaves the snapshot. The destination entries are created with `O_EXCL` /
//! `mkdirat` / `symlinkat` under a directory descriptor: nothing existing is ever written through.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use serde::Serialize;

use crate::sys::inroot::open_child;

/// What a restore did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    pub fifos: u64,
    /// Devices and sockets: not restored.
    pub skipped: u64,
    pub bytes: u64,
    /// Files whose data was shared (reflinked), and files copied byte for byte.
    pub reflinked: u64,
    pub copied: u64,
    /// Owners that could not be kept (not root), and xattrs that could not be set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The copy in progress: `dry` counts only.
pub struct Copier {
    pub dry: bool,
    pub stats: Stats,
    /// Hard links seen: source inode → the copy's path relative to `top` (the destination's parent).
    links: HashMap<u64, PathBuf>,
    top: Option<OwnedFd>,
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn errno(e: io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

impl Copier {
    pub fn new(dry: bool) -> Copier {
        Copier {
            dry,
            stats: Stats::default(),
            links: HashMap::new(),
            top: None,
        }
    }

    /// Copy the entry `name` of `src_dir` (whose `lstat` is `st`) to `name_to` in `dst_dir` (which must
    /// not exist). `rel` is `name_to`'s path below `dst_dir`, for hard links (the top call: just the name).
    pub fn copy(
        &mut self,
        src_dir: &OwnedFd,
        name: &OsStr,
        st: &FileStat,
        dst_dir: &OwnedFd,
        name_to: &OsStr,
        rel: &Path,
    ) -> nix::Result<()> {
        if self.top.is_none() && !self.dry {
            self.top = Some(dst_dir.try_clone().map_err(errno)?);
        }
        match kind(st) {
            SFlag::S_IFREG => self.file(src_dir, name, st, dst_dir, name_to, rel),
            SFlag::S_IFDIR => self.dir(src_dir, name, st, dst_dir, name_to, rel),
            SFlag::S_IFLNK => {
                self.stats.symlinks += 1;
                if self.dry {
                    return Ok(());
                }
                let target = nix::fcntl::readlinkat(src_dir.as_fd(), name)?;
                nix::unistd::symlinkat(target.as_os_str(), dst_dir.as_fd(), name_to)?;
                self.meta_at(dst_dir, name_to, st)
            }
            SFlag::S_IFIFO => {
                self.stats.fifos += 1;
                if self.dry {
                    return Ok(());
                }
                nix::sys::stat::mknodat(
                    dst_dir.as_fd(),
                    name_to,
                    SFlag::S_IFIFO,
                    Mode::from_bits_truncate(0o600),
                    0,
                )?;
                self.meta_at(dst_dir, name_to, st)
            }
            _ => {
                self.stats.skipped += 1;
                self.warn(format!(
                    "{}: a device or socket, not restored",
                    rel.display()
                ));
                Ok(())
            }
        }
    }

    fn warn(&mut self, w: String) {
        if self.stats.warnings.len() < 20 {
            self.stats.warnings.push(w);
        }
    }

    fn file(
        &mut self,
        src_dir: &OwnedFd,
        name: &OsStr,
        st: &FileStat,
        dst_dir: &OwnedFd,
        name_to: &OsStr,
        rel: &Path,
    ) -> nix::Result<()> {
        if st.st_nlink > 1 {
            if let Some(first) = self.links.get(&st.st_ino) {
                self.stats.hard_links += 1;
                if self.dry {
                    return Ok(());
                }
                let top = self.top.as_ref().expect("set by copy");
                return nix::unistd::linkat(
                    top.as_fd(),
                    first.as_path(),
                    dst_dir.as_fd(),
                    name_to,
                    AtFlags::empty(),
                );
            }
            self.links.insert(st.st_ino, rel.to_path_buf());
        }
        self.stats.files += 1;
        self.stats.bytes += st.st_size as u64;
        if self.dry {
            return Ok(());
        }
        let src = File::from(open_child(
            src_dir,
            &name.to_os_string(),
            OFlag::O_RDONLY | OFlag::O_NONBLOCK,
        )?);
        let dst = File::from(nix::fcntl::openat(
            dst_dir.as_fd(),
            name_to,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?);
        if btrfs_uapi::reflink::clone_range(src.as_fd(), 0, 0, dst.as_fd(), 0).is_ok() {
            self.stats.reflinked += 1;
        } else {
            dst.set_len(0).map_err(errno)?;
            io::copy(&mut &src, &mut &dst).map_err(errno)?;
            self.stats.copied += 1;
        }
        self.meta_fd(src.as_fd(), dst.as_fd(), st, rel)
    }

    fn dir(
        &mut self,
        src_dir: &OwnedFd,
        name: &OsStr,
        st: &FileStat,
        dst_dir: &OwnedFd,
        name_to: &OsStr,
        rel: &Path,
    ) -> nix::Result<()> {
        self.stats.dirs += 1;
        let src = open_child(
            src_dir,
            &name.to_os_string(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        )?;
        let dst = if self.dry {
            None
        } else {
            nix::sys::stat::mkdirat(dst_dir.as_fd(), name_to, Mode::from_bits_truncate(0o700))?;
            Some(open_child(
                dst_dir,
                &name_to.to_os_string(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            )?)
        };
        for child in names(&src)? {
            let Ok(cst) = fstatat(src.as_fd(), child.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            else {
                continue;
            };
            // Another filesystem (a nested subvolume of a live tree): its own restore, not this one.
            if kind(&cst) == SFlag::S_IFDIR && cst.st_dev != st.st_dev {
                self.warn(format!(
                    "{}: another subvolume or filesystem, not restored (restore from its own snapshot)",
                    rel.join(&child).display()
                ));
                continue;
            }
            let to = dst.as_ref().unwrap_or(&src);
            self.copy(&src, &child, &cst, to, &child, &rel.join(&child))?;
        }
        match &dst {
            Some(d) => self.meta_fd(src.as_fd(), d.as_fd(), st, rel),
            None => Ok(()),
        }
    }

    /// Owner, xattrs, mode, times, from `src` (whose lstat is `st`) onto the open `dst`.
    fn meta_fd(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        st: &FileStat,
        rel: &Path,
    ) -> nix::Result<()> {
        self.chown(
            nix::unistd::fchown(
                dst,
                Some(Uid::from_raw(st.st_uid)),
                Some(Gid::from_raw(st.st_gid)),
            ),
            rel,
        );
        for (k, v) in xattrs(src) {
            if let Err(e) = fsetxattr(dst, &k, &v) {
                self.warn(format!(
                    "{}: extended attribute {} not kept: {e}",
                    rel.display(),
                    k.to_string_lossy()
                ));
            }
        }
        nix::sys::stat::fchmod(dst, Mode::from_bits_truncate(st.st_mode & 0o7777))?;
        let (a, m) = times(st);
        nix::sys::stat::futimens(dst, &a, &m)
    }

    /// Owner, mode (not for symlinks) and times of an entry that cannot be opened (symlink, FIFO).
    fn meta_at(&mut self, dir: &OwnedFd, name: &OsStr, st: &FileStat) -> nix::Result<()> {
        let r = nix::unistd::fchownat(
            dir.as_fd(),
            name,
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        );
        self.chown(r, Path::new(name));
        if kind(st) != SFlag::S_IFLNK {
            nix::sys::stat::fchmodat(
                dir.as_fd(),
                name,
                Mode::from_bits_truncate(st.st_mode & 0o7777),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )?;
        }
        let (a, m) = times(st);
        nix::sys::stat::utimensat(
            dir.as_fd(),
            name,
            &a,
            &m,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
    }

    fn chown(&mut self, r: nix::Result<()>, rel: &Path) {
        if let Err(e) = r {
            self.warn(format!(
                "{}: owner not kept ({e}; restore as root to keep owners)",
                rel.display()
            ));
        }
    }
}

fn times(st: &FileStat) -> (TimeSpec, TimeSpec) {
    (
        TimeSpec::new(st.st_atime, st.st_atime_nsec),
        TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
    )
}

/// Entry names of an open directory (a duplicate of `dir` is read), without `.` and `..`.
pub fn names(dir: &OwnedFd) -> nix::Result<Vec<OsString>> {
    let d = nix::dir::Dir::from_fd(dir.try_clone().map_err(errno)?)?;
    let mut out = Vec::new();
    for e in d {
        let n = e?.file_name().to_bytes().to_vec();
        if n != b"." && n != b".." {
            out.push(OsString::from(OsStr::from_bytes(&n)));
        }
    }
    out.sort();
    Ok(out)
}

/// Every extended attribute of an open file (name, value); none when it has none or cannot be read.
fn xattrs(fd: BorrowedFd<'_>) -> Vec<(CString, Vec<u8>)> {
    let raw = fd.as_raw_fd();
    let mut names = vec![0u8; 4096];
    // SAFETY: `names` is a valid writable buffer of the given length; the fd is open.
    let n = unsafe { libc::flistxattr(raw, names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(c) = CString::new(name) else { continue };
        let mut val = vec![0u8; 64 * 1024];
        // SAFETY: `c` is NUL-terminated; `val` is a valid writable buffer of the given length.
        let m = unsafe { libc::fgetxattr(raw, c.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        if m >= 0 {
            val.truncate(m as usize);
            out.push((c, val));
        }
    }
    out
}

fn fsetxattr(fd: BorrowedFd<'_>, name: &CString, value: &[u8]) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated; `value` is valid for its length; the fd is open.
    let r = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the open files (or directories) `a` and `b` are on one btrfs filesystem (so a reflink can
/// share their data).
pub fn same_btrfs(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    let fs = |fd| {
        btrfs_uapi::filesystem::filesystem_info(fd)
            .ok()
            .map(|i| i.uuid)
    };
    matches!((fs(a), fs(b)), (Some(x), Some(y)) if x == y)
}
