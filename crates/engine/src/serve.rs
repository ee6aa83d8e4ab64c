//! An instance's front doors besides the proxy (see `proxyhost`): TCP publishes and the readiness check.
//! Connections to the instance are made inside its network namespace (`wayback_net::NetnsDialer`) to
//! 127.0.0.1:PORT, so services that listen only on localhost — Debian's default for PostgreSQL and
//! MariaDB — are reachable unchanged. All publishes of a process share one connection cap.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::future::BoxFuture;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use wayback_core::profile::Ready;
use wayback_core::Plan;
use wayback_net::NetnsDialer;
use wayback_proxy::client::{self, Client};
use wayback_proxy::{ConnectionLimit, Dial, FdBudget, MIN_CONNECTIONS};

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

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
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

/// The cap on open connections of all `--publish` listeners of this process together: their share of the
/// open-file budget (see `wayback_proxy::FdBudget`), so that a flood of publish connections cannot starve
/// the process. A connection over it is closed at once.
fn publish_limit() -> ConnectionLimit {
    static LIMIT: OnceLock<ConnectionLimit> = OnceLock::new();
    LIMIT
        .get_or_init(|| {
            let n = FdBudget::current()
                .map_or(MIN_CONNECTIONS, |b| b.publish_connections)
                .max(MIN_CONNECTIONS);
            ConnectionLimit::new(n, n)
        })
        .clone()
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
        let limit = publish_limit();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = s.wait_for(|v| *v).await;
            };
            if let Err(e) = wayback_proxy::serve_tcp(listener, dial, limit, shutdown).await {
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
    let dialer = NetnsDialer::open(&plan.netns_path)?;
    let start = Instant::now();
    // Host mode: wayback's init says when every process has started (each after its own readiness).
    let mut started = plan.container.state_file.is_none();
    // Most services answer within milliseconds of starting: look again soon, then every 25 ms.
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(status) = container.try_wait()? {
            bail!("the container exited before the service was ready (systemd-nspawn {status})");
        }
        if !started {
            match init_state(plan) {
                InitState::Started => started = true,
                InitState::Failed(why) => bail!("{why}"),
                InitState::Pending => {}
            }
        }
        if started {
            match &plan.ready {
                None => return Ok(()),
                Some(ready) if probe(&dialer, ready, plan).await => return Ok(()),
                Some(_) => {}
            }
        }
        if start.elapsed() >= timeout {
            bail!(
                "the service did not answer within {}s ({})",
                timeout.as_secs(),
                match (&plan.ready, started) {
                    (_, false) => "its processes had not all started".to_string(),
                    (Some(r), true) => describe(r),
                    (None, true) => "no check".into(),
                }
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

enum InitState {
    Pending,
    Started,
    Failed(String),
}

/// What wayback's init reported in the instance's state file.
fn init_state(plan: &Plan) -> InitState {
    let Some(file) = &plan.container.state_file else {
        return InitState::Started;
    };
    let text = std::fs::read_to_string(file).unwrap_or_default();
    match text.trim() {
        "started" => InitState::Started,
        t if t.starts_with("failed: ") => InitState::Failed(t["failed: ".len()..].to_string()),
        _ => InitState::Pending,
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
    if r.postgres.is_some() {
        let Ok(mut std) = stream.into_std() else {
            return false;
        };
        let _ = std.set_nonblocking(false);
        let _ = std.set_read_timeout(Some(Duration::from_secs(2)));
        return tokio::task::spawn_blocking(move || wayback_core::probe::postgres_ready(&mut std))
            .await
            .unwrap_or(false);
    }
    let host = plan.http.as_ref().map_or("localhost", |h| h.host.as_str());
    let path = r.http_path.as_deref().unwrap_or("/");
    http_status_ok(stream, host, path).await
}

/// The readiness client: the answer's status within 2 s (the body is not read).
const READY: Client = Client {
    connect_timeout: Duration::from_millis(500),
    timeout: Duration::from_secs(2),
    max_body: 0,
};

/// `GET path` over `stream` (dialed inside the instance's netns): 2xx, 3xx, 401 and 403 mean ready.
async fn http_status_ok(stream: TcpStream, host: &str, path: &str) -> bool {
    let ua = [("user-agent", "wayback-ready")];
    let Ok(req) = client::request("GET", path, host, &ua, "") else {
        return false;
    };
    let code = READY.status(stream, req).await.map_or(0, |s| s.as_u16());
    (200..400).contains(&code) || code == 401 || code == 403
}
