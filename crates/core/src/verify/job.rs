//! A verify job: `/etc/wayback/verify.d/NAME.toml` (or any file given with `--job FILE`).
//!
//! ```toml
//! root = "/persist/.snapshots"        # the snapshots to verify: a ROOT as `wayback snapshots` takes it
//! timeout = "10m"                     # the whole run: start, checks, teardown
//! [run]                               # how to run a snapshot, as `up` takes it
//! unit = ["postgresql@15-main"]
//! [[check]]
//! name = "invoices"
//! sql = "SELECT count(*) FROM invoices"
//! min = 1000
//! ```
//!
//! Keys are `deny_unknown_fields`: a typo is an error. Errors name the file, the line and the key, and never
//! echo a value of the file (a job may hold passwords in `env`). The job's name is its file's stem.
//!
//! `[run]` keys are `up`'s flags (`unit`, `profile`, `exec`, `bind`, `env`, `port`, …); [`RunSpec::up_args`]
//! renders them as `up`'s own arguments so that the binary parses and checks them exactly as the command
//! line (one parser, one set of checks). Keys that would publish the instance (`publish`, `host`, `share`,
//! `basic_auth`, …) do not exist: a verify run is never reachable from outside.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::check::{Check, CheckSpec};
use crate::duration::Duration;

/// Longest job name: `verify-NAME-RUNID` must stay a valid instance name (32 characters).
pub const JOB_NAME_MAX: usize = 16;
/// A run's time limit when the job sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration(600);
/// Names that are subcommands of `verify`, not jobs.
const RESERVED: &[&str] = &["history"];

/// A job, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub name: String,
    pub file: PathBuf,
    pub description: Option<String>,
    /// Where the job's snapshots are (a snapper `.snapshots` or its parent, a btrbk dir, a directory of
    /// subvolumes).
    pub root: PathBuf,
    /// Which series under `root` (as `Snapshot::series` names it) when it holds more than one.
    pub series: Option<String>,
    /// A fixed selector (`@2w`, `@11921`) instead of "the newest not yet verified".
    pub snapshot: Option<String>,
    pub timeout: Duration,
    /// How long the service may take to answer [default: the config's ready_timeout].
    pub start_timeout: Option<Duration>,
    pub run: RunSpec,
    pub checks: Vec<Check>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    #[serde(default)]
    description: Option<String>,
    root: PathBuf,
    #[serde(default)]
    series: Option<String>,
    #[serde(default)]
    snapshot: Option<String>,
    #[serde(default)]
    timeout: Option<Duration>,
    #[serde(default)]
    start_timeout: Option<Duration>,
    run: RunSpec,
    #[serde(default, rename = "check")]
    checks: Vec<CheckSpec>,
}

/// How to run a snapshot: `up`'s flags, by the same names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSpec {
    pub unit: Vec<String>,
    pub profile: Option<String>,
    pub exec: Vec<String>,
    pub user: Option<String>,
    pub env: BTreeMap<String, String>,
    pub bind: Vec<String>,
    pub no_bind: Vec<PathBuf>,
    pub ready: BTreeMap<String, u16>,
    pub allow_empty: bool,
    pub bind_config: bool,
    /// The service's HTTP port: its readiness, and the default port of `http` checks.
    pub port: Option<u16>,
    /// The hostname the app expects (`up --original-host`): `http` checks send it as `Host`.
    pub original_host: Option<String>,
    pub host_path: Vec<PathBuf>,
    pub no_host_path: Vec<PathBuf>,
    pub unmask: Vec<PathBuf>,
    pub chown: bool,
    pub map_uid: Vec<String>,
    pub map_gid: Vec<String>,
    pub overlay: bool,
    pub allow_egress: Vec<String>,
    pub boot: bool,
    pub mask: Vec<String>,
    pub no_default_masks: bool,
    /// Assemble each run from the moment of its snapshot (`up LIVE_ROOT --at DATE`): every bind path from
    /// the snapshot of the subvolume holding it, newest at or before that date. The value is the live root.
    pub at: Option<PathBuf>,
    pub strict_consistency: bool,
}

/// Why a job file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid verify job {}: ", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        if let Some(k) = &self.key {
            write!(f, "key `{k}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for JobError {}

impl JobError {
    fn new(file: &Path, key: Option<&str>, message: impl Into<String>) -> JobError {
        JobError {
            file: file.into(),
            line: None,
            key: key.map(str::to_string),
            message: message.into(),
        }
    }
}

/// The job name a file gives: its stem, checked.
pub fn name_of(file: &Path) -> Result<String, JobError> {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let ok = !stem.is_empty()
        && stem.len() <= JOB_NAME_MAX
        && stem
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !stem.starts_with('-')
        && !stem.ends_with('-')
        && !RESERVED.contains(&stem);
    if ok {
        return Ok(stem.to_string());
    }
    Err(JobError::new(
        file,
        None,
        format!(
            "the file name is the job's name: use 1-{JOB_NAME_MAX} characters a-z, 0-9 and '-' (not {}), \
             e.g. /etc/wayback/verify.d/pg-main.toml",
            RESERVED.join(", ")
        ),
    ))
}

/// Read and validate a job file.
pub fn load(file: &Path) -> Result<Job, JobError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| JobError::new(file, None, format!("cannot read it: {e}")))?;
    parse(&text, file)
}

/// Validate a job's text; `file` names it in errors and gives the job its name.
pub fn parse(text: &str, file: &Path) -> Result<Job, JobError> {
    let name = name_of(file)?;
    let de = toml::Deserializer::new(text);
    let raw: JobFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let line = e
            .inner()
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let key = key_path(e.path());
        JobError {
            file: file.into(),
            line,
            key,
            message: without_values(e.inner().message()),
        }
    })?;
    let run = raw.run;
    let runs = [
        !run.unit.is_empty(),
        run.profile.is_some(),
        !run.exec.is_empty(),
        run.boot,
    ];
    if !runs.iter().any(|r| *r) {
        return Err(JobError::new(
            file,
            Some("run"),
            "nothing to run: set unit (the host's systemd units), profile, exec or boot, as `up` takes them",
        ));
    }
    let mut checks = Vec::new();
    for (i, spec) in raw.checks.into_iter().enumerate() {
        let c = spec
            .validate(i + 1, run.port, run.original_host.as_deref())
            .map_err(|(key, message)| {
                JobError::new(file, Some(&format!("check[{}].{key}", i + 1)), message)
            })?;
        if checks.iter().any(|o: &Check| o.name == c.name) {
            return Err(JobError::new(
                file,
                Some(&format!("check[{}].name", i + 1)),
                "two checks have this name: names tell checks apart in the history",
            ));
        }
        checks.push(c);
    }
    Ok(Job {
        name,
        file: file.into(),
        description: raw.description,
        root: raw.root,
        series: raw.series,
        snapshot: raw.snapshot,
        timeout: raw.timeout.unwrap_or(DEFAULT_TIMEOUT),
        start_timeout: raw.start_timeout,
        run,
        checks,
    })
}

/// `check[2].status` (arrays counted from 1, as the error's line shows them).
fn key_path(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{}]", index + 1)),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A deserializer's message with the values it quotes left out: `invalid type: string "hunter2", expected
/// u16` → `invalid type, expected u16`. Messages that name keys only are kept.
fn without_values(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or(msg).trim();
    for lead in ["invalid type", "invalid value"] {
        if let Some(rest) = first.strip_prefix(lead) {
            return match rest.rfind(", expected ") {
                Some(i) => format!("{lead}{}", &rest[i..]),
                None => lead.to_string(),
            };
        }
    }
    if let Some(rest) = first.strip_prefix("unknown variant") {
        return match rest.find(", expected ") {
            Some(i) => format!("unknown value{}", &rest[i..]),
            None => "unknown value".into(),
        };
    }
    if first.starts_with("invalid duration") {
        return "not a duration (examples: 90s, 15m, 24h, 2d)".into();
    }
    let names_keys_only = first.starts_with("unknown field")
        || first.starts_with("missing field")
        || first.starts_with("duplicate")
        || first.starts_with("invalid length");
    if names_keys_only {
        return first.to_string();
    }
    // TOML syntax errors say what was expected, not what was found.
    if !first.contains('"') && !first.contains('\'') {
        return first.to_string();
    }
    "invalid value".into()
}

impl RunSpec {
    /// `up`'s arguments for this run (after `up SNAPSHOT`), one token per value (`--flag=value`, so a value
    /// is never taken for a flag).
    pub fn up_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        let mut opt = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(format!("--{flag}={v}"));
            }
        };
        opt("profile", self.profile.clone());
        opt("user", self.user.clone());
        opt("port", self.port.map(|p| p.to_string()));
        opt("original-host", self.original_host.clone());
        let lists: [(&str, Vec<String>); 13] = [
            ("unit", self.unit.clone()),
            ("exec", self.exec.clone()),
            ("bind", self.bind.clone()),
            ("no-bind", paths(&self.no_bind)),
            ("host-path", paths(&self.host_path)),
            ("no-host-path", paths(&self.no_host_path)),
            ("unmask", paths(&self.unmask)),
            ("map-uid", self.map_uid.clone()),
            ("map-gid", self.map_gid.clone()),
            ("allow-egress", self.allow_egress.clone()),
            ("mask", self.mask.clone()),
            (
                "env",
                self.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            ),
            (
                "ready",
                self.ready.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            ),
        ];
        for (flag, values) in lists {
            a.extend(values.into_iter().map(|v| format!("--{flag}={v}")));
        }
        let flags = [
            ("allow-empty", self.allow_empty),
            ("bind-config", self.bind_config),
            ("chown", self.chown),
            ("overlay", self.overlay),
            ("boot", self.boot),
            ("no-default-masks", self.no_default_masks),
            ("strict-consistency", self.strict_consistency),
        ];
        a.extend(
            flags
                .iter()
                .filter(|(_, on)| *on)
                .map(|(f, _)| format!("--{f}")),
        );
        a
    }
}

fn paths(p: &[PathBuf]) -> Vec<String> {
    p.iter().map(|p| p.display().to_string()).collect()
}

#[cfg(test)]
mod tests;
