//! Routing state: how to reach an instance ([`Dial`], [`TcpDial`]), the per-instance [`Backend`] (pooled
//! HTTP/1.1 client plus activity counters), and host → backend resolution ([`Resolve`], [`RouteTable`]).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use hyper::body::Incoming;
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Upper bound on establishing one backend connection (dial + connect).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled backend connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How to open a TCP connection to an instance's service.
///
/// The real implementation creates the socket inside the instance's network namespace and connects to
/// `127.0.0.1:PORT` there; [`TcpDial`] connects to a fixed address.
pub trait Dial: Send + Sync + 'static {
    /// Open one new connection.
    fn dial(&self) -> BoxFuture<'static, io::Result<TcpStream>>;
}

/// A [`Dial`] to a fixed socket address.
#[derive(Debug, Clone, Copy)]
pub struct TcpDial(pub SocketAddr);

impl Dial for TcpDial {
    fn dial(&self) -> BoxFuture<'static, io::Result<TcpStream>> {
        Box::pin(TcpStream::connect(self.0))
    }
}

/// Dial with [`CONNECT_TIMEOUT`] and TCP_NODELAY; shared by the HTTP connector and `serve_tcp`.
pub(crate) async fn dial_stream(dial: &dyn Dial) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, dial.dial())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "backend connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The pooled client type every [`Backend`] owns.
pub(crate) type BackendClient = Client<DialConnector, Incoming>;

/// One proxied instance.
///
/// `name` is for logs only and never appears in a response to a client.
pub struct Backend {
    name: String,
    dial: Arc<dyn Dial>,
    client: BackendClient,
    requests: AtomicU64,
    last_activity: AtomicU64,
    open_upgrades: AtomicU64,
}

impl Backend {
    /// Build a backend with its own keep-alive connection pool on top of `dial`.
    ///
    /// Needs no running runtime; the pool spawns its housekeeping lazily on the current tokio runtime.
    pub fn new(name: impl Into<String>, dial: Arc<dyn Dial>) -> Arc<Backend> {
        let connector = DialConnector { dial: dial.clone() };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            // Keep the client's Host header (or the one derived from :authority) as is.
            .set_host(false)
            .build(connector);
        Arc::new(Backend {
            name: name.into(),
            dial,
            client,
            requests: AtomicU64::new(0),
            last_activity: AtomicU64::new(0),
            open_upgrades: AtomicU64::new(0),
        })
    }

    /// The instance name (for logs).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dialer this backend connects through.
    pub fn dial(&self) -> &Arc<dyn Dial> {
        &self.dial
    }

    /// Unix time (seconds) of the last request that reached this backend, 0 if none.
    pub fn last_activity(&self) -> u64 {
        self.last_activity.load(Ordering::Relaxed)
    }

    /// Number of requests routed to this backend so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Number of upgraded (e.g. WebSocket) connections currently spliced to this backend.
    ///
    /// An instance with open upgrades is in use even if `last_activity` is old.
    pub fn open_upgrades(&self) -> u64 {
        self.open_upgrades.load(Ordering::Relaxed)
    }

    pub(crate) fn client(&self) -> &BackendClient {
        &self.client
    }

    /// Record one request (hot path: two relaxed atomic writes).
    pub(crate) fn touch(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.last_activity.store(unix_now(), Ordering::Relaxed);
    }

    /// Count an upgraded connection as open until the returned guard drops; touches activity on both ends.
    pub(crate) fn upgrade_guard(self: &Arc<Self>) -> UpgradeGuard {
        self.open_upgrades.fetch_add(1, Ordering::Relaxed);
        UpgradeGuard(self.clone())
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("requests", &self.requests())
            .field("last_activity", &self.last_activity())
            .field("open_upgrades", &self.open_upgrades())
            .finish_non_exhaustive()
    }
}

/// Keeps [`Backend::open_upgrades`] incremented while alive.
pub(crate) struct UpgradeGuard(Arc<Backend>);

impl Drop for UpgradeGuard {
    fn drop(&mut self) {
        self.0.last_activity.store(unix_now(), Ordering::Relaxed);
        self.0.open_upgrades.fetch_sub(1, Ordering::Relaxed);
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// hyper-util connector that ignores the URI and opens connections through a [`Dial`].
#[derive(Clone)]
pub(crate) struct DialConnector {
    dial: Arc<dyn Dial>,
}

impl tower_service::Service<Uri> for DialConnector {
    type Response = TokioIo<BackendStream>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<TokioIo<BackendStream>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _dst: Uri) -> Self::Future {
        let dial = self.dial.clone();
        Box::pin(async move {
            let stream = dial_stream(&*dial).await?;
            Ok(TokioIo::new(BackendStream(stream)))
        })
    }
}

/// A backend TCP stream.
///
/// Exists so that [`Connection::connected`] reports nothing extra: hyper-util's impl for `TcpStream` queries
/// both socket addresses and attaches them to every response's extensions (an allocation per request).
pub(crate) struct BackendStream(TcpStream);

impl Connection for BackendStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for BackendStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for BackendStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Resolve a host (lowercased, port and trailing dot stripped) to a backend.
///
/// Called on every request: implementations must be cheap.
pub trait Resolve: Send + Sync + 'static {
    /// The backend serving `host`, if any.
    fn resolve(&self, host: &str) -> Option<Arc<Backend>>;
}

/// In-memory host → backend table.
///
/// Keys are stored lowercased without a trailing dot, matching what the proxy passes to [`Resolve::resolve`].
#[derive(Default)]
pub struct RouteTable {
    map: RwLock<HashMap<String, Arc<Backend>>>,
}

impl RouteTable {
    /// Route `host` to `b`, replacing any previous route for it.
    pub fn insert(&self, host: &str, b: Arc<Backend>) {
        let key = normalize_key(host);
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, b);
    }

    /// Remove the route for `host`, returning its backend.
    pub fn remove(&self, host: &str) -> Option<Arc<Backend>> {
        let key = normalize_key(host);
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key)
    }

    /// All routed hosts, sorted.
    pub fn hosts(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        v.sort_unstable();
        v
    }
}

impl Resolve for RouteTable {
    fn resolve(&self, host: &str) -> Option<Arc<Backend>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(host)
            .cloned()
    }
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTable")
            .field("hosts", &self.hosts())
            .finish()
    }
}

fn normalize_key(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(name: &str) -> Arc<Backend> {
        Backend::new(name, Arc::new(TcpDial(([127, 0, 0, 1], 9).into())))
    }

    #[test]
    fn route_table_normalizes_keys() {
        let t = RouteTable::default();
        t.insert("App.Example.", backend("a"));
        t.insert("other", backend("b"));
        assert_eq!(
            t.hosts(),
            vec!["app.example".to_string(), "other".to_string()]
        );
        assert_eq!(t.resolve("app.example").unwrap().name(), "a");
        assert!(
            t.resolve("App.Example").is_none(),
            "resolve expects normalized input"
        );
        assert_eq!(t.remove("APP.example").unwrap().name(), "a");
        assert!(t.resolve("app.example").is_none());
        assert!(t.remove("app.example").is_none());
    }

    #[test]
    fn counters_start_at_zero_and_touch_updates() {
        let b = backend("x");
        assert_eq!(
            (b.requests(), b.last_activity(), b.open_upgrades()),
            (0, 0, 0)
        );
        b.touch();
        b.touch();
        assert_eq!(b.requests(), 2);
        assert!(b.last_activity() > 1_600_000_000);
        let g = b.upgrade_guard();
        assert_eq!(b.open_upgrades(), 1);
        drop(g);
        assert_eq!(b.open_upgrades(), 0);
    }
}
