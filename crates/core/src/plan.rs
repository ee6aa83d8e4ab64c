//! `up`'s plan: user input ("low", validated) + facts read from the system ("high") → a pure `Plan` value
//! that names every resource `up` will create. `--dry-run` prints it; the applier creates exactly it.
//!
//! No syscalls here: the `wayback` binary gathers [`Facts`] and passes a path-existence probe.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod display;
mod input;
mod parts;

pub use input::*;
pub use parts::*;

use crate::config::Config;
use crate::duration::Duration;
use crate::names::{validate_hostname, InstanceName, NameError};
use crate::nspawn::{ContainerSpec, MountBind};
use crate::pool::{self, Block, PoolError};
use crate::profile::{Bind, DirSpec, Process, Profile, Ready};

/// Prefix length of each instance's veth block.
pub const BLOCK_LEN: u8 = 30;
/// Name of the veth end inside the instance (systemd-nspawn's convention).
pub const PEER_IF: &str = "host0";

/// What `up` will create, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub name: InstanceName,
    pub profile: String,
    pub created: u64,
    pub ttl: Duration,
    pub expires: u64,
    #[serde(default)]
    pub idle: Option<Duration>,
    pub source: SourceFacts,
    /// The writable btrfs snapshot of the source.
    pub clone: PathBuf,
    /// The main source's date, when known (catalog).
    #[serde(default)]
    pub main_date: Option<i64>,
    /// Snapshots of other subvolumes, each with its own clone.
    #[serde(default)]
    pub extra: Vec<ExtraSource>,
    /// Seconds between the oldest and the newest chosen snapshot (when their dates are known).
    #[serde(default)]
    pub skew: Option<u64>,
    pub netns: String,
    pub netns_path: PathBuf,
    pub host_if: String,
    pub peer_if: String,
    pub block: Block,
    /// Quarantine holes: the only connections the instance may open.
    #[serde(default)]
    pub allow_egress: Vec<String>,
    /// Owner changes applied to the clone before the container starts (snapshot id → host id).
    #[serde(default)]
    pub chown: Option<Chown>,
    pub container: ContainerSpec,
    pub init: InitSpec,
    pub ready: Option<Ready>,
    pub http: Option<HttpRoute>,
    /// Who may pass the proxy to this instance.
    #[serde(default)]
    pub gate: GateSpec,
    /// The app's usual origin, shown to it instead of the instance's hostname.
    #[serde(default)]
    pub masquerade: Option<MasqueradeSpec>,
    /// Boot mode: the clone's own init runs; these units are masked first.
    #[serde(default)]
    pub boot: Option<BootSpec>,
    /// Who publishes the hostname: the built-in proxy, or the host's nginx or Caddy.
    #[serde(default)]
    pub driver: crate::drivers::ProxyDriver,
    pub publish: Vec<Publish>,
}

/// What wayback's init does inside the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitSpec {
    pub instance: String,
    /// Shell for `shell =` processes.
    #[serde(default = "default_shell")]
    pub shell: PathBuf,
    /// Host symlinks recreated inside the container: (path, target).
    #[serde(default)]
    pub symlinks: Vec<(PathBuf, PathBuf)>,
    /// The host's /var directory skeleton, created empty before the profile's dirs.
    #[serde(default)]
    pub skeleton: Vec<DirSpec>,
    pub dirs: Vec<DirSpec>,
    pub processes: Vec<Process>,
}

fn default_shell() -> PathBuf {
    "/bin/sh".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRoute {
    pub host: String,
    pub port: u16,
    pub url: String,
}

/// Why a request cannot be planned. All are user errors (exit 2); nothing has been created.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("an instance named {0:?} already exists; pick another --name or run `wayback down {0}` first")]
    NameTaken(String),
    #[error("bind path {path} does not exist in snapshot {snapshot}; check the path (it is relative to the snapshot's root) or the snapshot")]
    BindMissing { path: PathBuf, snapshot: PathBuf },
    #[error("bind path {path} is empty in snapshot {snapshot}: on the live system it is a separate btrfs subvolume, and snapshots of a parent do not contain nested subvolumes. Use a snapshot of the subvolume that holds {path} instead (`wayback snapshots` lists them)")]
    NestedSubvolume { path: PathBuf, snapshot: PathBuf },
    #[error(
        "invalid bind {0}: bind paths must be absolute, without '..' (e.g. /var/lib/postgresql)"
    )]
    BindInvalid(PathBuf),
    #[error("nothing to run: profile {0:?} has no processes and no --exec was given")]
    NothingToRun(String),
    #[error("--user needs --exec (a profile's processes set their own users)")]
    UserWithoutExec,
    #[error("--idle needs an HTTP route (--port or a profile with http_port): idle time is measured on proxied requests")]
    IdleWithoutHttp,
    #[error("--share, --basic-auth and --allow guard the HTTP proxy: they need an HTTP route (--port or a profile with http_port)")]
    GateWithoutHttp,
    #[error("--original-host {0} rewrites HTTP traffic: it needs an HTTP route (--port or a profile with http_port)")]
    MasqueradeWithoutHttp(String),
    #[error("the chosen snapshots are {skew} apart, more than max_skew ({max}); pick a moment they share (--at), or drop --strict-consistency")]
    Skew { skew: Duration, max: Duration },
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// What a bind path is inside the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    Missing,
    Present,
    /// The empty directory btrfs leaves in a snapshot where the live system has a nested subvolume
    /// (inode 2): the data is not in this snapshot.
    NestedSubvolume,
}

/// Build the plan. `probe` says what a path inside the snapshot is (used for bind paths).
pub fn build(
    req: &UpRequest,
    facts: &Facts,
    cfg: &Config,
    probe: &dyn Fn(&Path) -> PathState,
) -> Result<Plan, PlanError> {
    let profile = &req.profile;
    let name = match &req.name {
        Some(n) => n.clone(),
        None => default_name(&profile.name, &facts.existing)?,
    };
    if facts.existing.iter().any(|e| e == name.as_str()) {
        return Err(PlanError::NameTaken(name.to_string()));
    }

    // Boot mode clones the whole root: no binds, no processes of ours.
    let binds = if req.boot {
        Vec::new()
    } else {
        merged_binds(profile, req)
    };
    let clone = clone_for(cfg, &facts.source, &name, 0);
    let extra: Vec<ExtraSource> = facts
        .extra_sources
        .iter()
        .enumerate()
        .map(|(i, e)| ExtraSource {
            source: e.source.clone(),
            clone: clone_for(cfg, &e.source, &name, i + 1),
            date: e.date,
            why: e.why.clone(),
        })
        .collect();
    let mut mounts = Vec::new();
    for (i, b) in binds.iter().enumerate() {
        for p in [b.path(), b.dest()] {
            if !p.is_absolute() || p.components().any(|c| c.as_os_str() == "..") {
                return Err(PlanError::BindInvalid(p.to_path_buf()));
            }
        }
        let (src, clone_root, rel) = match facts.bind_sources.get(i) {
            Some(BindFrom { index, rel }) if *index > 0 => {
                let e = extra
                    .get(index - 1)
                    .ok_or(PlanError::BindInvalid(b.path().to_path_buf()))?;
                (
                    &e.source,
                    &e.clone,
                    rel.strip_prefix("/").unwrap_or(rel).to_path_buf(),
                )
            }
            Some(BindFrom { rel, .. }) => (
                &facts.source,
                &clone,
                rel.strip_prefix("/").unwrap_or(rel).to_path_buf(),
            ),
            None => (
                &facts.source,
                &clone,
                b.path().strip_prefix("/").unwrap_or(b.path()).to_path_buf(),
            ),
        };
        match probe(&src.path.join(&rel)) {
            PathState::Present => {}
            PathState::Missing => {
                return Err(PlanError::BindMissing {
                    path: b.path().to_path_buf(),
                    snapshot: src.path.clone(),
                })
            }
            PathState::NestedSubvolume => {
                return Err(PlanError::NestedSubvolume {
                    path: b.path().to_path_buf(),
                    snapshot: src.path.clone(),
                })
            }
        }
        mounts.push(MountBind {
            source: clone_root.join(&rel),
            dest: b.dest().to_path_buf(),
            readonly: false,
        });
    }
    let dates: Vec<i64> = facts
        .main_date
        .into_iter()
        .chain(extra.iter().filter_map(|e| e.date))
        .collect();
    let skew = (dates.len() > 1).then(|| {
        (dates.iter().max().unwrap_or(&0) - dates.iter().min().unwrap_or(&0)).unsigned_abs()
    });
    if let Some(sk) = skew {
        if req.strict_consistency && sk > cfg.max_skew.as_secs() {
            return Err(PlanError::Skew {
                skew: Duration(sk),
                max: cfg.max_skew,
            });
        }
    }

    // Processes: --exec replaces the profile's.
    let processes: Vec<Process> = if req.exec.is_empty() {
        if req.user.is_some() {
            return Err(PlanError::UserWithoutExec);
        }
        profile.processes.clone()
    } else {
        req.exec
            .iter()
            .enumerate()
            .map(|(i, cmd)| Process {
                name: format!("exec{}", i + 1),
                shell: Some(cmd.clone()),
                user: req.user.clone(),
                ..Process::default()
            })
            .collect()
    };
    let mut processes = if req.boot { Vec::new() } else { processes };
    for p in &mut processes {
        p.env.extend(req.env.clone());
    }
    if processes.is_empty() && !req.boot {
        return Err(PlanError::NothingToRun(profile.name.clone()));
    }

    let http_port = req.port.or(profile.http_port);
    let http = match http_port {
        Some(port) => {
            let host = match &req.host {
                Some(h) => validate_hostname(h)?,
                None => validate_hostname(&format!("{}.{}", name, cfg.base_domain))?,
            };
            let url = cfg.proxy.url(&host);
            Some(HttpRoute { host, port, url })
        }
        None => {
            if let Some(h) = &req.host {
                validate_hostname(h)?;
            }
            None
        }
    };
    if req.idle.is_some() && http.is_none() {
        return Err(PlanError::IdleWithoutHttp);
    }
    let gate = GateSpec {
        share: req.share,
        basic_auth_user: req.basic_auth.as_ref().map(|(u, _)| u.clone()),
        allow: req.allow.clone(),
    };
    if !gate.is_open() && http.is_none() {
        return Err(PlanError::GateWithoutHttp);
    }
    let masquerade = match &req.original_host {
        Some(h) if http.is_none() => return Err(PlanError::MasqueradeWithoutHttp(h.clone())),
        Some(h) => Some(MasqueradeSpec::parse(h, req.rewrite_bodies)?),
        None => None,
    };
    let ready = profile
        .ready
        .clone()
        .or_else(|| http_port.map(Ready::tcp))
        .or_else(|| {
            // The last process's own network check (a path check can only run inside the container).
            processes
                .iter()
                .rev()
                .find_map(|p| p.ready.clone().filter(|r| r.path.is_none()))
        })
        .or_else(|| req.publish.first().map(|p| Ready::tcp(p.port)));

    let block = pool::allocate(cfg.address_pool, BLOCK_LEN, &facts.in_use)?;
    let ttl = req.ttl.unwrap_or(cfg.default_ttl);
    let instance_dir = cfg.instance_dir(name.as_str());
    let netns_path = PathBuf::from("/run/netns").join(name.netns());
    let container = ContainerSpec {
        machine: name.machine(),
        netns_path: netns_path.clone(),
        host_ro: if req.boot {
            Vec::new()
        } else {
            facts.host_paths.binds.clone()
        },
        binds: mounts,
        init_exe: facts.init_exe.clone(),
        spec_file: instance_dir.join("init.json"),
        register: facts.machined,
        boot_root: req.boot.then(|| clone.clone()),
    };
    let boot = req.boot.then(|| BootSpec {
        masks: req.masks.clone(),
        default_masks: !req.no_default_masks,
    });
    Ok(Plan {
        profile: profile.name.clone(),
        created: facts.now,
        ttl,
        expires: facts.now + ttl.as_secs(),
        idle: req.idle,
        source: facts.source.clone(),
        clone,
        main_date: facts.main_date,
        extra,
        skew,
        netns: name.netns(),
        netns_path,
        host_if: name.host_if(),
        peer_if: PEER_IF.into(),
        block,
        allow_egress: req.allow_egress.clone(),
        chown: None,
        init: InitSpec {
            instance: name.to_string(),
            shell: facts.shell.clone(),
            symlinks: facts.host_paths.symlinks.clone(),
            skeleton: if req.boot {
                Vec::new()
            } else {
                facts.var_skeleton.clone()
            },
            dirs: profile.dirs.clone(),
            processes,
        },
        container,
        ready,
        http,
        gate,
        masquerade,
        boot,
        driver: req.proxy.unwrap_or(cfg.proxy.driver),
        publish: req.publish.clone(),
        name,
    })
}

/// The binds of a request: the profile's, then the command line's (a CLI bind with the same destination
/// replaces the profile's).
pub fn merged_binds(profile: &Profile, req: &UpRequest) -> Vec<Bind> {
    let mut binds: Vec<Bind> = profile.binds.clone();
    for b in &req.binds {
        binds.retain(|x| x.dest() != b.dest());
        binds.push(b.clone());
    }
    binds
}

/// The clone of source `index` (0: the main one): btrfs snapshots go to `<fs_root>/<clone_dir>/<name>`
/// (`<name>.<index>` for extra sources: `.` cannot occur in instance names), overlays into the instance dir.
fn clone_for(cfg: &Config, src: &SourceFacts, name: &InstanceName, index: usize) -> PathBuf {
    match (src.kind, index) {
        (SourceKind::Btrfs, 0) => clone_path(cfg, &src.fs_root, name),
        (SourceKind::Btrfs, i) => {
            clone_path(cfg, &src.fs_root, name).with_file_name(format!("{name}.{i}"))
        }
        (SourceKind::Overlay, 0) => cfg.instance_dir(name.as_str()).join("overlay/merged"),
        (SourceKind::Overlay, i) => cfg
            .instance_dir(name.as_str())
            .join(format!("overlay-{i}/merged")),
    }
}

/// Where the clone of an instance goes: `<fs_root>/<clone_dir>/<name>` (relative clone_dir) or
/// `<clone_dir>/<name>`.
pub fn clone_path(cfg: &Config, fs_root: &Path, name: &InstanceName) -> PathBuf {
    let dir = if cfg.clone_dir.is_absolute() {
        cfg.clone_dir.clone()
    } else {
        fs_root.join(&cfg.clone_dir)
    };
    dir.join(name.as_str())
}

fn default_name(profile: &str, existing: &[String]) -> Result<InstanceName, PlanError> {
    let base: String = profile
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(24)
        .collect();
    let base = base.trim_matches('-');
    let base = if base.is_empty() { "instance" } else { base };
    let n = (1..)
        .find(|n| !existing.iter().any(|e| *e == format!("{base}-{n}")))
        .unwrap_or(1);
    Ok(InstanceName::new(&format!("{base}-{n}"))?)
}

/// Quote argv for display the way a shell would need it.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
