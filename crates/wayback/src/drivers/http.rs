//! A tiny blocking HTTP/1.1 client for Caddy's admin API (loopback TCP or a unix socket): one request per
//! connection (`Connection: close`); response bodies by `Content-Length`, chunked, or up to EOF. std only,
//! so the drivers need no HTTP client crate.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Larger answers are cut (a Caddy config is far smaller).
const MAX_BODY: u64 = 64 << 20;

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

    fn connect(&self) -> io::Result<Box<dyn ReadWrite>> {
        match self {
            Endpoint::Unix(p) => {
                let s = UnixStream::connect(p)?;
                s.set_read_timeout(Some(TIMEOUT))?;
                s.set_write_timeout(Some(TIMEOUT))?;
                Ok(Box::new(s))
            }
            Endpoint::Tcp(authority) => {
                let host = authority.trim_start_matches('[');
                let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
                let host = host.trim_end_matches(']');
                let port = authority.rsplit_once(':').map_or("80", |(_, p)| p);
                let port: u16 = port.parse().map_err(|_| io::ErrorKind::InvalidInput)?;
                let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
                for addr in (host, port).to_socket_addrs()? {
                    match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                        Ok(s) => {
                            s.set_read_timeout(Some(TIMEOUT))?;
                            s.set_write_timeout(Some(TIMEOUT))?;
                            return Ok(Box::new(s));
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
        }
    }

    /// Caddy accepts only its listen address as Host, and an empty Host on a unix socket.
    fn host_header(&self) -> &str {
        match self {
            Endpoint::Tcp(a) => a,
            Endpoint::Unix(_) => "",
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Send one request with an optional JSON body and read the whole answer.
pub fn request(
    ep: &Endpoint,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> io::Result<Response> {
    let mut stream = ep.connect()?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n",
        ep.host_header()
    );
    let body = json.unwrap_or("");
    if json.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()?;
    read_response(BufReader::new(stream), method == "HEAD")
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn read_response(mut r: impl BufRead, head_only: bool) -> io::Result<Response> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| line.starts_with("HTTP/1."))
        .ok_or_else(|| bad(format!("not an HTTP response: {:?}", line.trim_end())))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("connection closed in the response headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| bad("bad Content-Length"))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
    }
    let mut body = Vec::new();
    if head_only || status == 204 || status == 304 {
    } else if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            let size = u64::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                break; // trailers (Caddy sends an ETag trailer) are not needed
            }
            if body.len() as u64 + size > MAX_BODY {
                return Err(bad("response too large"));
            }
            (&mut r).take(size).read_to_end(&mut body)?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = length {
        (&mut r).take(n.min(MAX_BODY)).read_to_end(&mut body)?;
    } else {
        r.take(MAX_BODY).read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
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

    #[test]
    fn responses() {
        let r = read_response(
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nEtag: x\r\n\r\n"[..],
            false,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "{\"a\":1}"));
        let r = read_response(
            &b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}extra"[..],
            false,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "{}"));
        let r = read_response(&b"HTTP/1.1 200 OK\r\n\r\nnull"[..], false).unwrap();
        assert_eq!(r.body, "null");
        assert!(read_response(&b"SSH-2.0\r\n"[..], false).is_err());
    }
}
