//! `up`'s plan: user input ("low", validated) + facts read from the system ("high") → a pure `Plan` value
//! that names every resource `up` will create. `--dry-run` prints it; the applier creates exactly it.
//!
//! No syscalls here: the `wayback` binary gathers [`Facts`] and passes a path-existence probe.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

mod display;

use crate::config::Config;
use crate::duration::Duration;
use crate::hostpaths::HostPaths;
use crate::names::{validate_hostname, InstanceName, NameError};
use crate::nspawn::{ContainerSpec, MountBind};
use crate::pool::{self, Block, PoolError};
use crate::profile::{Bind, DirSpec, Process, Profile, Ready};

/// Prefix length of each instance's veth block.
pub const BLOCK_LEN: u8 = 30;
/// Name of the veth end inside the instance (systemd-nspawn's convention).
pub const PEER_IF: &str = "host0";

/// What the user asked for, already parsed (names, durations and ports are valid types). Serialisable so
/// the CLI can hand it to the daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpRequest {
    /// The main snapshot; with `at`, the live root the bind paths are relative to (default /).
    pub snapshot: Option<PathBuf>,
    /// Pick each bind path's snapshot as of this time (unix seconds).
    #[serde(default)]
    pub at: Option<i64>,
    pub name: Option<InstanceName>,
    pub profile: Profile,
    pub binds: Vec<Bind>,
    pub exec: Vec<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub host: Option<String>,
    pub publish: Vec<Publish>,
    pub ttl: Option<Duration>,
    /// Remove the instance after this long without a proxied HTTP request.
    pub idle: Option<Duration>,
    /// Holes in the quarantine, `[tcp:|udp:]ADDR:PORT` (validated by the caller).
    #[serde(default)]
    pub allow_egress: Vec<String>,
    /// More host paths to show read-only (`--host-path`), and defaults to leave out (`--no-host-path`).
    #[serde(default)]
    pub host_paths: Vec<PathBuf>,
    #[serde(default)]
    pub no_host_paths: Vec<PathBuf>,
    /// Accept a writable non-btrfs directory as the source (through an overlay; it is never written).
    #[serde(default)]
    pub overlay: bool,
    /// Fix owner mismatches by changing ids in the clone (by name from the snapshot's /etc/passwd and
    /// /etc/group, plus `map_ids`).
    #[serde(default)]
    pub chown: bool,
    /// Explicit id changes for the clone: (snapshot id, host id, user or group).
    #[serde(default)]
    pub map_ids: Vec<(u32, u32, crate::ownership::IdKind)>,
    /// Access gate: a one-time share link valid this long.
    #[serde(default)]
    pub share: Option<Duration>,
    /// Access gate: HTTP basic auth (user, password). The password never enters the plan.
    #[serde(default)]
    pub basic_auth: Option<(String, String)>,
    /// Access gate: only clients from these networks.
    #[serde(default)]
    pub allow: Vec<ipnet::IpNet>,
    /// Hostname masquerade: the app's usual origin, `HOST` (https assumed) or `http[s]://HOST[:PORT]`.
    #[serde(default)]
    pub original_host: Option<String>,
    /// With masquerade, rewrite text bodies too (the default).
    #[serde(default = "yes")]
    pub rewrite_bodies: bool,
    /// Refuse (instead of warning) when the chosen snapshots are further apart than `max_skew`.
    #[serde(default)]
    pub strict_consistency: bool,
    /// Who publishes the hostname (`--proxy`); default: the config's `[proxy] driver`.
    #[serde(default)]
    pub proxy: Option<crate::drivers::ProxyDriver>,
    /// Extra environment for every process (`--env KEY=VALUE`), over the profile's.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Boot mode: SNAPSHOT is a whole root filesystem; boot its own init.
    #[serde(default)]
    pub boot: bool,
    /// Boot mode: units to mask besides the defaults (timers, mail and cron).
    #[serde(default)]
    pub masks: Vec<String>,
    /// Boot mode: do not mask the default units.
    #[serde(default)]
    pub no_default_masks: bool,
}

fn yes() -> bool {
    true
}

/// The system as it is now, gathered by the binary.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The snapshot, canonicalized, verified to be a btrfs subvolume.
    pub source: SourceFacts,
    /// Names of instances that already exist.
    pub existing: Vec<String>,
    /// Address blocks of other instances, and the host's routes and addresses.
    pub in_use: Vec<Ipv4Net>,
    /// The running wayback binary.
    pub init_exe: PathBuf,
    /// Whether systemd-machined can be used for registration.
    pub machined: bool,
    /// Host paths the container sees (resolved from defaults, config and the request).
    pub host_paths: HostPaths,
    /// The host's /var directory skeleton (empty directories with their owners and modes), which packages
    /// expect to exist (/var/lib/nginx, /var/log/mysql, /var/lib/php/sessions…).
    pub var_skeleton: Vec<DirSpec>,
    /// Snapshots of other subvolumes that binds come from (`--bind SELECTOR:PATH`, `--at`).
    pub extra_sources: Vec<ExtraSourceFacts>,
    /// Where each bind of [`merged_binds`] comes from; none: from the main source at the bind's path.
    pub bind_sources: Vec<BindFrom>,
    /// The main source's date (from its catalog), when known.
    pub main_date: Option<i64>,
    /// The host's shell for `shell =` processes, as the host resolves /bin/sh (a /nix/store path on NixOS).
    pub shell: PathBuf,
    /// Unix time.
    pub now: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFacts {
    pub path: PathBuf,
    /// How the writable clone is made.
    #[serde(default)]
    pub kind: SourceKind,
    /// The subvolume's UUID (btrfs sources).
    pub uuid: String,
    pub readonly: bool,
    /// Mount point of the filesystem holding the snapshot.
    pub fs_root: PathBuf,
}

/// What the source is, and so how it is cloned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A btrfs subvolume: a writable btrfs snapshot in `clone_dir`.
    #[default]
    Btrfs,
    /// Any other directory: an overlayfs mount in the instance's state directory.
    Overlay,
}

/// Where a bind's data comes from: source `index` (0: the main one, i: `extra_sources[i - 1]`) at `rel`
/// inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindFrom {
    pub index: usize,
    pub rel: PathBuf,
}

/// A snapshot of another subvolume, as found by the binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraSourceFacts {
    pub source: SourceFacts,
    /// Its date (unix seconds) from the catalog.
    pub date: Option<i64>,
    /// How it was chosen, e.g. "--at 2026-11-14T10:00 for /var/lib/mysql" or "@12".
    pub why: String,
}

/// An extra source in the plan, with its own clone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraSource {
    pub source: SourceFacts,
    pub clone: PathBuf,
    pub date: Option<i64>,
    pub why: String,
}

/// A TCP publish `[ADDR:]HOSTPORT:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    pub listen: SocketAddr,
    pub port: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid --publish {input:?}: {why} (expected [ADDR:]HOSTPORT:PORT, e.g. 15432:5432 or 127.0.0.1:15432:5432)")]
pub struct PublishError {
    pub input: String,
    pub why: &'static str,
}

impl std::str::FromStr for Publish {
    type Err = PublishError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| PublishError {
            input: s.into(),
            why,
        };
        let (rest, port) = s
            .rsplit_once(':')
            .ok_or_else(|| err("missing container port"))?;
        let port = parse_port(port).ok_or_else(|| err("container port must be 1-65535"))?;
        let (addr, host_port) = match rest.rsplit_once(':') {
            Some((a, hp)) => {
                let a = a.trim_start_matches('[').trim_end_matches(']');
                let ip: IpAddr = a.parse().map_err(|_| err("bad listen address"))?;
                (ip, hp)
            }
            None => (IpAddr::V4(Ipv4Addr::LOCALHOST), rest),
        };
        let host_port = parse_port(host_port).ok_or_else(|| err("host port must be 1-65535"))?;
        Ok(Publish {
            listen: SocketAddr::new(addr, host_port),
            port,
        })
    }
}

fn parse_port(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|p| *p > 0)
}

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

/// Hostname masquerade: the proxy sends `host` (the live site's name) to the app and rewrites it back to
/// the instance's hostname in headers and, when `bodies`, in text bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasqueradeSpec {
    pub host: String,
    pub https: bool,
    pub bodies: bool,
}

impl MasqueradeSpec {
    /// Parse `HOST[:PORT]` (https assumed) or `http://…` / `https://…`.
    pub fn parse(s: &str, bodies: bool) -> Result<MasqueradeSpec, NameError> {
        let (https, rest) = match s.split_once("://") {
            Some(("https", r)) => (true, r),
            Some(("http", r)) => (false, r),
            Some(_) => return Err(NameError::Hostname(s.into())),
            None => (true, s),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h, Some(p)),
            _ => (rest, None),
        };
        let host = validate_hostname(host).map_err(|_| NameError::Hostname(s.into()))?;
        Ok(MasqueradeSpec {
            host: match port {
                Some(p) => format!("{host}:{p}"),
                None => host,
            },
            https,
            bodies,
        })
    }
}

/// Boot mode: units masked in the clone before it boots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootSpec {
    /// Named units (`--mask`).
    pub masks: Vec<String>,
    /// Also every timer, mail and cron unit the image has (the default).
    pub default_masks: bool,
}

/// Unit names masked by default in boot mode besides every `*.timer`: mail transport agents and cron.
pub const DEFAULT_MASKED_SERVICES: &[&str] = &[
    "cron.service",
    "crond.service",
    "anacron.service",
    "atd.service",
    "postfix.service",
    "postfix@-.service",
    "exim4.service",
    "sendmail.service",
    "opensmtpd.service",
    "nullmailer.service",
    "dma.service",
    "msmtpd.service",
];

/// The access gate on the proxy, without secrets (those are made when the route is published).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSpec {
    /// A one-time link, exchanged for a session cookie, valid this long.
    pub share: Option<Duration>,
    pub basic_auth_user: Option<String>,
    pub allow: Vec<ipnet::IpNet>,
}

impl GateSpec {
    pub fn is_open(&self) -> bool {
        self.share.is_none() && self.basic_auth_user.is_none() && self.allow.is_empty()
    }
}

/// Id changes in the clone, so the host's users own what their snapshot counterparts owned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chown {
    pub uids: std::collections::BTreeMap<u32, u32>,
    pub gids: std::collections::BTreeMap<u32, u32>,
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
