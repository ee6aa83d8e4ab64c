//! The HTTP servers: accept loops with graceful shutdown for plain HTTP ([`serve_http`]), TLS
//! ([`serve_https`]: rustls handshake, on-demand ACME before it, then the same proxy handler with
//! `X-Forwarded-Proto: https`) and the plain-HTTP side of a TLS setup ([`serve_https_redirect`]: 308 to
//! HTTPS, except ACME http-01 challenges). One connection is served by hyper's auto (HTTP/1.1 + h2) builder.
//!
//! Every accepted connection first takes a slot in the connection limit (`limits.rs`) or is refused at once;
//! its timeouts are watched by `conn.rs`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use crate::acme::acme_eligible;
use crate::conn::{Activity, Timeouts, Watched};
use crate::http::{
    forwarded_proto_value, handle, ip_header_value, normalize_host, plain, request_host, ProxyBody,
    ProxyConfig,
};
use crate::limits::{refuse_http, ConnGuard};
use crate::route::{Backend, Resolve, RouteCache};
use crate::tcp::{accept_or_shutdown, Drain, DrainToken, SHUTDOWN_GRACE};
use crate::tls::Tls;
use crate::ErrorChain;

/// A client must complete the TLS handshake (ACME issuance aside) within this time, or within the header
/// timeout if that is shorter.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Path prefix of ACME http-01 challenges.
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// What a server does with requests.
pub(crate) enum Mode {
    /// Route by Host to the backends (through their gates).
    Proxy,
    /// Redirect to HTTPS on this port; answer ACME http-01 challenges.
    Redirect { https_port: u16, tls: Arc<Tls> },
}

/// State shared by all connections of one server (with per-core workers: of one worker).
pub(crate) struct Shared {
    pub(crate) resolver: Arc<dyn Resolve>,
    /// This server's cache of the resolver's answers.
    routes: RouteCache,
    pub(crate) proto: HeaderValue,
    /// Connections arrive over TLS (session cookies get `Secure`).
    pub(crate) secure: bool,
    mode: Mode,
    cfg: ProxyConfig,
    timeouts: Timeouts,
}

impl Shared {
    fn new(resolver: Arc<dyn Resolve>, proto: HeaderValue, mode: Mode, cfg: ProxyConfig) -> Self {
        let timeouts = Timeouts {
            header: cfg.header_timeout,
            idle: cfg.idle_timeout,
        };
        Shared {
            resolver,
            routes: RouteCache::default(),
            proto,
            secure: false,
            mode,
            cfg,
            timeouts,
        }
    }
}

impl Shared {
    /// The backend for a normalized host, through this server's route cache.
    pub(crate) fn resolve(&self, host: &str) -> Option<Arc<Backend>> {
        self.routes.resolve(&*self.resolver, host)
    }
}

/// State of one client connection, shared by its requests.
pub(crate) struct ConnCtx {
    pub(crate) shared: Arc<Shared>,
    /// The client's IP, preformatted for `X-Forwarded-For`.
    pub(crate) client_ip: HeaderValue,
    /// The client's IP, for the gate's `allow` networks.
    pub(crate) peer_ip: IpAddr,
    /// The peer is one of the trusted proxies.
    pub(crate) trusted: bool,
    /// Lets upgraded tunnels spawned by this connection take part in graceful shutdown.
    pub(crate) drain: DrainToken,
}

/// Serve HTTP/1.1 and h2c on `listener` until `shutdown` resolves, then stop accepting and let in-flight
/// connections finish (bounded by a few seconds) before returning.
///
/// A connection over `cfg.connections`' cap gets a `503` (with `Retry-After`) without being read, and is
/// closed; connections that wait too long for a request are closed (`header_timeout`, `idle_timeout`).
pub async fn serve_http(
    listener: TcpListener,
    resolver: Arc<dyn Resolve>,
    cfg: ProxyConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let proto = forwarded_proto_value(cfg.forwarded_proto)?;
    serve_plain(
        listener,
        Shared::new(resolver, proto, Mode::Proxy, cfg),
        shutdown,
    )
    .await
}

/// The plain-HTTP listener of a TLS setup: answers ACME http-01 challenges (when `tls` uses ACME), and
/// redirects every other request for a known host to `https://HOST[:https_port]/same/path?query` with 308.
/// Unknown hosts get 404. Runs until `shutdown` resolves, with the limits of `cfg` (share its connection
/// count with [`serve_https`]'s by giving both clones of one config).
pub async fn serve_https_redirect(
    listener: TcpListener,
    resolver: Arc<dyn Resolve>,
    tls: Arc<Tls>,
    https_port: u16,
    cfg: ProxyConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let proto = HeaderValue::from_static("http");
    let mode = Mode::Redirect { https_port, tls };
    serve_plain(listener, Shared::new(resolver, proto, mode, cfg), shutdown).await
}

async fn serve_plain(
    listener: TcpListener,
    shared: Shared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let shared = Arc::new(shared);
    let builder = builder();
    let drain = Drain::new();
    let mut shutdown = std::pin::pin!(shutdown);
    while let Some((stream, peer)) = accept_or_shutdown(&listener, &mut shutdown).await {
        let Some((slot, trusted)) = admit(&shared, peer) else {
            refuse_http(stream);
            continue;
        };
        let ctx = conn_ctx(&shared, peer, trusted, &drain);
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(builder.clone(), stream, slot, ctx));
    }
    drop(listener);
    drain.finish(SHUTDOWN_GRACE).await;
    Ok(())
}

/// Serve HTTPS (HTTP/1.1 and h2 by ALPN) on `listener` with the certificates of `tls`, proxying like
/// [`serve_http`] with `X-Forwarded-Proto: https` and `Secure` session cookies (`cfg.forwarded_proto` is not
/// used). With ACME, the first handshake for a host the resolver knows (and no certificate file covers) waits
/// for its certificate. A connection over the cap is closed at once.
pub async fn serve_https(
    listener: TcpListener,
    resolver: Arc<dyn Resolve>,
    tls: Arc<Tls>,
    cfg: ProxyConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let proto = HeaderValue::from_static("https");
    let mut shared = Shared::new(resolver, proto, Mode::Proxy, cfg);
    shared.secure = true;
    let shared = Arc::new(shared);
    let builder = builder();
    let drain = Drain::new();
    let mut shutdown = std::pin::pin!(shutdown);
    while let Some((stream, peer)) = accept_or_shutdown(&listener, &mut shutdown).await {
        let Some((slot, trusted)) = admit(&shared, peer) else {
            continue; // dropping the stream closes it
        };
        let ctx = conn_ctx(&shared, peer, trusted, &drain);
        let _ = stream.set_nodelay(true);
        let (tls, builder) = (tls.clone(), builder.clone());
        tokio::spawn(async move {
            let mut token = ctx.drain.clone();
            let limit = HANDSHAKE_TIMEOUT.min(ctx.shared.timeouts.header);
            let stream = tokio::select! {
                r = handshake(&tls, &*ctx.shared.resolver, stream, limit) => r,
                () = token.draining() => return,
            };
            match stream {
                Ok(stream) => serve_connection(builder, stream, slot, ctx).await,
                Err(e) => tracing::debug!(%peer, error = %ErrorChain(&e), "TLS handshake failed"),
            }
        });
    }
    drop(listener);
    drain.finish(SHUTDOWN_GRACE).await;
    Ok(())
}

/// Read the ClientHello; for a known host without a certificate, get one by ACME; finish the handshake.
/// Reading the ClientHello and finishing the handshake each get `limit`.
async fn handshake(
    tls: &Tls,
    resolver: &dyn Resolve,
    stream: TcpStream,
    limit: Duration,
) -> io::Result<TlsStream<TcpStream>> {
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out");
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = tokio::time::timeout(limit, acceptor)
        .await
        .map_err(|_| timed_out())??;
    if let Some(acme) = tls.acme() {
        let sni = start
            .client_hello()
            .server_name()
            .map(|s| s.trim_end_matches('.').to_ascii_lowercase());
        if let Some(host) = sni {
            if acme_eligible(&host) && !tls.file_covers(&host) && resolver.resolve(&host).is_some()
            {
                if let Err(e) = acme.ensure(&host).await {
                    tracing::warn!(host, error = %ErrorChain(&e), "no ACME certificate");
                }
            }
        }
    }
    let accept = start.into_stream(tls.server_config());
    tokio::time::timeout(limit, accept)
        .await
        .map_err(|_| timed_out())?
}

fn builder() -> Arc<auto::Builder<TokioExecutor>> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Header and idle timeouts are ours (`conn.rs`): hyper's HTTP/1 timer would also cut idle keep-alive
    // connections at the header timeout, and nothing in hyper times a connection that never sends a byte.
    builder.http1().header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    Arc::new(builder)
}

/// A slot in the connection limit for a connection from `peer`, if one is free, and whether `peer` is a
/// trusted proxy. Trusted proxies carry many clients: they count only against the global cap.
fn admit(shared: &Shared, peer: SocketAddr) -> Option<(ConnGuard, bool)> {
    let trusted = shared.cfg.trusts(peer.ip());
    let slot = shared.cfg.connections.try_acquire(peer.ip(), !trusted)?;
    Some((slot, trusted))
}

fn conn_ctx(shared: &Arc<Shared>, peer: SocketAddr, trusted: bool, drain: &Drain) -> ConnCtx {
    ConnCtx {
        shared: shared.clone(),
        client_ip: ip_header_value(peer.ip()),
        peer_ip: peer.ip(),
        trusted,
        drain: drain.token(),
    }
}

async fn serve_connection<IO>(
    builder: Arc<auto::Builder<TokioExecutor>>,
    io: IO,
    slot: ConnGuard,
    ctx: ConnCtx,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let io = Watched::new(io, activity.clone(), slot);
    let timeouts = ctx.shared.timeouts;
    let mut token = ctx.drain.clone();
    let ctx = Arc::new(ctx);
    let requests = activity.clone();
    let svc = hyper::service::service_fn(move |req| {
        let ctx = ctx.clone();
        // The connection is busy until the response body is done (or dropped).
        let busy = requests.begin(req.version() == hyper::Version::HTTP_2);
        async move {
            let resp = match &ctx.shared.mode {
                Mode::Proxy => handle(&ctx, req).await,
                Mode::Redirect { https_port, tls } => redirect(&ctx, &req, *https_port, tls),
            };
            Ok::<_, Infallible>(resp.map(|body| {
                body.map_frame(move |frame| {
                    let _ = &busy;
                    frame
                })
            }))
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = activity.expired(timeouts) => {
            // Idle too long (or never a request): close, politely where a protocol allows it.
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                biased;
                r = conn.as_mut() => r,
                () = activity.expired(timeouts) => Ok(()),
                () = token.stopped() => Ok(()),
            }
        }
        () = token.draining() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                r = conn.as_mut() => r,
                () = token.stopped() => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %ErrorChain(&*e), "client connection error");
    }
}

/// The plain-HTTP side of TLS: ACME challenge answers, else 308 to the same URL over HTTPS.
fn redirect(
    ctx: &ConnCtx,
    req: &Request<Incoming>,
    https_port: u16,
    tls: &Tls,
) -> Response<ProxyBody> {
    if let (Some(acme), Some(token)) = (
        tls.acme(),
        req.uri().path().strip_prefix(ACME_CHALLENGE_PREFIX),
    ) {
        return match acme.challenge(token) {
            Some(key_auth) => {
                let mut r = Response::new(Either::Right(Full::new(Bytes::from(key_auth))));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                r
            }
            None => plain(StatusCode::NOT_FOUND, "no such challenge\n"),
        };
    }
    let host = match request_host(req) {
        Ok(h) => h,
        Err(why) => return plain(StatusCode::BAD_REQUEST, why),
    };
    let Some(host) = host.to_str().ok().and_then(normalize_host) else {
        return plain(StatusCode::BAD_REQUEST, "bad request: invalid Host\n");
    };
    if ctx.shared.resolve(&host).is_none() {
        return plain(StatusCode::NOT_FOUND, "no such instance\n");
    }
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let mut r = plain(StatusCode::PERMANENT_REDIRECT, "");
    if let Ok(v) = HeaderValue::from_str(&format!("https://{host}{port}{path}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}
