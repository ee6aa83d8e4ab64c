//! `up`'s plan: user input ("low", validated) + facts read from the system ("high") → a pure `Plan` value
//! that names every resource `up` will create. `--dry-run` prints it; the applier creates exactly it.
//!
//! No syscalls here: the `wayback` binary gathers [`Facts`] and passes a path-existence probe.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod binds;
mod container;
mod display;
pub mod fixture;
mod input;
mod migrate;
mod parts;
mod processes;
mod route;

pub use binds::{clone_path, merged_binds};
pub use input::*;
pub use parts::*;
pub use route::BASIC_AUTH_MAX_PASSWORD;

use crate::config::Config;
use crate::duration::Duration;
use crate::names::{InstanceName, NameError};
use crate::nspawn::ContainerSpec;
use crate::pool::{self, Block, PoolError};
use crate::profile::{DirSpec, Process, Ready};

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
    pub allow_egress: Vec<crate::egress::Egress>,
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
    /// The pinned-hostname check after readiness (and, with `--original-host auto`, how the masquerade
    /// is found).
    #[serde(default)]
    pub host_check: HostCheck,
    /// Boot mode: the clone's own init runs; these units are masked first.
    #[serde(default)]
    pub boot: Option<BootSpec>,
    /// Who publishes the hostname: the built-in proxy, or the host's nginx or Caddy.
    #[serde(default)]
    pub driver: crate::drivers::ProxyDriver,
    /// State paths the units name that the snapshot does not hold (listed, not bound).
    #[serde(default)]
    pub missing: Vec<Looked>,
    /// The units' configuration files the snapshot holds too, and whether its copies are used.
    #[serde(default)]
    pub config_drift: Vec<ConfigDrift>,
    /// The source is a writable subvolume: a fork of today's live state (`--from-live`), not a snapshot.
    #[serde(default)]
    pub from_live: bool,
    pub publish: Vec<Publish>,
    /// Whose software runs the processes, and how the snapshot's state compares with it.
    #[serde(default)]
    pub software: SoftwarePlan,
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
    #[error("bind path {path} does not exist in snapshot {snapshot}{hint}; check the path (it is relative to the snapshot's root) or the snapshot")]
    BindMissing {
        path: PathBuf,
        snapshot: PathBuf,
        hint: String,
    },
    #[error("bind path {path} of snapshot {snapshot} cannot be used: {why}")]
    BindRefused {
        path: PathBuf,
        snapshot: PathBuf,
        why: String,
    },
    #[error("bind path {path} is empty in snapshot {snapshot}: on the live system it is a separate btrfs subvolume, and snapshots of a parent do not contain nested subvolumes. Use a snapshot of the subvolume that holds {path} instead (`wayback snapshots` lists them)")]
    NestedSubvolume { path: PathBuf, snapshot: PathBuf },
    #[error(
        "invalid bind {0}: bind paths must be absolute, without '..' (e.g. /var/lib/postgresql)"
    )]
    BindInvalid(PathBuf),
    #[error("bind {path} cannot go to {dest}: /, /run, and /proc, /sys, /dev with everything below them are the container's own; give another destination (--bind {path}:/srv/restore)")]
    BindDestReserved { path: PathBuf, dest: PathBuf },
    #[error("nothing to run: profile {0:?} has no processes and no --exec was given")]
    NothingToRun(String),
    #[error("--user needs --exec (a profile's processes set their own users)")]
    UserWithoutExec,
    #[error("{0} is for boot mode: add --boot (SNAPSHOT is then a whole root filesystem), or leave {0} out")]
    BootOnly(&'static str),
    #[error("invalid --mask {0:?}: give a systemd unit name such as postfix.service or cron (cron.service)")]
    BadMask(String),
    #[error("--exec number {0} is empty: give the command to run, e.g. --exec 'exec python3 -m http.server 8000'")]
    EmptyExec(usize),
    #[error("process {process} runs as user {user:?}, which does not exist on this host (host mode runs the host's software as the host's users); create the user, or run it as an existing one (--user for --exec)")]
    UnknownUser { process: String, user: String },
    #[error("process {process} runs as group {group:?}, which does not exist on this host; create the group or change the profile")]
    UnknownGroup { process: String, group: String },
    #[error("process {process} runs as {what} {name:?}, which the snapshot's /etc/passwd or /etc/group does not have (with --software snapshot the snapshot's own accounts are used); run it as one the snapshot has")]
    UnknownSnapshotAccount {
        process: String,
        what: &'static str,
        name: String,
    },
    #[error("--software snapshot needs a snapshot of a whole root filesystem: {0}")]
    NotARoot(String),
    #[error("invalid --basic-auth user {0:?}: a user name must not be empty or contain ':' or control characters")]
    BasicAuthUser(String),
    #[error("the --basic-auth password is {0} bytes long; bcrypt uses at most 72 bytes, so a longer one is refused rather than cut (use a shorter passphrase)")]
    BasicAuthPassword(usize),
    #[error("--host {0} names an HTTP route, but there is none: give --port PORT (the service's HTTP port inside the instance), or a profile with http_port")]
    HostWithoutHttp(String),
    #[error("--idle needs an HTTP route (--port or a profile with http_port): idle time is measured on proxied requests")]
    IdleWithoutHttp,
    #[error("--share, --basic-auth and --allow guard the HTTP proxy: they need an HTTP route (--port or a profile with http_port)")]
    GateWithoutHttp,
    #[error("--original-host {0} rewrites HTTP traffic: it needs an HTTP route (--port or a profile with http_port)")]
    MasqueradeWithoutHttp(String),
    #[error("--original-host auto finds the host by the check that --no-host-check turns off: drop one of them (or give the host, e.g. --original-host https://wiki.example.org)")]
    AutoWithoutCheck,
    #[error("the chosen snapshots are {skew} apart, more than max_skew ({max}); pick a moment they share (--at), or drop --strict-consistency")]
    Skew { skew: Duration, max: Duration },
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// What a bind path is inside the snapshot, resolved inside it (symlinks in a snapshot never lead out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathState {
    /// Not there; the text is a hint (e.g. where a symlink on the way points), possibly empty.
    Missing(String),
    /// There, at this absolute path inside the snapshot (another one than asked when symlinks were followed).
    Present(PathBuf),
    /// The empty directory btrfs leaves in a snapshot where the live system has a nested subvolume
    /// (inode 2): the data is not in this snapshot.
    NestedSubvolume,
    /// There but unusable (another filesystem mounted inside, a symlink loop, a device); the text says why.
    Refused(String),
}

impl Plan {
    /// The snapshot a clone of this plan was made from (`clone`: the main clone or an extra source's).
    pub fn snapshot_of(&self, clone: &Path) -> Option<&Path> {
        std::iter::once((&self.clone, &self.source.path))
            .chain(self.extra.iter().map(|e| (&e.clone, &e.source.path)))
            .find(|(c, _)| c.as_path() == clone)
            .map(|(_, s)| s.as_path())
    }
}

/// Build the plan. `probe(root, path)` says what `path` (absolute inside the snapshot at `root`) is, resolved
/// inside that snapshot (used for bind paths).
pub fn build(
    req: &UpRequest,
    facts: &Facts,
    cfg: &Config,
    probe: &dyn Fn(&Path, &Path) -> PathState,
) -> Result<Plan, PlanError> {
    let profile = &req.profile;
    let snapshot_software = req.software == Some(crate::drift::Software::Snapshot) && !req.boot;
    if snapshot_software && facts.snapshot_software.is_none() {
        return Err(PlanError::NotARoot(
            "the binary found no /usr and /etc (or /nix/store) in it".into(),
        ));
    }
    let name = match &req.name {
        Some(n) => n.clone(),
        None => default_name(&profile.name, &facts.existing)?,
    };
    if facts.existing.iter().any(|e| e == name.as_str()) {
        return Err(PlanError::NameTaken(name.to_string()));
    }
    let boot = boot_spec(req)?;
    let layout = binds::layout(req, facts, cfg, &name, probe)?;
    let processes = processes::processes(req, facts)?;
    let front = route::front(req, cfg, &name)?;
    let ready = processes::ready(req, &processes, front.http_port);
    let block = pool::allocate(cfg.address_pool, BLOCK_LEN, &facts.in_use)?;
    let ttl = req.ttl.unwrap_or(cfg.default_ttl);
    let netns_path = PathBuf::from("/run/netns").join(name.netns());
    let container = container::spec(req, facts, cfg, &name, &layout, &netns_path);
    Ok(Plan {
        profile: profile.name.clone(),
        created: facts.now,
        ttl,
        expires: facts.now + ttl.as_secs(),
        idle: req.idle,
        source: facts.source.clone(),
        clone: layout.clone,
        main_date: facts.main_date,
        extra: layout.extra,
        skew: layout.skew,
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
        http: front.http,
        gate: front.gate,
        masquerade: front.masquerade,
        host_check: front.host_check,
        boot,
        driver: req.proxy.unwrap_or(cfg.proxy.driver),
        publish: req.publish.clone(),
        missing: req.inferred.missing.clone(),
        config_drift: facts
            .config_drift
            .iter()
            .filter(|_| !snapshot_software)
            .map(|d| ConfigDrift {
                used: req.bind_config && d.differs,
                ..d.clone()
            })
            .collect(),
        from_live: req.from_live,
        software: SoftwarePlan {
            source: req.software.unwrap_or_default(),
            why: crate::drift::why(
                req.software.unwrap_or_default(),
                req.software.is_some(),
                &[],
            ),
            findings: Vec::new(),
        },
        name,
    })
}

/// Boot mode's masks, each a valid unit file name (they become file names in the clone's
/// /etc/systemd/system); the boot-mode flags without `--boot` are refused rather than ignored.
fn boot_spec(req: &UpRequest) -> Result<Option<BootSpec>, PlanError> {
    if !req.boot {
        return match (req.masks.is_empty(), req.no_default_masks) {
            (false, _) => Err(PlanError::BootOnly("--mask")),
            (true, true) => Err(PlanError::BootOnly("--no-default-masks")),
            (true, false) => Ok(None),
        };
    }
    let masks = req
        .masks
        .iter()
        .map(|m| crate::units::unit_file_name(m).ok_or_else(|| PlanError::BadMask(m.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(BootSpec {
        masks,
        default_masks: !req.no_default_masks,
    }))
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
