//! Resource limits of the servers: the cap on open client connections ([`ConnectionLimit`], global and per
//! client address, counted by RAII guards so that every way a connection ends releases its slot), the answer a
//! connection over the cap gets, and the throttle for the log lines about refusals.
//!
//! How large the cap may be in this process is `budget.rs`; the per-connection timeouts (header read, idle
//! keep-alive) are `conn.rs`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// Default cap on open client connections: fits the file budget of a process allowed 20,000 open files.
pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;
/// Default cap on open client connections from one client address (IPv6: one /64).
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 256;
/// Default time a client has to send a complete request head on a new connection.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// Default time a kept-alive connection may wait for its next request.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a connection over the cap gets on plain HTTP, written without reading the request.
pub(crate) const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 21\r\n\
Connection: close\r\n\
Retry-After: 5\r\n\
\r\n\
too many connections\n";

/// The cap on open client connections of one process: at most `max` in all, at most `max_per_client` from
/// one client address (an IPv4 address, or an IPv6 /64, which one client usually controls whole).
///
/// Clones share the count: give every server of a process (HTTP, HTTPS, the HTTPS redirect) a clone of the
/// same limit. A connection holds its slot through a guard until it is closed, also while it is an upgraded
/// tunnel (WebSocket).
#[derive(Clone)]
pub struct ConnectionLimit {
    inner: Arc<Inner>,
}

struct Inner {
    max: usize,
    max_per_client: usize,
    open: Mutex<Open>,
    refused: Throttle,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

impl ConnectionLimit {
    /// A cap of `max` connections, `max_per_client` of them from one client (clamped to `max`).
    pub fn new(max: usize, max_per_client: usize) -> ConnectionLimit {
        ConnectionLimit {
            inner: Arc::new(Inner {
                max,
                max_per_client: max_per_client.min(max),
                open: Mutex::default(),
                refused: Throttle::new(Duration::from_secs(10)),
            }),
        }
    }

    /// The global cap.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// The cap per client address.
    pub fn max_per_client(&self) -> usize {
        self.inner.max_per_client
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    /// Connections open now from `client` (its /64 for IPv6).
    pub fn open_from(&self, client: IpAddr) -> usize {
        let key = client_key(client);
        self.lock().per_client.get(&key).copied().unwrap_or(0)
    }

    /// Take a slot for a new connection from `client`, or say which cap is reached (and log it, at most every
    /// few seconds). `per_client: false` counts only against the global cap (connections from a trusted
    /// proxy, which carry many clients).
    pub(crate) fn try_acquire(&self, client: IpAddr, per_client: bool) -> Option<ConnGuard> {
        let key = per_client.then(|| client_key(client));
        let refused = {
            let mut open = self.lock();
            let from_client = key.map_or(0, |k| open.per_client.get(&k).copied().unwrap_or(0));
            if open.total >= self.inner.max {
                Some("max_connections")
            } else if key.is_some() && from_client >= self.inner.max_per_client {
                Some("max_connections_per_client")
            } else {
                open.total += 1;
                if let Some(k) = key {
                    *open.per_client.entry(k).or_insert(0) += 1;
                }
                None
            }
        };
        match refused {
            None => Some(ConnGuard {
                limit: self.clone(),
                key,
            }),
            Some(which) => {
                self.inner.refused.note(|n| {
                    tracing::warn!(
                        refused = n,
                        max_connections = self.inner.max,
                        max_connections_per_client = self.inner.max_per_client,
                        "connection limit reached ({which}, last by {client}): new connections are refused"
                    );
                });
                None
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.inner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ConnectionLimit {
    fn default() -> Self {
        ConnectionLimit::new(DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_CLIENT)
    }
}

impl std::fmt::Debug for ConnectionLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionLimit")
            .field("max", &self.inner.max)
            .field("max_per_client", &self.inner.max_per_client)
            .field("open", &self.open())
            .finish()
    }
}

/// One open connection's slot in a [`ConnectionLimit`], released when dropped.
pub(crate) struct ConnGuard {
    limit: ConnectionLimit,
    key: Option<IpAddr>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut open = self.limit.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(k) = self.key {
            if let Some(n) = open.per_client.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    open.per_client.remove(&k);
                }
            }
        }
    }
}

/// The address a client is counted under: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by its /64.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// Answer a connection over the cap on plain HTTP: one `503` written without reading, then close. The
/// write never waits: a fresh socket's send buffer takes these few bytes, and if it does not, the client gets
/// only the close.
pub(crate) fn refuse_http(stream: TcpStream) {
    let _ = stream.try_write(REFUSAL);
}

/// Logs an event at most once per `every`, with the number of occurrences since the last log line.
pub(crate) struct Throttle {
    every: Duration,
    last: Mutex<Option<Instant>>,
    count: AtomicU64,
}

impl Throttle {
    pub(crate) fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: Mutex::new(None),
            count: AtomicU64::new(0),
        }
    }

    /// Count one occurrence; call `log` with the count when it is time to log.
    pub(crate) fn note(&self, log: impl FnOnce(u64)) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < self.every) {
            return;
        }
        *last = Some(now);
        log(self.count.swap(0, Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refusal_is_a_complete_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains("\r\nConnection: close"));
        assert!(head.contains("\r\nRetry-After: 5"));
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
    }

    #[test]
    fn caps_count_and_guards_release() {
        let limit = ConnectionLimit::new(3, 2);
        let a1 = limit.try_acquire(ip("192.0.2.1"), true).unwrap();
        let a2 = limit.try_acquire(ip("192.0.2.1"), true).unwrap();
        assert!(
            limit.try_acquire(ip("192.0.2.1"), true).is_none(),
            "per client"
        );
        let b1 = limit.try_acquire(ip("192.0.2.2"), true).unwrap();
        assert!(limit.try_acquire(ip("192.0.2.3"), true).is_none(), "global");
        assert_eq!((limit.open(), limit.open_from(ip("192.0.2.1"))), (3, 2));
        drop(a1);
        let a3 = limit.try_acquire(ip("192.0.2.1"), true).unwrap();
        drop((a2, a3, b1));
        assert_eq!((limit.open(), limit.open_from(ip("192.0.2.1"))), (0, 0));
    }

    #[test]
    fn trusted_proxies_count_only_globally() {
        let limit = ConnectionLimit::new(4, 1);
        let guards: Vec<_> = (0..4)
            .map(|_| limit.try_acquire(ip("10.0.0.1"), false).unwrap())
            .collect();
        assert!(limit.try_acquire(ip("10.0.0.1"), false).is_none());
        assert_eq!(limit.open_from(ip("10.0.0.1")), 0);
        drop(guards);
        assert_eq!(limit.open(), 0);
    }

    #[test]
    fn ipv6_clients_are_counted_by_slash_64() {
        assert_eq!(client_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
        let limit = ConnectionLimit::new(10, 1);
        let _g = limit.try_acquire(ip("2001:db8::1"), true).unwrap();
        assert!(limit.try_acquire(ip("2001:db8::2"), true).is_none());
        assert!(limit.try_acquire(ip("2001:db8:0:1::2"), true).is_some());
    }
}
