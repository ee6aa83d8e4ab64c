//! Clones of sources that are not btrfs subvolumes (a mounted restic/borg backup, a ZFS `.zfs/snapshot/x`,
//! an LVM snapshot mounted read-only): an overlayfs mount whose lower layer is the source and whose upper
//! and work directories live in the instance's state directory. Writes land only in the upper layer; the
//! source is never written. Syscalls: mount(2) with type overlay, umount2(2).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("cannot create {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("cannot mount an overlay of {lower} at {merged}: {source} (is overlayfs available, and is {upper} on a filesystem that supports it as an upper layer, e.g. not another overlay?)")]
    Mount {
        lower: PathBuf,
        upper: PathBuf,
        merged: PathBuf,
        source: nix::Error,
    },
    #[error("cannot unmount the overlay at {merged}: {source}")]
    Umount { merged: PathBuf, source: nix::Error },
}

/// The three directories of an overlay clone under `base` (in the instance's state directory).
pub struct Layout {
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

impl Layout {
    pub fn under(base: &Path) -> Layout {
        Layout {
            upper: base.join("upper"),
            work: base.join("work"),
            merged: base.join("merged"),
        }
    }
}

/// Mount `lower` (read-only) with a writable upper layer at `merged`.
pub fn mount_clone(lower: &Path, merged: &Path) -> Result<(), OverlayError> {
    let base = merged.parent().unwrap_or(Path::new("/"));
    let l = Layout::under(base);
    for d in [&l.upper, &l.work, &l.merged] {
        fs::create_dir_all(d).map_err(|source| OverlayError::Dir {
            path: d.clone(),
            source,
        })?;
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        escape(lower),
        escape(&l.upper),
        escape(&l.work)
    );
    mount(
        Some("wayback"),
        &l.merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|source| OverlayError::Mount {
        lower: lower.into(),
        upper: l.upper.clone(),
        merged: l.merged.clone(),
        source,
    })
}

/// Unmount the overlay at `merged`. Not mounted or gone: Ok. The directories go with the instance's.
pub fn unmount_clone(merged: &Path) -> Result<(), OverlayError> {
    match umount2(merged, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL | nix::Error::ENOENT) => Ok(()),
        Err(source) => Err(OverlayError::Umount {
            merged: merged.into(),
            source,
        }),
    }
}

/// overlayfs options separate with ',' and ':'; escape them with a backslash.
fn escape(p: &Path) -> String {
    let s = p.display().to_string();
    s.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace(':', "\\:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_escaping() {
        let l = Layout::under(Path::new("/var/lib/wayback/instances/x/overlay"));
        assert_eq!(
            l.merged,
            Path::new("/var/lib/wayback/instances/x/overlay/merged")
        );
        assert_eq!(escape(Path::new("/a,b:c")), "/a\\,b\\:c");
    }
}
