//! `config.toml`: where wayback keeps its state, where the proxy listens, the address pool, defaults.
//!
//! Looked up as `--config FILE`, else `$WAYBACK_CONFIG`, else `/etc/wayback/config.toml`, else built-in
//! defaults. Unknown keys are an error (a typo must not silently fall back to a default). Pure apart from
//! reading the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;

mod console;
pub use console::ConsoleConfig;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/wayback/config.toml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Journals, plans and logs of instances: `<state_dir>/instances/<name>/`.
    pub state_dir: PathBuf,
    /// Runtime files: proxy routes, locks.
    pub runtime_dir: PathBuf,
    /// Instances get `<name>.<base_domain>` unless `--host` is given.
    pub base_domain: String,
    /// TTL when `up` gets no `--ttl`.
    pub default_ttl: Duration,
    /// Each instance takes a /30 of this pool for its veth pair.
    pub address_pool: Ipv4Net,
    /// Where `wayback snapshots`, `find`, `diff` and selectors such as `up @11921` look for snapshots when
    /// no ROOT is given: snapper `.snapshots` parents, btrbk snapshot dirs, directories of subvolumes.
    pub snapshot_roots: Vec<PathBuf>,
    /// Where writable clones go. Relative: a directory at the top of the filesystem (mount) that holds the
    /// snapshot. Absolute: that directory, which must be on the snapshot's filesystem.
    pub clone_dir: PathBuf,
    /// Extra directories searched for `--profile NAME` (as `NAME.toml`), before the built-ins.
    pub profile_dirs: Vec<PathBuf>,
    /// How long `up` waits for the service to answer before rolling back.
    pub ready_timeout: Duration,
    /// When the snapshots an instance is assembled from (`--at`, `--bind SELECTOR:PATH`) are further apart
    /// than this, `up` warns (and refuses with `--strict-consistency`).
    pub max_skew: Duration,
    /// Host paths shown read-only in every container, besides the defaults (/etc, and /nix,
    /// /run/current-system, /run/booted-system, /run/wrappers, /opt when present).
    pub host_paths: Vec<PathBuf>,
    /// Host secrets hidden from every host-mode container, besides the defaults (/etc/shadow, /etc/gshadow,
    /// /etc/ssh/ssh_host_*_key, /etc/ssl/private, /etc/wayback) and the proxy's certificate keys; globs
    /// allowed. `up --unmask PATH` shows one a service needs.
    pub mask_host_paths: Vec<PathBuf>,
    /// How long `gc` keeps the logs of a failed start (`wayback logs NAME` shows them meanwhile).
    pub keep_failed_logs: Duration,
    pub proxy: ProxyConfig,
    /// `wayback verify` (docs/verify.md).
    pub verify: VerifyConfig,
    /// The web console of `wayback serve` (docs/console.md).
    pub console: ConsoleConfig,
}

/// `[verify]`: where jobs are, how many run at once, and where results go besides the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// Where `wayback verify JOB` and `--all` find jobs (`NAME.toml`).
    pub jobs_dir: PathBuf,
    /// How many snapshots are verified at once.
    pub parallel: usize,
    /// The Prometheus text file (node_exporter's textfile collector) rewritten after every `verify`, e.g.
    /// /var/lib/prometheus/node-exporter/wayback-verify.prom [default: none].
    pub metrics_file: Option<PathBuf>,
    /// A command (argv) run when a run failed, given the JSON report on stdin, e.g. a script that mails it.
    pub on_failure: Vec<String>,
    /// How long `on_failure` may run before it is killed.
    pub hook_timeout: Duration,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            jobs_dir: "/etc/wayback/verify.d".into(),
            parallel: 2,
            metrics_file: None,
            on_failure: Vec::new(),
            hook_timeout: Duration(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Listen address of the built-in HTTP proxy. With TLS on, it redirects to HTTPS (and answers ACME
    /// http-01 challenges).
    pub listen: SocketAddr,
    /// Listen address for HTTPS; setting it turns TLS on (needs `certificates` or `[proxy.acme]`).
    pub https_listen: Option<SocketAddr>,
    /// Certificate chain + key files (PEM), picked by SNI; a wildcard certificate for `base_domain` is the
    /// common case.
    pub certificates: Vec<CertificateFiles>,
    /// Per-hostname certificates from an ACME CA, for hostnames no certificate file covers.
    pub acme: Option<AcmeSettings>,
    /// Who publishes hostnames: `builtin` (this proxy), or the host's `nginx` or `caddy` (see
    /// docs/behind-your-proxy.md). `up --proxy` overrides it.
    pub driver: crate::drivers::ProxyDriver,
    pub nginx: crate::drivers::NginxConfig,
    pub caddy: crate::drivers::CaddyConfig,
    /// Cap on open client connections of the built-in proxy (HTTP and HTTPS together). Lowered, with a
    /// warning, when the process's open-file limit cannot hold it.
    pub max_connections: usize,
    /// Cap on open client connections from one client address (IPv6: one /64). Connections from
    /// `trusted_proxies` count only against `max_connections`.
    pub max_connections_per_client: usize,
    /// A new connection's first request head must be complete within this time.
    pub header_timeout: Duration,
    /// A kept-alive connection is closed when no new request arrives within this time.
    pub idle_timeout: Duration,
    /// Front proxies (CIDRs) whose `X-Forwarded-For` is extended rather than replaced, and whose
    /// `X-Forwarded-Proto` / `X-Forwarded-Host` are passed on [default: loopback, where the host's own
    /// reverse proxy connects from].
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeSettings {
    /// e.g. https://acme-v02.api.letsencrypt.org/directory
    pub directory_url: String,
    #[serde(default)]
    pub contact: Vec<String>,
    /// Account key and certificates [default: <state_dir>/acme].
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// PEM root the CA's own HTTPS chains to (private CAs, tests) [default: the system's trust store].
    #[serde(default)]
    pub ca_root: Option<PathBuf>,
}

impl ProxyConfig {
    /// The public URL of `host` on the proxy.
    pub fn url(&self, host: &str) -> String {
        match self.https_listen {
            Some(a) if a.port() == 443 => format!("https://{host}/"),
            Some(a) => format!("https://{host}:{}/", a.port()),
            None if self.listen.port() == 80 => format!("http://{host}/"),
            None => format!("http://{host}:{}/", self.listen.port()),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: "/var/lib/wayback".into(),
            runtime_dir: "/run/wayback".into(),
            base_domain: "wayback.localhost".into(),
            default_ttl: Duration(24 * 3600),
            address_pool: "10.213.0.0/16".parse().expect("valid default pool"),
            snapshot_roots: Vec::new(),
            clone_dir: ".wayback".into(),
            profile_dirs: vec!["/etc/wayback/profiles".into()],
            ready_timeout: Duration(60),
            host_paths: Vec::new(),
            mask_host_paths: Vec::new(),
            keep_failed_logs: Duration(7 * 24 * 3600),
            max_skew: Duration(15 * 60),
            proxy: ProxyConfig::default(),
            verify: VerifyConfig::default(),
            console: ConsoleConfig::default(),
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: "127.0.0.1:8080".parse().expect("valid default listen"),
            https_listen: None,
            certificates: Vec::new(),
            acme: None,
            driver: Default::default(),
            nginx: Default::default(),
            caddy: Default::default(),
            max_connections: 8192,
            max_connections_per_client: 256,
            header_timeout: Duration(20),
            idle_timeout: Duration(60),
            // The host's own reverse proxy (docs/behind-your-proxy.md) talks to the built-in one over loopback.
            trusted_proxies: vec![
                "127.0.0.0/8".parse().expect("valid loopback net"),
                "::1/128".parse().expect("valid loopback net"),
            ],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl Config {
    /// Resolve which file to read: explicit path, then `$WAYBACK_CONFIG`, then the default path if it exists.
    pub fn locate(explicit: Option<&Path>, env: Option<&str>) -> Option<PathBuf> {
        if let Some(p) = explicit {
            return Some(p.to_path_buf());
        }
        if let Some(e) = env.filter(|e| !e.is_empty()) {
            return Some(PathBuf::from(e));
        }
        let default = Path::new(DEFAULT_CONFIG_PATH);
        default.exists().then(|| default.to_path_buf())
    }

    /// Load from `path`, or defaults when `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: crate::profile::toml_error(text, &e),
        })?;
        if cfg.address_pool.prefix_len() > 30 {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!("address_pool {} is smaller than one /30", cfg.address_pool),
            });
        }
        if cfg.proxy.https_listen.is_some()
            && cfg.proxy.certificates.is_empty()
            && cfg.proxy.acme.is_none()
        {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: "[proxy] https_listen needs certificates = [{ cert = ..., key = ... }] or a [proxy.acme] section".into(),
            });
        }
        // Everything wayback creates and removes lives under these two: a relative path would move with
        // the working directory of whoever runs wayback.
        for (key, dir) in [
            ("state_dir", &cfg.state_dir),
            ("runtime_dir", &cfg.runtime_dir),
        ] {
            if !dir.is_absolute() {
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: format!(
                        "{key} must be an absolute path (e.g. {}), not {:?}",
                        match key {
                            "state_dir" => "/var/lib/wayback",
                            _ => "/run/wayback",
                        },
                        dir.display().to_string()
                    ),
                });
            }
        }
        // Lists of directories: relative ones would also depend on the working directory.
        for (key, dirs, example) in [
            ("profile_dirs", &cfg.profile_dirs, "/etc/wayback/profiles"),
            ("snapshot_roots", &cfg.snapshot_roots, "/persist"),
        ] {
            if let Some(d) = dirs.iter().find(|d| !d.is_absolute()) {
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: format!(
                        "{key} must list absolute paths (e.g. {example}), not {:?}",
                        d.display().to_string()
                    ),
                });
            }
        }
        if cfg.clone_dir.components().any(|c| c.as_os_str() == "..") {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!(
                    "clone_dir {:?} must not contain '..' (relative: a directory at the top of the snapshot's filesystem, e.g. .wayback; absolute: a directory on that filesystem)",
                    cfg.clone_dir.display().to_string()
                ),
            });
        }
        if !(1..=64).contains(&cfg.verify.parallel) {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!(
                    "[verify] parallel must be 1-64, not {}",
                    cfg.verify.parallel
                ),
            });
        }
        let verify_paths = [
            ("[verify] jobs_dir", Some(&cfg.verify.jobs_dir)),
            ("[verify] metrics_file", cfg.verify.metrics_file.as_ref()),
        ];
        if let Some((key, p)) = verify_paths
            .iter()
            .find_map(|(k, p)| p.filter(|p| !p.is_absolute()).map(|p| (k, p)))
        {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!(
                    "{key} must be an absolute path, not {:?}",
                    p.display().to_string()
                ),
            });
        }
        crate::names::validate_hostname(&cfg.base_domain).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: format!("base_domain: {e}"),
        })?;
        Ok(cfg)
    }

    pub fn instances_dir(&self) -> PathBuf {
        self.state_dir.join("instances")
    }

    pub fn instance_dir(&self, name: &str) -> PathBuf {
        self.instances_dir().join(name)
    }

    pub fn routes_dir(&self) -> PathBuf {
        self.runtime_dir.join("routes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_partial_files() {
        let c = Config::parse(
            "base_domain = \"restore.example.org\"\n[proxy]\nlisten = \"0.0.0.0:80\"\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(c.base_domain, "restore.example.org");
        assert_eq!(c.proxy.listen.port(), 80);
        assert_eq!(c.default_ttl, Duration(86400));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = Config::parse("stat_dir = \"/x\"\n", Path::new("/etc/wayback/config.toml"))
            .unwrap_err();
        assert!(e.to_string().contains("stat_dir"), "{e}");
        assert!(Config::parse("default_ttl = \"forever\"\n", Path::new("x")).is_err());
        assert!(Config::parse("address_pool = \"10.0.0.0/31\"\n", Path::new("x")).is_err());
    }

    #[test]
    fn state_and_runtime_dirs_must_be_absolute() {
        for (text, key) in [
            ("state_dir = \"var/lib/wayback\"\n", "state_dir"),
            ("state_dir = \"\"\n", "state_dir"),
            ("runtime_dir = \"./run\"\n", "runtime_dir"),
        ] {
            let e = Config::parse(text, Path::new("/etc/wayback/config.toml")).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains(key) && msg.contains("absolute") && msg.contains("config.toml"),
                "{msg}"
            );
        }
        for (text, key) in [
            (
                "profile_dirs = [\"/etc/p\", \"profiles\"]\n",
                "profile_dirs",
            ),
            ("snapshot_roots = [\"persist\"]\n", "snapshot_roots"),
            ("clone_dir = \"../clones\"\n", "clone_dir"),
            ("clone_dir = \"/persist/../clones\"\n", "clone_dir"),
        ] {
            let e = Config::parse(text, Path::new("/etc/wayback/config.toml")).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
        let c = Config::parse(
            "state_dir = \"/srv/wb\"\nruntime_dir = \"/run/wb\"\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(c.instances_dir(), Path::new("/srv/wb/instances"));
    }

    #[test]
    fn locate_order() {
        assert_eq!(
            Config::locate(Some(Path::new("/a.toml")), Some("/b.toml")),
            Some(PathBuf::from("/a.toml"))
        );
        assert_eq!(
            Config::locate(None, Some("/b.toml")),
            Some(PathBuf::from("/b.toml"))
        );
    }
}
