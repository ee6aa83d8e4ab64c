//! Whose software runs an instance (`up --software snapshot|host`). With the snapshot's own, planning reads
//! the snapshot's top level (its software directories and links: the container's root is laid out from
//! them), its accounts, shell and /var skeleton (what the host's would be in host mode), and the host's
//! loader and libraries for wayback's init. Then, for either choice, `compare` checks the snapshot's state
//! against the software that would run it (PostgreSQL, MariaDB/MySQL, the programs' packages) and refuses
//! what it cannot run. Every path of the snapshot is read inside it (`sys::inroot`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use wayback_core::drift::Software;
use wayback_core::hostpaths::{self, HostPaths};
use wayback_core::ownership::IdTable;
use wayback_core::plan::{SnapshotSoftware, UpRequest};
use wayback_core::profile::DirSpec;
use wayback_core::Config;

use crate::error::BadInput;
use crate::sys::elfdeps;
use crate::sys::inroot::Tree;

mod compare;
mod dpkglists;
mod packages;

pub use compare::check;

/// Top-level entries of a snapshot that hold software or its configuration: directories bound read-only
/// from the clone, links recreated. Everything else of the snapshot comes in only as a bind path.
const SOFTWARE_DIRS: &[&str] = &[
    "usr", "etc", "nix", "opt", "bin", "sbin", "lib", "lib32", "lib64", "libx32",
];
/// passwd and group files larger than this are not read.
const ID_FILE_MAX: u64 = 16 << 20;

/// What `--software snapshot` changes in the facts: the snapshot's top level, accounts, shell and /var
/// skeleton, and the host paths left (only those the config and `--host-path` add).
pub struct SnapshotFacts {
    pub software: SnapshotSoftware,
    pub host_paths: HostPaths,
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub shell: PathBuf,
    pub var_skeleton: Vec<DirSpec>,
}

/// Whether the request runs the snapshot's software.
pub fn wants_snapshot(req: &UpRequest) -> bool {
    req.software == Some(Software::Snapshot) && !req.boot
}

/// Read what the snapshot's own software needs: refused (exit 2) unless the snapshot is a whole root
/// (/usr and /etc, or a NixOS root: /nix/store and /etc).
pub fn snapshot_facts(
    cfg: &Config,
    req: &UpRequest,
    snapshot: &Path,
    init_exe: &Path,
) -> Result<SnapshotFacts> {
    let tree = Tree::open(snapshot)?;
    let top = tree.read_dir(Path::new("/")).unwrap_or_default();
    let is_dir = |p: &str| tree.resolve(Path::new(p)).is_ok_and(|f| f.is_dir());
    if !(is_dir("/etc") && (is_dir("/usr") || is_dir("/nix/store"))) {
        let names: Vec<String> = top
            .iter()
            .map(|(n, _)| format!("/{}", n.to_string_lossy()))
            .collect();
        return Err(BadInput::new(format!(
            "--software snapshot runs the snapshot's own /usr and /etc, but {} is not a whole root filesystem \
             (it needs /etc and /usr, or /etc and /nix/store; it holds {}). Give a snapshot of the root \
             subvolume, or leave --software out to run this host's software",
            snapshot.display(),
            if names.is_empty() { "nothing".into() } else { names.join(", ") }
        ))
        .into());
    }
    let mut software = SnapshotSoftware::default();
    // Only these names: a link elsewhere (`/run -> …`, `/.wayback-state -> …`) would redirect what nspawn
    // and wayback mount in the container.
    for (name, dir) in &top {
        if !name.to_str().is_some_and(|n| SOFTWARE_DIRS.contains(&n)) {
            continue;
        }
        let path = Path::new("/").join(name);
        match tree.read_link(&path) {
            Ok(Some(target)) => software.links.push((path, target)),
            Ok(None) if *dir => software.dirs.push(path),
            _ => {}
        }
    }
    software.init_libs = elfdeps::host_libs(init_exe)?;
    let mut host_paths = extra_host_paths(cfg, req)?;
    host_paths.symlinks.extend(system_links(&tree));
    let (users, groups) = (
        accounts(&tree, req, "/etc/passwd", true),
        accounts(&tree, req, "/etc/group", false),
    );
    Ok(SnapshotFacts {
        software,
        host_paths,
        users,
        groups,
        // As the container sees it: the snapshot's /bin is there (a link into /usr, or bound). Not resolved
        // further: a multi-call binary (busybox) must be called by this name.
        shell: "/bin/sh".into(),
        var_skeleton: var_skeleton(&tree),
    })
}

/// Only the host paths the config and `--host-path` name: the defaults (/etc, /nix, /opt, /run/…) are the
/// snapshot's own.
fn extra_host_paths(cfg: &Config, req: &UpRequest) -> Result<HostPaths> {
    let extra = [cfg.host_paths.clone(), req.host_paths.clone()].concat();
    let removed: Vec<PathBuf> = hostpaths::DEFAULTS
        .iter()
        .map(PathBuf::from)
        .filter(|d| !extra.contains(d))
        .chain(req.no_host_paths.iter().cloned())
        .collect();
    Ok(hostpaths::resolve(
        &extra,
        &removed,
        &super::host::probe_host,
    )?)
}

/// A NixOS snapshot's running system: `/run/current-system` and `/run/booted-system` (on the fresh /run)
/// point where its `/nix/var/nix/profiles/system` leads, inside the snapshot.
fn system_links(tree: &Tree) -> Vec<(PathBuf, PathBuf)> {
    let Ok(found) = tree.resolve(Path::new("/nix/var/nix/profiles/system")) else {
        return Vec::new();
    };
    if !found.resolved.starts_with("/nix/store") {
        return Vec::new();
    }
    ["/run/current-system", "/run/booted-system"]
        .iter()
        .map(|l| (PathBuf::from(l), found.resolved.clone()))
        .collect()
}

/// The users (or groups) the processes run as that the snapshot's passwd (group) has.
fn accounts(tree: &Tree, req: &UpRequest, file: &str, users: bool) -> Vec<String> {
    let table = tree
        .read_to_string(Path::new(file), ID_FILE_MAX)
        .map(|t| IdTable::parse(&t))
        .unwrap_or_default();
    super::host::named_accounts(req, users)
        .filter(|n| table.id(n).is_some())
        .collect()
}

/// Directories (two levels deep) under the snapshot's /var/{lib,log,cache,spool}, as empty directories with
/// their numeric owners and modes: what its packages expect to find. Names only, never contents.
fn var_skeleton(tree: &Tree) -> Vec<DirSpec> {
    let mut out = Vec::new();
    let mut level: Vec<PathBuf> = ["lib", "log", "cache", "spool"]
        .iter()
        .map(|d| Path::new("/var").join(d))
        .collect();
    for _ in 0..2 {
        let mut next = Vec::new();
        for dir in &level {
            for (name, is_dir) in tree.read_dir(dir).unwrap_or_default() {
                let path = dir.join(name);
                let Ok(found) = tree.resolve(&path) else {
                    continue;
                };
                if !is_dir || found.resolved != path {
                    continue;
                }
                out.push(DirSpec {
                    path: path.clone(),
                    owner: Some(found.stat.st_uid.to_string()),
                    group: Some(found.stat.st_gid.to_string()),
                    mode: Some(format!("{:o}", found.stat.st_mode & 0o7777)),
                });
                next.push(path);
            }
        }
        level = next;
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}
