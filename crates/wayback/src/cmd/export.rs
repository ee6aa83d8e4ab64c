//! `wayback export nixos|nginx NAME`: an instance's plan as the configuration an admin would have written
//! by hand — a NixOS `containers.<name>` module plus its nginx virtual host, or an nginx server block.
//! Generated from the same `Plan` value `up` applied (also available as `up --dry-run --export FORMAT`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use wayback_core::export::{self, NginxOpts, NginxTls};
use wayback_core::{Config, Plan};

use wayback_engine::state::InstanceDir;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Nixos,
    Nginx,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(value_enum)]
    pub format: Format,
    /// The instance
    pub name: wayback_core::InstanceName,
    #[command(flatten)]
    pub nginx: NginxArgs,
}

/// Options of the nginx export.
#[derive(Debug, Clone, Args)]
pub struct NginxArgs {
    /// nginx: serve HTTPS with this certificate (e.g. the host's wildcard certificate for the parent domain)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// nginx: the certificate's key
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Render `plan` in `format`.
pub fn render(plan: &Plan, format: Format, nginx: &NginxArgs) -> String {
    match format {
        Format::Nixos => export::nixos(plan),
        Format::Nginx => {
            let tls = match (&nginx.tls_cert, &nginx.tls_key) {
                (Some(c), Some(k)) => Some(NginxTls {
                    certificate: c.clone(),
                    key: k.clone(),
                    port: 443,
                    redirect_http: true,
                }),
                _ => None,
            };
            export::nginx(
                plan,
                &NginxOpts {
                    tls,
                    ..NginxOpts::default()
                },
            )
        }
    }
}

pub fn run(cfg: &Config, args: ExportArgs) -> Result<ExitCode> {
    let plan = InstanceDir::open(cfg, &args.name)?.plan()?;
    print!("{}", render(&plan, args.format, &args.nginx));
    Ok(ExitCode::SUCCESS)
}
