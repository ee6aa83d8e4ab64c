//! Planning an instance: everything `up` reads from the system before anything is created — the
//! snapshot (btrfs subvolume or overlay source, its mount), every bind's source, other instances and the
//! host's routes (under the allocation lock), host paths, the /var skeleton, the init binary — and the owner
//! check. The result is the pure `Plan` (wayback_core::plan::build).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use wayback_core::hostpaths;
use wayback_core::plan::{self, Facts, SourceFacts, SourceKind, UpRequest};
use wayback_core::{Config, Plan};

use crate::error::BadInput;
use crate::state;
use crate::sys::{btrfs, mountinfo};

mod checks;
pub use checks::data_dirs;
mod drift;
mod host;
mod software;

/// Held from reading what is in use until the new instance's plan is saved.
pub struct AllocLock(#[allow(dead_code)] Flock<std::fs::File>);

/// Resolve the request against the system and build the plan. Bad input fails here, before anything exists.
pub async fn plan(cfg: &Config, req: &UpRequest) -> Result<(Plan, AllocLock)> {
    let sources = crate::sources::resolve(cfg, req, &|p| source_facts(p, req.overlay))?;
    let alloc = alloc_lock(cfg)?;
    // Every other instance's plan, read once for both checks against them (addresses, hostname).
    let others = state::Others::read(cfg);
    let facts = facts(cfg, &others, sources, req).await?;
    let plan = plan::build(req, &facts, cfg, &btrfs::probe).map_err(|e| match &e {
        plan::PlanError::NestedSubvolume { path, snapshot } => {
            let hint = crate::nested::hint(cfg, snapshot, path);
            anyhow::Error::new(BadInput::new(format!("{e}{hint}")))
        }
        _ => e.into(),
    })?;
    checks::not_live(cfg, req, &plan)?;
    checks::something_bound(req, &plan)?;
    let plan = software::check(req, plan)?;
    // With the snapshot's own software its own accounts own its files.
    let plan = if software::wants_snapshot(req) {
        plan
    } else {
        checks::owners(req, plan)?
    };
    checks::clone_dirs(&plan)?;
    checks::hostname_free(cfg, &others, &plan).await?;
    Ok((plan, alloc))
}

/// What `up` says before it starts: the snapshots are further apart than `max_skew`; a configuration file
/// of the units differs from the snapshot's copy and the host's is the one the instance runs with.
pub fn warnings(cfg: &Config, plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(sk) = plan.skew.filter(|s| *s > cfg.max_skew.as_secs()) {
        out.push(format!(
            "warning: the chosen snapshots are {} apart (more than max_skew {}): data from different moments may not fit together; --strict-consistency refuses this",
            wayback_core::Duration(sk),
            cfg.max_skew
        ));
    }
    let host_used: Vec<String> = plan
        .config_drift
        .iter()
        .filter(|d| d.differs && !d.used)
        .map(|d| d.path.display().to_string())
        .collect();
    if !host_used.is_empty() {
        out.push(format!(
            "warning: the instance runs with the host's {} (the snapshot's {} different): --bind-config uses the snapshot's; --dry-run shows why each is read",
            host_used.join(", "),
            if host_used.len() == 1 { "copy is" } else { "copies are" }
        ));
    }
    out
}

/// Serialises allocation (names, address blocks) between concurrent `up`s until the plan is saved.
fn alloc_lock(cfg: &Config) -> Result<AllocLock> {
    state::create_private_dir_all(&cfg.state_dir)?;
    let path = cfg.state_dir.join("alloc.lock");
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let lock = Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow!("locking {}: {e}", path.display()))?;
    Ok(AllocLock(lock))
}

/// The snapshot: it must be a btrfs subvolume; where its filesystem is mounted.
pub(crate) fn source_facts(snapshot: &Path, force_overlay: bool) -> Result<SourceFacts> {
    let path = std::fs::canonicalize(snapshot).map_err(|_| btrfs::BtrfsError::Missing {
        path: snapshot.into(),
    })?;
    let mounts = mountinfo::read_self().context("reading /proc/self/mountinfo")?;
    let mount = mountinfo::mount_of(&mounts, &path)
        .with_context(|| format!("no mount holds {}", path.display()))?;
    let fs_root = mount.mount_point.clone();
    let mount_ro = mount.options.split(',').any(|o| o == "ro");
    match btrfs::inspect(&path) {
        // `--overlay` also clones a btrfs subvolume with an overlay (e.g. on a filesystem mounted read-only).
        Ok(info) if force_overlay => Ok(SourceFacts {
            path,
            kind: SourceKind::Overlay,
            uuid: info.uuid,
            readonly: info.readonly,
            fs_root,
        }),
        Ok(info) => Ok(SourceFacts {
            path,
            kind: SourceKind::Btrfs,
            uuid: info.uuid,
            readonly: info.readonly,
            fs_root,
        }),
        // Not a subvolume: a read-only directory (a mounted backup, a ZFS or LVM snapshot) is cloned with an
        // overlay; a writable one only on request, since a directory changing under an overlay is undefined.
        Err(btrfs::BtrfsError::NotBtrfs { .. } | btrfs::BtrfsError::NotSubvolume { .. }) if mount_ro || force_overlay => {
            Ok(SourceFacts {
                path,
                kind: SourceKind::Overlay,
                uuid: String::new(),
                readonly: mount_ro,
                fs_root,
            })
        }
        Err(e @ (btrfs::BtrfsError::NotBtrfs { .. } | btrfs::BtrfsError::NotSubvolume { .. })) => Err(BadInput::new(format!(
            "{e}\n(a directory on a read-only mount, such as a mounted backup, works through an overlay clone; \
             `--overlay` accepts a writable one, which must not change while the instance runs)"
        ))
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// The container's init binary's path on disk ([`crate::sys::initbin`]; the new file after an upgrade
/// replaced it under a running daemon): what the host libraries for `--software snapshot` are read from.
/// The init itself is pinned by `sys::launchns`.
fn init_exe() -> Result<std::path::PathBuf> {
    crate::sys::initbin::path().context("locating wayback's init binary")
}

/// What the plan needs to know about the system. Call with the allocation lock held.
async fn facts(
    cfg: &Config,
    others: &state::Others,
    sources: crate::sources::Sources,
    req: &UpRequest,
) -> Result<Facts> {
    let mut in_use: Vec<ipnet::Ipv4Net> = others.plans.iter().map(|p| p.net).collect();
    in_use.extend(wayback_net::veth::host_ipv4_prefixes().await?);
    let host_paths = host::with_bin_links(hostpaths::resolve(
        &[cfg.host_paths.clone(), req.host_paths.clone()].concat(),
        &req.no_host_paths,
        &host::probe_host,
    )?);
    let init_exe = init_exe()?;
    let snapshot = software::wants_snapshot(req)
        .then(|| software::snapshot_facts(cfg, req, &sources.main.path, &init_exe))
        .transpose()?;
    let host_paths = match &snapshot {
        Some(s) => s.host_paths.clone(),
        None => host_paths,
    };
    let host_masks = host::host_masks(cfg, req, &host_paths)?;
    let config_drift = match &snapshot {
        Some(_) => Vec::new(),
        None => drift::config_drift(&sources.main.path, &req.inferred.configs),
    };
    let mut facts = Facts {
        source: sources.main,
        extra_sources: sources.extra,
        bind_sources: sources.bind_sources,
        main_date: sources.main_date,
        existing: others.names.iter().map(ToString::to_string).collect(),
        in_use,
        init_exe,
        machined: Path::new("/run/systemd/system").is_dir(),
        host_paths,
        host_masks,
        config_drift,
        users: host::known_accounts(req, true),
        groups: host::known_accounts(req, false),
        shell: std::fs::canonicalize("/bin/sh").unwrap_or_else(|_| "/bin/sh".into()),
        var_skeleton: host::var_skeleton(Path::new("/var")),
        snapshot_software: None,
        now: crate::clock::now_ceil(),
    };
    if let Some(s) = snapshot {
        facts.users = s.users;
        facts.groups = s.groups;
        facts.shell = s.shell;
        facts.var_skeleton = s.var_skeleton;
        facts.snapshot_software = Some(s.software);
    }
    Ok(facts)
}
