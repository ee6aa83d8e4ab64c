//! `wayback profile`: list and show profiles, and generate one from the host's systemd units
//! (`profile from-units UNIT... > myapp.toml`), the same conversion `up --unit` uses.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use wayback_core::units::{self, Conversion};
use wayback_core::{Config, Profile};

use wayback_engine::error::BadInput;
use wayback_engine::profile::{convert, exists_under, UnitsRequest};

#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub cmd: ProfileCmd,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCmd {
    /// Names of the built-in profiles and those in the config's profile_dirs
    List,
    /// Print a profile's TOML (built-in or from profile_dirs)
    Show { name: String },
    /// Write a profile for these units of the host (systemd search path, drop-ins) to stdout; what a
    /// directive asks that wayback cannot honour is listed as comments at the top
    FromUnits(FromUnitsArgs),
}

#[derive(Debug, Args)]
pub struct FromUnitsArgs {
    /// Service units, started in dependency order (e.g. mariadb php8.2-fpm nginx)
    #[arg(required = true, value_name = "UNIT")]
    pub units: Vec<String>,
    /// Profile name [default: the first unit's name]
    #[arg(long)]
    pub name: Option<String>,
    /// The snapshot the profile is for: the state paths the units and their apps' configs name that exist
    /// in it become binds (each with its reason)
    #[arg(long, value_name = "PATH")]
    pub snapshot: Option<PathBuf>,
    /// Do not bind this state path (or anything below it), though the units name it (repeatable)
    #[arg(long, value_name = "PATH")]
    pub no_bind: Vec<PathBuf>,
    /// The HTTP port of the stack (gets a hostname on the proxy)
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// A TCP port that shows UNIT is ready, e.g. mariadb=3306 (repeatable)
    #[arg(long, value_name = "UNIT=PORT", value_parser = parse_ready)]
    pub ready: Vec<(String, u16)>,
}

pub fn parse_ready(s: &str) -> Result<(String, u16), String> {
    let (u, p) = s
        .split_once('=')
        .ok_or_else(|| format!("expected UNIT=PORT, got {s:?}"))?;
    let port = p
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("bad port {p:?}"))?;
    Ok((u.to_string(), port))
}

pub fn run(cfg: &Config, args: ProfileArgs, quiet: bool) -> Result<ExitCode> {
    match args.cmd {
        ProfileCmd::List => {
            for n in Profile::available(&cfg.profile_dirs) {
                println!("{n}");
            }
        }
        ProfileCmd::Show { name } => {
            let text = match wayback_core::profile::BUILTINS
                .iter()
                .find(|(n, _)| *n == name)
            {
                Some((_, t))
                    if !cfg
                        .profile_dirs
                        .iter()
                        .any(|d| d.join(format!("{name}.toml")).is_file()) =>
                {
                    t.to_string()
                }
                _ => units::render_toml(&Profile::find(&name, &cfg.profile_dirs)?, &[]),
            };
            print!("{text}");
        }
        ProfileCmd::FromUnits(a) => {
            let name = a
                .name
                .clone()
                .unwrap_or_else(|| a.units[0].trim_end_matches(".service").replace('@', "-"));
            let req = UnitsRequest {
                units: &a.units,
                name: &name,
                port: a.port,
                ready: &a.ready,
                no_bind: &a.no_bind,
            };
            let c = convert(&req, &exists_under(a.snapshot.as_deref()))?;
            if let Some(p) = c.no_bind_unmatched.first() {
                return Err(BadInput::new(format!(
                    "--no-bind {}: the units name no state path there; the paths they name: {}",
                    p.display(),
                    candidate_list(&c)
                ))
                .into());
            }
            print!("{}", units::render_conversion(&c));
            // Every report is in the file's header; on stderr, collapsed, unless --quiet.
            for g in units::group_reports(&c.reports).iter().filter(|_| !quiet) {
                eprintln!("wayback: {g}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The state paths a conversion looked for, for messages.
fn candidate_list(c: &Conversion) -> String {
    let mut seen: Vec<String> = c
        .state
        .candidates
        .iter()
        .map(|x| x.named.display().to_string())
        .collect();
    seen.dedup();
    if seen.is_empty() {
        "none".into()
    } else {
        seen.join(", ")
    }
}
