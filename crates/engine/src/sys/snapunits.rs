//! A snapshot's own systemd units and the configs their apps read, for `up --unit … --software snapshot`:
//! the unit converter's [`UnitSource`] over a [`Tree`], so every path (unit files, drop-ins, environment
//! files, nginx or PostgreSQL configs) is resolved inside the snapshot and no symlink in it leads to a host
//! file. NixOS links such as `/etc/systemd/system/x.service -> /etc/static/… -> /nix/store/…` resolve to the
//! snapshot's own store. A link to `/dev/null` is a masked unit, as systemd reads it, whether or not the
//! snapshot has a /dev/null.
//!
//! Syscalls: those of [`Tree`] (openat2 with RESOLVE_IN_ROOT, readlinkat, getdents).

use std::io;
use std::path::{Path, PathBuf};

use wayback_core::units::{resolve_links, EnvFileReader, UnitSource};

use crate::sys::inroot::{InRootError, Tree};

/// Unit files and configs are small; larger files are refused rather than read into memory.
const FILE_MAX: u64 = 4 << 20;

/// The units and configs of a snapshot, read inside it.
pub struct SnapUnitSource {
    tree: Tree,
}

impl SnapUnitSource {
    pub fn open(snapshot: &Path) -> Result<SnapUnitSource, InRootError> {
        Ok(SnapUnitSource {
            tree: Tree::open(snapshot)?,
        })
    }
}

fn io_err(e: InRootError) -> io::Error {
    match e {
        InRootError::Missing { .. } => io::Error::new(io::ErrorKind::NotFound, e.to_string()),
        e => io::Error::other(e.to_string()),
    }
}

impl UnitSource for SnapUnitSource {
    fn read(&self, path: &Path) -> io::Result<String> {
        let real = self.canonicalize(path)?;
        self.tree.read_to_string(&real, FILE_MAX).map_err(io_err)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let real = self.canonicalize(dir)?;
        let entries = self.tree.read_dir(&real).map_err(io_err)?;
        Ok(entries.into_iter().map(|(n, _)| dir.join(n)).collect())
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        resolve_links(path, " in the snapshot", &|p: &Path| {
            self.tree.read_link(p).map_err(io_err)
        })
    }
}

impl EnvFileReader for SnapUnitSource {
    fn read_env_file(&self, path: &Path) -> io::Result<String> {
        self.read(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn units_resolve_inside_the_snapshot_only() {
        let t = tempfile::tempdir().unwrap();
        let (snap, host) = (t.path().join("snap"), t.path().join("host"));
        let store = snap.join("nix/store/abc-unit-x.service");
        fs::create_dir_all(&store).unwrap();
        fs::write(store.join("x.service"), "[Service]\nExecStart=/bin/x\n").unwrap();
        fs::create_dir_all(snap.join("etc/systemd/system")).unwrap();
        symlink("/nix/store/abc-unit-x.service", snap.join("etc/static")).unwrap();
        symlink(
            "../../static/x.service",
            snap.join("etc/systemd/system/x.service"),
        )
        .unwrap();
        symlink("/dev/null", snap.join("etc/systemd/system/m.service")).unwrap();
        // A link to a host file: inside the snapshot it does not exist.
        fs::create_dir_all(&host).unwrap();
        fs::write(host.join("evil.service"), "[Service]\nExecStart=/host\n").unwrap();
        symlink(
            host.join("evil.service"),
            snap.join("etc/systemd/system/evil.service"),
        )
        .unwrap();
        let src = SnapUnitSource::open(&snap).unwrap();
        let unit = Path::new("/etc/systemd/system/x.service");
        assert_eq!(
            src.canonicalize(unit).unwrap(),
            Path::new("/nix/store/abc-unit-x.service/x.service")
        );
        assert!(src.read(unit).unwrap().contains("ExecStart=/bin/x"));
        assert_eq!(
            src.canonicalize(Path::new("/etc/systemd/system/m.service"))
                .unwrap(),
            Path::new("/dev/null")
        );
        let evil = src
            .read(Path::new("/etc/systemd/system/evil.service"))
            .unwrap_err();
        assert_eq!(evil.kind(), io::ErrorKind::NotFound, "{evil}");
        assert_eq!(
            src.list_dir(Path::new("/etc/systemd/system")).unwrap(),
            [
                Path::new("/etc/systemd/system/evil.service"),
                Path::new("/etc/systemd/system/m.service"),
                Path::new("/etc/systemd/system/x.service"),
            ]
        );
    }
}
