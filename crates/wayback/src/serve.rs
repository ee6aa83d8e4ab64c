//! Hosting an instance's front doors from the process that owns it: the built-in HTTP proxy (shared by all
//! instances through route files in the runtime dir) and its TCP publishes. Connections to the instance are
//! made inside its network namespace (`wayback_net::NetnsDialer`) to 127.0.0.1:PORT, so services that listen
//! only on localhost — Debian's default for PostgreSQL and MariaDB — are reachable unchanged.
//!
//! Only one process can listen on the proxy address: the one holding `<runtime_dir>/proxy.lock`. Others keep
//! trying to take it over, so the proxy survives the exit of the `up` that started it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::future::BoxFuture;
use nix::fcntl::{Flock, FlockArg};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use wayback_core::profile::Ready;
use wayback_core::{names, Config, Plan};
use wayback_net::NetnsDialer;
use wayback_proxy::{Backend, Dial, ProxyConfig, Resolve};

use crate::state::{self, RouteFile};

/// Dial a port on the instance's own loopback, from inside its network namespace.
pub struct NetnsDial {
    pub dialer: NetnsDialer,
    pub addr: SocketAddr,
}

impl Dial for NetnsDial {
    fn dial(&self) -> BoxFuture<'static, std::io::Result<TcpStream>> {
        let d = self.dialer.clone();
        let a = self.addr;
        Box::pin(async move { d.connect(a).await })
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Resolves hostnames from the route files in the runtime dir, caching one pooled backend per route.
pub struct DirResolver {
    dir: PathBuf,
    instances: PathBuf,
    cache: RwLock<HashMap<String, (RouteFile, Arc<Backend>)>>,
    /// Last activity time written per host, so files are rewritten only when it changed.
    written: std::sync::Mutex<HashMap<String, u64>>,
}

impl DirResolver {
    pub fn new(cfg: &Config) -> Arc<DirResolver> {
        Arc::new(DirResolver {
            dir: cfg.routes_dir(),
            instances: cfg.instances_dir(),
            cache: RwLock::default(),
            written: Default::default(),
        })
    }

    fn load(&self, host: &str) -> Option<(RouteFile, Arc<Backend>)> {
        // The host comes from a client: only a valid hostname may become a file name.
        let host = names::validate_hostname(host).ok()?;
        let rf: RouteFile = state::read_json(&self.dir.join(format!("{host}.json"))).ok()?;
        let dialer = NetnsDialer::open(&rf.netns_path).ok()?;
        let backend = Backend::new(
            rf.instance.clone(),
            Arc::new(NetnsDial {
                dialer,
                addr: loopback(rf.port),
            }),
        );
        Some((rf, backend))
    }

    /// Drop cached routes whose file is gone or changed.
    pub fn refresh(&self) {
        let stale: Vec<String> = {
            let cache = self.cache.read().expect("route cache lock");
            cache
                .iter()
                .filter(|(host, (rf, _))| {
                    state::read_json::<RouteFile>(&self.dir.join(format!("{host}.json")))
                        .ok()
                        .as_ref()
                        != Some(rf)
                })
                .map(|(h, _)| h.clone())
                .collect()
        };
        if !stale.is_empty() {
            let mut cache = self.cache.write().expect("route cache lock");
            for h in &stale {
                cache.remove(h);
            }
        }
        self.record_activity();
    }

    /// Tell instance owners (which may be other processes) when their instance last saw a request: a file
    /// in the instance's state directory, which `--idle` reads. Written into the instance directory so it
    /// cannot outlive the instance: once the directory is gone the write fails harmlessly.
    fn record_activity(&self) {
        let cache = self.cache.read().expect("route cache lock");
        let mut written = self.written.lock().expect("activity lock");
        for (host, (rf, backend)) in cache.iter() {
            let last = backend.last_activity();
            if last == 0 || written.get(host) == Some(&last) {
                continue;
            }
            let dir = self.instances.join(&rf.instance);
            if dir.is_dir() && state::write_json(&dir.join("activity.json"), &last).is_ok() {
                written.insert(host.clone(), last);
            }
        }
    }
}

impl Resolve for DirResolver {
    fn resolve(&self, host: &str) -> Option<Arc<Backend>> {
        if let Some((_, b)) = self.cache.read().expect("route cache lock").get(host) {
            return Some(b.clone());
        }
        let (rf, b) = self.load(host)?;
        self.cache
            .write()
            .expect("route cache lock")
            .insert(host.to_string(), (rf, b.clone()));
        Some(b)
    }
}

/// The right to run the proxy: the lock file, and the bound listener once we hold it.
pub enum ProxySlot {
    Owner(Flock<File>, TcpListener),
    /// Another wayback process runs the proxy; we take over if it exits.
    Follower,
}

/// Take the proxy if nobody has it. Fails (before anything is created) when we get the lock but cannot bind.
pub async fn claim_proxy(cfg: &Config) -> Result<ProxySlot> {
    state::create_private_dir_all(&cfg.runtime_dir)?;
    let path = cfg.runtime_dir.join("proxy.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            let l = TcpListener::bind(cfg.proxy.listen).await.with_context(|| {
                format!("cannot listen on {} for the proxy: another program uses it? set [proxy] listen in the config", cfg.proxy.listen)
            })?;
            Ok(ProxySlot::Owner(lock, l))
        }
        Err((_, nix::Error::EWOULDBLOCK)) => Ok(ProxySlot::Follower),
        Err((_, e)) => Err(e).with_context(|| format!("locking {}", path.display())),
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
            ProxySlot::Owner(lock, listener) => {
                let mut s = stop.clone();
                let shutdown = async move {
                    let _ = s.wait_for(|v| *v).await;
                };
                let resolver: Arc<dyn Resolve> = resolver.clone();
                if let Err(e) = wayback_proxy::serve_http(
                    listener,
                    resolver,
                    ProxyConfig {
                        forwarded_proto: "http",
                    },
                    shutdown,
                )
                .await
                {
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

/// Bind every `--publish` listener (before anything is created, so a busy port fails cleanly).
pub async fn bind_publishes(plan: &Plan) -> Result<Vec<(TcpListener, u16)>> {
    let mut out = Vec::new();
    for p in &plan.publish {
        let l = TcpListener::bind(p.listen).await.with_context(|| {
            format!(
                "cannot listen on {} for --publish: is the port in use?",
                p.listen
            )
        })?;
        out.push((l, p.port));
    }
    Ok(out)
}

pub fn serve_publishes(
    plan: &Plan,
    listeners: Vec<(TcpListener, u16)>,
    stop: &watch::Receiver<bool>,
) -> Result<()> {
    let dialer = NetnsDialer::open(&plan.netns_path)?;
    for (listener, port) in listeners {
        let dial = Arc::new(NetnsDial {
            dialer: dialer.clone(),
            addr: loopback(port),
        });
        let mut s = stop.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = s.wait_for(|v| *v).await;
            };
            if let Err(e) = wayback_proxy::serve_tcp(listener, dial, shutdown).await {
                tracing::warn!("publish listener stopped: {e}");
            }
        });
    }
    Ok(())
}

/// Wait until the instance answers its readiness check from inside its netns, or fail (container gone,
/// timeout). HTTP readiness accepts 2xx, 3xx, 401 and 403.
pub async fn wait_ready(
    plan: &Plan,
    timeout: Duration,
    container: &mut std::process::Child,
) -> Result<()> {
    let Some(ready) = &plan.ready else {
        return Ok(());
    };
    let dialer = NetnsDialer::open(&plan.netns_path)?;
    let start = Instant::now();
    loop {
        if let Some(status) = container.try_wait()? {
            bail!("the container exited before the service was ready (systemd-nspawn {status})");
        }
        if probe(&dialer, ready, plan).await {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            bail!(
                "the service did not answer within {}s ({})",
                timeout.as_secs(),
                describe(ready)
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn describe(r: &Ready) -> String {
    match (r.tcp, r.http) {
        _ if r.postgres.is_some() => format!("PostgreSQL on port {}", r.postgres.unwrap_or(5432)),
        (Some(p), _) => format!("TCP port {p}"),
        (_, Some(p)) => format!(
            "HTTP port {p} path {}",
            r.http_path.as_deref().unwrap_or("/")
        ),
        _ => "no check".into(),
    }
}

async fn probe(dialer: &NetnsDialer, r: &Ready, plan: &Plan) -> bool {
    let Some(port) = r.tcp.or(r.http).or(r.postgres) else {
        return true;
    };
    let Ok(Ok(stream)) =
        tokio::time::timeout(Duration::from_millis(500), dialer.connect(loopback(port))).await
    else {
        return false;
    };
    if r.tcp.is_some() {
        return true;
    }
    let Ok(std) = stream.into_std() else {
        return false;
    };
    let _ = std.set_nonblocking(false);
    let _ = std.set_read_timeout(Some(Duration::from_secs(2)));
    if r.postgres.is_some() {
        let mut s = std;
        return tokio::task::spawn_blocking(move || wayback_core::probe::postgres_ready(&mut s))
            .await
            .unwrap_or(false);
    }
    let host = plan
        .http
        .as_ref()
        .map_or("localhost", |h| h.host.as_str())
        .to_string();
    let path = r.http_path.clone().unwrap_or_else(|| "/".into());
    tokio::task::spawn_blocking(move || http_status_ok(std, &host, &path))
        .await
        .unwrap_or(false)
}

fn http_status_ok(mut s: std::net::TcpStream, host: &str, path: &str) -> bool {
    if write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: wayback-ready\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let Ok(n) = s.read(&mut buf) else {
        return false;
    };
    let line = String::from_utf8_lossy(&buf[..n]);
    let code: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (200..400).contains(&code) || code == 401 || code == 403
}
