//! The binary every container runs as its init: `wayback-init`, installed next to `wayback` (see
//! `crates/wayback/src/bin/wayback-init.rs`), else this very executable (`wayback __init` runs the same
//! code). Held open from the start of this process ([`hold`]) and mounted into each launch namespace from
//! that descriptor ([`clone_mount`]), so a container always runs the init of the wayback that started it —
//! also when a package upgrade has replaced the files on disk since.
//!
//! Why a binary of its own: the init stays for the container's whole life, and the pages the loader of a
//! position-independent binary writes at start (its relocated data: ~860 KiB for `wayback`, ~30 KiB for
//! `wayback-init`) are private to each process.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{Mode, OFlags};
use rustix::mount::OpenTreeFlags;

/// The init binary's file name, next to `wayback`.
pub const NAME: &str = "wayback-init";

static HELD: OnceLock<Option<(PathBuf, OwnedFd)>> = OnceLock::new();

/// Open `wayback-init` next to this executable (an `O_PATH` descriptor kept for the process's life).
/// Call first thing in `main`: later, an upgrade may have replaced the file. Without the file, the
/// containers run this executable itself.
pub fn hold() {
    HELD.get_or_init(|| {
        let path = sibling()?;
        let fd = rustix::fs::open(&path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).ok()?;
        Some((path, fd))
    });
}

/// The path of the binary containers run (for reading its ELF dependencies): `wayback-init` when held,
/// else this executable (its path on disk, also after an upgrade replaced it).
pub fn path() -> std::io::Result<PathBuf> {
    hold();
    match HELD.get().and_then(Option::as_ref) {
        Some((p, _)) => Ok(p.clone()),
        None => exe(),
    }
}

/// A detached mount of the init binary, to be moved into a launch namespace. Call before unsharing:
/// the binary's mount belongs to the host's namespace.
pub fn clone_mount() -> std::io::Result<OwnedFd> {
    hold();
    let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    let fd = match HELD.get().and_then(Option::as_ref) {
        Some((_, fd)) => rustix::mount::open_tree(fd, "", flags | OpenTreeFlags::AT_EMPTY_PATH),
        None => rustix::mount::open_tree(rustix::fs::CWD, "/proc/self/exe", flags),
    };
    Ok(fd?)
}

fn exe() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let s = exe.to_string_lossy();
    Ok(match s.strip_suffix(" (deleted)") {
        Some(p) => p.into(),
        None => exe,
    })
}

/// `wayback-init` in this executable's directory, if it is a file.
fn sibling() -> Option<PathBuf> {
    let p = exe().ok()?.parent().map(|d| d.join(NAME))?;
    is_file(&p).then_some(p)
}

fn is_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file())
}
