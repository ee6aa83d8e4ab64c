//! `HttpGet`: a tiny HTTP/1.1 client over `TcpStream` for requests through the proxy.

#![allow(dead_code, unused_imports)]

use super::*;

/// Status, lower-cased headers, raw body.
pub type RawResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// A minimal HTTP/1.1 client (GET, `Connection: close`, Content-Length / chunked / until-close bodies).
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
        use std::io::{Error, ErrorKind};
        let bad = |m: &str| Error::new(ErrorKind::InvalidData, m.to_string());
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wayback-tests\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )?;
        s.flush()?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line)?;
        // "HTTP/1.1 200 OK"
        let mut parts = line.split_whitespace();
        let version = parts.next().ok_or_else(|| bad("empty response"))?;
        if !version.starts_with("HTTP/1.") {
            return Err(bad(&format!("not an HTTP/1 response: {line:?}")));
        }
        let status: u16 = parts
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad(&format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Err(bad("connection closed in headers"));
            }
            let h = h.trim_end_matches(['\r', '\n']);
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            loop {
                let mut size_line = String::new();
                if r.read_line(&mut size_line)? == 0 {
                    return Err(bad("connection closed in chunked body"));
                }
                let size_hex = size_line.trim().split(';').next().unwrap_or("");
                let size =
                    usize::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
                if size == 0 {
                    // Trailers, then the final empty line.
                    loop {
                        let mut t = String::new();
                        if r.read_line(&mut t)? == 0 || t.trim().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let mut chunk = vec![0u8; size];
                r.read_exact(&mut chunk)?;
                body.extend_from_slice(&chunk);
                let mut crlf = [0u8; 2];
                r.read_exact(&mut crlf)?;
            }
        } else if let Some(len) = header("content-length") {
            let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
            body.resize(len, 0);
            r.read_exact(&mut body)?;
        } else {
            r.read_to_end(&mut body)?;
        }
        Ok((status, headers, body))
    }
}
