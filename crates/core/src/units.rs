//! Profiles from the host's systemd units (`wayback profile from-units UNIT…`): reads each unit's file and
//! drop-ins through systemd's search path, converts the directives wayback can honour into one profile
//! process per unit (in dependency order), and reports every directive it cannot honour as systemd would —
//! nothing is dropped silently. docs/units.md lists the directives.
//!
//! Pure apart from [`FsUnitSource`], the real-filesystem reader: all file access goes through the
//! [`UnitSource`] and [`EnvFileReader`] traits, and whether a path exists in the snapshot is the caller's
//! closure.
//!
//! Besides the processes, it infers what `up --unit` needs to know about the service without the user
//! knowing it: the snapshot paths that hold its state (with the reason for each), its configuration
//! files, and the port that shows it is ready — from the units' directives and the apps' own configs.
//!
//! Submodules: `parse` (file syntax, command lines, environment), `words` (quoting, specifiers, `$VAR`),
//! `search` (search path, drop-ins, symlinks), `context` (users, directories, environment), `convert` (one
//! unit → one process), `service` (type, commands, readiness), `launch` (argv or wrapper, working
//! directory), `exec` (command lines, signals, sockets), `script` (shell wrappers), `order`
//! (start order), `tmpfiles` (runtime directories from tmpfiles.d), `directives` (what is supported),
//! `render` (TOML output), `view` (a unit's expanded commands and environment), `infer` (state paths and
//! config files from the directives), `appconf` (from the apps' configs), `state` (candidates → binds),
//! `summary` (collapsed reports, the empty-state check), `assemble` (the profile from the converted units).

mod appconf;
mod assemble;
mod context;
mod convert;
mod directives;
mod exec;
mod infer;
mod launch;
mod order;
mod parse;
mod render;
mod script;
mod search;
mod service;
mod state;
mod summary;
mod tmpfiles;
mod view;
mod words;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

pub use infer::{ConfigFile, ConfigKind};
pub use render::{render_conversion, render_toml};
pub use search::{resolve_links, EnvFileReader, FsUnitSource, UnitSource, SEARCH_PATH};
pub use state::{Candidate, PathRole, StatePaths};
pub use summary::{group_reports, nothing_bound, NothingBound, ReportGroup};
pub use tmpfiles::TMPFILES_PATH;

use crate::profile::Profile;
use search::{load, LoadedUnit, UnitName};
use view::View;

/// Something a unit asks for that wayback does not do exactly as systemd would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The unit's name, e.g. `nginx.service`.
    pub unit: String,
    /// The file and line of the directive, when it comes from one.
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    /// The directive's key (`ProtectSystem`), empty for a syntax problem.
    pub directive: String,
    /// The directive's value as written.
    pub value: String,
    pub kind: ReportKind,
    pub message: String,
}

/// How far a reported directive is honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReportKind {
    /// Not honoured at all.
    Ignored,
    /// Honoured in a different way (the message says how).
    Approximated,
    /// Honoured; the message says what wayback did (e.g. a state directory bound from the snapshot).
    Note,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(p), Some(l)) => write!(f, "{}:{l}: ", p.display())?,
            _ => write!(f, "{}: ", self.unit)?,
        }
        if !self.directive.is_empty() {
            write!(f, "{}=", self.directive)?;
            if !self.value.is_empty() {
                write!(f, "{}", self.value)?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Why no profile could be made. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error("no units given; name at least one, e.g. `wayback profile from-units nginx.service`")]
    NoUnits,
    #[error("invalid unit name {0:?}: use a systemd unit name such as nginx.service or postgresql@15-main.service")]
    BadName(String),
    #[error("{0} is not a service: only .service units become processes (a .socket's port is used for its service's readiness automatically)")]
    NotService(String),
    #[error("{unit} is a template; name an instance, e.g. {example}")]
    Template { unit: String, example: String },
    #[error("unit {unit} not found in the systemd search path ({searched}); check the name with `systemctl cat {unit}` on the host")]
    NotFound { unit: String, searched: String },
    #[error("unit {unit} is masked ({path} points to /dev/null); unmask it or leave it out")]
    Masked { unit: String, path: PathBuf },
    #[error("unit {0} is listed twice (possibly through an alias)")]
    Duplicate(String),
    #[error("cannot read {path} for unit {unit}: {source}")]
    Read {
        unit: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: unit {unit}: {message}", file.display())]
    Invalid {
        unit: String,
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("ordering cycle among the listed units: {} (each must start before the next, by After=/Before=); drop a unit from the list or override an ordering in a drop-in", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("the generated profile is invalid: {0}; this is a bug in wayback, please report it with the unit files")]
    Profile(String),
}

/// Choices the unit files cannot make.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Per unit (name as given, `.service` optional): a TCP port that shows the unit is ready. Overrides the
    /// port of the unit's .socket and of its app's config.
    pub ready_ports: BTreeMap<String, u16>,
    /// The profile's `http_port`.
    pub http_port: Option<u16>,
    /// `--no-bind`: state paths not to bind (a candidate at or below one of them is left out).
    pub no_bind: Vec<PathBuf>,
}

/// A unit's TCP port, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReadyPort {
    pub unit: String,
    pub port: u16,
    /// `given with --ready`, `ListenStream= of mariadb.socket`, `port 6379 in /etc/redis/redis.conf:138`,
    /// `redis-server's default port 6379 (…)`.
    pub source: String,
}

/// Everything the conversion made and found.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The profile; its binds are the state paths found in the snapshot, each with its reason.
    pub profile: Profile,
    /// What the units ask that wayback does not do exactly (collapse with [`group_reports`]).
    pub reports: Vec<Report>,
    /// The state paths looked for and what became of them (missing from the snapshot, left out, logs).
    pub state: StatePaths,
    /// The units' configuration files and directories (for drift detection against the snapshot's).
    pub configs: Vec<ConfigFile>,
    /// The TCP port known for each unit, in start order.
    pub ports: Vec<ReadyPort>,
    /// `--no-bind` paths that matched no state path of the units.
    pub no_bind_unmatched: Vec<PathBuf>,
}

const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "target",
    "timer",
    "path",
    "mount",
    "automount",
    "swap",
    "slice",
    "scope",
    "device",
];

/// A unit name as `systemctl` takes it (`cron` is `cron.service`), checked to be one valid unit file name
/// (systemd's characters only, not starting with a dot: never a `/`, `.` or `..`); `None` when it is not one.
pub fn unit_file_name(name: &str) -> Option<String> {
    if name.starts_with('.') {
        return None;
    }
    UnitName::parse(&normalize(name)).map(|n| n.full)
}

/// `nginx` → `nginx.service`; names with a unit type suffix stay as they are.
fn normalize(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((_, t)) if UNIT_TYPES.contains(&t) => name.to_string(),
        _ => format!("{name}.service"),
    }
}

/// Build a profile named `profile_name` from the units `names` (`.service` optional), reading unit files,
/// environment files and the apps' configs through `src` and `env_files`. `exists_in_snapshot` says
/// whether an absolute path exists in the snapshot: each state path the units name that it has becomes a
/// bind (with its reason).
pub fn profile_from_units(
    names: &[&str],
    profile_name: &str,
    src: &dyn UnitSource,
    env_files: &dyn EnvFileReader,
    exists_in_snapshot: &dyn Fn(&Path) -> bool,
    opts: &Options,
) -> Result<Conversion, UnitError> {
    let loaded = load_all(names, src)?;
    let ports: BTreeMap<String, u16> = opts
        .ready_ports
        .iter()
        .map(|(k, v)| (normalize(k), *v))
        .collect();
    let mut listed = BTreeSet::new();
    for u in &loaded {
        listed.extend(std::iter::once(u.name.full.clone()).chain(u.alias.clone()));
    }

    let mut reports = Vec::new();
    let mut units = Vec::new();
    for u in &loaded {
        let view = View::new(u, env_files)?;
        let app = appconf::inspect(&view, src);
        let mut candidates = infer::candidates(&view);
        candidates.extend(app.candidates.iter().cloned());
        let mut configs = infer::configs(&view);
        for c in &app.configs {
            if !configs.iter().any(|x| x.path == c.path) {
                configs.push(c.clone());
            }
        }
        let port = ports
            .get(&u.name.full)
            .or_else(|| u.alias.as_ref().and_then(|a| ports.get(a)))
            .copied();
        let converted = convert_one(u, src, env_files, port, &app, &listed, &mut reports)?;
        reports.extend(app.problems.iter().cloned());
        units.push(assemble::Unit {
            converted,
            candidates,
            configs,
            user: view.user.clone(),
            group: view.group.clone(),
            app_dirs: app.dirs,
        });
    }
    let nodes: Vec<order::Node> = units
        .iter()
        .zip(&loaded)
        .map(|(u, l)| order::Node {
            names: std::iter::once(u.converted.id.clone())
                .chain(l.alias.clone())
                .collect(),
            after: u.converted.after.clone(),
            before: u.converted.before.clone(),
            wants: u.converted.wants.clone(),
        })
        .collect();
    let sequence = order::order(&nodes).map_err(UnitError::Cycle)?;
    assemble::assemble(
        profile_name,
        &units,
        &loaded,
        &sequence,
        src,
        exists_in_snapshot,
        opts,
        reports,
    )
}

/// Find and read every named unit, rejecting what is not a service instance and duplicates.
fn load_all(names: &[&str], src: &dyn UnitSource) -> Result<Vec<LoadedUnit>, UnitError> {
    if names.is_empty() {
        return Err(UnitError::NoUnits);
    }
    let mut loaded = Vec::new();
    for raw in names {
        let full = normalize(raw);
        let name = UnitName::parse(&full).ok_or_else(|| UnitError::BadName(raw.to_string()))?;
        if name.suffix != "service" {
            return Err(UnitError::NotService(full));
        }
        if name.instance.as_deref() == Some("") {
            return Err(UnitError::Template {
                example: format!("{}@NAME.service", name.prefix),
                unit: full,
            });
        }
        let unit = load(&name, src)?.ok_or_else(|| UnitError::NotFound {
            unit: full.clone(),
            searched: SEARCH_PATH.join(", "),
        })?;
        loaded.push(unit);
    }
    let mut listed = BTreeSet::new();
    for u in &loaded {
        if !listed.insert(u.name.full.clone()) {
            return Err(UnitError::Duplicate(u.name.full.clone()));
        }
        listed.extend(u.alias.clone());
    }
    Ok(loaded)
}

/// Convert one unit (with its .socket) and put its reports in file order: main file, drop-ins, then its
/// socket's files.
fn convert_one(
    u: &LoadedUnit,
    src: &dyn UnitSource,
    env_files: &dyn EnvFileReader,
    ready_port: Option<u16>,
    app: &appconf::AppFacts,
    listed: &BTreeSet<String>,
    reports: &mut Vec<Report>,
) -> Result<convert::Converted, UnitError> {
    let mut socket = None;
    for s in exec::socket_names(u) {
        if let Some(n) = UnitName::parse(&s) {
            if let Some(l) = load(&n, src)? {
                socket = Some(l);
                break;
            }
        }
    }
    let input = convert::Input {
        unit: u,
        socket: socket.as_ref(),
        ready_port,
        app_port: app.port.as_ref(),
        listed,
    };
    let first = reports.len();
    let converted = convert::convert(&input, env_files, reports)?;
    let files: Vec<&Path> = std::iter::once(&u.fragment)
        .chain(&u.dropins)
        .chain(
            socket
                .iter()
                .flat_map(|s| std::iter::once(&s.fragment).chain(&s.dropins)),
        )
        .map(PathBuf::as_path)
        .collect();
    reports[first..].sort_by_key(|r| {
        let rank = r
            .file
            .as_deref()
            .and_then(|f| files.iter().position(|x| *x == f));
        (rank.is_none(), rank, r.line)
    });
    Ok(converted)
}
