//! `wayback up`: resolve input into a plan, apply it with the journal, wait for readiness, publish the
//! route, then host the instance in the foreground until Ctrl-C / SIGTERM / TTL / `down`, and tear down.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use wayback_core::plan::{self, Facts, SourceFacts, UpRequest};
use wayback_core::profile::{Bind, Profile};
use wayback_core::{Config, InstanceName, Plan};

use crate::apply;
use crate::cli::UpArgs;
use crate::cmd::status::InstanceStatus;
use crate::error::BadInput;
use crate::progress::Progress;
use crate::serve;
use crate::state::{self, InstanceDir, Owner, Phase};
use crate::sys::{btrfs, mountinfo, nspawn};

pub async fn run(cfg: &Config, args: UpArgs, progress: Progress) -> Result<ExitCode> {
    let req = request(cfg, &args)?;
    let source = source_facts(&req.snapshot)?;
    let alloc = alloc_lock(cfg)?;
    let facts = facts(cfg, source).await?;
    let plan = plan::build(&req, &facts, cfg, &btrfs::probe)?;
    if args.dry_run {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            print!("{plan}");
        }
        return Ok(ExitCode::SUCCESS);
    }

    // Everything that can fail without side effects goes first.
    let publishes = serve::bind_publishes(&plan).await.map_err(BadInput::wrap)?;
    let proxy = match &plan.http {
        Some(_) => Some(serve::claim_proxy(cfg).await?),
        None => None,
    };
    let dir = InstanceDir::create(cfg, plan.name.as_str())?;
    state::write_json(&dir.plan_path(), &plan)?;
    dir.set_owner(Owner::current())?;
    dir.set_phase(Phase::Starting)?;
    drop(alloc);

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;

    progress.note(format!(
        "starting {} from {}",
        plan.name,
        plan.source.path.display()
    ));
    let started = async {
        apply::apply(&dir, &plan, &progress).await?;
        let step = progress.step("waiting for the service to answer");
        serve::wait_ready(&plan, cfg.ready_timeout.as_std())
            .await
            .map_err(|e| {
                let tail = nspawn::log_tail(&dir.log_path(), 20);
                anyhow!(
                    "{e:#}\n--- last lines of {} ---\n{tail}",
                    dir.log_path().display()
                )
            })?;
        step.done();
        apply::publish_route(cfg, &dir, &plan)
    };
    let outcome = tokio::select! {
        r = started => r,
        _ = sigint.recv() => Err(anyhow!("interrupted")),
        _ = sigterm.recv() => Err(anyhow!("stopped (SIGTERM) while starting")),
    };
    if let Err(e) = outcome {
        progress.note("start failed, rolling back");
        let td = apply::teardown(&dir, &progress).await;
        return Err(with_teardown_errors(e, &td.errors));
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    serve::serve_publishes(&plan, publishes, &stop_rx)?;
    let proxy_task =
        proxy.map(|slot| tokio::spawn(serve::run_proxy(cfg.clone(), slot, stop_rx.clone())));
    dir.set_phase(Phase::Running)?;
    let status = InstanceStatus::of(&dir);
    if args.json {
        println!("{}", serde_json::to_string(&status)?);
    } else {
        println!("{}", status.ready_line());
    }

    let ready_at = now();
    let reason = loop {
        let left = dir.expires().unwrap_or(plan.expires).saturating_sub(now());
        if let Some(idle) = plan.idle {
            let last = dir.last_activity().unwrap_or(0).max(ready_at);
            if now().saturating_sub(last) >= idle.as_secs() {
                break Stop::Asked("idle");
            }
        }
        tokio::select! {
            _ = sigint.recv() => break Stop::Asked("interrupted"),
            _ = sigterm.recv() => break Stop::Asked("stopped"),
            _ = tokio::time::sleep(Duration::from_secs(left.min(1))) => {
                if left == 0 {
                    break Stop::Asked("TTL reached");
                }
                if nspawn::find(&plan.container.machine).is_empty() {
                    break Stop::Died;
                }
            }
        }
    };
    match reason {
        Stop::Asked(why) => progress.note(format!("{why}: removing {}", plan.name)),
        Stop::Died => eprintln!(
            "wayback: the container of {} exited on its own; removing it\n--- last lines of {} ---\n{}",
            plan.name,
            dir.log_path().display(),
            nspawn::log_tail(&dir.log_path(), 20)
        ),
    }
    dir.set_phase(Phase::Stopping)?;
    let _ = stop_tx.send(true);
    if let Some(t) = proxy_task {
        let _ = t.await;
    }
    let td = apply::teardown(&dir, &progress).await;
    if !td.errors.is_empty() {
        return Err(with_teardown_errors(
            anyhow!("teardown of {} incomplete", plan.name),
            &td.errors,
        ));
    }
    progress.note(format!("{} removed", plan.name));
    Ok(match reason {
        Stop::Asked(_) => ExitCode::SUCCESS,
        Stop::Died => ExitCode::FAILURE,
    })
}

enum Stop {
    Asked(&'static str),
    Died,
}

fn with_teardown_errors(e: anyhow::Error, errors: &[String]) -> anyhow::Error {
    if errors.is_empty() {
        return e;
    }
    anyhow!(
        "{e:#}\nrollback left these behind (run `wayback gc` to retry):\n  {}",
        errors.join("\n  ")
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Low → typed request. No system access except reading profile files.
fn request(cfg: &Config, args: &UpArgs) -> Result<UpRequest> {
    let profile = match (&args.profile, args.exec.is_empty()) {
        (Some(p), _) => Profile::find(p, &cfg.profile_dirs)?,
        (None, false) => Profile {
            name: "exec".into(),
            ..Profile::default()
        },
        (None, true) => {
            return Err(BadInput::new(
                "nothing to run: give --profile NAME (see docs/profiles.md) or --exec CMD",
            )
            .into())
        }
    };
    let name = args.name.as_deref().map(InstanceName::new).transpose()?;
    Ok(UpRequest {
        snapshot: args.snapshot.clone(),
        name,
        profile,
        binds: args.bind.iter().map(|b| Bind::parse_cli(b)).collect(),
        exec: args.exec.clone(),
        user: args.user.clone(),
        port: args.port,
        host: args.host.clone(),
        publish: args.publish.clone(),
        ttl: args.ttl,
        idle: args.idle,
    })
}

/// Serialises allocation (names, address blocks) between concurrent `up`s until the plan is saved.
fn alloc_lock(cfg: &Config) -> Result<Flock<std::fs::File>> {
    state::create_private_dir_all(&cfg.state_dir)?;
    let path = cfg.state_dir.join("alloc.lock");
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow!("locking {}: {e}", path.display()))
}

/// The snapshot: it must be a btrfs subvolume; where its filesystem is mounted.
fn source_facts(snapshot: &Path) -> Result<SourceFacts> {
    let path = std::fs::canonicalize(snapshot).map_err(|_| btrfs::BtrfsError::Missing {
        path: snapshot.into(),
    })?;
    let info = btrfs::inspect(&path)?;
    let mounts = mountinfo::read_self().context("reading /proc/self/mountinfo")?;
    let fs_root = mountinfo::mount_of(&mounts, &path)
        .map(|m| m.mount_point.clone())
        .with_context(|| format!("no mount holds {}", path.display()))?;
    Ok(SourceFacts {
        path,
        uuid: info.uuid,
        readonly: info.readonly,
        fs_root,
    })
}

/// High: what the plan needs to know about the system. Call with the allocation lock held.
async fn facts(cfg: &Config, source: SourceFacts) -> Result<Facts> {
    let existing = state::list(cfg);
    let mut in_use: Vec<ipnet::Ipv4Net> = existing
        .iter()
        .filter_map(|n| InstanceDir::open(cfg, n).ok()?.plan().ok())
        .map(|p: Plan| p.block.net)
        .collect();
    in_use.extend(wayback_net::veth::host_ipv4_prefixes().await?);
    Ok(Facts {
        source,
        existing,
        in_use,
        init_exe: std::env::current_exe().context("locating the wayback binary")?,
        machined: Path::new("/run/systemd/system").is_dir(),
        now: now(),
    })
}
