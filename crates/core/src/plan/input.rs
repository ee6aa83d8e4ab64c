//! What `plan::build` takes: the user's request (already typed, serialisable for the daemon) and the facts
//! the binary gathers from the system.

use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::{BindFrom, ExtraSourceFacts, Publish};
use crate::duration::Duration;
use crate::hostpaths::HostPaths;
use crate::names::InstanceName;
use crate::profile::{Bind, DirSpec, Profile};

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
    pub allow_egress: Vec<crate::egress::Egress>,
    /// More host paths to show read-only (`--host-path`), and defaults to leave out (`--no-host-path`).
    #[serde(default)]
    pub host_paths: Vec<PathBuf>,
    #[serde(default)]
    pub no_host_paths: Vec<PathBuf>,
    /// Host secrets to show after all (`--unmask`): masked ones a service needs.
    #[serde(default)]
    pub unmask: Vec<PathBuf>,
    /// Run even though nothing of the snapshot is bound (`--allow-empty`).
    #[serde(default)]
    pub allow_empty: bool,
    /// SNAPSHOT may be a writable (live) subvolume: the instance is a fork of today's state (`--from-live`).
    #[serde(default)]
    pub from_live: bool,
    /// Use the snapshot's copies of the units' configuration files where they differ from the host's.
    #[serde(default)]
    pub bind_config: bool,
    /// What `--unit` inferred besides the profile's binds.
    #[serde(default)]
    pub inferred: super::Inferred,
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
    /// Hostname masquerade: the app's usual origin, `HOST` (https assumed) or `http[s]://HOST[:PORT]`, or
    /// `auto` (detected after readiness).
    #[serde(default)]
    pub original_host: Option<String>,
    /// Skip the pinned-hostname check after readiness (`--no-host-check`).
    #[serde(default)]
    pub no_host_check: bool,
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
    /// Whose software runs the processes (`--software`); none: the host's, refused when it cannot run the
    /// snapshot's state.
    #[serde(default)]
    pub software: Option<crate::drift::Software>,
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
    /// Host files and directories under those that the container sees as empty, inaccessible nodes.
    pub host_masks: Vec<PathBuf>,
    /// The units' configuration files that the snapshot holds too (`used` is still false here).
    pub config_drift: Vec<super::ConfigDrift>,
    /// The host's /var directory skeleton (empty directories with their owners and modes), which packages
    /// expect to exist (/var/lib/nginx, /var/log/mysql, /var/lib/php/sessions…).
    pub var_skeleton: Vec<DirSpec>,
    /// Snapshots of other subvolumes that binds come from (`--bind SELECTOR:PATH`, `--at`).
    pub extra_sources: Vec<ExtraSourceFacts>,
    /// Where each bind of [`merged_binds`] comes from; none: from the main source at the bind's path.
    pub bind_sources: Vec<BindFrom>,
    /// The main source's date (from its catalog), when known.
    pub main_date: Option<i64>,
    /// Names of the host's users and groups (processes must run as one of them).
    pub users: Vec<String>,
    pub groups: Vec<String>,
    /// The host's shell for `shell =` processes, as the host resolves /bin/sh (a /nix/store path on NixOS).
    /// With `--software snapshot`, this and `users`, `groups`, `var_skeleton` and `host_paths.symlinks` are
    /// the snapshot's (as resolved inside it), and `host_paths.binds` only what `--host-path` and the config
    /// add.
    pub shell: PathBuf,
    /// `--software snapshot`: the snapshot's top level and the host's loader for the init.
    pub snapshot_software: Option<super::SnapshotSoftware>,
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
