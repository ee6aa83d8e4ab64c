//! `wayback serve`: the daemon. Hosts the proxy and every instance handed to it (`up --detach`), supervises
//! them (restarts with backoff, TTL, idle), and answers the CLI on a unix socket.
//!
//! On start it reads every instance directory: instances whose owner is gone and whose container still runs
//! are adopted (publishes re-bound, route files are still there for the proxy); the rest are torn down from
//! their journals. On SIGTERM/SIGINT it stops listening and exits, leaving its instances running for the next
//! start to adopt (`wayback down --all` removes them). A second daemon on the same runtime dir refuses to start.

use std::os::unix::fs::PermissionsExt;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use wayback_core::{Config, InstanceName};

use crate::control::{self, Reply, Request};
use crate::error;
use crate::instance;
use crate::planning;
use crate::progress::Progress;
use crate::proxyhost;
use crate::state::{self, InstanceDir, Owner, Phase};
use crate::status::InstanceStatus;
use crate::sys::nspawn;
use crate::teardown;
use crate::verbs;

mod host;
use host::{host, relay, reset, HostCmd, Registry};

/// Run the daemon; with `console` (the binary's hooks) and `[console] enabled`, the web console too.
pub async fn serve(
    cfg: Config,
    progress: Progress,
    console: Option<Arc<dyn crate::console::Hooks>>,
) -> Result<ExitCode> {
    // First of all: a stop asked for while the daemon starts (its socket may already exist) must not be
    // lost between installing the handler and listening for it.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    // A console that would be reachable in clear beyond loopback: refused before anything starts.
    if console.is_some() && cfg.console.enabled {
        cfg.console.check().map_err(error::BadInput::new)?;
    }
    state::create_private_dir_all(&cfg.runtime_dir)?;
    let lock_path = cfg.runtime_dir.join("daemon.lock");
    let lock_file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| {
        anyhow!(
            "another `wayback serve` already runs on {} (lock {})",
            cfg.runtime_dir.display(),
            lock_path.display()
        )
    })?;
    let me = Owner::current_daemon();
    let sock = control::socket_path(&cfg);
    let _ = std::fs::remove_file(&sock); // a dead daemon's: we hold the lock now
    let slot = proxyhost::claim_proxy(&cfg).await?;
    let (stop_proxy, stop_rx) = watch::channel(false);
    let proxy = tokio::spawn(proxyhost::run_proxy(cfg.clone(), slot, stop_rx));
    let registry: Registry = Arc::default();
    recover(&cfg, me, &registry, &progress).await;

    let listener =
        UnixListener::bind(&sock).with_context(|| format!("binding {}", sock.display()))?;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))?;
    // The console talks to this daemon through the socket, as the CLI does: only once it listens.
    // A console that would be reachable in clear beyond loopback stops the start; a busy port does not
    // (the daemon's instances matter more), and is said.
    let console_addr = match console.filter(|_| cfg.console.enabled) {
        Some(hooks) => {
            let addr = crate::console::start(cfg.clone(), hooks, stop_proxy.subscribe()).await;
            match addr {
                Ok(a) => Some(a),
                Err(e) if error::is_bad_input(&e) => {
                    let _ = std::fs::remove_file(&sock);
                    let _ = stop_proxy.send(true);
                    let _ = proxy.await;
                    return Err(e);
                }
                Err(e) => {
                    progress.note(format!("the console is not served: {}", error::render(&e)));
                    None
                }
            }
        }
        None => None,
    };
    let console_note = console_addr
        .map(|a| {
            let scheme = if cfg.console.tls() { "https" } else { "http" };
            format!(", console {scheme}://{a}/ (log in with a token from `wayback console token`)")
        })
        .unwrap_or_default();
    progress.note(format!(
        "daemon ready on {} (proxy {}{console_note})",
        sock.display(),
        cfg.proxy.listen
    ));

    loop {
        tokio::select! {
            conn = listener.accept() => match conn {
                Ok((stream, _)) => {
                    let (cfg, registry) = (cfg.clone(), registry.clone());
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, cfg, me, registry).await {
                            tracing::warn!("control connection: {e:#}");
                        }
                    });
                }
                Err(e) => tracing::warn!("accept on {}: {e}", sock.display()),
            },
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    progress.note(
        "daemon stopping; instances keep running and are adopted by the next `wayback serve`",
    );
    let _ = std::fs::remove_file(&sock);
    let _ = stop_proxy.send(true);
    let _ = proxy.await;
    Ok(ExitCode::SUCCESS)
}

/// Adopt instances whose container still runs; tear down the rest (unless a live process owns them).
async fn recover(cfg: &Config, me: Owner, registry: &Registry, progress: &Progress) {
    for name in state::list(cfg) {
        let Ok(dir) = InstanceDir::open(cfg, &name) else {
            continue;
        };
        if dir.owner().is_some_and(|o| o.alive() && o.pid != me.pid) {
            continue; // a foreground `up` hosts it
        }
        let plan = dir.plan().ok();
        let watch = plan
            .as_ref()
            .filter(|_| dir.phase() == Some(Phase::Running))
            .and_then(|p| nspawn::Watch::adopt(&p.container.machine));
        if let (Some(watch), Some(plan)) = (watch, plan) {
            let adopted = async {
                dir.set_owner(me)?;
                let publishes = instance::rebind(&plan).await?;
                instance::adopt(dir.clone(), plan, publishes, watch)
            };
            match adopted.await {
                Ok(hosted) => {
                    progress.note(format!("adopted {name}"));
                    host(cfg.clone(), hosted, registry.clone(), progress.clone());
                    continue;
                }
                Err(e) => progress.note(format!("cannot adopt {name}: {e:#}; removing it")),
            }
        }
        let td = teardown::teardown(&dir, progress).await;
        if td.errors.is_empty() {
            progress.note(format!("removed {name} (its owner was gone)"));
        } else {
            progress.note(format!("removing {name} failed: {}", td.errors.join("; ")));
        }
    }
}

async fn handle(stream: UnixStream, cfg: Config, me: Owner, registry: Registry) -> Result<()> {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let Some(line) = lines.next_line().await? else {
        return Ok(());
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Reply>();
    // A request that does not parse (e.g. an invalid instance name) is answered, as bad input.
    let req: Request = match control::RequestLine::parse(&line) {
        Ok(r) => r,
        Err(message) => {
            let reply = Reply::Error {
                message,
                bad_input: true,
            };
            let mut l = serde_json::to_string(&reply)?;
            l.push('\n');
            w.write_all(l.as_bytes()).await?;
            return Ok(());
        }
    };
    let worker = tokio::spawn(async move {
        let reply = match req {
            Request::Ping => Ok(Reply::Pong {
                pid: std::process::id(),
            }),
            Request::Up { req } => up(&cfg, *req, me, &registry, &tx).await,
            Request::Down { name } => down(&cfg, &name, &registry).await,
            Request::Reset { name, snapshot } => {
                reset(&cfg, &name, &snapshot, &registry, &tx).await
            }
            Request::Keep { name, keep } => verbs::keep(&cfg, &name, &keep).and_then(|k| {
                Ok(Reply::Value {
                    value: serde_json::to_value(k)?,
                })
            }),
            Request::Extend { name, by } => verbs::extend(&cfg, &name, by).and_then(|e| {
                Ok(Reply::Value {
                    value: serde_json::to_value(e)?,
                })
            }),
        };
        let final_reply = reply.unwrap_or_else(|e| Reply::Error {
            bad_input: error::is_bad_input(&e),
            message: error::render(&e),
        });
        let _ = tx.send(final_reply);
    });
    while let Some(reply) = rx.recv().await {
        let mut l = serde_json::to_string(&reply)?;
        l.push('\n');
        if w.write_all(l.as_bytes()).await.is_err() {
            break; // the client went away; the work goes on
        }
    }
    let _ = worker.await;
    Ok(())
}

async fn up(
    cfg: &Config,
    req: wayback_core::UpRequest,
    me: Owner,
    registry: &Registry,
    tx: &mpsc::UnboundedSender<Reply>,
) -> Result<Reply> {
    let (progress, forward) = relay(tx);
    let result = async {
        let (plan, alloc) = planning::plan(cfg, &req).await?;
        for w in planning::warnings(cfg, &plan) {
            progress.note(w);
        }
        let mut prepared = instance::prepare(cfg, plan, alloc, me).await?;
        prepared.password = req.basic_auth.as_ref().map(|(_, p)| p.clone());
        let hosted = instance::start(cfg, prepared, &progress, std::future::pending()).await?;
        let mut status = InstanceStatus::of(&hosted.dir);
        status.share_url = hosted.share_url.clone();
        let status = serde_json::to_value(status)?;
        host(cfg.clone(), hosted, registry.clone(), Progress::default());
        Ok(Reply::Ready { status })
    }
    .await;
    drop(progress);
    let _ = forward.await;
    result
}

async fn down(cfg: &Config, name: &InstanceName, registry: &Registry) -> Result<Reply> {
    let dir = InstanceDir::open(cfg, name)?;
    let stop = registry.lock().expect("registry lock").remove(name);
    let Some(stop) = stop else {
        return Err(anyhow!("{name} is not hosted by this daemon"));
    };
    let _ = stop.send(HostCmd::Stop("down".into()));
    let start = std::time::Instant::now();
    // The teardown removes the directory last; a stat every 5 ms costs nothing next to it.
    while dir.path.exists() {
        if start.elapsed() > Duration::from_secs(90) {
            return Err(anyhow!("{name} did not stop within 90s"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Reply::Done)
}
