//! Caddy's admin API over HTTP/1.1 (loopback TCP or a unix socket): where it listens ([`Endpoint`]) and one
//! blocking request with an optional JSON body ([`request`]), through wayback's one HTTP client
//! (`wayback_proxy::client`, hyper).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use wayback_proxy::client::{self, Client};

/// Timeouts and the size limit (a Caddy config is far smaller).
const CLIENT: Client = Client {
    connect_timeout: Duration::from_secs(5),
    timeout: Duration::from_secs(30),
    max_body: 64 << 20,
};

/// Where an admin API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `HOST:PORT` (also the `Host` header, which Caddy checks against its listen address).
    Tcp(String),
    Unix(PathBuf),
}

impl Endpoint {
    /// `http://HOST:PORT[/]`, `HOST:PORT` or `unix//PATH`.
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        if let Some(path) = s.strip_prefix("unix/") {
            if path.starts_with('/') {
                return Ok(Endpoint::Unix(path.into()));
            }
            return Err("a unix socket is written unix//ABSOLUTE/PATH".into());
        }
        let rest = s.strip_prefix("http://").unwrap_or(s);
        let authority = rest.trim_end_matches('/');
        let port_ok = authority
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if authority.contains(['/', '@', ' ']) || !port_ok {
            return Err("write http://HOST:PORT (e.g. http://localhost:2019) or unix//PATH".into());
        }
        Ok(Endpoint::Tcp(authority.to_string()))
    }

    /// Caddy accepts only its listen address as Host, and an empty Host on a unix socket.
    fn host_header(&self) -> &str {
        match self {
            Endpoint::Tcp(a) => a,
            Endpoint::Unix(_) => "",
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Send one request with an optional JSON body and read the whole answer. Blocks (call it from
/// `spawn_blocking` in async code).
pub fn request(
    ep: &Endpoint,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> io::Result<Response> {
    let mut headers = vec![("accept", "application/json")];
    if json.is_some() {
        headers.push(("content-type", "application/json"));
    }
    let body = json.unwrap_or("").to_owned();
    let req = client::request(method, path, ep.host_header(), &headers, body)?;
    let r = client::blocking(async {
        match ep {
            Endpoint::Tcp(authority) => CLIENT.tcp(authority, req).await,
            Endpoint::Unix(path) => CLIENT.unix(path, req).await,
        }
    })??;
    Ok(Response {
        status: r.status.as_u16(),
        body: r.text(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let tcp = |s: &str| Endpoint::Tcp(s.into());
        assert_eq!(
            Endpoint::parse("http://localhost:2019/"),
            Ok(tcp("localhost:2019"))
        );
        assert_eq!(Endpoint::parse("127.0.0.1:2019"), Ok(tcp("127.0.0.1:2019")));
        assert_eq!(Endpoint::parse("http://[::1]:2019"), Ok(tcp("[::1]:2019")));
        assert_eq!(
            Endpoint::parse("unix//run/caddy/admin.sock"),
            Ok(Endpoint::Unix("/run/caddy/admin.sock".into()))
        );
        for bad in [
            "https://localhost:2019",
            "localhost",
            "unix/rel",
            "http://a:b",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
