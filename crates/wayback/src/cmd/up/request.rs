//! `up`'s command line → a typed [`UpRequest`]: the snapshot (a path or a selector), the profile (a built-in
//! or file, `--unit` inference, or `--exec`), and every flag as a typed value. Reads profile files, the
//! host's units and (for `--unit`) what exists in the snapshot, resolved inside it; creates nothing.

use anyhow::Result;
use wayback_core::ownership::IdKind;
use wayback_core::plan::{Inferred, UpRequest};
use wayback_core::profile::{Bind, Profile};
use wayback_core::{Config, InstanceName};

use crate::cli::UpArgs;
use wayback_engine::error::BadInput;
use wayback_engine::progress::Progress;

/// `--at TIME`: a date, a date and time (UTC unless a zone is given) or an age such as `2w`; unix seconds.
fn parse_at(text: &str) -> Result<i64> {
    use wayback_core::selector::{Kind, Selector, Target};
    let sel: Selector = format!("@{text}")
        .parse()
        .map_err(|e| BadInput::new(format!("--at {text}: {e}")))?;
    let now = wayback_engine::clock::now();
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

/// Low → typed request. No system access except reading profile files.
pub fn request(cfg: &Config, args: &UpArgs, progress: &Progress) -> Result<UpRequest> {
    let at = args.at.as_deref().map(parse_at).transpose()?;
    let snapshot = match (&args.snapshot, at) {
        (Some(s), Some(_)) => Some(std::path::PathBuf::from(s)),
        (Some(s), None) => Some(wayback_engine::catalog::resolve_path(
            s,
            &cfg.snapshot_roots,
        )?),
        (None, _) => None,
    };
    let (mut profile, inferred) = match (&args.profile, args.exec.is_empty()) {
        _ if !args.unit.is_empty() => {
            let from = snapshot.as_deref().filter(|_| at.is_none());
            super::units::profile(args, from, progress)?
        }
        (Some(p), _) => (Profile::find(p, &cfg.profile_dirs)?, Inferred::default()),
        (None, false) => (named("exec"), Inferred::default()),
        (None, true) if args.boot => (named("boot"), Inferred::default()),
        (None, true) => return Err(BadInput::new(
            "nothing to run: give --unit UNIT (the host's systemd unit, e.g. --unit redis-server), --profile NAME \
             (see docs/profiles.md) or --exec CMD",
        )
        .into()),
    };
    if args.unit.is_empty() && !args.no_bind.is_empty() {
        let dropped = profile.drop_binds(&args.no_bind);
        if let Some(p) = dropped.unmatched.first() {
            return Err(BadInput::new(format!(
                "--no-bind {}: profile {} has no bind at or below it (its binds: {})",
                p.display(),
                profile.name,
                bind_list(&profile)
            ))
            .into());
        }
    }
    let name = args.name.as_deref().map(InstanceName::new).transpose()?;
    if args.software.as_deref() == Some("snapshot")
        && (args.chown || !args.map_uid.is_empty() || !args.map_gid.is_empty())
    {
        return Err(BadInput::new(
            "--chown, --map-uid and --map-gid map the snapshot's owners to this host's users; with --software \
             snapshot the processes run as the snapshot's own users, who own its files already: leave them out",
        )
        .into());
    }
    if args.software.as_deref() == Some("snapshot") && args.bind_config {
        return Err(BadInput::new(
            "--bind-config binds the snapshot's copies of config files over the host's; with --software snapshot \
             the snapshot's whole /etc is used already: leave --bind-config out",
        )
        .into());
    }
    Ok(UpRequest {
        snapshot,
        at,
        strict_consistency: args.strict_consistency,
        boot: args.boot,
        masks: args.mask.clone(),
        no_default_masks: args.no_default_masks,
        software: args
            .software
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(BadInput::new)?,
        env: args.env.iter().cloned().collect(),
        proxy: args.proxy,
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
        allow_egress: args.allow_egress.clone(),
        host_paths: args.host_path.clone(),
        no_host_paths: args.no_host_path.clone(),
        unmask: args.unmask.clone(),
        allow_empty: args.allow_empty,
        from_live: args.from_live,
        bind_config: args.bind_config,
        inferred,
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

fn named(name: &str) -> Profile {
    Profile {
        name: name.into(),
        ..Profile::default()
    }
}

fn bind_list(p: &Profile) -> String {
    if p.binds.is_empty() {
        return "none".into();
    }
    p.binds
        .iter()
        .map(|b| b.path().display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
