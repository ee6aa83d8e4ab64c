//! wayback: turn a btrfs snapshot into a live, isolated, temporary copy of a service on its own hostname.
//!
//! The binary is thin: it parses the command line, loads the config, runs one command (each in `cmd/`:
//! parse → call the engine → print) and maps its error to an exit code. The engine (planning, the journal,
//! kernel objects, instances, the daemon) is `wayback-engine`; the pure logic lives in `wayback-core`;
//! network namespaces in `wayback-net`; the reverse proxy in `wayback-proxy`.

mod cli;
mod cmd;
mod exit;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use wayback_core::Config;

use crate::cli::{Cli, Cmd};
use wayback_engine::progress::Progress;
use wayback_engine::{daemon, error, init};

fn main() -> ExitCode {
    // The container's init (`/.wayback-init __init SPEC MACHINE`, as `wayback_core::nspawn` starts it) is
    // run before the command line is parsed: clap's command tree would be built in every container's PID 1,
    // and that memory is private to each.
    let args: Vec<std::ffi::OsString> = std::env::args_os().take(5).collect();
    if args.len() <= 4 && args.get(1).is_some_and(|a| a == "__init") {
        if let Some(spec) = args
            .get(2)
            .filter(|s| !s.as_encoded_bytes().starts_with(b"-"))
        {
            return run_init(std::path::Path::new(spec));
        }
    }
    // Before anything else: the init binary this process's containers will run (an upgrade may replace
    // the file later).
    wayback_engine::sys::initbin::hold();
    let cli = Cli::parse();
    // The container's init must stay single-threaded: handle it before any runtime starts.
    if let Cmd::Init { spec, .. } = &cli.cmd {
        return run_init(spec);
    }
    // Entering a container's mount namespace needs a single-threaded process: also before any runtime.
    if matches!(cli.cmd, Cmd::Exec(_) | Cmd::Shell(_)) {
        return inside(cli);
    }
    let long_running = matches!(&cli.cmd, Cmd::Up(a) if !a.dry_run)
        || matches!(cli.cmd, Cmd::Serve)
        || matches!(&cli.cmd, Cmd::Verify(a) if a.runs_instances());
    if !long_running {
        default_sigpipe();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WAYBACK_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wayback: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wayback: error: {}", error::render(&e));
            ExitCode::from(exit::code(&e))
        }
    }
}

fn run_init(spec: &std::path::Path) -> ExitCode {
    match init::main(spec) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("wayback-init: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `exec` and `shell`: no async runtime, no threads.
fn inside(cli: Cli) -> ExitCode {
    default_sigpipe();
    let run = || {
        let cfg = Config::load(Config::locate(cli.config.as_deref(), None).as_deref())?;
        match cli.cmd {
            Cmd::Exec(a) => cmd::exec::exec(&cfg, a),
            Cmd::Shell(a) => cmd::exec::shell(&cfg, a),
            _ => unreachable!("only exec and shell run here"),
        }
    };
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wayback: error: {}", error::render(&e));
            ExitCode::from(exit::code(&e))
        }
    }
}

/// Short-lived commands die quietly on a closed pipe (`wayback ls | head`), like other Unix tools. Not for
/// `up`, which hosts network servers and child processes and must never die of SIGPIPE.
fn default_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_DFL installs no handler code; called before any thread
    // that could rely on the old disposition is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let progress = Progress {
        quiet: cli.quiet,
        sink: None,
    };
    let cfg = Config::load(Config::locate(cli.config.as_deref(), None).as_deref())?;
    match cli.cmd {
        Cmd::Up(args) => cmd::up::run(&cfg, *args, progress).await,
        Cmd::Serve => {
            let hooks: std::sync::Arc<dyn wayback_engine::console::Hooks> =
                std::sync::Arc::new(cmd::console::CliHooks);
            daemon::serve(cfg, progress, Some(hooks)).await
        }
        Cmd::Console(a) => cmd::console::run(&cfg, a),
        Cmd::Down(a) => cmd::down::down(&cfg, a.names, a.all, progress).await,
        Cmd::Ls(a) => cmd::status::ls(&cfg, a.json),
        Cmd::Status(a) => cmd::status::status(&cfg, &a.name, a.json),
        Cmd::Logs(a) => cmd::logs::logs(&cfg, &a.name, a.follow).await,
        Cmd::Extend { name, duration } => cmd::extend::extend(&cfg, &name, duration),
        Cmd::Keep(a) => cmd::extend::keep(&cfg, a),
        Cmd::Reset(a) => cmd::reset::run(&cfg, a, progress).await,
        Cmd::Gc(a) => cmd::down::gc(&cfg, a.json, progress).await,
        // Find (issue 3)
        Cmd::Snapshots(a) => cmd::snapshots::run(&cfg, a).await,
        Cmd::Find(a) => cmd::find::run(&cfg, a).await,
        Cmd::Diff(a) => cmd::diff::run(&cfg, a).await,
        // File history (issue 16)
        Cmd::Versions(a) => cmd::versions::run(&cfg, a).await,
        Cmd::Show(a) => cmd::show::run(&cfg, a).await,
        Cmd::Restore(a) => cmd::restore::run(&cfg, a).await,
        Cmd::Verify(a) => {
            let path = Config::locate(cli.config.as_deref(), None);
            cmd::verify::run(&cfg, path, a, progress).await
        }
        Cmd::Profile(a) => cmd::profile::run(&cfg, a, progress.quiet),
        Cmd::Export(a) => cmd::export::run(&cfg, a),
        Cmd::K8s(a) => cmd::k8s::run(&cfg, a, progress).await,
        Cmd::Version(a) => cmd::version::run(a.json),
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "wayback",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Manpage => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Init { .. } | Cmd::Exec(_) | Cmd::Shell(_) => {
            unreachable!("handled before the runtime starts")
        }
    }
}
