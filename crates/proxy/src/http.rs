//! The HTTP reverse proxy's per-request handler (route by Host, check the backend's gate, forward through the
//! backend's pooled client, map failures to generic 4xx/5xx), and the pure header logic (host normalization,
//! hop-by-hop stripping, `X-Forwarded-*`), testable without sockets. The accept loops are in `serve.rs`.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};

use ipnet::IpNet;

mod host;

pub(crate) use host::{normalize_host, request_host};

use crate::limits::ConnectionLimit;
use crate::pool::BackendBody;
use crate::route::Backend;
use crate::serve::ConnCtx;
use crate::ErrorChain;

/// Body of every response the proxy returns: the backend's streamed body, or a small fixed one of our own.
pub type ProxyBody = Either<BackendBody, Full<Bytes>>;

/// A backend must produce a response head within this time, else the client gets 502.
const RESPONSE_HEAD_TIMEOUT: Duration = Duration::from_secs(60);

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Headers that describe one hop and are never forwarded (RFC 9110 §7.6.1, plus legacy ones).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Settings of the HTTP(S) servers. Clones share one count of open connections (see [`ConnectionLimit`]):
/// give every server of a process a clone of the same config.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Value of `X-Forwarded-Proto` for plain HTTP: `"http"` (HTTPS servers always send `"https"`).
    pub forwarded_proto: &'static str,
    /// Peers whose `X-Forwarded-For` chain is extended (not replaced) and whose `X-Forwarded-Proto` and
    /// `X-Forwarded-Host` are passed on: your own front proxies. Their connections count only against the
    /// global connection cap, not the per-client one.
    pub trusted_proxies: Vec<IpNet>,
    /// A new connection's first request head must be complete within this time; a request that starts
    /// late on a kept-alive connection gets this long for its head, too.
    pub header_timeout: Duration,
    /// A kept-alive connection is closed when no new request has arrived this long after the last response.
    pub idle_timeout: Duration,
    /// The cap on open client connections (global and per client address).
    pub connections: ConnectionLimit,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            forwarded_proto: "http",
            trusted_proxies: Vec::new(),
            header_timeout: crate::limits::DEFAULT_HEADER_TIMEOUT,
            idle_timeout: crate::limits::DEFAULT_IDLE_TIMEOUT,
            connections: ConnectionLimit::default(),
        }
    }
}

impl ProxyConfig {
    /// Is `peer` one of the trusted proxies?
    pub(crate) fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted_proxies.iter().any(|n| n.contains(&peer))
    }
}

/// What can go wrong setting up a proxy server.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// `ProxyConfig::forwarded_proto` is not a URI scheme.
    #[error("invalid forwarded_proto {0:?}: expected a URI scheme such as \"http\" or \"https\"")]
    InvalidForwardedProto(&'static str),
}

impl From<ProxyError> for io::Error {
    fn from(e: ProxyError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

/// Handle one request; never fails (errors become generic responses).
pub(crate) async fn handle(ctx: &ConnCtx, mut req: Request<Incoming>) -> Response<ProxyBody> {
    if req.method() == Method::CONNECT {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let host_value = match request_host(&req) {
        Ok(v) => v,
        Err(why) => return plain(StatusCode::BAD_REQUEST, why),
    };
    let Some(host) = host_value.to_str().ok().and_then(normalize_host) else {
        return plain(StatusCode::BAD_REQUEST, "bad request: invalid Host\n");
    };
    let Some(backend) = ctx.shared.resolve(&host) else {
        return plain(StatusCode::NOT_FOUND, "no such instance\n");
    };
    if let Some(gate) = backend.gate() {
        let (name, peer, secure) = (backend.name(), ctx.peer_ip, ctx.shared.secure);
        if let Some(refusal) = gate.check(name, &host, &mut req, peer, secure).await {
            return refusal;
        }
    }
    backend.touch();

    let upgrade =
        req.version() == Version::HTTP_11 && crate::upgrade::is_upgrade_request(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let Some(uri) = backend_uri(req.uri()) else {
        return plain(StatusCode::BAD_REQUEST, "bad request: invalid target\n");
    };
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    prepare_request_headers(
        req.headers_mut(),
        host_value,
        &Forwarding {
            client_ip: &ctx.client_ip,
            proto: &ctx.shared.proto,
            trusted: ctx.trusted,
        },
        upgrade,
    );
    let masquerade = backend.masquerade();
    let head = req.method() == hyper::Method::HEAD;
    if let Some(m) = masquerade {
        m.rewrite_request_headers(req.headers_mut());
    }

    let mut resp = match tokio::time::timeout(
        RESPONSE_HEAD_TIMEOUT,
        backend.pool().request(&**backend.dial(), req),
    )
    .await
    {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => return bad_gateway(&backend, &e),
        Err(_) => {
            let e = io::Error::new(io::ErrorKind::TimedOut, "no response head in time");
            return bad_gateway(&backend, &e);
        }
    };

    if let Some(m) = masquerade {
        m.rewrite_response_headers(resp.headers_mut());
    }
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            let e = io::Error::other("101 Switching Protocols without an upgrade request");
            return bad_gateway(&backend, &e);
        };
        return crate::upgrade::splice(&backend, client_upgrade, resp, ctx.drain.clone());
    }
    *resp.version_mut() = Version::HTTP_11;
    let announces_trailers = resp.headers().contains_key(header::TRAILER);
    strip_hop_by_hop(resp.headers_mut(), false);
    if let Some(m) = masquerade {
        if !head
            && !announces_trailers
            && m.should_rewrite_body(resp.status().as_u16(), resp.headers())
        {
            let rewriter = m.body_rewriter(resp.headers());
            m.prepare_rewritten_response_headers(resp.headers_mut());
            resp.body_mut().rewrite_with(rewriter);
        }
    }
    resp.map(Either::Left)
}

fn bad_gateway(backend: &Backend, err: &(dyn std::error::Error + 'static)) -> Response<ProxyBody> {
    tracing::warn!(backend = backend.name(), error = %ErrorChain(err), "upstream request failed");
    plain(StatusCode::BAD_GATEWAY, "bad gateway\n")
}

/// A small fixed plain-text response. The body must never name an instance or an internal address.
pub(crate) fn plain(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Validate `forwarded_proto` as a URI scheme and turn it into a header value.
pub(crate) fn forwarded_proto_value(proto: &'static str) -> Result<HeaderValue, ProxyError> {
    let mut bytes = proto.bytes();
    let valid = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if valid {
        Ok(HeaderValue::from_static(proto))
    } else {
        Err(ProxyError::InvalidForwardedProto(proto))
    }
}

/// The IP as a header value (e.g. `127.0.0.1`, `::1`); IPv4-mapped IPv6 addresses are shown as IPv4.
pub(crate) fn ip_header_value(ip: IpAddr) -> HeaderValue {
    let ip = ip.to_canonical();
    HeaderValue::from_maybe_shared(Bytes::from(ip.to_string()))
        .expect("an IP address is a valid header value")
}

/// The comma-separated tokens of all `Connection` header lines.
pub(crate) fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Remove hop-by-hop headers and any header named in `Connection`. With `keep_upgrade`, `Upgrade` is kept and
/// `Connection` is reduced to `upgrade`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names (a message usually has at most `Connection`), then removals of only what is
    // there, instead of a hash lookup per hop-by-hop name.
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present & 1 != 0 {
        // HOP_BY_HOP[0] is `Connection`.
        remove_connection_named(headers);
    }
    for (i, name) in HOP_BY_HOP.into_iter().enumerate() {
        if present & (1 << i) != 0 && !(keep_upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Remove the headers that `Connection` names (beyond the usual close/keep-alive/upgrade).
fn remove_connection_named(headers: &mut HeaderMap) {
    // Allocates only if `Connection` names headers beyond the usual close/keep-alive/upgrade.
    let mut named: Vec<HeaderName> = Vec::new();
    for token in connection_tokens(headers) {
        if ["close", "keep-alive", "upgrade"]
            .iter()
            .any(|k| token.eq_ignore_ascii_case(k))
        {
            continue;
        }
        if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
            named.push(name);
        }
    }
    for name in named {
        headers.remove(name);
    }
}

/// Who sent a request, for the `X-Forwarded-*` headers.
pub(crate) struct Forwarding<'a> {
    /// The TCP peer's address.
    pub(crate) client_ip: &'a HeaderValue,
    /// `http` or `https`: how the request reached this proxy.
    pub(crate) proto: &'a HeaderValue,
    /// The peer is a trusted proxy: its `X-Forwarded-*` headers are kept and extended.
    pub(crate) trusted: bool,
}

/// Turn a client request's headers into the backend request's: strip hop-by-hop headers, drop `Forwarded`
/// and `X-Real-IP` (which this proxy does not vouch for), set `Host` to what the client asked for, and set
/// `X-Forwarded-For` to the peer address (or append it, behind a trusted proxy) and
/// `X-Forwarded-Host`/`-Proto` (keeping a trusted proxy's).
pub(crate) fn prepare_request_headers(
    headers: &mut HeaderMap,
    host: HeaderValue,
    fwd: &Forwarding<'_>,
    upgrade: bool,
) {
    strip_hop_by_hop(headers, upgrade);
    if headers
        .keys()
        .any(|n| n == header::FORWARDED || n == X_REAL_IP)
    {
        headers.remove(header::FORWARDED);
        headers.remove(X_REAL_IP);
    }
    headers.reserve(4);
    if fwd.trusted {
        append_forwarded_for(headers, fwd.client_ip);
    } else {
        headers.insert(X_FORWARDED_FOR, fwd.client_ip.clone());
    }
    if !(fwd.trusted && headers.contains_key(X_FORWARDED_HOST)) {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
    if !(fwd.trusted && headers.contains_key(X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, fwd.proto.clone());
    }
    headers.insert(header::HOST, host);
}

/// Append `client_ip` to `X-Forwarded-For`, folding multiple existing header lines into one.
pub(crate) fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &HeaderValue) {
    let mut existing = headers.get_all(X_FORWARDED_FOR).iter().peekable();
    if existing.peek().is_none() {
        headers.insert(X_FORWARDED_FOR, client_ip.clone());
        return;
    }
    let mut buf = BytesMut::with_capacity(128);
    for v in existing {
        buf.put_slice(v.as_bytes());
        buf.put_slice(b", ");
    }
    buf.put_slice(client_ip.as_bytes());
    let value = HeaderValue::from_maybe_shared(buf.freeze()).unwrap_or_else(|_| client_ip.clone());
    headers.insert(X_FORWARDED_FOR, value);
}

/// The request target sent to the backend: the request's path and query in origin form (`/p?q`), whatever
/// form the client used (absolute-form, h2 `:authority`).
pub(crate) fn backend_uri(uri: &Uri) -> Option<Uri> {
    let mut parts = hyper::http::uri::Parts::default();
    parts.path_and_query = Some(
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| hyper::http::uri::PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests;
