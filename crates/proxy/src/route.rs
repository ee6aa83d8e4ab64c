//! Routing state: how to reach an instance ([`Dial`], [`TcpDial`]), the per-instance [`Backend`] (optional
//! access gate, keep-alive connection pool, activity counters), and host → backend resolution ([`Resolve`],
//! [`RouteTable`]).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use tokio::net::TcpStream;

mod cache;

pub use cache::RouteCache;

use crate::gate::Gate;
use crate::pool::Pool;
use crate::workers::PerWorker;
use wayback_masquerade::Masquerade;

/// Upper bound on establishing one backend connection (dial + connect).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// One proxied instance.
///
/// `name` is for logs only and never appears in a response to a client.
pub struct Backend {
    name: String,
    dial: Arc<dyn Dial>,
    gate: Option<Gate>,
    masquerade: Option<Masquerade>,
    pool: Arc<Pool>,
    /// Counted per worker thread, so that workers do not write to one cache line per request.
    requests: PerWorker<AtomicU64>,
    last_activity: AtomicU64,
    open_upgrades: AtomicU64,
}

impl Backend {
    /// Build a backend with its own keep-alive connection pool on top of `dial`, with no access gate.
    ///
    /// Needs no running runtime and spawns nothing.
    pub fn new(name: impl Into<String>, dial: Arc<dyn Dial>) -> Arc<Backend> {
        Self::build(name.into(), dial, None, None)
    }

    /// The general form: an optional gate, and an optional hostname masquerade (the backend sees its usual
    /// hostname; headers and text bodies are rewritten back to the public one).
    pub fn with(
        name: impl Into<String>,
        dial: Arc<dyn Dial>,
        gate: Option<Gate>,
        masquerade: Option<Masquerade>,
    ) -> Arc<Backend> {
        let gate = gate.filter(|g| !g.config().is_open());
        Self::build(name.into(), dial, gate, masquerade)
    }

    /// Like [`Backend::new`], with an access gate in front: requests that fail it are answered by the proxy
    /// and never reach the instance. An open gate ([`crate::GateConfig::is_open`]) costs nothing.
    pub fn with_gate(name: impl Into<String>, dial: Arc<dyn Dial>, gate: Gate) -> Arc<Backend> {
        let gate = (!gate.config().is_open()).then_some(gate);
        Self::build(name.into(), dial, gate, None)
    }

    fn build(
        name: String,
        dial: Arc<dyn Dial>,
        gate: Option<Gate>,
        masquerade: Option<Masquerade>,
    ) -> Arc<Backend> {
        Arc::new(Backend {
            name,
            dial,
            gate,
            masquerade,
            pool: Arc::default(),
            requests: PerWorker::default(),
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

    /// The access gate, if any condition is configured.
    pub fn masquerade(&self) -> Option<&Masquerade> {
        self.masquerade.as_ref()
    }

    pub fn gate(&self) -> Option<&Gate> {
        self.gate.as_ref()
    }

    /// Unix time (seconds) of the last request that reached this backend, 0 if none.
    pub fn last_activity(&self) -> u64 {
        self.last_activity.load(Ordering::Relaxed)
    }

    /// Number of requests routed to this backend so far.
    pub fn requests(&self) -> u64 {
        self.requests
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    /// Number of upgraded (e.g. WebSocket) connections currently spliced to this backend.
    ///
    /// An instance with open upgrades is in use even if `last_activity` is old.
    pub fn open_upgrades(&self) -> u64 {
        self.open_upgrades.load(Ordering::Relaxed)
    }

    pub(crate) fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// Record one request (hot path: one write to this worker's counter; the shared activity time is
    /// written only when its second changes).
    pub(crate) fn touch(&self) {
        self.requests.local().fetch_add(1, Ordering::Relaxed);
        let now = unix_now();
        if self.last_activity.load(Ordering::Relaxed) != now {
            self.last_activity.store(now, Ordering::Relaxed);
        }
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
            .field("gate", &self.gate)
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

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Resolve a host (lowercased, port and trailing dot stripped) to a backend.
///
/// Called on every request unless [`Resolve::version`] lets the servers cache answers: implementations must
/// be cheap.
pub trait Resolve: Send + Sync + 'static {
    /// The backend serving `host`, if any.
    fn resolve(&self, host: &str) -> Option<Arc<Backend>>;

    /// A number that changes (after the change is visible to [`Resolve::resolve`]) whenever a host that
    /// resolved may now resolve to another backend or to none. With `Some`, each server keeps its own cache
    /// of answers (weak references: a backend dropped by the resolver is not kept alive by it) and asks
    /// again only when the number changed; `None` (the default) asks on every request.
    fn version(&self) -> Option<u64> {
        None
    }
}

/// In-memory host → backend table.
///
/// Keys are stored lowercased without a trailing dot, matching what the proxy passes to [`Resolve::resolve`].
#[derive(Default)]
pub struct RouteTable {
    map: RwLock<HashMap<String, Arc<Backend>>>,
    /// Bumped on every insert and remove (see [`Resolve::version`]).
    version: AtomicU64,
}

impl RouteTable {
    /// Route `host` to `b`, replacing any previous route for it.
    pub fn insert(&self, host: &str, b: Arc<Backend>) {
        let key = normalize_key(host);
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, b);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Remove the route for `host`, returning its backend.
    pub fn remove(&self, host: &str) -> Option<Arc<Backend>> {
        let key = normalize_key(host);
        let removed = self
            .map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        self.version.fetch_add(1, Ordering::Release);
        removed
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

    fn version(&self) -> Option<u64> {
        Some(self.version.load(Ordering::Acquire))
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
