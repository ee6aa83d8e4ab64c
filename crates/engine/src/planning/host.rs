//! What planning reads of the host: the /var directory skeleton, the host paths the container shows (with
//! NixOS's /bin links), the secrets masked in it, and the accounts the processes run as.

use std::path::Path;

use anyhow::Result;
use wayback_core::hostpaths::{self, HostEntry};
use wayback_core::plan::UpRequest;
use wayback_core::Config;

/// Directories (two levels deep) under the host's /var/{lib,log,cache,spool}, as empty directories with
/// their numeric owners and modes: what installed packages expect to find. Names only, never contents.
pub fn var_skeleton(var: &Path) -> Vec<wayback_core::profile::DirSpec> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut level: Vec<std::path::PathBuf> = ["lib", "log", "cache", "spool"]
        .iter()
        .map(|d| var.join(d))
        .collect();
    for _ in 0..2 {
        let mut next = Vec::new();
        for dir in &level {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                let Ok(m) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                if !m.is_dir() {
                    continue;
                }
                out.push(wayback_core::profile::DirSpec {
                    path: Path::new("/var").join(path.strip_prefix(var).unwrap_or(&path)),
                    owner: Some(m.uid().to_string()),
                    group: Some(m.gid().to_string()),
                    mode: Some(format!("{:o}", m.mode() & 0o7777)),
                });
                next.push(path);
            }
        }
        level = next;
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// On a host whose /bin is a real directory (NixOS: only `/bin/sh -> /nix/store/…`), its links are recreated
/// in the container, where nspawn would otherwise point /bin at the host's /usr/bin.
pub(super) fn with_bin_links(
    mut hp: wayback_core::hostpaths::HostPaths,
) -> wayback_core::hostpaths::HostPaths {
    let bin = Path::new("/bin");
    if std::fs::symlink_metadata(bin).is_ok_and(|m| m.is_dir()) {
        for e in std::fs::read_dir(bin).into_iter().flatten().flatten() {
            if let Ok(target) = std::fs::read_link(e.path()) {
                hp.symlinks.push((e.path(), target));
            }
        }
    }
    hp
}

pub(super) fn probe_host(path: &Path) -> HostEntry {
    match std::fs::symlink_metadata(path) {
        Err(_) => HostEntry::Missing,
        Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(path) {
            Ok(target) => HostEntry::Symlink(target),
            Err(_) => HostEntry::Missing,
        },
        Ok(_) => HostEntry::Present,
    }
}

/// The users (or groups) the request's processes run as (and `--user`), as the request names them.
pub(super) fn named_accounts(req: &UpRequest, users: bool) -> impl Iterator<Item = String> + '_ {
    (req.profile.processes.iter())
        .filter_map(move |p| {
            if users {
                p.user.clone()
            } else {
                p.group.clone()
            }
        })
        .chain(req.user.clone().filter(|_| users))
}

/// The users (or groups) the request's processes run as that exist on the host, looked up through NSS as
/// init will look them up inside the container.
pub(super) fn known_accounts(req: &UpRequest, users: bool) -> Vec<String> {
    named_accounts(req, users)
        .filter(|n| {
            if users {
                nix::unistd::User::from_name(n).ok().flatten().is_some()
            } else {
                nix::unistd::Group::from_name(n).ok().flatten().is_some()
            }
        })
        .collect()
}

/// Host secrets the container must not see: the defaults, the config's `mask_host_paths` and the proxy's
/// certificate keys, expanded on the host, minus `--unmask`.
pub(super) fn host_masks(
    cfg: &Config,
    req: &UpRequest,
    shown: &hostpaths::HostPaths,
) -> Result<Vec<std::path::PathBuf>> {
    let patterns: Vec<std::path::PathBuf> = hostpaths::DEFAULT_MASKS
        .iter()
        .map(std::path::PathBuf::from)
        .chain(cfg.mask_host_paths.iter().cloned())
        .chain(cfg.proxy.certificates.iter().map(|c| c.key.clone()))
        .collect();
    let mut list = |dir: &Path| -> Vec<(std::ffi::OsString, bool)> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| (e.file_name(), e.file_type().is_ok_and(|t| t.is_dir())))
            .collect()
    };
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    Ok(hostpaths::masks(
        &patterns,
        &req.unmask,
        shown,
        &mut list,
        &exists,
    )?)
}
