//! The life of one instance in the process that hosts it (the foreground `up`, or `wayback serve`):
//! plan it under the allocation lock, claim its ports, apply it, wait until it answers, publish its route,
//! supervise it (TTL, idle, restarts of a crashed container with backoff), and tear it down.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use tokio::net::TcpListener;
use tokio::sync::watch;
use wayback_core::hostpaths::{self, HostEntry};
use wayback_core::journal::Journal;
use wayback_core::ownership;
use wayback_core::plan::{self, Chown, Facts, SourceFacts, SourceKind, UpRequest};
use wayback_core::{Config, Plan};

use crate::apply;
use crate::error::BadInput;
use crate::progress::Progress;
use crate::serve;
use crate::state::{self, InstanceDir, Owner, Phase};
use crate::sys::{btrfs, ids, mountinfo, nspawn};

/// How often a container that died on its own is started again before the instance is given up.
pub const MAX_RESTARTS: u32 = 3;

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
    Ok((plan, alloc))
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

/// Claimed ports and a created instance directory, not yet applied.
pub struct Prepared {
    pub dir: InstanceDir,
    pub plan: Plan,
    publishes: Vec<(TcpListener, u16)>,
    /// The basic-auth password, kept in memory only until the route is published.
    pub password: Option<String>,
}

/// Bind the publish ports (a busy port is the user's to fix), then create the instance directory and save
/// the plan: from here on the name is taken and teardown can find everything.
pub async fn prepare(cfg: &Config, plan: Plan, alloc: AllocLock, owner: Owner) -> Result<Prepared> {
    let publishes = serve::bind_publishes(&plan).await.map_err(BadInput::wrap)?;
    let dir = InstanceDir::create(cfg, plan.name.as_str())?;
    state::write_json(&dir.plan_path(), &plan)?;
    dir.set_owner(owner)?;
    dir.set_phase(Phase::Starting)?;
    drop(alloc);
    Ok(Prepared {
        dir,
        plan,
        publishes,
        password: None,
    })
}

/// An instance that answers and is published.
pub struct Hosted {
    pub dir: InstanceDir,
    pub plan: Plan,
    /// The one-time share link (`--share`), shown once.
    pub share_url: Option<String>,
    stop_publish: watch::Sender<bool>,
    ready_at: u64,
}

/// Why hosting ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Asked to stop (signal, `down`, TTL, idle).
    Asked(String),
    /// The container kept dying.
    Died,
}

/// Apply, wait for readiness, publish. On failure or `interrupt`, roll back and return the error.
pub async fn start(
    cfg: &Config,
    p: Prepared,
    progress: &Progress,
    interrupt: impl Future<Output = String>,
) -> Result<Hosted> {
    let Prepared {
        dir,
        plan,
        publishes,
        password,
    } = p;
    progress.note(format!(
        "starting {} from {}",
        plan.name,
        plan.source.path.display()
    ));
    let started = async {
        let mut container = apply::apply(&dir, &plan, progress).await?;
        wait_ready(cfg, &dir, &plan, progress, &mut container).await?;
        apply::publish_route(cfg, &dir, &plan, password.as_deref())
    };
    let outcome = tokio::select! {
        r = started => r,
        why = interrupt => Err(anyhow!("{why} while starting")),
    };
    let share_url = match outcome {
        Ok(s) => s,
        Err(e) => {
            progress.note("start failed, rolling back");
            let td = apply::teardown(&dir, progress).await;
            return Err(with_teardown_errors(e, &td.errors));
        }
    };
    let mut hosted = adopt(dir, plan, publishes)?;
    hosted.share_url = share_url;
    Ok(hosted)
}

/// Host an instance that is already running (after `start`, or found running by a restarted daemon).
pub fn adopt(dir: InstanceDir, plan: Plan, publishes: Vec<(TcpListener, u16)>) -> Result<Hosted> {
    let (stop_publish, stop_rx) = watch::channel(false);
    serve::serve_publishes(&plan, publishes, &stop_rx)?;
    dir.set_phase(Phase::Running)?;
    Ok(Hosted {
        dir,
        plan,
        share_url: None,
        stop_publish,
        ready_at: now(),
    })
}

/// Re-bind the publish ports of an adopted instance.
pub async fn rebind(plan: &Plan) -> Result<Vec<(TcpListener, u16)>> {
    serve::bind_publishes(plan).await
}

async fn wait_ready(
    cfg: &Config,
    dir: &InstanceDir,
    plan: &Plan,
    progress: &Progress,
    container: &mut std::process::Child,
) -> Result<()> {
    let step = progress.step("waiting for the service to answer");
    serve::wait_ready(plan, cfg.ready_timeout.as_std(), container)
        .await
        .map_err(|e| {
            let tail = nspawn::log_tail(&dir.log_path(), 20);
            anyhow!(
                "{e:#}\n--- last lines of {} ---\n{tail}",
                dir.log_path().display()
            )
        })?;
    step.done();
    Ok(())
}

impl Hosted {
    /// Run until `stop` resolves, the TTL or idle time passes, or the container dies more than
    /// MAX_RESTARTS times (it is started again with backoff 1 s, 2 s, 4 s meanwhile).
    pub async fn supervise(
        &self,
        cfg: &Config,
        progress: &Progress,
        stop: impl Future<Output = String>,
    ) -> Stop {
        tokio::pin!(stop);
        let mut restarts = 0;
        loop {
            let left = self
                .dir
                .expires()
                .unwrap_or(self.plan.expires)
                .saturating_sub(now());
            if left == 0 {
                return Stop::Asked("TTL reached".into());
            }
            if let Some(idle) = self.plan.idle {
                let last = self.dir.last_activity().unwrap_or(0).max(self.ready_at);
                if now().saturating_sub(last) >= idle.as_secs() {
                    return Stop::Asked(format!("idle for {idle}"));
                }
            }
            tokio::select! {
                why = &mut stop => return Stop::Asked(why),
                _ = tokio::time::sleep(Duration::from_secs(left.min(1))) => {}
            }
            if !nspawn::find(&self.plan.container.machine).is_empty() {
                continue;
            }
            if restarts == MAX_RESTARTS {
                return Stop::Died;
            }
            restarts += 1;
            let backoff = Duration::from_secs(1 << (restarts - 1));
            eprintln!(
                "wayback: the container of {} exited; restart {restarts}/{MAX_RESTARTS} in {}s\n--- last lines of {} ---\n{}",
                self.plan.name,
                backoff.as_secs(),
                self.dir.log_path().display(),
                nspawn::log_tail(&self.dir.log_path(), 10)
            );
            tokio::select! {
                why = &mut stop => return Stop::Asked(why),
                _ = tokio::time::sleep(backoff) => {}
            }
            let relaunched = nspawn::launch(
                &self.plan.container.argv(),
                &self.dir.log_path(),
                &apply::boot_cgroups(&self.plan),
            )
            .map_err(anyhow::Error::from);
            let ready = match relaunched {
                Ok(mut c) => {
                    let noted = Journal::open(&self.dir.journal_path())
                        .map_err(anyhow::Error::from)
                        .and_then(|mut j| apply::note_process(&mut j, &c, "systemd-nspawn"));
                    match noted {
                        Ok(()) => wait_ready(cfg, &self.dir, &self.plan, progress, &mut c).await,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            if let Err(e) = ready {
                eprintln!("wayback: restart of {} failed: {e:#}", self.plan.name);
            }
        }
    }

    /// Stop serving and remove everything the journal lists.
    pub async fn finish(self, progress: &Progress) -> Result<()> {
        self.dir.set_phase(Phase::Stopping)?;
        let _ = self.stop_publish.send(true);
        let td = apply::teardown(&self.dir, progress).await;
        if !td.errors.is_empty() {
            return Err(with_teardown_errors(
                anyhow!("teardown of {} incomplete", self.plan.name),
                &td.errors,
            ));
        }
        progress.note(format!("{} removed", self.plan.name));
        Ok(())
    }
}

pub fn with_teardown_errors(e: anyhow::Error, errors: &[String]) -> anyhow::Error {
    if errors.is_empty() {
        return e;
    }
    anyhow!(
        "{e:#}\nrollback left these behind (run `wayback gc` to retry):\n  {}",
        errors.join("\n  ")
    )
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
    Ok(Facts {
        source: sources.main,
        extra_sources: sources.extra,
        bind_sources: sources.bind_sources,
        main_date: sources.main_date,
        existing,
        in_use,
        init_exe: init_exe()?,
        machined: Path::new("/run/systemd/system").is_dir(),
        host_paths: with_bin_links(hostpaths::resolve(
            &[cfg.host_paths.clone(), req.host_paths.clone()].concat(),
            &req.no_host_paths,
            &probe_host,
        )?),
        shell: std::fs::canonicalize("/bin/sh").unwrap_or_else(|_| "/bin/sh".into()),
        var_skeleton: var_skeleton(Path::new("/var")),
        now: now(),
    })
}
