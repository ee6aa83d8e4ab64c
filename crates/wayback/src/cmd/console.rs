//! `wayback console token` (a one-time login token for the web console of `wayback serve`), and the
//! [`Hooks`] the binary hands to the console: the CLI's own `up` argument parsing and its `versions`,
//! `diff PATH` and `show` commands, so the console checks and reports exactly as the CLI does.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use wayback_core::plan::UpRequest;
use wayback_core::{Config, InstanceName};
use wayback_engine::console::{HookFuture, Hooks};
use wayback_engine::error::BadInput;
use wayback_engine::progress::Progress;

use crate::cli::{Cli, Cmd};

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    #[command(subcommand)]
    pub cmd: ConsoleCmd,
}

#[derive(Debug, Subcommand)]
pub enum ConsoleCmd {
    /// Print a one-time login token for the web console (valid for [console] token_ttl, default 15m)
    Token,
}

pub fn run(cfg: &Config, a: ConsoleArgs) -> Result<ExitCode> {
    match a.cmd {
        ConsoleCmd::Token => {
            let token = wayback_engine::console::auth::new_token(cfg)?;
            println!("{token}");
            let scheme = if cfg.console.tls() { "https" } else { "http" };
            eprintln!(
                "log in at {scheme}://{}/login within {} (the token works once)",
                cfg.console.listen, cfg.console.token_ttl
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The CLI's commands, for the console.
pub struct CliHooks;

impl Hooks for CliHooks {
    fn up_request(&self, cfg: &Config, args: Vec<String>) -> Result<UpRequest> {
        let argv = ["wayback", "up"].into_iter().map(String::from).chain(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| BadInput::new(e.render().to_string()))?;
        let Cmd::Up(a) = cli.cmd else {
            return Err(BadInput::new("not an up request").into());
        };
        if a.detach || a.dry_run {
            return Err(BadInput::new("--detach and --dry-run are the console's to choose").into());
        }
        let quiet = Progress {
            quiet: true,
            sink: None,
        };
        crate::cmd::up::request::request(cfg, &a, &quiet)
    }

    fn versions(&self, cfg: &Config, path: &str) -> Result<serde_json::Value> {
        crate::cmd::versions::report(cfg, path)
    }

    fn file_diff(&self, cfg: &Config, path: &str, from: &str) -> Result<serde_json::Value> {
        crate::cmd::filediff::report(cfg, path, from, None, &[])
    }

    fn show(&self, cfg: &Config, path: &str, from: &str) -> Result<Vec<u8>> {
        crate::cmd::show::bytes(cfg, path, from)
    }

    fn find(&self, cfg: &Config, pattern: &str) -> Result<serde_json::Value> {
        let args = crate::cmd::find::FindArgs {
            pattern: pattern.to_string(),
            range: None,
            root: Vec::new(),
            json: true,
        };
        crate::cmd::find::report(cfg, &args)
    }

    fn down<'a>(&'a self, cfg: &'a Config, name: &'a InstanceName) -> HookFuture<'a, ()> {
        Box::pin(async move {
            let quiet = Progress {
                quiet: true,
                sink: None,
            };
            crate::cmd::down::down(cfg, vec![name.clone()], false, quiet)
                .await
                .map(|_| ())
        })
    }
}
