//! Profiles: what `up` needs to run a service on a snapshot (binds, processes, directories, readiness,
//! HTTP port). A documented TOML format (docs/profiles.md); built-ins are compiled in, user profiles come
//! from the config's `profile_dirs` or a file path. Pure apart from reading profile files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Built-in profiles, by name.
pub const BUILTINS: &[(&str, &str)] = &[
    ("postgresql", include_str!("../profiles/postgresql.toml")),
    (
        "nginx-static",
        include_str!("../profiles/nginx-static.toml"),
    ),
    ("mariadb", include_str!("../profiles/mariadb.toml")),
    ("nginx-php", include_str!("../profiles/nginx-php.toml")),
    ("nextcloud", include_str!("../profiles/nextcloud.toml")),
];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Paths inside the snapshot to bind read-write (from the clone) into the container.
    #[serde(default)]
    pub binds: Vec<Bind>,
    /// Directories created in the container's tmpfs before the processes start.
    #[serde(default)]
    pub dirs: Vec<DirSpec>,
    /// Processes, started in order; each may wait for its own readiness before the next starts.
    #[serde(default, rename = "process")]
    pub processes: Vec<Process>,
    /// Port inside the instance that speaks HTTP: gets a hostname route on the proxy.
    #[serde(default)]
    pub http_port: Option<u16>,
    /// Readiness of the whole instance, checked from the host. Defaults to a TCP check of `http_port`, else of
    /// the last process's `ready.tcp`.
    #[serde(default)]
    pub ready: Option<Ready>,
}

/// A bind: either `"/var/lib/x"` or `{ path = "/var/lib/x", dest = "/srv/x" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Bind {
    Path(PathBuf),
    Full {
        path: PathBuf,
        #[serde(default)]
        dest: Option<PathBuf>,
        /// A snapshot selector (`@N`, `ROOT@N`, `@2026-11-14`, a path) for this path's own subvolume,
        /// instead of the main SNAPSHOT.
        #[serde(default)]
        source: Option<String>,
        /// Why the bind is there, for the plan (e.g. `StateDirectory=redis of redis-server.service`); set by
        /// `--unit` for the paths it infers. Informational only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl Bind {
    pub fn path(&self) -> &Path {
        match self {
            Bind::Path(p) | Bind::Full { path: p, .. } => p,
        }
    }
    pub fn dest(&self) -> &Path {
        match self {
            Bind::Path(p)
            | Bind::Full {
                path: p,
                dest: None,
                ..
            } => p,
            Bind::Full { dest: Some(d), .. } => d,
        }
    }
    pub fn source(&self) -> Option<&str> {
        match self {
            Bind::Full {
                source: Some(s), ..
            } => Some(s),
            _ => None,
        }
    }
    /// Why the bind was chosen, when known.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Bind::Full {
                reason: Some(r), ..
            } => Some(r),
            _ => None,
        }
    }
    /// A bind of `path` to `dest` (the same path when `None`) with the reason it was chosen.
    pub fn explained(path: PathBuf, dest: Option<PathBuf>, reason: impl Into<String>) -> Bind {
        Bind::Full {
            path,
            dest,
            source: None,
            reason: Some(reason.into()),
        }
    }
    /// Whether this bind already shows `inner`'s source at `inner`'s destination (`inner` is the same path
    /// or below it, on both sides, from the same source).
    pub fn covers(&self, inner: &Bind) -> bool {
        match (
            inner.dest().strip_prefix(self.dest()),
            inner.path().strip_prefix(self.path()),
        ) {
            (Ok(a), Ok(b)) => a == b && self.source() == inner.source(),
            _ => false,
        }
    }
    /// Parse the CLI form `[SELECTOR:]PATH[:DEST]`. The first part is a selector when it contains `@`
    /// (`@12`, `/persist@2w`), or when there are three parts (`/snaps/db.20261114:/var/lib/mysql:/srv/db`).
    pub fn parse_cli(s: &str) -> Bind {
        let parts: Vec<&str> = s.split(':').collect();
        let (source, rest) = match parts.as_slice() {
            [sel, rest @ ..] if !rest.is_empty() && (sel.contains('@') || rest.len() == 2) => {
                (Some(sel.to_string()), rest.to_vec())
            }
            _ => (None, parts),
        };
        let path: PathBuf = rest[0].into();
        let dest = rest.get(1).filter(|d| !d.is_empty()).map(PathBuf::from);
        match (source, dest) {
            (None, None) => Bind::Path(path),
            (source, dest) => Bind::Full {
                path,
                dest,
                source,
                reason: None,
            },
        }
    }
}

/// What [`Profile::drop_binds`] did (`--no-bind PATH`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DroppedBinds {
    /// The binds removed, in profile order.
    pub removed: Vec<Bind>,
    /// The paths given that matched no bind (neither a bind's snapshot path or destination nor a directory
    /// above one): the caller says so, as a typo would otherwise go unnoticed.
    pub unmatched: Vec<PathBuf>,
}

/// The first of `no_bind` that is `b`'s snapshot path or destination, or a directory above one of them.
pub fn no_bind_match<'a>(b: &Bind, no_bind: &'a [PathBuf]) -> Option<&'a Path> {
    no_bind
        .iter()
        .find(|n| b.path().starts_with(n) || b.dest().starts_with(n))
        .map(PathBuf::as_path)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirSpec {
    pub path: PathBuf,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    /// Octal mode as a string, e.g. "0755" or "2775".
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    pub name: String,
    /// argv, run directly.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// A script run with `/bin/sh -c`.
    #[serde(default)]
    pub shell: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// Signal for an orderly stop (default SIGTERM), e.g. SIGINT for PostgreSQL's fast shutdown.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Wait for this before starting the next process.
    #[serde(default)]
    pub ready: Option<Ready>,
    /// A hook: run to completion (exit 0) before the next process starts, e.g. to switch an app into
    /// maintenance or read-only mode. A failing hook stops the instance.
    #[serde(default)]
    pub oneshot: bool,
}

impl Process {
    /// The argv to exec; `shell =` scripts run with `sh`.
    pub fn argv(&self, sh: &Path) -> Vec<String> {
        match (&self.command, &self.shell) {
            (Some(c), _) => c.clone(),
            (None, Some(s)) => vec![sh.display().to_string(), "-c".into(), s.clone()],
            (None, None) => Vec::new(),
        }
    }
}

/// Readiness: exactly one of the fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// A TCP port that accepts a connection (on the instance's loopback).
    #[serde(default)]
    pub tcp: Option<u16>,
    /// An HTTP port answering `http_path` with 2xx, 3xx, 401 or 403.
    #[serde(default)]
    pub http: Option<u16>,
    #[serde(default)]
    pub http_path: Option<String>,
    /// A PostgreSQL port that accepts queries (not only connections: recovery after a crash-consistent
    /// snapshot takes a moment).
    #[serde(default)]
    pub postgres: Option<u16>,
    /// A path (e.g. a unix socket) that exists inside the container. Only for per-process readiness.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

impl Ready {
    pub fn tcp(port: u16) -> Ready {
        Ready {
            tcp: Some(port),
            ..Ready::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown profile {name:?}; available: {available}. A profile can also be a file path (e.g. ./myapp.toml)")]
    Unknown { name: String, available: String },
    #[error("cannot read profile {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid profile {origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl Profile {
    /// Parse and validate a profile text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let invalid = |message: String| ProfileError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let p: Profile = toml::from_str(text).map_err(|e| invalid(toml_error(text, &e)))?;
        p.validate().map_err(invalid)?;
        Ok(p)
    }

    /// Checks that do not need the system.
    pub fn validate(&self) -> Result<(), String> {
        for b in &self.binds {
            for p in [b.path(), b.dest()] {
                if !p.is_absolute() || p.components().any(|c| c.as_os_str() == "..") {
                    return Err(format!(
                        "bind {} must be an absolute path without '..'",
                        p.display()
                    ));
                }
            }
        }
        for d in &self.dirs {
            if !d.path.is_absolute() {
                return Err(format!("dir {} must be absolute", d.path.display()));
            }
            if let Some(m) = &d.mode {
                u32::from_str_radix(m, 8)
                    .map_err(|_| format!("dir {}: mode {m:?} is not octal", d.path.display()))?;
            }
        }
        for p in &self.processes {
            if p.command.is_some() == p.shell.is_some() {
                return Err(format!(
                    "process {:?}: set exactly one of `command` or `shell`",
                    p.name
                ));
            }
            if p.command.as_ref().is_some_and(std::vec::Vec::is_empty) {
                return Err(format!("process {:?}: empty command", p.name));
            }
            if let Some(r) = &p.ready {
                r.validate(true)
                    .map_err(|e| format!("process {:?}: {e}", p.name))?;
            }
        }
        if let Some(r) = &self.ready {
            r.validate(false)?;
        }
        Ok(())
    }

    /// `--no-bind PATH…`: remove every bind whose snapshot path or destination is one of `no_bind` or below
    /// it (a built-in profile's too, e.g. `nginx-php`'s /var/www for a site that lives elsewhere).
    pub fn drop_binds(&mut self, no_bind: &[PathBuf]) -> DroppedBinds {
        let (removed, kept): (Vec<Bind>, Vec<Bind>) = std::mem::take(&mut self.binds)
            .into_iter()
            .partition(|b| no_bind_match(b, no_bind).is_some());
        self.binds = kept;
        let unmatched = no_bind
            .iter()
            .filter(|n| {
                !removed
                    .iter()
                    .any(|b| no_bind_match(b, std::slice::from_ref(n)).is_some())
            })
            .cloned()
            .collect();
        DroppedBinds { removed, unmatched }
    }

    /// Find a profile by file path (contains '/' or ends in .toml), in `dirs` as `NAME.toml`, or built in.
    pub fn find(name_or_path: &str, dirs: &[PathBuf]) -> Result<Profile, ProfileError> {
        let read = |path: &Path| {
            let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            Profile::parse(&text, &path.display().to_string())
        };
        if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
            return read(Path::new(name_or_path));
        }
        for dir in dirs {
            let candidate = dir.join(format!("{name_or_path}.toml"));
            if candidate.is_file() {
                return read(&candidate);
            }
        }
        if let Some((_, text)) = BUILTINS.iter().find(|(n, _)| *n == name_or_path) {
            return Profile::parse(text, &format!("built-in {name_or_path}"));
        }
        Err(ProfileError::Unknown {
            name: name_or_path.to_string(),
            available: Profile::available(dirs).join(", "),
        })
    }

    /// Names of all profiles: user ones from `dirs`, then built-ins.
    pub fn available(dirs: &[PathBuf]) -> Vec<String> {
        let mut names: Vec<String> = dirs
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".toml")
                    .map(str::to_string)
            })
            .collect();
        names.extend(BUILTINS.iter().map(|(n, _)| n.to_string()));
        names.sort();
        names.dedup();
        names
    }
}

/// A TOML error as "line N: message", without the offending line's text: a profile (or config) path may
/// name any file (`--profile /etc/shadow`), and its content must not be echoed.
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", e.message())
        }
        None => e.message().to_string(),
    }
}

impl Ready {
    fn validate(&self, allow_path: bool) -> Result<(), String> {
        let set = [
            self.tcp.is_some(),
            self.http.is_some(),
            self.postgres.is_some(),
            self.path.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set != 1 {
            return Err("ready: set exactly one of tcp, http, postgres or path".into());
        }
        if self.path.is_some() && !allow_path {
            return Err(
                "ready.path is only for a process; the instance's readiness is tcp or http".into(),
            );
        }
        if self.http_path.is_some() && self.http.is_none() {
            return Err("ready.http_path needs ready.http".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        for (name, text) in BUILTINS {
            let p = Profile::parse(text, name).unwrap();
            assert_eq!(&p.name, name);
            assert!(!p.processes.is_empty());
        }
    }

    #[test]
    fn find_builtin_and_unknown() {
        assert_eq!(
            Profile::find("postgresql", &[]).unwrap().binds[0].path(),
            Path::new("/var/lib/postgresql")
        );
        let e = Profile::find("nope", &[]).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("postgresql"), "{e}");
    }

    #[test]
    fn user_dir_wins_and_files_work() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("postgresql.toml"), "name = \"mine\"\n").unwrap();
        assert_eq!(
            Profile::find("postgresql", &[dir.path().into()])
                .unwrap()
                .name,
            "mine"
        );
        let f = dir.path().join("x.toml");
        std::fs::write(&f, "name = \"x\"\nhttp_port = 8080\n").unwrap();
        assert_eq!(
            Profile::find(f.to_str().unwrap(), &[]).unwrap().http_port,
            Some(8080)
        );
    }

    #[test]
    fn invalid_profiles() {
        for bad in [
            "name = \"a\"\n[[process]]\nname = \"p\"\n",
            "name = \"a\"\n[[process]]\nname = \"p\"\ncommand = [\"x\"]\nshell = \"y\"\n",
            "name = \"a\"\nbinds = [\"relative\"]\n",
            "name = \"a\"\n[ready]\npath = \"/x\"\n",
            "name = \"a\"\nbogus = 1\n",
        ] {
            assert!(Profile::parse(bad, "t").is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_errors_never_echo_the_file() {
        let secret = "root:$6$salt$hash:19000:0:99999:7:::\n";
        let e = Profile::parse(secret, "/etc/shadow")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("$6$"), "{e}");
        assert!(!e.contains("root:"), "{e}");
        assert!(e.contains("/etc/shadow") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn bind_reasons_serialize_only_when_set() {
        let mut p = Profile::find("nginx-php", &[]).unwrap();
        p.binds.push(Bind::explained(
            "/var/lib/redis".into(),
            None,
            "StateDirectory=redis of redis-server.service",
        ));
        let text = toml::to_string(&p).unwrap();
        assert!(
            text.contains("reason = \"StateDirectory=redis of redis-server.service\""),
            "{text}"
        );
        assert_eq!(text.matches("reason").count(), 1, "{text}");
        assert_eq!(Profile::parse(&text, "t").unwrap(), p);
        assert_eq!(
            p.binds[1].reason(),
            Some("StateDirectory=redis of redis-server.service")
        );
        assert_eq!(p.binds[0].reason(), None);
    }

    #[test]
    fn no_bind_drops_a_builtin_profiles_binds() {
        let mut p = Profile::find("nginx-php", &[]).unwrap();
        p.binds.push(Bind::parse_cli("/srv/wiki:/var/www/wiki"));
        let d = p.drop_binds(&["/var/www".into(), "/var/lib/nope".into()]);
        assert!(p.binds.is_empty(), "{:?}", p.binds);
        assert_eq!(
            d.removed.len(),
            2,
            "the bind and the one whose destination is below /var/www"
        );
        assert_eq!(d.unmatched, [PathBuf::from("/var/lib/nope")]);
    }

    #[test]
    fn cli_binds() {
        assert_eq!(Bind::parse_cli("/var/www").dest(), Path::new("/var/www"));
        assert_eq!(
            Bind::parse_cli("/var/www:/srv/www").dest(),
            Path::new("/srv/www")
        );
    }
}
