//! Which of the snapshot's paths hold the listed units' state, and why: the candidate paths the units and
//! their apps' configs name (see `infer` and `appconf`), classified by where they are (state, cache, logs),
//! then resolved against the snapshot — a candidate the snapshot has becomes a bind carrying its reason,
//! the others are listed as not in this snapshot, `--no-bind` paths are left out, and a bind inside another
//! one collapses into it.
//!
//! Where a path is matters more than who names it. A path under a state-like prefix is bound as its app's
//! directory (the first component below the prefix: `/var/lib/postgresql` for
//! `data_directory = /var/lib/postgresql/15/main`), so files next to it (an SQLite `-wal`, other clusters)
//! come along; the named path is what must exist in the snapshot. Paths the host provides in an instance
//! (`/usr`, `/etc`, `/nix`, `/opt`, `/run`, …) are never candidates.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::profile::{no_bind_match, Bind};

/// What a candidate path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PathRole {
    /// The service's data: bound from the snapshot when it is there. Only these make an instance "not
    /// empty".
    State,
    /// A cache (`CacheDirectory=`, `/var/cache/…`): bound when in the snapshot, but not counted as state.
    Cache,
    /// Where the service writes its logs (`LogsDirectory=`, `/var/log/APP`, the log file its config names):
    /// never bound from the snapshot; created empty in the instance so the service can start.
    Logs,
}

/// A path a unit or its app's config names as holding the service's state, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The unit, e.g. `redis-server.service`.
    pub unit: String,
    /// The path to bind, in the snapshot: the app's directory that holds `named`.
    pub path: PathBuf,
    /// Where `path` goes in the instance when not at `path` (`DynamicUser=`: /var/lib/private/x → /var/lib/x).
    pub dest: Option<PathBuf>,
    /// The path as named; it must exist in the snapshot for the candidate to be bound.
    pub named: PathBuf,
    pub role: PathRole,
    /// A human reason, e.g. `StateDirectory=redis of redis-server.service` or
    /// `datadir in /etc/mysql/mariadb.conf.d/50-server.cnf:23`.
    pub reason: String,
}

/// The outcome of resolving the candidates against a snapshot. The binds themselves are in the profile
/// (each with its reason).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatePaths {
    /// Every candidate looked for, in unit order.
    pub candidates: Vec<Candidate>,
    /// State and cache candidates the snapshot does not have (`up` lists them; a bind covering one does not
    /// make it exist).
    pub missing: Vec<Candidate>,
    /// Candidates left out by `--no-bind`.
    pub dropped: Vec<Candidate>,
    /// Log directories: created empty in the instance (in the profile's `dirs`), never bound.
    pub logs: Vec<Candidate>,
}

/// Prefixes below which a path is a candidate however it is named: `(prefix, role, components kept below
/// the prefix for the bound directory, whether the prefix itself is one)`. Longest first.
const PREFIXES: &[(&str, PathRole, usize, bool)] = &[
    ("/var/lib/private", PathRole::State, 1, false),
    ("/var/lib", PathRole::State, 1, false),
    ("/var/spool", PathRole::State, 1, false),
    ("/var/opt", PathRole::State, 1, false),
    ("/var/mail", PathRole::State, 0, true),
    ("/var/www", PathRole::State, 1, true),
    ("/srv", PathRole::State, 1, true),
    ("/home", PathRole::State, 2, false),
    ("/var/cache", PathRole::Cache, 1, false),
    ("/var/log", PathRole::Logs, 1, false),
];

/// Paths an instance gets from the host (software, configuration) or that are runtime-only: never state.
const NOT_STATE: &[&str] = &[
    "/usr",
    "/etc",
    "/nix",
    "/opt",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/run",
    "/var/run",
    "/var/lock",
    "/tmp",
    "/var/tmp",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/root",
];

/// `p` without `.` components and trailing slashes; `None` unless absolute and free of `..`.
pub(crate) fn normal(p: &Path) -> Option<PathBuf> {
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return None;
    }
    Some(p.components().collect())
}

/// Role and directory to bind for a path under a state-like prefix (free-form mentions: `ExecStart=`
/// arguments, environment values, `WorkingDirectory=`, `ReadWritePaths=`). `None` elsewhere.
pub(crate) fn classify(p: &Path) -> Option<(PathRole, PathBuf)> {
    let p = normal(p)?;
    for (prefix, role, keep, whole) in PREFIXES {
        let Ok(rest) = p.strip_prefix(prefix) else {
            continue;
        };
        let n = rest.components().count();
        if n == 0 && !whole {
            return None;
        }
        let mut dir = PathBuf::from(prefix);
        dir.extend(rest.components().take(*keep));
        return Some((*role, dir));
    }
    None
}

/// As [`classify`], and any other absolute path the host does not provide is state as named: for paths an
/// app's config names as its data (`datadir = /data/mysql`).
pub(crate) fn classify_data(p: &Path) -> Option<(PathRole, PathBuf)> {
    let n = normal(p)?;
    if let Some(c) = classify(&n) {
        return Some(c);
    }
    let host = NOT_STATE.iter().any(|h| n.starts_with(h));
    (!host && n != Path::new("/")).then_some((PathRole::State, n))
}

impl Candidate {
    /// A candidate for `named` (classified with `classify` when `strict`, else `classify_data`).
    pub(crate) fn new(unit: &str, named: &Path, strict: bool, reason: String) -> Option<Candidate> {
        let (role, path) = if strict {
            classify(named)?
        } else {
            classify_data(named)?
        };
        let dest = path
            .strip_prefix("/var/lib/private")
            .ok()
            .map(|rest| Path::new("/var/lib").join(rest));
        Some(Candidate {
            unit: unit.to_string(),
            path,
            dest,
            named: normal(named)?,
            role,
            reason,
        })
    }

    fn bind_dest(&self) -> &Path {
        self.dest.as_deref().unwrap_or(&self.path)
    }
}

/// One bind being assembled: its candidates' reasons, and those of the binds it covers.
struct Group {
    path: PathBuf,
    dest: PathBuf,
    reasons: Vec<String>,
    covered: Vec<(PathBuf, Vec<String>)>,
}

impl Group {
    fn bind(&self) -> Bind {
        let mut reason = self.reasons.join("; ");
        for (p, rs) in &self.covered {
            reason.push_str(&format!("; covers {} ({})", p.display(), rs.join("; ")));
        }
        let dest = (self.dest != self.path).then(|| self.dest.clone());
        Bind::explained(self.path.clone(), dest, reason)
    }

    fn as_bind(&self) -> Bind {
        Bind::Full {
            path: self.path.clone(),
            dest: Some(self.dest.clone()),
            source: None,
            reason: None,
        }
    }
}

/// Resolve `candidates` against the snapshot (`exists_in_snapshot` on each named path): the binds to make
/// (outer ones, with reasons, in candidate order) and what became of the others.
pub(crate) fn resolve(
    candidates: Vec<Candidate>,
    exists_in_snapshot: &dyn Fn(&Path) -> bool,
    no_bind: &[PathBuf],
) -> (Vec<Bind>, StatePaths) {
    let mut out = StatePaths::default();
    let mut groups: Vec<Group> = Vec::new();
    for c in &candidates {
        let probe = Bind::Full {
            path: c.named.clone(),
            dest: Some(c.bind_dest().to_path_buf()),
            source: None,
            reason: None,
        };
        if c.role == PathRole::Logs {
            out.logs.push(c.clone());
        } else if no_bind_match(&probe, no_bind).is_some()
            || no_bind_match(&Bind::Path(c.path.clone()), no_bind).is_some()
        {
            out.dropped.push(c.clone());
        } else if !exists_in_snapshot(&c.named) {
            out.missing.push(c.clone());
        } else {
            add(&mut groups, c);
        }
    }
    out.candidates = candidates;
    (groups.iter().map(Group::bind).collect(), out)
}

/// Add a found candidate: to its own bind, into a bind that covers it, or as a new bind that absorbs the
/// ones it covers.
fn add(groups: &mut Vec<Group>, c: &Candidate) {
    let push = |v: &mut Vec<String>, r: &str| {
        if !v.iter().any(|x| x == r) {
            v.push(r.to_string());
        }
    };
    if let Some(g) = groups
        .iter_mut()
        .find(|g| g.path == c.path && g.dest == c.bind_dest())
    {
        push(&mut g.reasons, &c.reason);
        return;
    }
    let mine = Group {
        path: c.path.clone(),
        dest: c.bind_dest().to_path_buf(),
        reasons: vec![c.reason.clone()],
        covered: Vec::new(),
    };
    if let Some(g) = groups
        .iter_mut()
        .find(|g| g.as_bind().covers(&mine.as_bind()))
    {
        match g.covered.iter_mut().find(|(p, _)| *p == c.path) {
            Some((_, rs)) => push(rs, &c.reason),
            None => g.covered.push((c.path.clone(), vec![c.reason.clone()])),
        }
        return;
    }
    let mut mine = mine;
    let mut i = 0;
    while i < groups.len() {
        if mine.as_bind().covers(&groups[i].as_bind()) {
            let inner = groups.remove(i);
            mine.covered.push((inner.path, inner.reasons));
            mine.covered.extend(inner.covered);
        } else {
            i += 1;
        }
    }
    groups.push(mine);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(p: &str) -> Option<(PathRole, String)> {
        classify(Path::new(p)).map(|(r, d)| (r, d.display().to_string()))
    }

    #[test]
    fn prefixes() {
        use PathRole::*;
        assert_eq!(
            role("/var/lib/postgresql/15/main"),
            Some((State, "/var/lib/postgresql".into()))
        );
        assert_eq!(
            role("/var/lib/mosquitto/"),
            Some((State, "/var/lib/mosquitto".into()))
        );
        assert_eq!(
            role("/var/lib/private/wiki/x"),
            Some((State, "/var/lib/private/wiki".into()))
        );
        assert_eq!(role("/var/lib"), None);
        assert_eq!(role("/var/www"), Some((State, "/var/www".into())));
        assert_eq!(role("/srv/app/data"), Some((State, "/srv/app".into())));
        assert_eq!(
            role("/home/ann/site/data"),
            Some((State, "/home/ann/site".into()))
        );
        assert_eq!(
            role("/var/cache/nginx/x"),
            Some((Cache, "/var/cache/nginx".into()))
        );
        assert_eq!(
            role("/var/log/redis/redis.log"),
            Some((Logs, "/var/log/redis".into()))
        );
        assert_eq!(role("/var/lib/../etc"), None);
        assert_eq!(role("/etc/redis"), None);
        assert_eq!(role("relative/x"), None);
        assert_eq!(
            classify_data(Path::new("/data/mysql/")),
            Some((State, PathBuf::from("/data/mysql")))
        );
        assert_eq!(classify_data(Path::new("/usr/share/nginx/html")), None);
        assert_eq!(classify_data(Path::new("/")), None);
    }

    fn cand(unit: &str, p: &str, reason: &str) -> Candidate {
        Candidate::new(unit, Path::new(p), false, reason.into()).unwrap()
    }

    #[test]
    fn resolve_collapses_merges_drops_and_lists_missing() {
        let cands = vec![
            cand(
                "a.service",
                "/var/lib/pg/16",
                "StateDirectory=pg/16 of a.service",
            ),
            cand("a.service", "/var/lib/pg", "PGDATA"),
            cand("a.service", "/var/lib/pg", "PGDATA"),
            cand("b.service", "/var/lib/gone", "dir in b.conf:1"),
            cand("b.service", "/var/log/b/b.log", "logfile in b.conf:2"),
            cand("b.service", "/srv/site", "root in site:3"),
            cand("b.service", "/data/db", "datadir in my.cnf:4"),
            cand("b.service", "/data", "WorkingDirectory="),
        ];
        let exists = |p: &Path| !p.starts_with("/var/lib/gone");
        let (binds, st) = resolve(cands, &exists, &[PathBuf::from("/srv")]);
        let got: Vec<String> = binds
            .iter()
            .map(|b| format!("{} <- {}", b.path().display(), b.reason().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                "/var/lib/pg <- StateDirectory=pg/16 of a.service; PGDATA",
                "/data <- WorkingDirectory=; covers /data/db (datadir in my.cnf:4)",
            ]
        );
        assert_eq!(st.missing.len(), 1);
        assert_eq!(st.missing[0].named, Path::new("/var/lib/gone"));
        assert_eq!(st.dropped[0].path, Path::new("/srv/site"));
        assert_eq!(st.logs[0].path, Path::new("/var/log/b"));
        assert_eq!(st.candidates.len(), 8);
    }

    #[test]
    fn dynamic_user_dest() {
        let c = cand("w.service", "/var/lib/private/wiki", "StateDirectory=wiki");
        assert_eq!(c.dest.as_deref(), Some(Path::new("/var/lib/wiki")));
        let (binds, _) = resolve(vec![c], &|_| true, &[PathBuf::from("/var/lib/other")]);
        assert_eq!(binds[0].dest(), Path::new("/var/lib/wiki"));
        let c = cand("w.service", "/var/lib/private/wiki", "StateDirectory=wiki");
        let (binds, st) = resolve(vec![c], &|_| true, &[PathBuf::from("/var/lib/wiki")]);
        assert!(
            binds.is_empty() && st.dropped.len() == 1,
            "--no-bind names the destination"
        );
    }
}
