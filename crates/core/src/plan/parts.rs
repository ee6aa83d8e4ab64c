//! The parts of a plan: sources beyond the main snapshot, TCP publishes, the access gate, hostname
//! masquerade, boot-mode masks and owner changes. Plain data with their parsers; `plan::build` fills them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::SourceFacts;
use crate::duration::Duration;
use crate::names::{validate_hostname, NameError};

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

/// Hostname masquerade: the proxy sends `host` (the live site's name) to the app and rewrites it back to
/// the instance's hostname in headers and, when `bodies`, in text bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasqueradeSpec {
    pub host: String,
    pub https: bool,
    pub bodies: bool,
}

impl MasqueradeSpec {
    /// Parse `HOST[:PORT]` (https assumed) or `http://HOST[:PORT]` / `https://HOST[:PORT]` (the scheme in
    /// any case, a trailing `/` allowed; a path is refused: an origin has none).
    pub fn parse(s: &str, bodies: bool) -> Result<MasqueradeSpec, NameError> {
        let (https, rest) = match s.split_once("://") {
            Some((scheme, r)) if scheme.eq_ignore_ascii_case("https") => (true, r),
            Some((scheme, r)) if scheme.eq_ignore_ascii_case("http") => (false, r),
            Some(_) => return Err(NameError::Origin(s.into())),
            None => (true, s),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if parse_port(p).is_some() => (h, Some(p)),
            _ => (rest, None),
        };
        let host = validate_hostname(host).map_err(|_| NameError::Origin(s.into()))?;
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

/// What `--original-host` says: an explicit origin, or `auto` (detected after the app answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginalHost {
    Given(MasqueradeSpec),
    /// `auto`: the masquerade is the origin the app's front page points to, found after readiness.
    Auto,
}

impl OriginalHost {
    /// `auto` (any case), else [`MasqueradeSpec::parse`].
    pub fn parse(s: &str, bodies: bool) -> Result<OriginalHost, NameError> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(OriginalHost::Auto);
        }
        MasqueradeSpec::parse(s, bodies).map(OriginalHost::Given)
    }
}

/// The pinned-hostname check made after readiness and before the route is published: wayback fetches
/// the app's front page inside the instance and looks for another hostname it sends the browser to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum HostCheck {
    /// No `--original-host`: refuse to answer ready (and roll back) when the front page redirects to
    /// another hostname; warn when its links, forms or cookies name one.
    #[default]
    Refuse,
    /// `--original-host HOST`: warn when the app points to yet another hostname.
    Verify,
    /// `--original-host auto`: the masquerade is the detected origin (none when nothing is found).
    Auto {
        /// Rewrite text bodies too (`--no-rewrite-bodies` not given).
        bodies: bool,
    },
    /// `--no-host-check`, or no HTTP route.
    Off,
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

/// A path the units name, with why (e.g. "StateDirectory=redis of redis-server.service").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Looked {
    pub path: PathBuf,
    pub reason: String,
}

/// What `up --unit` inferred beyond the binds, for planning and the plan's listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inferred {
    /// State paths the units name that this snapshot does not hold.
    #[serde(default)]
    pub missing: Vec<Looked>,
    /// The units' configuration files and directories (compared with the snapshot's copies).
    #[serde(default)]
    pub configs: Vec<Looked>,
}

/// A configuration file (or directory) of the units that the snapshot holds too, compared with the host's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDrift {
    pub path: PathBuf,
    pub reason: String,
    /// The snapshot's copy differs from the host's (else: only in the snapshot).
    pub differs: bool,
    /// The snapshot's copy is bound over the host's (`--bind-config`).
    pub used: bool,
}

/// `--software snapshot`: what the binary found in the snapshot's top level, and what the init needs of
/// the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotSoftware {
    /// Top-level directories bound read-only from the clone: the snapshot's software and configuration
    /// (/usr, /etc, /nix, /opt, and /bin, /sbin, /lib… where they are real directories).
    pub dirs: Vec<PathBuf>,
    /// The snapshot's top-level symlinks: (path, target as written).
    pub links: Vec<(PathBuf, PathBuf)>,
    /// The host's dynamic loader (first) and the libraries wayback's init needs.
    pub init_libs: Vec<crate::nspawn::HostLib>,
}

/// Whose software runs the instance, why, and how the snapshot's state compares with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftwarePlan {
    pub source: crate::drift::Software,
    /// `--software snapshot`, or why the default was kept.
    pub why: String,
    /// Comparisons of the snapshot's state (and packages) with the software that runs it.
    #[serde(default)]
    pub findings: Vec<crate::drift::Finding>,
}
