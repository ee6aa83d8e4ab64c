//! Profiles from the host's systemd units (`wayback profile from-units UNIT…`): reads each unit's file and
//! drop-ins through systemd's search path, converts the directives wayback can honour into one profile
//! process per unit (in dependency order), and reports every directive it cannot honour as systemd would —
//! nothing is dropped silently. docs/units.md lists the directives.
//!
//! Pure apart from [`FsUnitSource`], the real-filesystem reader: all file access goes through the
//! [`UnitSource`] and [`EnvFileReader`] traits, and whether a path exists in the snapshot is the caller's
//! closure.
//!
//! Submodules: `parse` (file syntax, command lines, environment), `words` (quoting, specifiers, `$VAR`),
//! `search` (search path, drop-ins, symlinks), `context` (users, directories, environment), `convert` (one
//! unit → one process), `exec` (command lines, signals, sockets), `script` (shell wrappers), `order`
//! (start order), `tmpfiles` (runtime directories from tmpfiles.d), `directives` (what is supported),
//! `render` (TOML output).

mod context;
mod convert;
mod directives;
mod exec;
mod order;
mod parse;
mod render;
mod script;
mod search;
mod tmpfiles;
mod words;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

pub use render::render_toml;
pub use search::{EnvFileReader, FsUnitSource, UnitSource, SEARCH_PATH};
pub use tmpfiles::TMPFILES_PATH;

use crate::profile::{Bind, Profile};
use search::{load, UnitName};

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
    /// port of the unit's .socket.
    pub ready_ports: BTreeMap<String, u16>,
    /// The profile's `http_port`.
    pub http_port: Option<u16>,
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

/// `nginx` → `nginx.service`; names with a unit type suffix stay as they are.
fn normalize(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((_, t)) if UNIT_TYPES.contains(&t) => name.to_string(),
        _ => format!("{name}.service"),
    }
}

/// Build a profile named `profile_name` from the units `names` (`.service` optional), reading through `src`
/// and `env_files`. `exists_in_snapshot` says whether an absolute path exists in the snapshot (it decides
/// whether a `StateDirectory=` becomes a bind). Returns the profile and what the caller must tell the user.
pub fn profile_from_units(
    names: &[&str],
    profile_name: &str,
    src: &dyn UnitSource,
    env_files: &dyn EnvFileReader,
    exists_in_snapshot: &dyn Fn(&Path) -> bool,
    opts: &Options,
) -> Result<(Profile, Vec<Report>), UnitError> {
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
    let ports: BTreeMap<String, u16> = opts
        .ready_ports
        .iter()
        .map(|(k, v)| (normalize(k), *v))
        .collect();

    let mut reports = Vec::new();
    let mut converted = Vec::new();
    for u in &loaded {
        let mut socket = None;
        for s in exec::socket_names(u) {
            if let Some(n) = UnitName::parse(&s) {
                if let Some(l) = load(&n, src)? {
                    socket = Some(l);
                    break;
                }
            }
        }
        let port = ports
            .get(&u.name.full)
            .or_else(|| u.alias.as_ref().and_then(|a| ports.get(a)))
            .copied();
        let input = convert::Input {
            unit: u,
            socket: socket.as_ref(),
            ready_port: port,
            listed: &listed,
        };
        let first = reports.len();
        converted.push(convert::convert(
            &input,
            env_files,
            exists_in_snapshot,
            &mut reports,
        )?);
        // This unit's reports in file order: main file, drop-ins, then its socket's files.
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
    }
    let nodes: Vec<order::Node> = converted
        .iter()
        .zip(&loaded)
        .map(|(c, u)| order::Node {
            names: std::iter::once(c.id.clone())
                .chain(u.alias.clone())
                .collect(),
            after: c.after.clone(),
            before: c.before.clone(),
            wants: c.wants.clone(),
        })
        .collect();
    let sequence = order::order(&nodes).map_err(UnitError::Cycle)?;

    let mut profile = Profile {
        name: profile_name.to_string(),
        description: format!(
            "From systemd units: {}",
            sequence
                .iter()
                .map(|&i| match &converted[i].description {
                    Some(d) => format!("{} ({d})", converted[i].id),
                    None => converted[i].id.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        http_port: opts.http_port,
        ..Profile::default()
    };
    for &i in &sequence {
        let c = &converted[i];
        for b in &c.binds {
            // One bind can cover another (StateDirectory=postgresql postgresql/16): keep the outer one.
            if !profile
                .binds
                .iter()
                .any(|x| covers(x, b) || x.dest() == b.dest())
            {
                profile.binds.retain(|x| !covers(b, x));
                profile.binds.push(b.clone());
            }
        }
        for d in &c.dirs {
            if !profile.dirs.iter().any(|x| x.path == d.path) {
                profile.dirs.push(d.clone());
            }
        }
        profile.processes.push(c.process.clone());
    }
    // Runtime directories the host's tmpfiles.d creates for these units (not inside a bind).
    let units: Vec<tmpfiles::UnitPaths> = sequence
        .iter()
        .map(|&i| tmpfiles::UnitPaths {
            id: converted[i].id.clone(),
            prefix: loaded[i].name.prefix.clone(),
            mentions: converted[i].mentions.clone(),
        })
        .collect();
    let skip = |p: &Path| {
        profile.binds.iter().any(|b| p.starts_with(b.dest()))
            || profile.dirs.iter().any(|x| x.path == p)
    };
    let extra = tmpfiles::wanted_dirs(src, &units, &skip, &mut reports)?;
    profile.dirs.extend(extra);
    profile.validate().map_err(UnitError::Profile)?;
    Ok((profile, reports))
}

/// Whether bind `outer` already shows `inner`'s source at `inner`'s destination.
fn covers(outer: &Bind, inner: &Bind) -> bool {
    match (
        inner.dest().strip_prefix(outer.dest()),
        inner.path().strip_prefix(outer.path()),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
