//! Planning an instance: everything `up` reads from the system before anything is created — the
//! snapshot (btrfs subvolume or overlay source, its mount), every bind's source, other instances and the
//! host's routes (under the allocation lock), host paths, the /var skeleton, the init binary — and the owner
//! check. The result is the pure `Plan` (wayback_core::plan::build).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use wayback_core::hostpaths::{self, HostEntry};
use wayback_core::ownership;
use wayback_core::plan::{self, Chown, Facts, SourceFacts, SourceKind, UpRequest};
use wayback_core::{Config, Plan};

use crate::error::BadInput;
use crate::state::{self, InstanceDir};
use crate::sys::{btrfs, ids, mountinfo};

/// Held from reading what is in use until the new instance's plan is saved.
pub struct AllocLock(#[allow(dead_code)] Flock<std::fs::File>);

/// Resolve the request against the system and build the plan. Bad input fails here, before anything exists.
pub async fn plan(cfg: &Config, req: &UpRequest) -> Result<(Plan, AllocLock)> {
    let sources = crate::sources::resolve(cfg, req, &|p| source_facts(p, req.overlay))?;
    let alloc = alloc_lock(cfg)?;
    let facts = facts(cfg, sources, req).await?;
    let plan = plan::build(req, &facts, cfg, &btrfs::probe).map_err(|e| match &e {
        plan::PlanError::NestedSubvolume { path, snapshot } => {
            let hint = crate::nested::hint(cfg, snapshot, path);
            anyhow::Error::new(BadInput::new(format!("{e}{hint}")))
        }
        _ => e.into(),
    })?;
    let plan = owners(req, plan)?;
    clone_dirs(&plan)?;
    hostname_free(cfg, &plan).await?;
    Ok((plan, alloc))
}

/// The plan's hostname must be free — no other instance routes it (saved plan or route file) and the
/// host's nginx/Caddy does not already serve it — before anything is created. Call with `alloc` held.
async fn hostname_free(cfg: &Config, plan: &Plan) -> Result<()> {
    use crate::drivers::{Driver, DriverKind};
    use wayback_core::drivers::ProxyDriver;
    let Some(http) = &plan.http else {
        return Ok(());
    };
    let host = wayback_core::names::Hostname::new(&http.host)?;
    state::ensure_hostname_free(cfg, &host)?;
    let kind = match plan.driver {
        ProxyDriver::Builtin => return Ok(()),
        ProxyDriver::Nginx => DriverKind::Nginx,
        ProxyDriver::Caddy => DriverKind::Caddy,
    };
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

/// A warning when the snapshots the instance is assembled from are further apart than `max_skew`.
pub fn skew_warning(cfg: &Config, plan: &Plan) -> Option<String> {
    let sk = plan.skew.filter(|s| *s > cfg.max_skew.as_secs())?;
    Some(format!(
        "warning: the chosen snapshots are {} apart (more than max_skew {}): data from different moments may not fit together; --strict-consistency refuses this",
        wayback_core::Duration(sk),
        cfg.max_skew
    ))
}

/// Compare the owners of the bind paths with the host's users: refuse a mismatch (exit 2, naming path,
/// owner and user), or with `--chown` / `--map-uid` plan the id changes that fix it in the clone.
fn owners(req: &UpRequest, mut plan: Plan) -> Result<Plan> {
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
fn clone_dirs(plan: &Plan) -> Result<()> {
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
fn source_facts(snapshot: &Path, force_overlay: bool) -> Result<SourceFacts> {
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
fn with_bin_links(
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

fn probe_host(path: &Path) -> HostEntry {
    match std::fs::symlink_metadata(path) {
        Err(_) => HostEntry::Missing,
        Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(path) {
            Ok(target) => HostEntry::Symlink(target),
            Err(_) => HostEntry::Missing,
        },
        Ok(_) => HostEntry::Present,
    }
}

/// The binary to run as the container's init: this one. If it was replaced on disk while we run (an
/// upgrade under a long-running daemon), the new file at the same path.
fn init_exe() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("locating the wayback binary")?;
    let s = exe.to_string_lossy();
    Ok(match s.strip_suffix(" (deleted)") {
        Some(p) => p.into(),
        None => exe,
    })
}

/// What the plan needs to know about the system. Call with the allocation lock held.
async fn facts(cfg: &Config, sources: crate::sources::Sources, req: &UpRequest) -> Result<Facts> {
    let existing = state::list(cfg);
    let mut in_use: Vec<ipnet::Ipv4Net> = existing
        .iter()
        .filter_map(|n| InstanceDir::open(cfg, n).ok()?.plan().ok())
        .map(|p: Plan| p.block.net)
        .collect();
    in_use.extend(wayback_net::veth::host_ipv4_prefixes().await?);
    let host_paths = with_bin_links(hostpaths::resolve(
        &[cfg.host_paths.clone(), req.host_paths.clone()].concat(),
        &req.no_host_paths,
        &probe_host,
    )?);
    let host_masks = host_masks(cfg, req, &host_paths)?;
    Ok(Facts {
        source: sources.main,
        extra_sources: sources.extra,
        bind_sources: sources.bind_sources,
        main_date: sources.main_date,
        existing: existing.iter().map(ToString::to_string).collect(),
        in_use,
        init_exe: init_exe()?,
        machined: Path::new("/run/systemd/system").is_dir(),
        host_paths,
        host_masks,
        users: known_accounts(req, true),
        groups: known_accounts(req, false),
        shell: std::fs::canonicalize("/bin/sh").unwrap_or_else(|_| "/bin/sh".into()),
        var_skeleton: var_skeleton(Path::new("/var")),
        now: now_ceil(),
    })
}

/// The users (or groups) the request's processes run as that exist on the host, looked up through NSS as
/// init will look them up inside the container.
fn known_accounts(req: &UpRequest, users: bool) -> Vec<String> {
    let named = req
        .profile
        .processes
        .iter()
        .filter_map(|p| {
            if users {
                p.user.clone()
            } else {
                p.group.clone()
            }
        })
        .chain(req.user.clone().filter(|_| users));
    named
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
fn host_masks(
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

/// Now in unix seconds, rounded up: the plan's expiry (created + TTL) is then never earlier than TTL from now.
fn now_ceil() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.as_secs() + u64::from(t.subsec_nanos() > 0)
}
