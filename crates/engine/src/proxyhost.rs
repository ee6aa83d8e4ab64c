//! The built-in proxy as hosted by a wayback process: one process at a time (the holder of
//! `<runtime_dir>/proxy.lock`) listens on the proxy address(es) and serves every instance from the route
//! files in the runtime dir; the others retry every second, so the proxy survives the exit of the process
//! that started it. With `[proxy] https_listen` set, HTTPS is served (certificate files picked by SNI, and/or
//! ACME) and the plain listener redirects to it while answering ACME challenges.
//!
//! The `[proxy]` limits (connection caps, header and idle timeouts, trusted proxies) are checked when the
//! proxy is claimed; the connection cap is fitted into this process's open-file limit there.
//!
//! The proxy runs on one thread per core, each a single-threaded runtime with its own `SO_REUSEPORT`
//! listeners (`wayback_proxy::run_per_core`), whichever process hosts it (`up` or the daemon); the
//! connection cap is one count across them.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use tokio::sync::watch;
use wayback_core::{names, Config};
use wayback_masquerade::{Masquerade, Scheme};
use wayback_net::NetnsDialer;
use wayback_proxy::{
    AcmeConfig, Backend, CertificateFiles, ConnectionLimit, DirGateStore, FdBudget, Gate,
    ProxyConfig, Resolve, Tls, TlsConfig,
};

use crate::error::BadInput;
use crate::serve::{loopback, NetnsDial};
use crate::state::{self, RouteFile};

/// Resolves hostnames from the route files in the runtime dir, caching one pooled backend per route.
pub struct DirResolver {
    cfg: Config,
    dir: PathBuf,
    instances: PathBuf,
    cache: RwLock<HashMap<String, Cached>>,
    /// Last activity time written per host, so files are rewritten only when it changed.
    written: std::sync::Mutex<HashMap<String, u64>>,
    /// Bumped when cached routes are dropped: the proxy's per-worker caches then ask again.
    version: AtomicU64,
}

/// A loaded route: its file as read, the version of the file it was read from, and its backend.
type Cached = (RouteFile, Stamp, Arc<Backend>);

/// One version of a route file, told without reading it: every write (in place, or a new file renamed
/// over it) changes its inode, size or change time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    ctime: (i64, i64),
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        ino: m.ino(),
        len: m.len(),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

impl DirResolver {
    pub fn new(cfg: &Config) -> Arc<DirResolver> {
        Arc::new(DirResolver {
            cfg: cfg.clone(),
            dir: cfg.routes_dir(),
            instances: cfg.instances_dir(),
            cache: RwLock::default(),
            written: Default::default(),
            version: AtomicU64::new(0),
        })
    }

    fn load(&self, host: &str) -> Option<Cached> {
        // The host comes from a client: only a valid hostname may become a file name.
        let host = names::validate_hostname(host).ok()?;
        let path = self.dir.join(format!("{host}.json"));
        // Stamped before reading: a file replaced in between is seen as changed at the next refresh.
        let stamp = stamp(&path)?;
        let rf: RouteFile = state::read_json(&path).ok()?;
        let dialer = NetnsDialer::open(&rf.netns_path).ok()?;
        let dial = Arc::new(NetnsDial {
            dialer,
            addr: loopback(rf.port),
        });
        let gate = match &rf.gate {
            Some(g) => {
                // "Link already used" marks live in the instance's directory and vanish with it.
                let store = Arc::new(DirGateStore::new(self.instances.clone()));
                Some(
                    Gate::new(g.clone(), store)
                        .map_err(|e| tracing::warn!("route {host}: bad gate: {e}"))
                        .ok()?,
                )
            }
            None => None,
        };
        let masquerade = match &rf.masquerade {
            Some(m) => {
                let scheme = |https| if https { Scheme::Https } else { Scheme::Http };
                Some(
                    Masquerade::new(
                        &m.original_host,
                        scheme(m.original_https),
                        &m.public_host,
                        scheme(m.public_https),
                    )
                    .map_err(|e| tracing::warn!("route {host}: bad masquerade: {e}"))
                    .ok()?
                    .with_bodies(m.bodies),
                )
            }
            None => None,
        };
        let backend = Backend::with(rf.instance.clone(), dial, gate, masquerade);
        Some((rf, stamp, backend))
    }

    /// Drop cached routes whose file is gone or changed. One stat per route, no read: this runs twice a
    /// second whatever the number of routes.
    pub fn refresh(&self) {
        let stale: Vec<String> = {
            let cache = self.cache.read().expect("route cache lock");
            cache
                .iter()
                .filter(|(host, (_, st, _))| {
                    stamp(&self.dir.join(format!("{host}.json"))) != Some(*st)
                })
                .map(|(h, _)| h.clone())
                .collect()
        };
        if !stale.is_empty() {
            let mut cache = self.cache.write().expect("route cache lock");
            for h in &stale {
                cache.remove(h);
            }
            self.version.fetch_add(1, Ordering::Release);
        }
        self.record_activity();
    }

    /// Tell instance owners (which may be other processes) when their instance last saw a request: a file
    /// in the instance's state directory, which `--idle` reads. Written into the instance directory so it
    /// cannot outlive the instance: once the directory is gone the write fails harmlessly.
    fn record_activity(&self) {
        let cache = self.cache.read().expect("route cache lock");
        let mut written = self.written.lock().expect("activity lock");
        for (host, (rf, _, backend)) in cache.iter() {
            let last = backend.last_activity();
            if last == 0 || written.get(host) == Some(&last) {
                continue;
            }
            // Only into the instance's own directory (checked as every access to it is): once the directory
            // is gone the write fails harmlessly.
            let recorded = wayback_core::InstanceName::new(&rf.instance)
                .ok()
                .and_then(|n| state::InstanceDir::open(&self.cfg, &n).ok())
                .is_some_and(|d| d.set_last_activity(last).is_ok());
            if recorded {
                written.insert(host.clone(), last);
            }
        }
    }
}

impl Resolve for DirResolver {
    fn resolve(&self, host: &str) -> Option<Arc<Backend>> {
        let host = &names::validate_hostname(host).ok()?; // cached by canonical name
        if let Some((_, _, b)) = self.cache.read().expect("route cache lock").get(host) {
            return Some(b.clone());
        }
        let (rf, st, b) = self.load(host)?;
        self.cache
            .write()
            .expect("route cache lock")
            .insert(host.clone(), (rf, st, b.clone()));
        Some(b)
    }

    fn version(&self) -> Option<u64> {
        Some(self.version.load(Ordering::Acquire))
    }
}

/// The right to run the proxy: the lock file, and the bound listeners once we hold it.
pub enum ProxySlot {
    Owner {
        /// Held while the proxy runs; released (dropped) when it stops.
        lock: Flock<File>,
        /// One listener per worker thread, all on the same address.
        http: Vec<std::net::TcpListener>,
        https: Option<(Vec<std::net::TcpListener>, Arc<Tls>)>,
        /// Settings and the shared connection count of every listener.
        settings: ProxyConfig,
    },
    /// Another wayback process runs the proxy; we take over if it exits.
    Follower,
}

/// The TLS settings of the config, for the proxy crate.
fn tls(cfg: &Config) -> Result<Arc<Tls>> {
    let p = &cfg.proxy;
    let acme = p.acme.as_ref().map(|a| AcmeConfig {
        directory_url: a.directory_url.clone(),
        contact: a.contact.clone(),
        cache_dir: a
            .cache_dir
            .clone()
            .unwrap_or_else(|| cfg.state_dir.join("acme")),
        ca_root: a.ca_root.clone(),
    });
    let certificates = p
        .certificates
        .iter()
        .map(|c| CertificateFiles {
            cert: c.cert.clone(),
            key: c.key.clone(),
        })
        .collect();
    Tls::new(TlsConfig { certificates, acme }).context("[proxy] TLS settings")
}

/// The proxy's settings from `[proxy]`, with the connection cap fitted into this process's open-file limit
/// (lowered with one warning naming both numbers; an error when not even a handful of connections fit).
fn settings(cfg: &Config, budget: FdBudget) -> Result<ProxyConfig> {
    let p = &cfg.proxy;
    for (key, v) in [
        ("max_connections", p.max_connections),
        ("max_connections_per_client", p.max_connections_per_client),
    ] {
        if v == 0 {
            return Err(BadInput::new(format!(
                "[proxy] {key} = 0 would refuse every connection: set at least 1"
            ))
            .into());
        }
    }
    for (key, d) in [
        ("header_timeout", p.header_timeout),
        ("idle_timeout", p.idle_timeout),
    ] {
        if d.as_secs() == 0 {
            return Err(BadInput::new(format!(
                "[proxy] {key} = \"0s\" would close every connection at once: set at least 1s"
            ))
            .into());
        }
    }
    let max = budget.fit(p.max_connections)?;
    if max < p.max_connections {
        tracing::warn!(
            "[proxy] max_connections = {} does not fit this process's open-file limit of {} (a proxied \
             connection may need 2 files, {} are kept for the rest): using max_connections = {max}; raise \
             the limit to {} (ulimit -n, LimitNOFILE=) to allow {}",
            p.max_connections,
            budget.open_files,
            budget.reserved,
            FdBudget::files_needed(p.max_connections),
            p.max_connections,
        );
    }
    Ok(ProxyConfig {
        forwarded_proto: "http",
        trusted_proxies: p.trusted_proxies.clone(),
        header_timeout: p.header_timeout.as_std(),
        idle_timeout: p.idle_timeout.as_std(),
        connections: ConnectionLimit::new(max, p.max_connections_per_client),
    })
}

/// Take the proxy if nobody has it. Fails (before anything is created) when we get the lock but cannot bind,
/// or when the `[proxy]` limits are invalid or do not fit the open-file limit at all.
pub async fn claim_proxy(cfg: &Config) -> Result<ProxySlot> {
    state::create_private_dir_all(&cfg.runtime_dir)?;
    let path = cfg.runtime_dir.join("proxy.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, nix::Error::EWOULDBLOCK)) => return Ok(ProxySlot::Follower),
        Err((_, e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
    };
    let bind = |addr| async move {
        listen(addr).with_context(|| {
            format!("cannot listen on {addr} for the proxy: another program uses it? set [proxy] in the config")
        })
    };
    let budget = FdBudget::current().context("reading this process's open-file limit")?;
    let settings = settings(cfg, budget)?;
    let http = bind(cfg.proxy.listen).await?;
    let https = match cfg.proxy.https_listen {
        Some(addr) => Some((bind(addr).await?, tls(cfg)?)),
        None => None,
    };
    Ok(ProxySlot::Owner {
        lock,
        http,
        https,
        settings,
    })
}

/// The accept queue of the proxy's listeners (the kernel caps it at `net.core.somaxconn`): a burst of
/// connections waits there for the proxy instead of overflowing into SYN-cookie handshakes the proxy only
/// sees late, if at all.
const BACKLOG: i32 = 4096;

/// One listening socket on `addr` per proxy worker (SO_REUSEADDR and SO_REUSEPORT), each with [`BACKLOG`].
fn listen(addr: std::net::SocketAddr) -> std::io::Result<Vec<std::net::TcpListener>> {
    wayback_proxy::bind_listeners(addr, BACKLOG, wayback_proxy::worker_count())
}

/// One worker's servers: plain HTTP, or HTTPS plus the plain listener's redirect. Runs on the worker's own
/// single-threaded runtime until `stop` turns true.
async fn serve_worker(
    http: std::net::TcpListener,
    https: Option<(std::net::TcpListener, Arc<Tls>)>,
    resolver: Arc<dyn Resolve>,
    settings: ProxyConfig,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let shutdown = |mut s: watch::Receiver<bool>| async move {
        let _ = s.wait_for(|v| *v).await;
    };
    let http = wayback_proxy::tokio_listener(http)?;
    match https {
        None => wayback_proxy::serve_http(http, resolver, settings, shutdown(stop)).await,
        Some((listener, tls)) => {
            let listener = wayback_proxy::tokio_listener(listener)?;
            let port = listener.local_addr().map_or(443, |a| a.port());
            let redirect = wayback_proxy::serve_https_redirect(
                http,
                resolver.clone(),
                tls.clone(),
                port,
                settings.clone(),
                shutdown(stop.clone()),
            );
            let secure =
                wayback_proxy::serve_https(listener, resolver, tls, settings, shutdown(stop));
            let (a, b) = tokio::join!(redirect, secure);
            a.and(b)
        }
    }
}

/// Run the proxy while `stop` is false: serve if we own it, else retry taking it over every second.
pub async fn run_proxy(cfg: Config, mut slot: ProxySlot, mut stop: watch::Receiver<bool>) {
    let resolver = DirResolver::new(&cfg);
    let refresher = {
        let r = resolver.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            while !*stop.borrow() {
                r.refresh();
                let _ = tokio::time::timeout(Duration::from_millis(500), stop.changed()).await;
            }
        })
    };
    loop {
        if *stop.borrow() {
            break;
        }
        match slot {
            ProxySlot::Owner {
                lock,
                http,
                https,
                settings,
            } => {
                let resolver: Arc<dyn Resolve> = resolver.clone();
                let workers: Vec<_> = match https {
                    None => http.into_iter().map(|h| (h, None)).collect(),
                    Some((listeners, tls)) => http
                        .into_iter()
                        .zip(listeners)
                        .map(|(h, s)| (h, Some((s, tls.clone()))))
                        .collect(),
                };
                let stop = stop.clone();
                let served = wayback_proxy::run_per_core(workers, move |_, (http, https)| {
                    serve_worker(
                        http,
                        https,
                        resolver.clone(),
                        settings.clone(),
                        stop.clone(),
                    )
                })
                .await;
                if let Err(e) = served {
                    tracing::warn!("proxy on {} stopped: {e}", cfg.proxy.listen);
                }
                drop(lock);
                break;
            }
            ProxySlot::Follower => {
                let _ = tokio::time::timeout(Duration::from_secs(1), stop.changed()).await;
                slot = match claim_proxy(&cfg).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("{e:#}");
                        ProxySlot::Follower
                    }
                };
            }
        }
    }
    refresher.abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::is_bad_input;

    #[test]
    fn settings_follow_the_config_within_the_budget() {
        let mut cfg = Config::default();
        cfg.proxy.max_connections_per_client = 10;
        cfg.proxy.header_timeout = wayback_core::Duration(7);
        let s = settings(&cfg, FdBudget::new(20_000)).unwrap();
        assert_eq!(s.connections.max(), 8192);
        assert_eq!(s.connections.max_per_client(), 10);
        assert_eq!(s.header_timeout, Duration::from_secs(7));
        assert_eq!(s.idle_timeout, Duration::from_secs(60));
        assert_eq!(s.trusted_proxies, cfg.proxy.trusted_proxies);

        // Too many for the open-file limit: lowered to what fits.
        cfg.proxy.max_connections = 19_000;
        let fits = FdBudget::new(20_000).max_connections;
        let s = settings(&cfg, FdBudget::new(20_000)).unwrap();
        assert_eq!(s.connections.max(), fits);
        // An absurdly small limit: refused, saying what to raise.
        let e = settings(&cfg, FdBudget::new(100)).unwrap_err();
        assert!(format!("{e:#}").contains("ulimit -n"), "{e:#}");
    }

    #[test]
    fn zero_limits_are_bad_input() {
        for set in [
            |c: &mut Config| c.proxy.max_connections = 0,
            |c: &mut Config| c.proxy.max_connections_per_client = 0,
            |c: &mut Config| c.proxy.header_timeout = wayback_core::Duration(0),
            |c: &mut Config| c.proxy.idle_timeout = wayback_core::Duration(0),
        ] {
            let mut cfg = Config::default();
            set(&mut cfg);
            let e = settings(&cfg, FdBudget::new(20_000)).unwrap_err();
            assert!(is_bad_input(&e), "{e:#}");
            assert!(format!("{e:#}").starts_with("[proxy] "), "{e:#}");
        }
    }
}
