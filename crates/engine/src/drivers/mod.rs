//! Host-proxy drivers: publish one instance hostname on the reverse proxy the host already runs (nginx or
//! Caddy) and remove it again, touching nothing wayback did not write.
//!
//! - [`nginx`]: one vhost file per instance in nginx's include directory, checked with `nginx -t`, then a
//!   reload; a file is deleted only if its first line is wayback's header for that instance.
//! - [`caddy`]: one route per instance through Caddy's admin API, tagged `"@id": "wayback-<instance>"`,
//!   removed by that id.
//!
//! Each driver sends the hostname either to wayback's built-in proxy (`via = "builtin"`, the default: the
//! access gate, masquerade and idle detection keep working) or straight to the instance's veth address
//! (`via = "direct"`); the caller computes [`DriverRoute::upstream`] with [`Via::upstream`].
//!
//! Use: [`Driver::host_in_use`] in planning (is the hostname already on the host's proxy? reads only),
//! [`Driver::select`] from the configured kind, [`Driver::handle`] to journal what will be created,
//! [`Driver::publish`]; later [`unpublish`] with the journaled [`DriverHandle`] (already gone is success).
//! All calls block (they run nginx or talk HTTP to Caddy): call them from `spawn_blocking` in async code.

pub mod caddy;
pub mod config;
mod http;
pub mod nginx;
mod nginx_conf;

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use wayback_core::names::Hostname;

pub use self::caddy::CaddyError;
pub use self::config::{CaddyConfig, NginxConfig, Via};
pub use self::nginx::NginxError;
/// Certificate chain + key (PEM) the host proxy serves for an instance hostname.
pub use wayback_core::config::CertificateFiles as TlsFiles;
pub use wayback_core::drivers::{CaddyHandle, DriverHandle, NginxHandle, ProxyDriver};

/// One instance hostname to publish on the host's proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverRoute {
    /// The instance name (`[a-z0-9-]`, as `wayback_core::names::InstanceName`): names the file / route id.
    pub instance: String,
    /// The public hostname (lowercase, as `wayback_core::names::validate_hostname` accepts).
    pub host: String,
    /// Where the host proxy sends requests: the built-in proxy's listen address or the veth address:port.
    pub upstream: SocketAddr,
    /// HTTPS on the host proxy with these files (nginx). Caddy ignores it: its automatic HTTPS (or the
    /// admin's own TLS policies) decides.
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Nginx(#[from] NginxError),
    #[error(transparent)]
    Caddy(#[from] CaddyError),
}

/// A configured host-proxy driver.
#[derive(Debug, Clone, Copy)]
pub enum Driver<'a> {
    Nginx(&'a NginxConfig),
    Caddy(&'a CaddyConfig),
}

impl<'a> Driver<'a> {
    /// The driver for `kind`; `None` for the built-in proxy (nothing to do beyond its route file).
    pub fn select(
        kind: ProxyDriver,
        nginx: &'a NginxConfig,
        caddy: &'a CaddyConfig,
    ) -> Option<Driver<'a>> {
        match kind {
            ProxyDriver::Builtin => None,
            ProxyDriver::Nginx => Some(Driver::Nginx(nginx)),
            ProxyDriver::Caddy => Some(Driver::Caddy(caddy)),
        }
    }

    /// Where this driver's proxy should send requests (see [`Via`]).
    pub fn via(&self) -> Via {
        match self {
            Driver::Nginx(c) => c.via,
            Driver::Caddy(c) => c.via,
        }
    }

    /// The handle [`Driver::publish`] will return for `route`, without creating anything: journal it first,
    /// so a crash during publish leaves nothing `gc` cannot remove. Fails on invalid names and, for nginx,
    /// when no include directory can be determined.
    pub fn handle(&self, route: &DriverRoute) -> Result<DriverHandle, DriverError> {
        Ok(match self {
            Driver::Nginx(c) => DriverHandle::Nginx(nginx::handle(c, route)?),
            Driver::Caddy(c) => DriverHandle::Caddy(caddy::handle(c, route)?),
        })
    }

    /// Whether `host` is already published on the host's proxy — by a wayback vhost file or any other file
    /// in nginx's include directory with that `server_name`, or a Caddy route matching that exact host —
    /// and by whom. Reads only (files / one GET to Caddy's admin API); call it in planning, so a taken
    /// hostname is bad input before anything is created. Hostnames compare in canonical form.
    pub fn host_in_use(&self, host: &Hostname) -> Result<Option<HostInUse>, DriverError> {
        Ok(match self {
            Driver::Nginx(c) => nginx::host_in_use(c, host)?,
            Driver::Caddy(c) => caddy::host_in_use(c, host)?,
        })
    }

    /// Publish `route` on the host's proxy. On failure the host's proxy is left as it was.
    pub fn publish(&self, route: &DriverRoute) -> Result<DriverHandle, DriverError> {
        Ok(match self {
            Driver::Nginx(c) => DriverHandle::Nginx(nginx::publish(c, route)?),
            Driver::Caddy(c) => DriverHandle::Caddy(caddy::publish(c, route)?),
        })
    }
}

/// Who already publishes a hostname on the host's proxy ([`Driver::host_in_use`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInUse {
    /// The wayback instance that published it, when it is wayback's (a vhost file with wayback's header,
    /// a Caddy route `wayback-<instance>`).
    pub instance: Option<String>,
    /// Where: `nginx vhost /etc/nginx/conf.d/x.conf`, `Caddy route wayback-x on server srv0`.
    pub place: String,
}

impl fmt::Display for HostInUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.instance {
            Some(i) => write!(f, "{} (wayback instance {i})", self.place),
            None => f.write_str(&self.place),
        }
    }
}

/// Remove what [`Driver::publish`] created. Success when it is already gone.
pub fn unpublish(handle: &DriverHandle) -> Result<(), DriverError> {
    match handle {
        DriverHandle::Nginx(h) => nginx::unpublish(h)?,
        DriverHandle::Caddy(h) => caddy::unpublish(h)?,
    }
    Ok(())
}

/// The instance name, checked: it becomes part of a file name, an nginx variable and a Caddy id.
fn check_instance(instance: &str) -> Result<(), String> {
    wayback_core::names::InstanceName::new(instance)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The hostname, checked: it goes verbatim into nginx's config and Caddy's JSON.
fn check_host(host: &str) -> Result<(), String> {
    match wayback_core::names::validate_hostname(host) {
        Ok(h) if h == host => Ok(()),
        Ok(h) => Err(format!("hostname {host:?} must be written as {h:?}")),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_serialize_with_their_driver() {
        let h = DriverHandle::Caddy(CaddyHandle {
            instance: "a".into(),
            host: "a.example.org".into(),
            admin: "http://localhost:2019".into(),
            id: "wayback-a".into(),
        });
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.starts_with(r#"{"driver":"caddy","#), "{json}");
        assert_eq!(serde_json::from_str::<DriverHandle>(&json).unwrap(), h);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_instance("old-www").is_ok());
        assert!(check_instance("a;b").is_err());
        assert!(check_host("old.example.org").is_ok());
        assert!(check_host("a;b.example.org").is_err());
        assert!(check_host("Old.example.org").is_err());
    }
}
