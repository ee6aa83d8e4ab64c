//! The daemon's side of each hosted instance: the task that supervises it (TTL, idle, restarts) and takes
//! commands from request handlers — stop (`down`), and `reset`, which pauses supervision while the
//! instance is swapped to another snapshot — and the request handlers that talk to those tasks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use tokio::sync::{mpsc, oneshot};
use wayback_core::{Config, InstanceName};

use crate::control::Reply;
use crate::instance::{self, Hosted, Stop};
use crate::progress::Progress;
use crate::reset::ResetPlan;
use crate::state::InstanceDir;
use crate::status::InstanceStatus;

/// Command channels of the instances this daemon hosts.
pub type Registry = Arc<Mutex<HashMap<InstanceName, mpsc::UnboundedSender<HostCmd>>>>;

/// What the task hosting an instance is asked to do.
pub enum HostCmd {
    /// Stop and tear down (`down`).
    Stop(String),
    /// Swap to another snapshot; the reply is the instance's status afterwards.
    Reset {
        plan: Box<ResetPlan>,
        progress: Progress,
        reply: oneshot::Sender<Result<serde_json::Value>>,
    },
}

/// Supervise a hosted instance in a task until `down`, TTL, idle, or it keeps dying; then tear it down.
/// A reset pauses supervision while it runs.
pub fn host(cfg: Config, mut hosted: Hosted, registry: Registry, progress: Progress) {
    let (tx, mut rx) = mpsc::unbounded_channel::<HostCmd>();
    let name = hosted.plan.name.clone();
    registry
        .lock()
        .expect("registry lock")
        .insert(name.clone(), tx);
    tokio::spawn(async move {
        loop {
            let mut reset = None;
            let stop = async {
                match rx.recv().await {
                    Some(HostCmd::Stop(why)) => why,
                    Some(HostCmd::Reset {
                        plan,
                        progress,
                        reply,
                    }) => {
                        reset = Some((plan, progress, reply));
                        "reset".into()
                    }
                    None => "daemon stopped".into(),
                }
            };
            let reason = hosted.supervise(&cfg, &progress, stop).await;
            if let Some((plan, p, reply)) = reset.take() {
                match hosted.reset(&cfg, &plan, &p).await {
                    Ok(()) => {
                        let status = serde_json::to_value(InstanceStatus::of(&hosted.dir));
                        let _ = reply.send(status.map_err(Into::into));
                        continue;
                    }
                    Err(f) if f.unchanged => {
                        let _ = reply.send(Err(f.error));
                        continue;
                    }
                    Err(f) => {
                        p.note(format!("the reset of {name} failed; removing it"));
                        let td = hosted.finish(&p).await;
                        let mut e = f
                            .error
                            .context(format!("the reset of {name} failed; it was removed"));
                        if let Err(t) = td {
                            e = e.context(format!("{t:#}"));
                        }
                        let _ = reply.send(Err(e));
                        registry.lock().expect("registry lock").remove(&name);
                        return;
                    }
                }
            }
            if reason == Stop::Died {
                progress.note(format!(
                    "{name} kept exiting ({} restarts); removing it",
                    instance::MAX_RESTARTS
                ));
            }
            break;
        }
        if let Err(e) = hosted.finish(&progress).await {
            tracing::warn!("{e:#}");
        }
        registry.lock().expect("registry lock").remove(&name);
    });
}

/// Progress lines of a request, relayed to its client until the returned sender is dropped.
pub fn relay(tx: &mpsc::UnboundedSender<Reply>) -> (Progress, tokio::task::JoinHandle<()>) {
    let (lines_tx, mut lines_rx) = mpsc::unbounded_channel::<String>();
    let tx = tx.clone();
    let forward = tokio::spawn(async move {
        while let Some(line) = lines_rx.recv().await {
            let _ = tx.send(Reply::Progress { line });
        }
    });
    let progress = Progress {
        quiet: false,
        sink: Some(lines_tx),
    };
    (progress, forward)
}

/// `reset`: checked here (bad input before anything changes), carried out by the instance's host task.
pub async fn reset(
    cfg: &Config,
    name: &InstanceName,
    snapshot: &str,
    registry: &Registry,
    tx: &mpsc::UnboundedSender<Reply>,
) -> Result<Reply> {
    let dir = InstanceDir::open(cfg, name)?;
    let plan = dir.plan()?;
    let host = registry.lock().expect("registry lock").get(name).cloned();
    let Some(host) = host else {
        crate::reset::check_host(&dir)?;
        return Err(anyhow!(
            "{name} is not hosted by this daemon (see `wayback status {name}`)"
        ));
    };
    let rp = crate::reset::plan(cfg, &plan, snapshot)?;
    let (progress, forward) = relay(tx);
    let (reply, answer) = oneshot::channel();
    let sent = host.send(HostCmd::Reset {
        plan: Box::new(rp),
        progress,
        reply,
    });
    let result = match sent {
        Ok(()) => answer
            .await
            .unwrap_or_else(|_| Err(anyhow!("{name} stopped during the reset")))
            .map(|status| Reply::Ready { status }),
        Err(_) => Err(anyhow!("{name} is stopping")),
    };
    let _ = forward.await;
    result
}
