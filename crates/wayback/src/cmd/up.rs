//! `wayback up`: resolve input into a plan, apply it with the journal, wait for readiness, publish the
//! route, then host the instance in the foreground until Ctrl-C / SIGTERM / TTL / `down`, and tear down.

use std::process::ExitCode;

use anyhow::Result;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use wayback_core::ownership::IdKind;
use wayback_core::plan::UpRequest;
use wayback_core::profile::{Bind, Profile};
use wayback_core::{Config, InstanceName};

use crate::cli::UpArgs;
use crate::cmd::status::InstanceStatus;
use crate::control;
use crate::error::BadInput;
use crate::instance::{self, Stop};
use crate::planning;
use crate::progress::Progress;
use crate::proxyhost;
use crate::state::Owner;
use crate::sys::nspawn;

pub async fn run(cfg: &Config, args: UpArgs, progress: Progress) -> Result<ExitCode> {
    let req = request(cfg, &args, &progress)?;
    if args.detach {
        return detached(cfg, req, args.json, &progress).await;
    }
    let (plan, alloc) = planning::plan(cfg, &req).await?;
    if let Some(w) = planning::skew_warning(cfg, &plan) {
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

/// `--at TIME`: a date, a date and time (UTC unless a zone is given) or an age such as `2w`; unix seconds.
fn parse_at(text: &str) -> Result<i64> {
    use wayback_core::selector::{Kind, Selector, Target};
    let sel: Selector = format!("@{text}")
        .parse()
        .map_err(|e| BadInput::new(format!("--at {text}: {e}")))?;
    let now = crate::cmd::snapshots::now();
    match sel.kind {
        Kind::At {
            root: None,
            target: Target::Time(t),
        } => Ok(t.end_utc()),
        Kind::At {
            root: None,
            target: Target::Ago(d),
        } => Ok(now - d.as_secs() as i64),
        _ => Err(BadInput::new(format!(
            "--at {text}: give a time (2026-11-14T10:00, 2026-11-14) or an age (2w, 36h)"
        ))
        .into()),
    }
}

/// The basic-auth password: the first line of `file`, else asked on the terminal without echo.
fn password(file: Option<&std::path::Path>, user: &str) -> Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| BadInput::new(format!("cannot read {}: {e}", f.display())))?;
        let line = text.lines().next().unwrap_or("").to_string();
        if line.is_empty() {
            return Err(BadInput::new(format!(
                "{} is empty: put the password on its first line",
                f.display()
            ))
            .into());
        }
        return Ok(line);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(BadInput::new(
            "--basic-auth: no terminal to ask the password on; give --basic-auth-file FILE",
        )
        .into());
    }
    eprint!("password for {user}: ");
    std::io::stderr().flush()?;
    let fd = std::io::stdin();
    let old = nix::sys::termios::tcgetattr(&fd)?;
    let mut quiet = old.clone();
    quiet
        .local_flags
        .remove(nix::sys::termios::LocalFlags::ECHO);
    nix::sys::termios::tcsetattr(&fd, nix::sys::termios::SetArg::TCSANOW, &quiet)?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    nix::sys::termios::tcsetattr(&fd, nix::sys::termios::SetArg::TCSANOW, &old)?;
    eprintln!();
    read?;
    let line = line.trim_end_matches(['\n', '\r']).to_string();
    if line.is_empty() {
        return Err(BadInput::new("empty password").into());
    }
    Ok(line)
}

/// Resolves when the foreground `up` is asked to stop: Ctrl-C or SIGTERM (which `wayback down` sends).
async fn asked(sigint: &mut Signal, sigterm: &mut Signal) -> String {
    tokio::select! {
        _ = sigint.recv() => "interrupted".into(),
        _ = sigterm.recv() => "stopped".into(),
    }
}

/// Low → typed request. No system access except reading profile files.
fn request(cfg: &Config, args: &UpArgs, progress: &Progress) -> Result<UpRequest> {
    let at = args.at.as_deref().map(parse_at).transpose()?;
    let snapshot = match (&args.snapshot, at) {
        (Some(s), Some(_)) => Some(std::path::PathBuf::from(s)),
        (Some(s), None) => Some(crate::cmd::snapshots::resolve_path(s, &cfg.snapshot_roots)?),
        (None, _) => None,
    };
    let profile = match (&args.profile, args.exec.is_empty()) {
        _ if !args.unit.is_empty() => {
            let (p, reports) = crate::cmd::profile::from_units(
                &args.unit,
                "units",
                snapshot.as_deref().filter(|_| at.is_none()),
                args.port,
                &[],
            )?;
            for r in &reports {
                progress.note(r.to_string());
            }
            p
        }
        (Some(p), _) => Profile::find(p, &cfg.profile_dirs)?,
        (None, false) => Profile {
            name: "exec".into(),
            ..Profile::default()
        },
        (None, true) if args.boot => Profile {
            name: "boot".into(),
            ..Profile::default()
        },
        (None, true) => return Err(BadInput::new(
            "nothing to run: give --profile NAME (see docs/profiles.md), --unit UNIT or --exec CMD",
        )
        .into()),
    };
    let name = args.name.as_deref().map(InstanceName::new).transpose()?;
    Ok(UpRequest {
        snapshot,
        at,
        strict_consistency: args.strict_consistency,
        boot: args.boot,
        masks: args.mask.clone(),
        no_default_masks: args.no_default_masks,
        env: args.env.iter().cloned().collect(),
        proxy: args.proxy.map(|k| match k {
            crate::drivers::DriverKind::Builtin => wayback_core::drivers::ProxyDriver::Builtin,
            crate::drivers::DriverKind::Nginx => wayback_core::drivers::ProxyDriver::Nginx,
            crate::drivers::DriverKind::Caddy => wayback_core::drivers::ProxyDriver::Caddy,
        }),
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
        allow_egress: args.allow_egress.iter().map(|e| e.to_string()).collect(),
        host_paths: args.host_path.clone(),
        no_host_paths: args.no_host_path.clone(),
        unmask: args.unmask.clone(),
        overlay: args.overlay,
        chown: args.chown || !args.map_uid.is_empty() || !args.map_gid.is_empty(),
        share: args.share,
        basic_auth: match &args.basic_auth {
            Some(user) => Some((
                user.clone(),
                password(args.basic_auth_file.as_deref(), user)?,
            )),
            None => None,
        },
        allow: args.allow.clone(),
        original_host: args.original_host.clone(),
        rewrite_bodies: !args.no_rewrite_bodies,
        no_host_check: args.no_host_check,
        map_ids: args
            .map_uid
            .iter()
            .map(|(a, b)| (*a, *b, IdKind::User))
            .chain(args.map_gid.iter().map(|(a, b)| (*a, *b, IdKind::Group)))
            .collect(),
    })
}
