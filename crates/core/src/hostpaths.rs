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

/// Host secrets the container never sees even though it shows the host's /etc: each is replaced by an empty,
/// inaccessible node of the same type (nspawn's `--inaccessible=`). Globs are expanded on the host. More come
/// from the config's `mask_host_paths`; `up --unmask PATH` shows one a service really needs.
pub const DEFAULT_MASKS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/ssh/ssh_host_*_key",
    "/etc/ssl/private",
    "/etc/wayback",
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
    #[error("--no-host-path {0}: the container does not show it; it shows /etc, /nix, /run/current-system, /run/booted-system, /run/wrappers and /opt (when present), host_paths from the config and --host-path")]
    NotShown(PathBuf),
    #[error("--unmask {path}: nothing masked is at or below it; masked are {masked}; give one of them or a directory above one")]
    NotMasked { path: PathBuf, masked: String },
}

fn checked(p: &Path) -> Result<&Path, HostPathError> {
    if !p.is_absolute() || p.components().any(|c| c.as_os_str() == "..") {
        return Err(HostPathError::Invalid(p.to_path_buf()));
    }
    Ok(p)
}

/// The host paths to mask in a container showing `shown`: `patterns` (defaults, config, the proxy's key
/// files; globs allowed) expanded with `list` (a host directory's entries), kept when they exist
/// (`exists`) and lie under a path the container shows, minus `unmask`. Sorted, without duplicates.
pub fn masks(
    patterns: &[PathBuf],
    unmask: &[PathBuf],
    shown: &HostPaths,
    list: &mut dyn FnMut(&Path) -> Vec<(std::ffi::OsString, bool)>,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>, HostPathError> {
    let mut globs = Vec::new();
    for pat in patterns {
        let glob: crate::glob::Glob = checked(pat)?
            .to_string_lossy()
            .parse()
            .map_err(|_| HostPathError::Invalid(pat.clone()))?;
        globs.push(glob);
    }
    // An --unmask that unmasks nothing is a typo (or a file inside a masked directory, which stays masked).
    for u in unmask {
        checked(u)?;
        let covers = |g: &crate::glob::Glob| {
            Path::new("/").join(g.literal_prefix()).starts_with(u) || g.matches(u)
        };
        if !globs.iter().any(covers) {
            return Err(HostPathError::NotMasked {
                path: u.clone(),
                masked: patterns
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let mut out = Vec::new();
    for glob in &globs {
        let mut list_abs = |rel: &Path| list(&Path::new("/").join(rel));
        for rel in glob.walk(&mut list_abs) {
            let p = Path::new("/").join(rel);
            let visible = shown.binds.iter().any(|b| p.starts_with(b));
            let unmasked = unmask.iter().any(|u| p.starts_with(u));
            if visible && !unmasked && exists(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
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
    // A --no-host-path that leaves out nothing is a typo: the path it meant stays visible.
    for r in removed {
        let r: PathBuf = checked(r)?.components().collect();
        let all = defaults.clone().chain(extras.clone());
        if !all
            .map(|(p, _)| p.components().collect::<PathBuf>())
            .any(|p| p == r)
        {
            return Err(HostPathError::NotShown(r));
        }
    }
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
    fn masks_secrets_the_container_can_see() {
        let shown = resolve(&[], &[], &debian).unwrap();
        let host = [
            "/etc/shadow",
            "/etc/ssh/ssh_host_ed25519_key",
            "/etc/ssh/ssh_host_rsa_key",
            "/etc/ssh/ssh_host_rsa_key.pub",
            "/etc/ssl/private",
            "/root/secret",
        ];
        let mut list = |dir: &Path| -> Vec<(std::ffi::OsString, bool)> {
            host.iter()
                .map(Path::new)
                .filter(|p| p.parent() == Some(dir))
                .map(|p| (p.file_name().unwrap().into(), false))
                .collect()
        };
        let exists = |p: &Path| host.iter().any(|h| Path::new(h) == p);
        let mut patterns: Vec<PathBuf> = DEFAULT_MASKS.iter().map(PathBuf::from).collect();
        patterns.push("/root/secret".into());
        let m = masks(&patterns, &["/etc/ssl".into()], &shown, &mut list, &exists).unwrap();
        assert_eq!(
            m,
            vec![
                PathBuf::from("/etc/shadow"),
                PathBuf::from("/etc/ssh/ssh_host_ed25519_key"),
                PathBuf::from("/etc/ssh/ssh_host_rsa_key"),
            ],
            "public keys stay, unmasked and invisible paths are not masked"
        );
        assert!(masks(&["etc/x".into()], &[], &shown, &mut list, &exists).is_err());
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
        assert!(
            resolve(&[], &["/nix/".into()], &debian).is_ok(),
            "a default, though absent"
        );
        assert_eq!(
            resolve(&[], &["/etcc".into()], &debian),
            Err(HostPathError::NotShown("/etcc".into()))
        );
        assert!(matches!(
            resolve(&[], &["etc".into()], &debian),
            Err(HostPathError::Invalid(_))
        ));
    }

    #[test]
    fn an_unmask_must_unmask_something() {
        let shown = resolve(&[], &[], &debian).unwrap();
        let patterns: Vec<PathBuf> = DEFAULT_MASKS.iter().map(PathBuf::from).collect();
        let mut list = |_: &Path| Vec::new();
        let exists = |_: &Path| true;
        for ok in [
            "/etc/shadow",
            "/etc/ssh",
            "/etc/ssh/ssh_host_rsa_key",
            "/etc",
            "/",
        ] {
            let r = masks(&patterns, &[ok.into()], &shown, &mut list, &exists);
            assert!(r.is_ok(), "{ok}: {r:?}");
        }
        for bad in [
            "/etc/shadoww",
            "/etc/ssl/private/x.key",
            "/srv",
            "/etc/ssh/ssh_host_rsa_key.pub",
        ] {
            let e = masks(&patterns, &[bad.into()], &shown, &mut list, &exists).unwrap_err();
            assert!(
                matches!(&e, HostPathError::NotMasked { path, .. } if path == Path::new(bad)),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains("/etc/gshadow"), "{e}");
        }
        assert!(matches!(
            masks(
                &patterns,
                &["etc/shadow".into()],
                &shown,
                &mut list,
                &exists
            ),
            Err(HostPathError::Invalid(_))
        ));
    }
}
