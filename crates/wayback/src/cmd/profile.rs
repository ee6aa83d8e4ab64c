//! `wayback profile`: list and show profiles, and generate one from the host's systemd units
//! (`profile from-units UNIT... > myapp.toml`), the same conversion `up --unit` uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use wayback_core::units::{self, FsUnitSource, Options, Report};
use wayback_core::{Config, Profile};

use crate::error::BadInput;

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
    /// The snapshot the profile is for: StateDirectory= paths that exist in it become binds
    #[arg(long, value_name = "PATH")]
    pub snapshot: Option<PathBuf>,
    /// The HTTP port of the stack (gets a hostname on the proxy)
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// A TCP port that shows UNIT is ready, e.g. mariadb=3306 (repeatable)
    #[arg(long, value_name = "UNIT=PORT", value_parser = parse_ready)]
    pub ready: Vec<(String, u16)>,
}

fn parse_ready(s: &str) -> Result<(String, u16), String> {
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

/// Convert host units into a profile (shared with `up --unit`).
pub fn from_units(
    units: &[String],
    name: &str,
    snapshot: Option<&Path>,
    port: Option<u16>,
    ready: &[(String, u16)],
) -> Result<(Profile, Vec<Report>)> {
    let src = FsUnitSource::new("/");
    let exists =
        |p: &Path| snapshot.is_some_and(|s| s.join(p.strip_prefix("/").unwrap_or(p)).exists());
    let opts = Options {
        ready_ports: ready.iter().cloned().collect::<BTreeMap<_, _>>(),
        http_port: port,
    };
    let names: Vec<&str> = units.iter().map(String::as_str).collect();
    units::profile_from_units(&names, name, &src, &src, &exists, &opts)
        .map_err(|e| BadInput::new(e.to_string()).into())
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
            let (profile, reports) =
                from_units(&a.units, &name, a.snapshot.as_deref(), a.port, &a.ready)?;
            print!("{}", units::render_toml(&profile, &reports));
            // The reports are in the file's header too; on stderr unless --quiet.
            for r in reports.iter().filter(|_| !quiet) {
                eprintln!("wayback: {r}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
