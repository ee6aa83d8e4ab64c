//! Fetch the app's front page the way a browser would get it through wayback's proxy, but from inside the
//! instance: a connection made in its network namespace to 127.0.0.1:PORT (never through the proxy, never
//! off the host), the request headers the proxy would send (`Host`, `X-Forwarded-*`, and the masquerade's
//! rewriting when there is one), hyper's HTTP/1.1 client. Redirects that stay on the host asked for are
//! followed (at most [`MAX_REDIRECTS`], carrying cookies); the first that leaves it ends the chain.
//! Bodies are read only for HTML pages, at most [`MAX_HTML`](super::clues::MAX_HTML) bytes.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use wayback_masquerade::Masquerade;
use wayback_net::NetnsDialer;

use super::clues::{Origin, MAX_HTML};
use crate::serve::loopback;

/// Redirects followed inside the instance.
pub const MAX_REDIRECTS: usize = 5;
/// For one request, from connecting to the last byte read.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One response of the chain.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The request target, `/` first.
    pub path: String,
    pub status: u16,
    pub headers: HeaderMap,
    /// The body of an HTML response (bounded); empty for anything else.
    pub html: Vec<u8>,
}

/// Who is asking: the `Host` a browser sends for the instance, its scheme, and the masquerade the proxy
/// applies (then the app sees the original host instead).
pub struct Asker<'a> {
    pub public: &'a Origin,
    pub masquerade: Option<&'a Masquerade>,
}

impl Asker<'_> {
    /// The origin the app is asked by (`Host` after the proxy's rewriting): redirects to it stay inside.
    pub fn app_origin(&self) -> Origin {
        match self.masquerade {
            Some(m) => {
                let https = m.original_scheme() == wayback_masquerade::Scheme::Https;
                Origin::of_authority(m.original_host(), https)
                    .unwrap_or_else(|| self.public.clone())
            }
            None => self.public.clone(),
        }
    }

    fn headers(&self, cookies: &[String]) -> Result<HeaderMap> {
        let mut h = HeaderMap::new();
        let host = HeaderValue::from_str(&self.public.authority())?;
        h.insert(header::HOST, host.clone());
        h.insert("x-forwarded-host", host);
        let proto = if self.public.https { "https" } else { "http" };
        h.insert("x-forwarded-proto", HeaderValue::from_static(proto));
        h.insert("x-forwarded-for", HeaderValue::from_static("127.0.0.1"));
        h.insert(
            header::USER_AGENT,
            HeaderValue::from_static("Mozilla/5.0 (X11; Linux x86_64) wayback-host-check"),
        );
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
        );
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        if !cookies.is_empty() {
            h.insert(header::COOKIE, HeaderValue::from_str(&cookies.join("; "))?);
        }
        if let Some(m) = self.masquerade {
            m.rewrite_request_headers(&mut h);
            // The proxy narrows Accept-Encoding to gzip for body rewriting; this check reads plain bodies.
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        Ok(h)
    }
}

/// GET `/` and the redirects that stay inside, in order.
pub async fn front_page(
    dialer: &NetnsDialer,
    port: u16,
    asker: &Asker<'_>,
) -> Result<Vec<Fetched>> {
    let inside = asker.app_origin();
    let mut chain: Vec<Fetched> = Vec::new();
    let mut cookies: Vec<String> = Vec::new();
    let mut path = "/".to_string();
    loop {
        let got = get_settled(dialer, port, &path, &asker.headers(&cookies)?).await?;
        remember_cookies(&mut cookies, &got.headers);
        let next = next_path(&got, &path, &inside);
        chain.push(got);
        match next {
            Some(p) if chain.len() <= MAX_REDIRECTS && !chain.iter().any(|c| c.path == p) => {
                path = p;
            }
            _ => return Ok(chain),
        }
    }
}

/// GET `path`, again after a short pause when the connection is refused or reset before an answer: a
/// port that takes connections is not always a server that answers yet (a TCP readiness check can even
/// be passed by `nginx -t`, which binds the port for a moment before the real server does).
async fn get_settled(
    dialer: &NetnsDialer,
    port: u16,
    path: &str,
    headers: &HeaderMap,
) -> Result<Fetched> {
    let mut tries = 0;
    loop {
        let attempt =
            tokio::time::timeout(REQUEST_TIMEOUT, get(dialer, port, path, headers.clone()))
                .await
                .map_err(|_| {
                    anyhow!(
                        "GET {path}: no answer within {}s",
                        REQUEST_TIMEOUT.as_secs()
                    )
                })?;
        match attempt {
            Err(e) if tries < SETTLE_TRIES && is_transport(&e) => {
                tries += 1;
                tokio::time::sleep(SETTLE_PAUSE).await;
            }
            other => return other,
        }
    }
}

/// Attempts after a refused or reset connection, and the pause between them.
const SETTLE_TRIES: usize = 20;
const SETTLE_PAUSE: Duration = Duration::from_millis(250);

/// A connection refused, reset or closed before a response: not an answer of the app.
fn is_transport(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_incomplete_message() || h.is_closed() || h.is_canceled())
            || c.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                )
            })
    })
}

/// Where a redirect goes when it stays on `inside` (same host and port; the scheme may change).
pub fn next_path(got: &Fetched, path: &str, inside: &Origin) -> Option<String> {
    if !(300..400).contains(&got.status) {
        return None;
    }
    let loc = got.headers.get(header::LOCATION)?.to_str().ok()?.trim();
    let target = match Origin::of_url(loc, inside.https) {
        Some(o) if o.host == inside.host && o.effective_port() == inside.effective_port() => {
            let rest = &loc[loc.find("//")? + 2..];
            rest.find(['/', '?']).map_or("/".to_string(), |i| {
                let t = &rest[i..];
                if t.starts_with('?') {
                    format!("/{t}")
                } else {
                    t.to_string()
                }
            })
        }
        Some(_) => return None,
        None if loc.starts_with('/') => loc.to_string(),
        None if loc.contains(':') => return None,
        None => {
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            format!("{}{loc}", if dir.is_empty() { "/" } else { dir })
        }
    };
    Some(target.split('#').next().unwrap_or("/").to_string())
}

fn remember_cookies(jar: &mut Vec<String>, headers: &HeaderMap) {
    for v in headers.get_all(header::SET_COOKIE) {
        let Some(pair) = v.to_str().ok().and_then(|s| s.split(';').next()) else {
            continue;
        };
        let name = pair.split('=').next().unwrap_or("").trim().to_string();
        if name.is_empty() {
            continue;
        }
        jar.retain(|c| c.split('=').next() != Some(name.as_str()));
        jar.push(pair.trim().to_string());
    }
}

async fn get(dialer: &NetnsDialer, port: u16, path: &str, headers: HeaderMap) -> Result<Fetched> {
    let stream = dialer
        .connect(loopback(port))
        .await
        .with_context(|| format!("cannot connect to port {port} inside the instance"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);
    let mut req = Request::get(path).body(Empty::<Bytes>::new())?;
    *req.headers_mut() = headers;
    let resp = sender
        .send_request(req)
        .await
        .with_context(|| format!("GET {path}"))?;
    let (head, mut body) = resp.into_parts();
    let mut html = Vec::new();
    if is_plain_html(&head.headers) {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                let room = MAX_HTML - html.len();
                html.extend_from_slice(&data[..data.len().min(room)]);
                if html.len() >= MAX_HTML {
                    break;
                }
            }
        }
    }
    conn.abort();
    Ok(Fetched {
        path: path.to_string(),
        status: head.status.as_u16(),
        headers: head.headers,
        html,
    })
}

/// `text/html` or XHTML, not compressed.
fn is_plain_html(h: &HeaderMap) -> bool {
    let ct = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let enc = h
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    (ct.starts_with("text/html") || ct.starts_with("application/xhtml+xml"))
        && enc.eq_ignore_ascii_case("identity")
}
