//! `wayback up`: resolve input into a plan, apply it with the journal, wait for readiness, publish the
//! route, then host the instance in the foreground until Ctrl-C / SIGTERM / TTL / `down`, and tear down.

use std::process::ExitCode;

use anyhow::Result;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use wayback_core::plan::UpRequest;
use wayback_core::Config;

use crate::cli::UpArgs;
use wayback_engine::control;
use wayback_engine::instance::{self, Stop};
use wayback_engine::planning;
use wayback_engine::progress::Progress;
use wayback_engine::proxyhost;
use wayback_engine::state::Owner;
use wayback_engine::status::InstanceStatus;
use wayback_engine::sys::nspawn;

pub async fn run(cfg: &Config, args: UpArgs, progress: Progress) -> Result<ExitCode> {
    let req = request::request(cfg, &args, &progress)?;
    if args.detach {
        return detached(cfg, req, args.json, &progress).await;
    }
    let (plan, alloc) = planning::plan(cfg, &req).await?;
    for w in planning::warnings(cfg, &plan) {
        eprintln!("wayback: {w}");
    }
    if args.dry_run {
        if let Some(format) = args.export {
            print!(
                "{}",
                crate::cmd::export::render(&plan, format, &args.export_nginx)
            );
            return Ok(ExitCode::SUCCESS);
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            print!("{plan}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Everything that can fail without side effects goes first.
    let proxy = match &plan.http {
        Some(_) => Some(proxyhost::claim_proxy(cfg).await?),
        None => None,
    };
    let mut prepared = instance::prepare(cfg, plan, alloc, Owner::current()).await?;
    prepared.password = req.basic_auth.as_ref().map(|(_, p)| p.clone());
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let hosted =
        instance::start(cfg, prepared, &progress, asked(&mut sigint, &mut sigterm)).await?;

    let (stop_proxy, stop_rx) = watch::channel(false);
    let proxy_task =
        proxy.map(|slot| tokio::spawn(proxyhost::run_proxy(cfg.clone(), slot, stop_rx)));
    let mut status = InstanceStatus::of(&hosted.dir);
    status.share_url = hosted.share_url.clone();
    if args.json {
        println!("{}", serde_json::to_string(&status)?);
    } else {
        println!("{}", status.ready_line());
        if let Some(link) = &status.share_url {
            println!("share {link}");
        }
    }

    let reason = hosted
        .supervise(cfg, &progress, asked(&mut sigint, &mut sigterm))
        .await;
    match &reason {
        Stop::Asked(why) => progress.note(format!("{why}: removing {}", hosted.plan.name)),
        Stop::Died => eprintln!(
            "wayback: the container of {} kept exiting ({} restarts); removing it\n--- last lines of {} ---\n{}",
            hosted.plan.name,
            instance::MAX_RESTARTS,
            hosted.dir.log_path().display(),
            nspawn::log_tail(&hosted.dir.log_path(), 20)
        ),
    }
    let _ = stop_proxy.send(true);
    if let Some(t) = proxy_task {
        let _ = t.await;
    }
    hosted.finish(&progress).await?;
    Ok(match reason {
        Stop::Asked(_) => ExitCode::SUCCESS,
        Stop::Died => ExitCode::FAILURE,
    })
}

/// `up --detach`: the daemon does the work; we relay its progress and print the same ready line.
async fn detached(
    cfg: &Config,
    req: UpRequest,
    json: bool,
    progress: &Progress,
) -> Result<ExitCode> {
    let reply = control::call(cfg, &control::Request::Up { req: Box::new(req) }, |line| {
        if !progress.quiet {
            eprintln!("{line}");
        }
    })
    .await?;
    if let control::Reply::Ready { status } = reply {
        if json {
            println!("{status}");
        } else {
            let s: InstanceStatus = serde_json::from_value(status)?;
            println!("{}", s.ready_line());
            if let Some(link) = &s.share_url {
                println!("share {link}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves when the foreground `up` is asked to stop: Ctrl-C or SIGTERM (which `wayback down` sends).
async fn asked(sigint: &mut Signal, sigterm: &mut Signal) -> String {
    tokio::select! {
        _ = sigint.recv() => "interrupted".into(),
        _ = sigterm.recv() => "stopped".into(),
    }
}

pub(crate) mod request;
mod units;
