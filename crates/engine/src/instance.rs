//! The life of one instance in the process that hosts it (the foreground `up`, or `wayback serve`), once
//! `planning` has made its plan: claim its ports, apply it, wait until it answers, publish its route,
//! supervise it (TTL, idle, restarts of a crashed container with backoff), and tear it down.

use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;
use wayback_core::journal::Journal;
use wayback_core::{Config, Plan};

use crate::apply;
use crate::error::BadInput;
use crate::host::{Host, SystemHost};
use crate::hostdetect;
use crate::progress::Progress;
use crate::serve;
use crate::state::{self, InstanceDir, Owner, Phase};
use crate::sys::nspawn;
use crate::sys::procfs::Liveness;
use crate::teardown;

/// How often a container that died on its own is started again before the instance is given up.
pub const MAX_RESTARTS: u32 = 3;

/// Claimed ports and a created instance directory, not yet applied.
pub struct Prepared {
    pub dir: InstanceDir,
    pub plan: Plan,
    publishes: Vec<(TcpListener, u16)>,
    /// The basic-auth password, kept in memory only until the route is published.
    pub password: Option<String>,
}

/// Bind the publish ports (a busy port is the user's to fix), then create the instance directory and save
/// the plan: from here on the name is taken and teardown can find everything.
pub async fn prepare(
    cfg: &Config,
    plan: Plan,
    alloc: crate::planning::AllocLock,
    owner: Owner,
) -> Result<Prepared> {
    let publishes = serve::bind_publishes(&plan).await.map_err(BadInput::wrap)?;
    let dir = InstanceDir::create(cfg, &plan.name)?;
    state::write_json(&dir.plan_path(), &plan)?;
    dir.set_owner(owner)?;
    dir.set_phase(Phase::Starting)?;
    drop(alloc);
    Ok(Prepared {
        dir,
        plan,
        publishes,
        password: None,
    })
}

/// An instance that answers and is published.
pub struct Hosted {
    pub dir: InstanceDir,
    pub plan: Plan,
    /// The one-time share link (`--share`), shown once.
    pub share_url: Option<String>,
    stop_publish: watch::Sender<bool>,
    ready_at: u64,
    /// The container's nspawn process: its exit is the only sign that the container ended.
    container: std::sync::Mutex<nspawn::Watch>,
}

/// Why hosting ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Asked to stop (signal, `down`, TTL, idle).
    Asked(String),
    /// The container kept dying.
    Died,
}

/// Apply, wait for readiness, publish. On failure or `interrupt`, roll back and return the error.
pub async fn start(
    cfg: &Config,
    p: Prepared,
    progress: &Progress,
    interrupt: impl Future<Output = String>,
) -> Result<Hosted> {
    let Prepared {
        dir,
        mut plan,
        publishes,
        password,
    } = p;
    progress.note(format!(
        "starting {} from {}",
        plan.name,
        plan.source.path.display()
    ));
    let started = async {
        let mut container = apply::apply(&dir, &plan, progress).await?;
        wait_ready(cfg, &dir, &plan, progress, &mut container).await?;
        // May set the masquerade (`--original-host auto`), so before the route is written.
        hostdetect::check(&dir, &mut plan, progress).await?;
        let share = apply::publish_route(cfg, &dir, &plan, password.as_deref())?;
        Ok::<_, anyhow::Error>((container, share))
    };
    let outcome = tokio::select! {
        r = started => r,
        why = interrupt => Err(anyhow!("{why} while starting")),
    };
    let (container, share_url) = match outcome {
        Ok(s) => s,
        Err(e) => {
            progress.note("start failed, rolling back");
            // The logs outlive the instance directory: `wayback logs NAME` shows them until gc.
            let kept = crate::state::failed::keep(cfg, &dir).is_ok();
            let td = teardown::teardown(&dir, progress).await;
            let mut e = with_teardown_errors(e, &td.errors);
            if kept {
                let _ = crate::state::failed::record(cfg, &dir.name, &crate::error::render(&e));
                e = e.context(format!(
                    "the start of {} failed (`wayback logs {}` shows its logs until `wayback gc`)",
                    dir.name, dir.name
                ));
            }
            return Err(e);
        }
    };
    let mut hosted = adopt(dir, plan, publishes, nspawn::Watch::Child(container))?;
    hosted.share_url = share_url;
    Ok(hosted)
}

/// Host an instance that is already running (after `start`, or found running by a restarted daemon).
pub fn adopt(
    dir: InstanceDir,
    plan: Plan,
    publishes: Vec<(TcpListener, u16)>,
    container: nspawn::Watch,
) -> Result<Hosted> {
    let (stop_publish, stop_rx) = watch::channel(false);
    serve::serve_publishes(&plan, publishes, &stop_rx)?;
    dir.set_phase(Phase::Running)?;
    Ok(Hosted {
        dir,
        plan,
        share_url: None,
        stop_publish,
        ready_at: crate::clock::now_secs(),
        container: std::sync::Mutex::new(container),
    })
}

/// Re-bind the publish ports of an adopted instance.
pub async fn rebind(plan: &Plan) -> Result<Vec<(TcpListener, u16)>> {
    serve::bind_publishes(plan).await
}

async fn wait_ready(
    cfg: &Config,
    dir: &InstanceDir,
    plan: &Plan,
    progress: &Progress,
    container: &mut std::process::Child,
) -> Result<()> {
    let step = progress.step("waiting for the service to answer");
    serve::wait_ready(plan, cfg.ready_timeout.as_std(), container)
        .await
        .map_err(|e| {
            let tail = nspawn::log_tail(&dir.log_path(), 20);
            let app = crate::applogs::app_logs(&dir.path.join("applogs"), Some(10));
            anyhow!(
                "{e:#}\n--- last lines of {} ---\n{tail}\n{app}",
                dir.log_path().display()
            )
        })?;
    step.done();
    Ok(())
}

impl Hosted {
    /// Run until `stop` resolves, the TTL or idle time passes, or the container dies more than
    /// MAX_RESTARTS times (it is started again with backoff 1 s, 2 s, 4 s meanwhile).
    pub async fn supervise(
        &self,
        cfg: &Config,
        progress: &Progress,
        stop: impl Future<Output = String>,
    ) -> Stop {
        tokio::pin!(stop);
        let mut restarts = 0;
        loop {
            let now = crate::clock::now_secs();
            // `wayback keep`: neither the TTL nor idleness ends it meanwhile.
            let kept = self.dir.kept(now);
            let left = self
                .dir
                .expires()
                .unwrap_or(self.plan.expires)
                .saturating_sub(now);
            if left == 0 && !kept {
                return Stop::Asked("TTL reached".into());
            }
            let left = left.max(1);
            if let Some(idle) = self.plan.idle.filter(|_| !kept) {
                // Idleness counts from the end of a keep, not from before it.
                let kept_until = self.dir.keep().and_then(|k| k.until).unwrap_or(0);
                let last = self
                    .dir
                    .last_activity()
                    .unwrap_or(0)
                    .max(self.ready_at)
                    .max(kept_until);
                if crate::clock::now_secs().saturating_sub(last) >= idle.as_secs() {
                    return Stop::Asked(format!("idle for {idle}"));
                }
            }
            tokio::select! {
                why = &mut stop => return Stop::Asked(why),
                () = tokio::time::sleep(Duration::from_secs(left.min(1))) => {}
            }
            match self.liveness() {
                Liveness::Alive => continue,
                Liveness::Unknown(why) => {
                    // Never a reason to tear down: the container may well be running.
                    tracing::warn!("cannot check the container of {}: {why}", self.plan.name);
                    continue;
                }
                Liveness::Gone => {}
            }
            if restarts == MAX_RESTARTS {
                return Stop::Died;
            }
            restarts += 1;
            let backoff = Duration::from_secs(1 << (restarts - 1));
            eprintln!(
                "wayback: the container of {} exited; restart {restarts}/{MAX_RESTARTS} in {}s\n--- last lines of {} ---\n{}",
                self.plan.name,
                backoff.as_secs(),
                self.dir.log_path().display(),
                nspawn::log_tail(&self.dir.log_path(), 10)
            );
            tokio::select! {
                why = &mut stop => return Stop::Asked(why),
                () = tokio::time::sleep(backoff) => {}
            }
            let relaunched = crate::container::launch(&self.dir, &self.plan).await;
            let ready = match relaunched {
                Ok(mut c) => {
                    let noted = Journal::open(&self.dir.journal_path())
                        .map_err(anyhow::Error::from)
                        .and_then(|mut j| {
                            let (pid, start) = SystemHost.process(&c);
                            apply::note_process(&mut j, pid, start, "systemd-nspawn")
                        });
                    let ready = match noted {
                        Ok(()) => wait_ready(cfg, &self.dir, &self.plan, progress, &mut c).await,
                        Err(e) => Err(e),
                    };
                    *self.container.lock().expect("container watch lock") = nspawn::Watch::Child(c);
                    ready
                }
                Err(e) => Err(e),
            };
            if let Err(e) = ready {
                eprintln!("wayback: restart of {} failed: {e:#}", self.plan.name);
            }
        }
    }

    /// `wayback reset`: swap the instance to another snapshot ([`crate::reset`]); the caller has paused
    /// supervision. Returns once the service answers on the new clone.
    pub async fn reset(
        &mut self,
        cfg: &Config,
        rp: &crate::reset::ResetPlan,
        progress: &Progress,
    ) -> Result<(), crate::reset::Failed> {
        let mut child = crate::reset::apply(&self.dir, &mut self.plan, rp, progress).await?;
        let ready = wait_ready(cfg, &self.dir, &self.plan, progress, &mut child).await;
        *self.container.lock().expect("container watch lock") = nspawn::Watch::Child(child);
        self.ready_at = crate::clock::now_secs();
        let failed = |error| crate::reset::Failed {
            error,
            unchanged: false,
        };
        ready.map_err(failed)?;
        self.dir
            .set_phase(Phase::Running)
            .map_err(|e| failed(e.into()))
    }

    fn liveness(&self) -> Liveness {
        self.container.lock().expect("container watch lock").check()
    }

    /// Stop serving and remove everything the journal lists.
    pub async fn finish(self, progress: &Progress) -> Result<()> {
        self.dir.set_phase(Phase::Stopping)?;
        let _ = self.stop_publish.send(true);
        let td = teardown::teardown(&self.dir, progress).await;
        if !td.errors.is_empty() {
            return Err(with_teardown_errors(
                anyhow!("teardown of {} incomplete", self.plan.name),
                &td.errors,
            ));
        }
        progress.note(format!("{} removed", self.plan.name));
        Ok(())
    }
}

pub fn with_teardown_errors(e: anyhow::Error, errors: &[String]) -> anyhow::Error {
    if errors.is_empty() {
        return e;
    }
    anyhow!(
        "{e:#}\nrollback left these behind (run `wayback gc` to retry):\n  {}",
        errors.join("\n  ")
    )
}
