//! The command line (clap). Parsing only: values are validated into typed forms here ("low" arguments);
//! resolving them against the system happens in the commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use wayback_core::plan::Publish;
use wayback_core::{Duration, InstanceName};

const AFTER_HELP: &str = "\
Examples:
  wayback up /persist/.snapshots/11921/snapshot --profile postgresql --publish 15432:5432
  wayback up /srv/snaps/www.20261114T1000 --profile nginx-static --host old-www.example.org --ttl 4h
  wayback ls
  wayback down postgresql-1

Exit status: 0 success, 1 failure, 2 bad input (nothing was created).";

#[derive(Debug, Parser)]
#[command(name = "wayback", version, about = "Resurrect a btrfs snapshot as a live, isolated, temporary copy of a service on its own hostname", after_help = AFTER_HELP)]
pub struct Cli {
    /// Config file [default: /etc/wayback/config.toml if it exists, else built-in defaults]
    #[arg(long, global = true, env = "WAYBACK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// No progress lines on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Start an instance from a snapshot and keep it running in the foreground until Ctrl-C, SIGTERM, its
    /// TTL, or `wayback down NAME`; then remove everything it created
    #[command(after_help = crate::cmd::snapshots::SELECTOR_HELP)]
    Up(Box<UpArgs>),
    /// Run the daemon: host the proxy and the instances handed to it with `up --detach`; adopt running
    /// instances and remove dead ones on start
    Serve,
    /// Stop instances and remove everything they created
    Down(DownArgs),
    /// List instances
    Ls(JsonArg),
    /// Show one instance
    Status(StatusArgs),
    /// Print an instance's service output
    Logs(LogsArgs),
    /// Run a command inside a running instance (its namespaces, confined like its processes), e.g.
    /// `wayback exec pg-1 -- psql -c 'select 1'`; exits with the command's status
    Exec(crate::cmd::exec::ExecArgs),
    /// Open a shell inside a running instance (as root, or --user)
    Shell(crate::cmd::exec::ShellArgs),
    /// Give an instance more time: its expiry moves DURATION later (e.g. `wayback extend pg-1 12h`)
    Extend {
        name: InstanceName,
        duration: Duration,
    },
    /// The web console of `wayback serve`: `wayback console token` prints a one-time login token
    Console(crate::cmd::console::ConsoleArgs),
    /// Protect an instance from its TTL and idle expiry (`--until TIME`), or end that (`--off`)
    Keep(crate::cmd::extend::KeepArgs),
    /// Swap a running instance to another snapshot: a new clone, its processes restarted, the same name,
    /// hostname, gate and share link (e.g. `wayback reset pg-1 @11900`); the old clone is removed
    #[command(after_help = crate::cmd::snapshots::SELECTOR_HELP)]
    Reset(crate::cmd::reset::ResetArgs),
    /// Tear down instances whose owning process is gone (after a crash or kill -9)
    Gc(JsonArg),
    // --- Find (issue 3) ---
    /// List the snapshots (snapper, btrbk, plain subvolumes) under ROOTs, sorted by date
    Snapshots(crate::cmd::snapshots::SnapshotsArgs),
    /// Which snapshots hold a path or glob, grouped into runs, so the last good snapshot is obvious
    Find(crate::cmd::find::FindArgs),
    /// Added, removed and modified paths between two snapshots, or a snapshot and its live subvolume
    Diff(crate::cmd::diff::DiffArgs),
    // --- File history (issue 16) ---
    /// The distinct versions of a file across its snapshots (or, with --deleted, what live lost under a directory)
    Versions(crate::cmd::versions::VersionsArgs),
    /// Print one version of a file from a snapshot
    Show(crate::cmd::show::ShowArgs),
    /// Copy a file or directory out of a snapshot (a reflink on the same btrfs), keeping owner, mode, times, xattrs
    Restore(crate::cmd::restore::RestoreArgs),
    // --- end Find ---
    /// Prove snapshots restorable: bring each up (isolated, unpublished), run the job's checks, tear it
    /// down and record the result; `verify history` shows past runs (docs/verify.md)
    Verify(crate::cmd::verify::VerifyArgs),
    /// List and show profiles; generate one from the host's systemd units
    Profile(crate::cmd::profile::ProfileArgs),
    /// Print an instance's plan as a NixOS container module (with its nginx vhost) or an nginx vhost
    Export(crate::cmd::export::ExportArgs),
    /// The same resurrection on Kubernetes, from VolumeSnapshots: up, ls, down, extend, controller, manifests
    K8s(crate::cmd::k8s::K8sArgs),
    /// The version of this binary and the file formats and protocol it reads and writes
    Version(JsonArg),
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) generated from this command line definition
    #[command(hide = true)]
    Manpage,
    /// (internal) the init process inside an instance's container
    #[command(name = "__init", hide = true)]
    Init {
        spec: PathBuf,
        /// The machine name, only so the process can be found by it
        machine: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The snapshot to resurrect: a btrfs subvolume path (e.g. /persist/.snapshots/11921/snapshot) or a
    /// selector (@11921, /persist@2026-11-14, @2w: see below)
    /// With --at: the live root the bind paths are relative to [default: /]
    #[arg(value_name = "SNAPSHOT", required_unless_present = "at")]
    pub snapshot: Option<String>,
    /// Assemble the instance from the moment TIME (e.g. 2026-11-14T10:00, 2026-11-14, 2w): for every bind
    /// path, the snapshot of the subvolume holding it on the live system, newest at or before TIME
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Refuse (exit 2) when the chosen snapshots are further apart than max_skew (default 15m)
    #[arg(long)]
    pub strict_consistency: bool,
    /// Instance name [default: <profile>-<n>]
    #[arg(long, short)]
    pub name: Option<String>,
    /// Built-in profile (postgresql, nginx-static, mariadb), a profile in the config's profile_dirs, or a file
    #[arg(long, short, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Bind PATH of the snapshot read-write (from the clone) into the container at DEST [default: PATH]
    #[arg(long, short, value_name = "PATH[:DEST]", value_parser = parse_bind)]
    pub bind: Vec<String>,
    /// Run these systemd units of the host as systemd would (e.g. --unit redis-server), on the state they
    /// keep in the snapshot: StateDirectory=, the data directory named in the app's config and the like are
    /// found and bound by themselves (see --dry-run for what and why)
    #[arg(long, value_name = "UNIT", conflicts_with_all = ["profile", "exec"])]
    pub unit: Vec<String>,
    /// Do not bind this path (or anything below it) though the units or the profile name it (repeatable)
    #[arg(long, value_name = "PATH")]
    pub no_bind: Vec<std::path::PathBuf>,
    /// With --unit: a TCP port that shows UNIT is ready, e.g. mariadb=3306 (repeatable; usually found in
    /// the unit or the app's config)
    #[arg(long, value_name = "UNIT=PORT", value_parser = crate::cmd::profile::parse_ready, requires = "unit")]
    pub ready: Vec<(String, u16)>,
    /// Run even though nothing of the snapshot is bound (the service starts on empty state)
    #[arg(long)]
    pub allow_empty: bool,
    /// Accept a writable (live) subvolume as SNAPSHOT: the instance is a fork of today's state, not an old
    /// one
    #[arg(long)]
    pub from_live: bool,
    /// Where the units' configuration files are in the snapshot and differ from the host's, use the
    /// snapshot's copies (read-only) instead
    #[arg(long)]
    pub bind_config: bool,
    /// Whose software runs the service: `host` (the default: the host's /usr and /etc, refused when they
    /// cannot run the snapshot's state, e.g. PostgreSQL data of a major the host lacks) or `snapshot` (the
    /// snapshot's own /usr, /etc and /nix read-only from the clone, its units with --unit; needs a whole-root
    /// snapshot); the plan says which and why
    #[arg(long, value_name = "snapshot|host", value_parser = ["snapshot", "host"], conflicts_with = "boot")]
    pub software: Option<String>,
    /// List every directive report of --unit, not one line per kind
    #[arg(long, short)]
    pub verbose: bool,
    /// Run CMD (with /bin/sh -c) instead of the profile's processes; repeat for several, started in order
    #[arg(long, value_name = "CMD")]
    pub exec: Vec<String>,
    /// Set an environment variable for every process (repeatable), e.g. an app's maintenance or read-only switch
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// User to run --exec commands as [default: root]
    #[arg(long, short, requires = "exec")]
    pub user: Option<String>,
    /// The service's HTTP port inside the instance; gets a hostname on the proxy
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Hostname for the HTTP route [default: <name>.<base_domain>]
    #[arg(long, value_name = "HOSTNAME")]
    pub host: Option<String>,
    /// Forward a host TCP port into the instance, e.g. 15432:5432 or 0.0.0.0:15432:5432 [address default: 127.0.0.1]
    #[arg(long, value_name = "[ADDR:]HOSTPORT:PORT")]
    pub publish: Vec<Publish>,
    /// Remove the instance after this long, e.g. 90m, 24h, 2d [default: config default_ttl]
    #[arg(long)]
    pub ttl: Option<Duration>,
    /// Also remove the instance after this long without a proxied HTTP request, e.g. 30m
    #[arg(long, value_name = "DURATION")]
    pub idle: Option<Duration>,
    /// Also show this host path read-only in the container (repeatable), e.g. /srv/app or /opt/tool
    #[arg(long, value_name = "PATH")]
    pub host_path: Vec<std::path::PathBuf>,
    /// Leave out one of the default host paths (/etc, /nix, /run/current-system, /run/booted-system,
    /// /run/wrappers, /opt)
    #[arg(long, value_name = "PATH")]
    pub no_host_path: Vec<std::path::PathBuf>,
    /// Show a masked host secret after all (repeatable), e.g. /etc/ssl/private for a service whose own TLS
    /// configuration needs its key; masked by default: /etc/shadow, /etc/gshadow, SSH host keys,
    /// /etc/ssl/private, /etc/wayback and the config's mask_host_paths
    #[arg(long, value_name = "PATH")]
    pub unmask: Vec<std::path::PathBuf>,
    /// When the snapshot's files belong to other uids/gids than this host's users of the same name, change
    /// them in the clone (never in the snapshot)
    #[arg(long)]
    pub chown: bool,
    /// Map a snapshot uid to a host user in the clone, e.g. 991:www-data (implies --chown)
    #[arg(long, value_name = "UID:USER", value_parser = parse_map_uid)]
    pub map_uid: Vec<(u32, u32)>,
    /// Map a snapshot gid to a host group in the clone, e.g. 991:www-data (implies --chown)
    #[arg(long, value_name = "GID:GROUP", value_parser = parse_map_gid)]
    pub map_gid: Vec<(u32, u32)>,
    /// Clone with an overlay instead of a btrfs snapshot: accepts a writable directory that is not a btrfs
    /// subvolume as SNAPSHOT (it is never written, but must not change while the instance runs; read-only
    /// ones need no flag), or a subvolume on a filesystem mounted read-only
    #[arg(long)]
    pub overlay: bool,
    /// Let the instance open connections to ADDR:PORT (TCP, or udp:ADDR:PORT); by default it can open none
    #[arg(long, value_name = "[udp:]ADDR:PORT")]
    pub allow_egress: Vec<wayback_core::egress::Egress>,
    /// Guard the hostname with a one-time link (printed once): the first visit trades it for a session
    /// cookie; the link stops working after that or after VALID [default: 15m]
    #[arg(long, value_name = "VALID", num_args = 0..=1, default_missing_value = "15m")]
    pub share: Option<Duration>,
    /// Guard the hostname with HTTP basic auth as USER (password from --basic-auth-file, else prompted)
    #[arg(long, value_name = "USER")]
    pub basic_auth: Option<String>,
    /// The basic-auth password: the first line of FILE
    #[arg(long, value_name = "FILE", requires = "basic_auth")]
    pub basic_auth_file: Option<PathBuf>,
    /// Only clients from this network may pass the proxy (repeatable), e.g. 192.0.2.0/24 or 2001:db8::/32
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<ipnet::IpNet>,
    /// Hostname masquerade: show the app its usual hostname (e.g. cloud.example.org, or http://host:port)
    /// and rewrite it back to the instance's in Location, Set-Cookie, CORS headers and text bodies;
    /// `auto`: the hostname the app's front page redirects or links to, found after it answers
    #[arg(long, value_name = "HOST|auto")]
    pub original_host: Option<String>,
    /// Do not check the app's front page for a pinned hostname after it answers (without --original-host,
    /// a front page that redirects to another hostname stops the start)
    #[arg(long)]
    pub no_host_check: bool,
    /// With --original-host: rewrite headers only, not response bodies
    #[arg(long, requires = "original_host")]
    pub no_rewrite_bodies: bool,
    /// Boot mode: SNAPSHOT is a whole root filesystem; boot its own init (systemd) instead of host mode
    #[arg(long, conflicts_with_all = ["exec", "unit", "bind"])]
    pub boot: bool,
    /// Boot mode: also mask this unit (repeatable); every timer, mail and cron unit is masked by default
    #[arg(long, value_name = "UNIT", requires = "boot")]
    pub mask: Vec<String>,
    /// Boot mode: do not mask timers, mail and cron units
    #[arg(long, requires = "boot")]
    pub no_default_masks: bool,
    /// Who publishes the hostname: wayback's built-in proxy, or the host's nginx or Caddy (see
    /// docs/behind-your-proxy.md) [default: the config's [proxy] driver]
    #[arg(long, value_name = "DRIVER", value_parser = proxy_driver())]
    pub proxy: Option<wayback_core::drivers::ProxyDriver>,
    /// Hand the instance to the daemon (`wayback serve`) and return once it answers
    #[arg(long, short = 'd', conflicts_with_all = ["dry_run", "export"])]
    pub detach: bool,
    /// Print the plan and create nothing
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the plan as a NixOS container module or an nginx vhost instead
    #[arg(long, value_enum, requires = "dry_run", value_name = "FORMAT")]
    pub export: Option<crate::cmd::export::Format>,
    #[command(flatten)]
    pub export_nginx: crate::cmd::export::NginxArgs,
    /// Machine-readable output: the plan (with --dry-run) or one JSON line when the instance is ready
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Instance names
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<InstanceName>,
    /// Every instance
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct JsonArg {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub name: InstanceName,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    pub name: InstanceName,
    /// Keep printing new output
    #[arg(long, short)]
    pub follow: bool,
}

fn parse_map(s: &str, users: bool) -> Result<(u32, u32), String> {
    let (from, to) = s
        .split_once(':')
        .ok_or_else(|| format!("expected ID:NAME, got {s:?}"))?;
    let from: u32 = from
        .parse()
        .map_err(|_| format!("{from:?} is not a numeric id"))?;
    let to = match to.parse::<u32>() {
        Ok(id) => id,
        Err(_) if users => nix::unistd::User::from_name(to)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
            .ok_or_else(|| format!("no user {to:?} on this host"))?,
        Err(_) => nix::unistd::Group::from_name(to)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
            .ok_or_else(|| format!("no group {to:?} on this host"))?,
    };
    Ok((from, to))
}

fn parse_map_uid(s: &str) -> Result<(u32, u32), String> {
    parse_map(s, true)
}

fn parse_map_gid(s: &str) -> Result<(u32, u32), String> {
    parse_map(s, false)
}

/// `[SELECTOR:]PATH[:DEST]`: at most three parts (more would be dropped silently).
fn parse_bind(s: &str) -> Result<String, String> {
    if s.split(':').count() > 3 {
        return Err(format!(
            "expected [SELECTOR:]PATH[:DEST], got {s:?} (more than three ':'-separated parts)"
        ));
    }
    Ok(s.to_string())
}

pub(crate) fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// `--proxy builtin|nginx|caddy`, listed in `--help` and completions.
fn proxy_driver() -> impl clap::builder::TypedValueParser<Value = wayback_core::drivers::ProxyDriver>
{
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(wayback_core::drivers::ProxyDriver::NAMES)
        .try_map(|s| s.parse::<wayback_core::drivers::ProxyDriver>())
}
