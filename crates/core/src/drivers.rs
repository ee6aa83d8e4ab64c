//! The host-proxy drivers' typed values: which driver publishes hostnames ([`ProxyDriver`], `[proxy]
//! driver` / `--proxy`), the config of the `[proxy.nginx]` / `[proxy.caddy]` sections of
//! `/etc/wayback/config.toml` (pure serde types with their defaults; unknown keys are errors;
//! docs/behind-your-proxy.md documents every key for admins), and the handle a driver journals for what it
//! published ([`DriverHandle`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use crate::config::CertificateFiles;
use serde::{Deserialize, Serialize};

/// Which proxy publishes instance hostnames: wayback's own, or the host's nginx or Caddy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyDriver {
    #[default]
    Builtin,
    Nginx,
    Caddy,
}

impl ProxyDriver {
    /// Every driver, as `--proxy` and `[proxy] driver` name them.
    pub const NAMES: [&'static str; 3] = ["builtin", "nginx", "caddy"];

    pub fn as_str(self) -> &'static str {
        match self {
            ProxyDriver::Builtin => "builtin",
            ProxyDriver::Nginx => "nginx",
            ProxyDriver::Caddy => "caddy",
        }
    }
}

impl fmt::Display for ProxyDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProxyDriver {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "builtin" => Ok(ProxyDriver::Builtin),
            "nginx" => Ok(ProxyDriver::Nginx),
            "caddy" => Ok(ProxyDriver::Caddy),
            _ => Err(format!(
                "unknown proxy driver {s:?} (one of {})",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// Where the host's proxy sends an instance's requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// To wayback's built-in proxy on its loopback listen address, with the client's Host: the access gate,
    /// hostname masquerade and `--idle` keep working.
    #[default]
    Builtin,
    /// Straight to the instance's veth address and port: one hop less, but no gate, masquerade or idle
    /// detection, and the service must listen on the veth address (not only on 127.0.0.1).
    Direct,
}

impl Via {
    /// The upstream the host proxy dials: the built-in proxy's listen address (an unspecified address
    /// becomes loopback) or the instance's veth address and service port.
    pub fn upstream(self, builtin_listen: SocketAddr, veth: SocketAddr) -> SocketAddr {
        match self {
            Via::Direct => veth,
            Via::Builtin => {
                let ip = match builtin_listen.ip() {
                    IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    ip => ip,
                };
                SocketAddr::new(ip, builtin_listen.port())
            }
        }
    }
}

/// `[proxy.nginx]`: one vhost file per instance in nginx's include directory, validated with `nginx -t`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NginxConfig {
    /// Where the vhost files go [default: `<conf dir>/conf.d` if nginx.conf includes it, else
    /// `<conf dir>/sites-enabled` if it includes that; `<conf dir>` is the directory of `conf`].
    pub include_dir: Option<PathBuf>,
    /// The nginx binary [default: `nginx`, looked up in PATH, then /usr/sbin and /sbin].
    pub binary: PathBuf,
    /// `-p PREFIX` for `nginx -t` and the default reload command.
    pub prefix: Option<PathBuf>,
    /// `-c FILE` for `nginx -t` and the default reload command [default: nginx's own, /etc/nginx/nginx.conf].
    pub conf: Option<PathBuf>,
    /// The reload command, e.g. `["systemctl", "reload", "nginx"]` [default: `BINARY [-p P] [-c C] -s reload`].
    pub reload: Option<Vec<String>>,
    pub via: Via,
    /// `listen` values of the plain HTTP server: `PORT`, `ADDR:PORT` or `[V6ADDR]:PORT`.
    pub http_listen: Vec<String>,
    /// `listen` values for HTTPS (with `tls`); plain HTTP then redirects to HTTPS.
    pub https_listen: Vec<String>,
    /// Serve HTTPS with these files, e.g. the host's wildcard certificate for `base_domain`.
    pub tls: Option<CertificateFiles>,
}

impl Default for NginxConfig {
    fn default() -> Self {
        NginxConfig {
            include_dir: None,
            binary: "nginx".into(),
            prefix: None,
            conf: None,
            reload: None,
            via: Via::Builtin,
            http_listen: vec!["80".into(), "[::]:80".into()],
            https_listen: vec!["443".into(), "[::]:443".into()],
            tls: None,
        }
    }
}

impl NginxConfig {
    /// The nginx.conf that decides what is included (for the default include directory).
    pub fn conf_path(&self) -> PathBuf {
        self.conf
            .clone()
            .unwrap_or_else(|| "/etc/nginx/nginx.conf".into())
    }

    /// `BINARY [-p PREFIX] [-c CONF]`: the start of `nginx -t` and of the default reload command.
    pub fn base_command(&self) -> Vec<String> {
        let mut argv = vec![self.binary.display().to_string()];
        if let Some(p) = &self.prefix {
            argv.extend(["-p".into(), p.display().to_string()]);
        }
        if let Some(c) = &self.conf {
            argv.extend(["-c".into(), c.display().to_string()]);
        }
        argv
    }

    pub fn test_command(&self) -> Vec<String> {
        let mut argv = self.base_command();
        argv.push("-t".into());
        argv
    }

    pub fn reload_command(&self) -> Vec<String> {
        self.reload.clone().unwrap_or_else(|| {
            let mut argv = self.base_command();
            argv.extend(["-s".into(), "reload".into()]);
            argv
        })
    }
}

/// `[proxy.caddy]`: one route per instance through Caddy's admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaddyConfig {
    /// The admin endpoint: `http://HOST:PORT`, `HOST:PORT` or `unix//PATH` [default: http://localhost:2019].
    pub admin: String,
    /// The server (`apps/http/servers/NAME`) the routes go into [default: the one listening on port 443,
    /// else the only one]. wayback never creates or removes servers.
    pub server: Option<String>,
    pub via: Via,
}

impl Default for CaddyConfig {
    fn default() -> Self {
        CaddyConfig {
            admin: "http://localhost:2019".into(),
            server: None,
            via: Via::Builtin,
        }
    }
}

/// What a driver created, enough to remove it again (it goes into the instance's journal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "lowercase")]
pub enum DriverHandle {
    Nginx(NginxHandle),
    Caddy(CaddyHandle),
}

impl DriverHandle {
    /// The driver that made it.
    pub fn driver(&self) -> ProxyDriver {
        match self {
            DriverHandle::Nginx(_) => ProxyDriver::Nginx,
            DriverHandle::Caddy(_) => ProxyDriver::Caddy,
        }
    }
}

/// What the nginx driver's `publish` wrote: enough to remove it, even after the config changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NginxHandle {
    pub instance: String,
    pub host: String,
    /// The vhost file, `<include_dir>/wayback-<instance>.conf`.
    pub file: PathBuf,
    /// The reload command in force when it was written.
    pub reload: Vec<String>,
    /// nginx's pid file, to wait for the reload to take effect (none: no waiting).
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
}

/// What the Caddy driver's `publish` added: the admin endpoint and the route's `@id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaddyHandle {
    pub instance: String,
    pub host: String,
    /// The admin endpoint as configured when the route was added.
    pub admin: String,
    /// `wayback-<instance>`
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams() {
        let veth: SocketAddr = "10.213.0.2:8000".parse().unwrap();
        assert_eq!(
            Via::Builtin.upstream("0.0.0.0:8080".parse().unwrap(), veth),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            Via::Builtin.upstream("[::]:8080".parse().unwrap(), veth),
            "[::1]:8080".parse().unwrap()
        );
        assert_eq!(
            Via::Direct.upstream("127.0.0.1:8080".parse().unwrap(), veth),
            veth
        );
    }

    #[test]
    fn commands() {
        let c = NginxConfig {
            prefix: Some("/p".into()),
            conf: Some("/p/n.conf".into()),
            ..NginxConfig::default()
        };
        assert_eq!(
            c.test_command(),
            ["nginx", "-p", "/p", "-c", "/p/n.conf", "-t"]
        );
        assert_eq!(
            c.reload_command(),
            ["nginx", "-p", "/p", "-c", "/p/n.conf", "-s", "reload"]
        );
        assert_eq!(
            NginxConfig::default().reload_command(),
            ["nginx", "-s", "reload"]
        );
    }
}
