//! `HttpGet`: GET requests through the proxy, blocking, with wayback's own HTTP client
//! (`wayback_proxy::client`).

#![allow(dead_code, unused_imports)]

use super::*;
use wayback_proxy::client::{self, Client};

/// Status, lower-cased headers, raw body.
pub type RawResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// GET with `Connection: close`; the whole answer.
pub struct HttpGet;

impl HttpGet {
    /// `GET path` from `addr` with header `Host: host`. Returns (status, body).
    pub fn get(addr: SocketAddr, host: &str, path: &str) -> std::io::Result<(u16, String)> {
        let (status, _headers, body) = Self::get_full(addr, host, path)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// As [`HttpGet::get`], retrying connection errors until `timeout`.
    pub fn get_retry(
        addr: SocketAddr,
        host: &str,
        path: &str,
        timeout: Duration,
    ) -> std::io::Result<(u16, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            match Self::get(addr, host, path) {
                Ok(r) => return Ok(r),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// (status, lower-cased headers, raw body).
    pub fn get_full(addr: SocketAddr, host: &str, path: &str) -> std::io::Result<RawResponse> {
        const CLIENT: Client = Client {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_body: 1 << 30,
        };
        let headers = [("user-agent", "wayback-tests"), ("accept", "*/*")];
        let req = client::request("GET", path, host, &headers, "")?;
        let r = client::blocking(CLIENT.tcp(&addr.to_string(), req))??;
        let headers = r
            .headers
            .iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).trim().to_string();
                (k.as_str().to_string(), v)
            })
            .collect();
        Ok((r.status.as_u16(), headers, r.body.to_vec()))
    }
}

/// curl's arguments to print only the status of one request (10 s at most).
pub const CURL_STATUS_ARGS: [&str; 7] = [
    "-s",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    "--max-time",
    "10",
];

/// `curl -s` with `args` (10 s at most); the status it got, 0 when none.
pub fn curl_status(args: &[&str]) -> u16 {
    let out = std::process::Command::new("curl")
        .args(CURL_STATUS_ARGS)
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}
