//! The HTTP servers: accept loops with graceful shutdown for plain HTTP ([`serve_http`]), TLS
//! ([`serve_https`]: rustls handshake, on-demand ACME before it, then the same proxy handler with
//! `X-Forwarded-Proto: https`) and the plain-HTTP side of a TLS setup ([`serve_https_redirect`]: 308 to
//! HTTPS, except ACME http-01 challenges). One connection is served by hyper's auto (HTTP/1.1 + h2) builder.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
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
use crate::http::{
    forwarded_proto_value, handle, ip_header_value, normalize_host, plain, request_host, ProxyBody,
    ProxyConfig,
};
use crate::route::Resolve;
use crate::tcp::{accept_or_shutdown, Drain, DrainToken, SHUTDOWN_GRACE};
use crate::tls::Tls;
use crate::ErrorChain;

/// A client must send its complete request head within this time (also bounds idle keep-alive).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A client must complete the TLS handshake (ACME issuance aside) within this time.
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

/// State shared by all connections of one server.
pub(crate) struct Shared {
    pub(crate) resolver: Arc<dyn Resolve>,
    pub(crate) proto: HeaderValue,
    /// Connections arrive over TLS (session cookies get `Secure`).
    pub(crate) secure: bool,
    mode: Mode,
}

/// State of one client connection, shared by its requests.
pub(crate) struct ConnCtx {
    pub(crate) shared: Arc<Shared>,
    /// The client's IP, preformatted for `X-Forwarded-For`.
    pub(crate) client_ip: HeaderValue,
    /// The client's IP, for the gate's `allow` networks.
    pub(crate) peer_ip: IpAddr,
    /// Lets upgraded tunnels spawned by this connection take part in graceful shutdown.
    pub(crate) drain: DrainToken,
}

/// Serve HTTP/1.1 and h2c on `listener` until `shutdown` resolves, then stop accepting and let in-flight
/// connections finish (bounded by a few seconds) before returning.
pub async fn serve_http(
    listener: TcpListener,
    resolver: Arc<dyn Resolve>,
    cfg: ProxyConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let proto = forwarded_proto_value(cfg.forwarded_proto)?;
    let shared = Shared {
        resolver,
        proto,
        secure: false,
        mode: Mode::Proxy,
    };
    serve_plain(listener, shared, shutdown).await
}

/// The plain-HTTP listener of a TLS setup: answers ACME http-01 challenges (when `tls` uses ACME), and
/// redirects every other request for a known host to `https://HOST[:https_port]/same/path?query` with 308.
/// Unknown hosts get 404. Runs until `shutdown` resolves.
pub async fn serve_https_redirect(
    listener: TcpListener,
    resolver: Arc<dyn Resolve>,
    tls: Arc<Tls>,
    https_port: u16,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let proto = HeaderValue::from_static("http");
    let shared = Shared {
        resolver,
        proto,
        secure: false,
        mode: Mode::Redirect { https_port, tls },
    };
    serve_plain(listener, shared, shutdown).await
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
        let _ = stream.set_nodelay(true);
        let ctx = conn_ctx(&shared, peer, &drain);
        tokio::spawn(serve_connection(builder.clone(), stream, ctx));
    }
    drop(listener);
    drain.finish(SHUTDOWN_GRACE).await;
    Ok(())
}

/// Serve HTTPS (HTTP/1.1 and h2 by ALPN) on `listener` with the certificates of `tls`, proxying like
/// [`serve_http`] with `X-Forwarded-Proto: https` and `Secure` session cookies. With ACME, the first
/// handshake for a host the resolver knows (and no certificate file covers) waits for its certificate.
pub async fn serve_https(
    listener: TcpListener,
    resolver: Arc<dyn Resolve>,
    tls: Arc<Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let proto = HeaderValue::from_static("https");
    let shared = Arc::new(Shared {
        resolver,
        proto,
        secure: true,
        mode: Mode::Proxy,
    });
    let builder = builder();
    let drain = Drain::new();
    let mut shutdown = std::pin::pin!(shutdown);
    while let Some((stream, peer)) = accept_or_shutdown(&listener, &mut shutdown).await {
        let _ = stream.set_nodelay(true);
        let ctx = conn_ctx(&shared, peer, &drain);
        let (tls, builder) = (tls.clone(), builder.clone());
        tokio::spawn(async move {
            let mut token = ctx.drain.clone();
            let stream = tokio::select! {
                r = handshake(&tls, &*ctx.shared.resolver, stream) => r,
                () = token.draining() => return,
            };
            match stream {
                Ok(stream) => serve_connection(builder, stream, ctx).await,
                Err(e) => tracing::debug!(%peer, error = %ErrorChain(&e), "TLS handshake failed"),
            }
        });
    }
    drop(listener);
    drain.finish(SHUTDOWN_GRACE).await;
    Ok(())
}

/// Read the ClientHello; for a known host without a certificate, get one by ACME; finish the handshake.
async fn handshake(
    tls: &Tls,
    resolver: &dyn Resolve,
    stream: TcpStream,
) -> io::Result<TlsStream<TcpStream>> {
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out");
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor)
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
    tokio::time::timeout(HANDSHAKE_TIMEOUT, accept)
        .await
        .map_err(|_| timed_out())?
}

fn builder() -> Arc<auto::Builder<TokioExecutor>> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    Arc::new(builder)
}

fn conn_ctx(shared: &Arc<Shared>, peer: SocketAddr, drain: &Drain) -> ConnCtx {
    ConnCtx {
        shared: shared.clone(),
        client_ip: ip_header_value(peer.ip()),
        peer_ip: peer.ip(),
        drain: drain.token(),
    }
}

async fn serve_connection<IO>(builder: Arc<auto::Builder<TokioExecutor>>, io: IO, ctx: ConnCtx)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut token = ctx.drain.clone();
    let ctx = Arc::new(ctx);
    let svc = hyper::service::service_fn(move |req| {
        let ctx = ctx.clone();
        async move {
            Ok::<_, Infallible>(match &ctx.shared.mode {
                Mode::Proxy => handle(&ctx, req).await,
                Mode::Redirect { https_port, tls } => redirect(&ctx, &req, *https_port, tls),
            })
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
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
    let Some(host) = request_host(req) else {
        return plain(StatusCode::BAD_REQUEST, "bad request: missing Host\n");
    };
    let Some(host) = host.to_str().ok().and_then(normalize_host) else {
        return plain(StatusCode::BAD_REQUEST, "bad request: invalid Host\n");
    };
    if ctx.shared.resolver.resolve(&host).is_none() {
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
