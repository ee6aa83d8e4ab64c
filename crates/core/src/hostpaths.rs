//! Host mode's view of the host: which host paths the container sees read-only, so the host's software runs
//! inside it exactly as on the host. /usr comes with nspawn's `--volatile=yes`; /etc always; /nix (store and
//! var/nix), /run/current-system, /run/booted-system, /run/wrappers and /opt when present — so NixOS hosts,
//! where almost nothing lives in /usr, work like Debian. Symlinks (e.g. /run/current-system → /nix/store/…)
//! are recreated inside the container with the same target rather than bound, so they resolve exactly as on
//! the host. Pure: the caller probes the filesystem.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Paths shown by default when they exist on the host.
pub const DEFAULTS: &[&str] = &[
    "/etc",
    "/nix",
    "/run/current-system",
    "/run/booted-system",
    "/run/wrappers",
    "/opt",
];

/// Paths that cannot be host paths: the container's own root, pseudo-filesystems, its fresh tmpfs dirs,
/// and /usr (already there).
const FORBIDDEN: &[&str] = &[
    "/", "/usr", "/proc", "/sys", "/dev", "/run", "/tmp", "/var", "/var/tmp",
];

/// What a host path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEntry {
    Missing,
    /// A directory or file: bound read-only.
    Present,
    /// A symlink with this target: recreated inside the container.
    Symlink(PathBuf),
}

/// The resolved host paths of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPaths {
    /// Bound read-only at the same place.
    pub binds: Vec<PathBuf>,
    /// Created inside the container: (path, target).
    pub symlinks: Vec<(PathBuf, PathBuf)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostPathError {
    #[error(
        "host path {0} does not exist on this host (from --host-path or host_paths in the config)"
    )]
    Missing(PathBuf),
    #[error("host path {0} cannot be shown in the container: it is the container's own (use an absolute path below it, e.g. /srv/app, or a different one)")]
    Forbidden(PathBuf),
    #[error("host path {0} must be absolute and without '..'")]
    Invalid(PathBuf),
}

/// Resolve defaults + `extra` (config and `--host-path`) − `removed` (`--no-host-path`).
pub fn resolve(
    extra: &[PathBuf],
    removed: &[PathBuf],
    probe: &dyn Fn(&Path) -> HostEntry,
) -> Result<HostPaths, HostPathError> {
    let mut out = HostPaths::default();
    let defaults = DEFAULTS.iter().map(|d| (PathBuf::from(d), true));
    let extras = extra.iter().map(|p| (p.clone(), false));
    let mut seen: Vec<PathBuf> = Vec::new();
    for (path, is_default) in defaults.chain(extras) {
        if !path.is_absolute() || path.components().any(|c| c.as_os_str() == "..") {
            return Err(HostPathError::Invalid(path));
        }
        let norm: PathBuf = path.components().collect();
        if seen.contains(&norm)
            || removed
                .iter()
                .any(|r| r.components().collect::<PathBuf>() == norm)
        {
            continue;
        }
        if FORBIDDEN.iter().any(|f| Path::new(f) == norm) {
            return Err(HostPathError::Forbidden(norm));
        }
        seen.push(norm.clone());
        match probe(&norm) {
            HostEntry::Missing if is_default => {}
            HostEntry::Missing => return Err(HostPathError::Missing(norm)),
            HostEntry::Present => out.binds.push(norm),
            HostEntry::Symlink(target) => out.symlinks.push((norm, target)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian(p: &Path) -> HostEntry {
        match p.to_str().unwrap() {
            "/etc" | "/opt" | "/srv/app" => HostEntry::Present,
            _ => HostEntry::Missing,
        }
    }

    fn nixos(p: &Path) -> HostEntry {
        match p.to_str().unwrap() {
            "/etc" | "/nix" | "/run/wrappers" => HostEntry::Present,
            "/run/current-system" => HostEntry::Symlink("/nix/store/abc-nixos-system-x".into()),
            "/run/booted-system" => HostEntry::Symlink("/nix/store/abc-nixos-system-x".into()),
            _ => HostEntry::Missing,
        }
    }

    #[test]
    fn defaults_follow_the_host() {
        let d = resolve(&[], &[], &debian).unwrap();
        assert_eq!(d.binds, vec![PathBuf::from("/etc"), PathBuf::from("/opt")]);
        assert!(d.symlinks.is_empty());
        let n = resolve(&[], &[], &nixos).unwrap();
        assert_eq!(
            n.binds,
            vec![
                PathBuf::from("/etc"),
                PathBuf::from("/nix"),
                PathBuf::from("/run/wrappers")
            ]
        );
        assert_eq!(n.symlinks.len(), 2);
        assert_eq!(n.symlinks[0].0, PathBuf::from("/run/current-system"));
    }

    #[test]
    fn add_remove_and_refuse() {
        let r = resolve(
            &["/srv/app".into(), "/etc".into()],
            &["/opt".into()],
            &debian,
        )
        .unwrap();
        assert_eq!(
            r.binds,
            vec![PathBuf::from("/etc"), PathBuf::from("/srv/app")]
        );
        assert_eq!(
            resolve(&["/srv/none".into()], &[], &debian),
            Err(HostPathError::Missing("/srv/none".into()))
        );
        assert_eq!(
            resolve(&["/proc".into()], &[], &debian),
            Err(HostPathError::Forbidden("/proc".into()))
        );
        assert_eq!(
            resolve(&["/usr/".into()], &[], &debian),
            Err(HostPathError::Forbidden("/usr".into()))
        );
        assert!(matches!(
            resolve(&["srv".into()], &[], &debian),
            Err(HostPathError::Invalid(_))
        ));
        assert!(
            resolve(&[], &["/etc".into()], &debian).unwrap().binds == vec![PathBuf::from("/opt")]
        );
    }
}
