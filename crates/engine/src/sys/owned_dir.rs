//! Directories wayback creates on other people's filesystems (the clone directory at the top of a
//! snapshot's mount), marked with an extended attribute so that wayback removes them — when empty — no
//! matter which instance made them, and never removes a directory it did not make.
//!
//! Syscalls: mkdir, lsetxattr/lgetxattr (`user.wayback`, through rustix), rmdir. A symlink is never taken
//! for the directory.

use std::fs;
use std::io;
use std::path::Path;

use rustix::fs::{lgetxattr, lsetxattr, XattrFlags};

const XATTR: &str = "user.wayback";

/// Create `path` (if missing) and mark it as wayback's. An existing directory is left unmarked.
pub fn create(path: &Path) -> io::Result<()> {
    match fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Err(e) = lsetxattr(path, XATTR, b"1", XattrFlags::empty()) {
        let _ = fs::remove_dir(path);
        return Err(e.into());
    }
    Ok(())
}

/// Whether `path` carries wayback's mark.
pub fn is_ours(path: &Path) -> bool {
    let mut buf = [0u8; 8];
    matches!(lgetxattr(path, XATTR, &mut buf[..]), Ok(1) if buf[0] == b'1')
}

/// What [`remove_if_unused`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Left: it still holds something (other instances' clones).
    NotEmpty,
    /// Left: it does not carry wayback's mark (or is not a directory).
    NotOurs,
    /// It was already gone.
    Gone,
}

impl Removal {
    /// How a teardown reports it: "removed directory X", "left directory X: still holds other clones", ...
    pub fn describe(self, path: &Path) -> String {
        let p = path.display();
        match self {
            Removal::Removed => format!("removed directory {p}"),
            Removal::NotEmpty => format!("left directory {p}: still holds other clones"),
            Removal::NotOurs => {
                format!("left directory {p}: wayback did not make it (no {XATTR} mark)")
            }
            Removal::Gone => format!("directory {p} was already gone"),
        }
    }
}

/// Remove `path` if it is wayback's (marked, a real directory) and empty; say what happened. Gone, not
/// ours, or still in use by another clone are not errors.
pub fn remove_if_unused(path: &Path) -> io::Result<Removal> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Removal::Gone),
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() => return Ok(Removal::NotOurs),
        Ok(_) => {}
    }
    if !is_ours(path) {
        return Ok(Removal::NotOurs);
    }
    match fs::remove_dir(path) {
        Ok(()) => Ok(Removal::Removed),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Removal::Gone),
        Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(Removal::NotEmpty),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_only_what_it_creates() {
        let t = tempfile::tempdir().unwrap();
        let mine = t.path().join("mine");
        create(&mine).unwrap();
        if !is_ours(&mine) {
            eprintln!("SKIP: {} does not support user xattrs", t.path().display());
            return;
        }
        let theirs = t.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        create(&theirs).unwrap(); // exists: left unmarked
        assert!(!is_ours(&theirs));
        fs::write(mine.join("f"), "x").unwrap();
        assert_eq!(remove_if_unused(&mine).unwrap(), Removal::NotEmpty);
        assert!(mine.exists(), "not empty: stays");
        assert_eq!(
            Removal::NotEmpty.describe(&mine),
            format!(
                "left directory {}: still holds other clones",
                mine.display()
            )
        );
        fs::remove_file(mine.join("f")).unwrap();
        assert_eq!(remove_if_unused(&mine).unwrap(), Removal::Removed);
        assert!(!mine.exists());
        assert_eq!(remove_if_unused(&theirs).unwrap(), Removal::NotOurs);
        assert!(
            theirs.exists(),
            "never removes a directory wayback did not make"
        );
        assert_eq!(remove_if_unused(&mine).unwrap(), Removal::Gone);
        // A symlink to a marked directory is not the directory.
        create(&mine).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&mine, &link).unwrap();
        assert_eq!(remove_if_unused(&link).unwrap(), Removal::NotOurs);
        assert!(mine.exists() && link.exists());
    }
}
