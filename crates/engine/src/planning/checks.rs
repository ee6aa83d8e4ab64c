//! Checks of a built plan against the system, before anything is created (exit 2 on failure): the owners
//! of the bind paths against the host's users, where the clones go, that the hostname is free, that the
//! source is a snapshot (not live data, unless `--from-live`), and that something of it is bound.

use std::path::Path;

use anyhow::{Context, Result};
use wayback_core::ownership;
use wayback_core::plan::{self, Chown, UpRequest};
use wayback_core::{Config, Plan};

use crate::error::BadInput;
use crate::state;
use crate::sys::inroot::Tree;
use crate::sys::{ids, mountinfo};

/// The plan's hostname must be free — no other instance routes it (saved plan or route file) and the
/// host's nginx/Caddy does not already serve it — before anything is created. Call with `alloc` held;
/// `others` read under it.
pub(super) async fn hostname_free(cfg: &Config, others: &state::Others, plan: &Plan) -> Result<()> {
    use crate::drivers::{Driver, ProxyDriver};
    let Some(http) = &plan.http else {
        return Ok(());
    };
    let host = wayback_core::names::Hostname::new(&http.host)?;
    state::ensure_hostname_free(cfg, others, &host)?;
    if plan.driver == ProxyDriver::Builtin {
        return Ok(());
    }
    let kind = plan.driver;
    let (proxy, h) = (cfg.proxy.clone(), host.clone());
    let used = tokio::task::spawn_blocking(move || {
        Driver::select(kind, &proxy.nginx, &proxy.caddy).map(|d| d.host_in_use(&h))
    })
    .await?
    .transpose()?;
    match used.flatten() {
        Some(u) => {
            let down = u
                .instance
                .as_ref()
                .map(|i| format!(" or `wayback down {i}`"))
                .unwrap_or_default();
            Err(BadInput::new(format!(
                "hostname {host} is already published by {u}; pick another --host{down}"
            ))
            .into())
        }
        None => Ok(()),
    }
}

/// Compare the owners of the bind paths with the host's users: refuse a mismatch (exit 2, naming path,
/// owner and user), or with `--chown` / `--map-uid` plan the id changes that fix it in the clone.
pub(super) fn owners(req: &UpRequest, mut plan: Plan) -> Result<Plan> {
    let found = ids::mismatches(&plan);
    if found.is_empty() && req.map_ids.is_empty() {
        return Ok(plan);
    }
    let list = |ms: &[ownership::Mismatch]| {
        ms.iter()
            .map(|m| format!("  {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if !req.chown && req.map_ids.is_empty() {
        return Err(BadInput::new(format!(
            "the snapshot's files belong to other users than this host's:\n{}\n\
             `--chown` changes them in the clone (by name, from the snapshot's /etc/passwd and /etc/group); \
             `--map-uid UID:USER` / `--map-gid GID:GROUP` map ids the snapshot cannot name",
            list(&found)
        ))
        .into());
    }
    let (uids, gids, unmapped) = ownership::mapping(&found, &req.map_ids);
    if !unmapped.is_empty() {
        return Err(BadInput::new(format!(
            "--chown cannot map these owners (no user or group of that name on this host):\n{}\n\
             map them with --map-uid UID:USER / --map-gid GID:GROUP",
            list(&unmapped)
        ))
        .into());
    }
    plan.chown = Some(Chown { uids, gids });
    Ok(plan)
}

/// Every btrfs clone is made next to its source, on the same filesystem, on a writable mount: checked
/// here (exit 2) rather than found out half-way through `up`.
pub(super) fn clone_dirs(plan: &Plan) -> Result<()> {
    let mounts = mountinfo::read_self().context("reading /proc/self/mountinfo")?;
    let sources = std::iter::once((&plan.source, &plan.clone))
        .chain(plan.extra.iter().map(|e| (&e.source, &e.clone)));
    for (src, clone) in sources.filter(|(s, _)| s.kind == plan::SourceKind::Btrfs) {
        let dir = clone.parent().context("clone path has no parent")?;
        let existing = dir
            .ancestors()
            .find(|p| p.exists())
            .unwrap_or(Path::new("/"));
        let existing = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.into());
        let (Some(at), Some(of)) = (
            mountinfo::mount_of(&mounts, &existing),
            mountinfo::mount_of(&mounts, &src.path),
        ) else {
            continue;
        };
        if at.dev != of.dev {
            return Err(BadInput::new(format!(
                "clone_dir {} is on another filesystem ({}, mounted at {}) than snapshot {} ({}, mounted at {}): \
                 a btrfs clone is made on the snapshot's own filesystem; set clone_dir to a directory on it, or \
                 leave it relative (the default `.wayback` goes to the top of the snapshot's filesystem)",
                dir.display(),
                at.source,
                at.mount_point.display(),
                src.path.display(),
                of.source,
                of.mount_point.display()
            ))
            .into());
        }
        if at.options.split(',').any(|o| o == "ro") {
            return Err(BadInput::new(format!(
                "the clone of {} would go to {}, but {} is mounted read-only; give --overlay to clone it \
                 with an overlay instead, or set clone_dir in the config to a directory on a writable mount of the \
                 same filesystem",
                src.path.display(),
                dir.display(),
                at.mount_point.display()
            ))
            .into());
        }
    }
    Ok(())
}

/// A writable subvolume is today's live state, never a snapshot: refused unless `--from-live`.
pub(super) fn not_live(cfg: &Config, req: &UpRequest, plan: &Plan) -> Result<()> {
    if req.from_live {
        return Ok(());
    }
    let mut sources = std::iter::once(&plan.source).chain(plan.extra.iter().map(|e| &e.source));
    let Some(src) = sources.find(|s| s.kind == plan::SourceKind::Btrfs && !s.readonly) else {
        return Ok(());
    };
    use crate::catalog::inspect_path;
    use wayback_core::catalog::PathInfo;
    let what = match inspect_path(&src.path, &cfg.snapshot_roots) {
        Ok(PathInfo::Live { subvol, snapshots }) => subvol.not_a_snapshot(&snapshots),
        _ => format!(
            "{} is a writable subvolume: today's state, not a snapshot",
            src.path.display()
        ),
    };
    Err(BadInput::new(format!(
        "{what}. Resurrect one of its snapshots (`wayback snapshots` lists them), or give --from-live to run a \
         fork of today's state"
    ))
    .into())
}

/// In host mode something of the snapshot must be bound, or the service would start on empty state and
/// answer "ready" with nothing of the past: refused unless `--allow-empty`, naming what the snapshot has.
pub(super) fn something_bound(req: &UpRequest, plan: &Plan) -> Result<()> {
    let state_binds =
        plan.container.binds.len() - plan.config_drift.iter().filter(|d| d.used).count();
    if req.boot || req.allow_empty || state_binds > 0 {
        return Ok(());
    }
    let found = data_dirs(&plan.source.path);
    let has = if found.is_empty() {
        String::new()
    } else {
        format!(" (the snapshot has {})", found.join(", "))
    };
    Err(BadInput::new(format!(
        "nothing of the snapshot {} would be bound, so the service would start on empty state{has}; give \
         --bind PATH for the service's data, --unit UNIT to find it from the host's units, or --allow-empty",
        plan.source.path.display()
    ))
    .into())
}

/// Directories where services keep data, as the snapshot has them (read inside it), at most a dozen.
pub fn data_dirs(snapshot: &Path) -> Vec<String> {
    let Ok(tree) = Tree::open(snapshot) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for parent in ["/var/lib", "/srv", "/var/www", "/home"] {
        for (name, is_dir) in tree.read_dir(Path::new(parent)).unwrap_or_default() {
            if is_dir && out.len() < 12 {
                out.push(format!("{parent}/{}", name.to_string_lossy()));
            }
        }
    }
    out
}
