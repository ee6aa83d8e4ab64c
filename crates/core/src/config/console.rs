//! `[console]`: the web console `wayback serve` runs on its own listener (docs/console.md). Loopback by
//! default; any other address needs `tls_cert` and `tls_key` (checked by [`ConsoleConfig::check`]), since
//! the login token and session cookies must not cross a network in clear.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console at all.
    pub enabled: bool,
    /// Where it listens (default 127.0.0.1:8090).
    pub listen: SocketAddr,
    /// PEM certificate chain and key: HTTPS, required for a non-loopback `listen`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// How long a session lasts after login.
    pub session_ttl: Duration,
    /// How long a token from `wayback console token` may be used to log in (once).
    pub token_ttl: Duration,
    /// Failed logins allowed per client address and minute; more get 429.
    pub login_attempts_per_minute: u32,
    /// Behind a reverse proxy that authenticates users (SSO): the header naming the user, e.g.
    /// `X-Remote-User`. Trusted only on connections from `trusted_proxies`.
    pub trusted_proxy_header: Option<String>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            tls_cert: None,
            tls_key: None,
            session_ttl: Duration(12 * 3600),
            token_ttl: Duration(15 * 60),
            login_attempts_per_minute: 5,
            trusted_proxy_header: None,
            trusted_proxies: Vec::new(),
        }
    }
}

impl ConsoleConfig {
    /// Whether the console serves HTTPS.
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }

    /// The user a trusted proxy names for a connection from `peer`, if it may name one.
    pub fn proxy_user<'a>(
        &self,
        peer: IpAddr,
        header: impl Fn(&str) -> Option<&'a str>,
    ) -> Option<&'a str> {
        let name = self.trusted_proxy_header.as_deref()?;
        if !self.trusted_proxies.iter().any(|n| n.contains(&peer)) {
            return None;
        }
        header(name).map(str::trim).filter(|u| !u.is_empty())
    }

    /// Refuse what would expose the console in clear: a non-loopback address without TLS, half a TLS pair.
    pub fn check(&self) -> Result<(), String> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("[console] needs both tls_cert and tls_key, or neither".into());
        }
        if self.trusted_proxy_header.is_some() && self.trusted_proxies.is_empty() {
            return Err(
                "[console] trusted_proxy_header needs trusted_proxies: the addresses of the proxies allowed to set it"
                    .into(),
            );
        }
        if !self.listen.ip().is_loopback() && !self.tls() {
            return Err(format!(
                "[console] listen = \"{}\" is not a loopback address: set tls_cert and tls_key (the login token \
                 and session cookies must not cross the network in clear), or listen on 127.0.0.1",
                self.listen
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_without_tls() {
        let mut c = ConsoleConfig::default();
        assert!(c.check().is_ok());
        c.listen = "0.0.0.0:8090".parse().unwrap();
        assert!(c.check().unwrap_err().contains("tls_cert"));
        c.tls_cert = Some("/c.pem".into());
        assert!(c.check().unwrap_err().contains("both"));
        c.tls_key = Some("/k.pem".into());
        assert!(c.check().is_ok());
        c.listen = "[::1]:8090".parse().unwrap();
        c.tls_cert = None;
        c.tls_key = None;
        assert!(c.check().is_ok());
        c.trusted_proxy_header = Some("X-Remote-User".into());
        assert!(c.check().unwrap_err().contains("trusted_proxies"));
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        assert!(c.check().is_ok());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = toml::from_str::<ConsoleConfig>("listn = \"127.0.0.1:1\"").unwrap_err();
        assert!(e.to_string().contains("listn"), "{e}");
    }
}
