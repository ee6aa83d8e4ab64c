//! Software drift: whether the software that would run an instance (the host's, or the snapshot's own with
//! `--software snapshot`) can run the snapshot's state. Months after a snapshot the host may have had a
//! distribution upgrade: PostgreSQL 15 data meets PostgreSQL 17 binaries, MariaDB data meets an older or
//! newer server, an app's old state meets newer code that migrates it on start.
//!
//! Pure comparisons of what the binary read (`planning::software`): PostgreSQL's `PG_VERSION` against the
//! majors installed under `/usr/lib/postgresql` (or the version the processes name), MariaDB/MySQL's
//! `mysql_upgrade_info` against the server package, and each program the processes run against its package
//! (dpkg, or a Nix store path's name) on both sides. A [`Finding`] at [`Level::Refuse`] is a mismatch the
//! software cannot handle: planning refuses (exit 2) with the two versions and the options.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod programs;
pub mod versions;

pub use programs::{programs, Program};

use versions::{numbers, upstream, Package};

/// Whose software runs the instance's processes (`up --software`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Software {
    /// The host's /usr, /etc (and /nix, /opt): host mode as it always was.
    #[default]
    Host,
    /// The snapshot's own /usr, /etc (and /nix, /opt), read-only from the clone.
    Snapshot,
}

impl Software {
    /// "this host" or "the snapshot", for messages.
    pub fn side(self) -> &'static str {
        match self {
            Software::Host => "this host",
            Software::Snapshot => "the snapshot",
        }
    }
    pub fn other(self) -> Software {
        match self {
            Software::Host => Software::Snapshot,
            Software::Snapshot => Software::Host,
        }
    }
    /// The value of `--software`.
    pub fn flag(self) -> &'static str {
        match self {
            Software::Host => "host",
            Software::Snapshot => "snapshot",
        }
    }
}

impl std::str::FromStr for Software {
    type Err = String;
    fn from_str(s: &str) -> Result<Software, String> {
        match s {
            "host" => Ok(Software::Host),
            "snapshot" => Ok(Software::Snapshot),
            _ => Err(format!("--software {s}: expected snapshot or host")),
        }
    }
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The versions fit.
    Ok,
    /// A difference that does not matter for starting (e.g. the snapshot's own software runs).
    Note,
    /// A difference the software can handle, with a consequence worth knowing (it may upgrade the clone's
    /// data on start).
    Warn,
    /// A mismatch the software cannot handle: planning refuses.
    Refuse,
}

/// One comparison of state and software.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub level: Level,
    /// What was compared, e.g. "PostgreSQL", "MariaDB", "nginx".
    pub app: String,
    /// The whole sentence, with both versions (and, when refused, the options).
    pub message: String,
}

impl Finding {
    pub(crate) fn new(level: Level, app: &str, message: String) -> Finding {
        Finding {
            level,
            app: app.into(),
            message,
        }
    }
}

/// The same thing as each side has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sides<T> {
    pub host: T,
    pub snapshot: T,
}

impl<T> Sides<T> {
    /// (the running side's, the other side's)
    pub fn split(&self, running: Software) -> (&T, &T) {
        match running {
            Software::Host => (&self.host, &self.snapshot),
            Software::Snapshot => (&self.snapshot, &self.host),
        }
    }
}

/// A PostgreSQL data directory found under the bind paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgCluster {
    /// Where the container sees it.
    pub dir: PathBuf,
    /// Its `PG_VERSION` (e.g. `15`, `9.6`).
    pub version: String,
}

/// What PostgreSQL's check needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgInputs {
    pub clusters: Vec<PgCluster>,
    /// Majors with `/usr/lib/postgresql/<major>/bin/postgres`.
    pub installed: Sides<Vec<String>>,
    /// Versions the processes name and so run exactly (`pg_ctlcluster 15-main`,
    /// `/usr/lib/postgresql/15/bin/postgres`, a store path `postgresql-15.4`).
    pub named: Vec<PgNamed>,
}

/// A PostgreSQL version a process names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgNamed {
    pub version: String,
    /// Where, e.g. "process postgresql@15-main.service (pg_ctlcluster 15-main)".
    pub why: String,
    /// Run from Debian's layout (`/usr/lib/postgresql/<major>`, which must be installed), not from a path
    /// of its own (a Nix store path, whose presence the program check covers).
    pub debian: bool,
}

/// A PostgreSQL version's major: `9.6` below 10, the first number from 10 on.
pub fn pg_major(version: &str) -> String {
    let n = numbers(version.trim());
    match n.as_slice() {
        [a, b, ..] if *a < 10 => format!("{a}.{b}"),
        [a, ..] => a.to_string(),
        [] => version.trim().to_string(),
    }
}

/// PostgreSQL reads only data of its own major version; a new major needs `pg_upgrade`.
pub fn postgres(inp: &PgInputs, running: Software) -> Vec<Finding> {
    let (have, other) = inp.installed.split(running);
    let mut out = Vec::new();
    for c in &inp.clusters {
        let major = pg_major(&c.version);
        let dir = c.dir.display();
        if let Some(n) = inp.named.iter().find(|n| pg_major(&n.version) != major) {
            out.push(Finding::new(Level::Refuse, "PostgreSQL", format!(
                "{} runs PostgreSQL {}, but the data in {dir} is PostgreSQL {major} (its PG_VERSION): a server reads only data of its own major version. Run the unit or profile of version {major} instead{}",
                n.why,
                n.version,
                snapshot_option(other.contains(&major), running, &major)
            )));
            continue;
        }
        if !inp.named.is_empty() && inp.named.iter().all(|n| !n.debian) {
            out.push(Finding::new(
                Level::Ok,
                "PostgreSQL",
                format!("PostgreSQL {major} data in {dir}, run by the PostgreSQL {major} the processes name"),
            ));
            continue;
        }
        if have.contains(&major) {
            out.push(Finding::new(Level::Ok, "PostgreSQL", format!(
                "PostgreSQL {major} data in {dir}, run by {}'s /usr/lib/postgresql/{major}/bin/postgres",
                running.side()
            )));
            continue;
        }
        let list = if have.is_empty() {
            "no PostgreSQL".to_string()
        } else {
            format!("PostgreSQL {} only", have.join(", "))
        };
        let mut options = Vec::new();
        if other.contains(&major) {
            options.push(format!(
                "`--software {}` runs {}'s own PostgreSQL {major} (/usr/lib/postgresql/{major}/bin/postgres there)",
                running.other().flag(),
                running.other().side()
            ));
        } else if running == Software::Host {
            options.push(format!("the snapshot holds no /usr/lib/postgresql/{major}/bin/postgres either, so `--software snapshot` cannot help"));
        }
        if running == Software::Host || other.contains(&major) {
            options.push(format!("install postgresql-{major} on this host (apt.postgresql.org has the versions Debian no longer ships)"));
        }
        out.push(Finding::new(Level::Refuse, "PostgreSQL", format!(
            "the PostgreSQL data in {dir} is version {major} (its PG_VERSION), but {} has {list} under /usr/lib/postgresql: a server reads only data of its own major version (a new major needs pg_upgrade, which wayback never runs). Options: {}",
            running.side(),
            options.join("; ")
        )));
    }
    out
}

fn snapshot_option(other_has: bool, running: Software, major: &str) -> String {
    if other_has {
        format!(
            ", or `--software {}`, whose /usr/lib/postgresql/{major}/bin/postgres fits",
            running.other().flag()
        )
    } else {
        String::new()
    }
}

/// A MariaDB/MySQL data directory found under the bind paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyData {
    pub dir: PathBuf,
    /// Its `mysql_upgrade_info` / `mariadb_upgrade_info`: the server version that last upgraded it.
    pub version: String,
}

/// What the MariaDB/MySQL check needs: the data directories and each side's server package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MyInputs {
    pub data: Vec<MyData>,
    pub server: Sides<Option<Package>>,
}

fn flavor_of_data(v: &str) -> &'static str {
    if v.to_ascii_lowercase().contains("mariadb") {
        "MariaDB"
    } else {
        "MySQL"
    }
}

fn flavor_of_package(p: &Package) -> &'static str {
    if p.name.starts_with("mariadb") {
        "MariaDB"
    } else {
        "MySQL"
    }
}

/// A server reads data of its own and older versions (upgrading it on start); never a newer version's, nor
/// the other flavour's.
pub fn mysql(inp: &MyInputs, running: Software) -> Vec<Finding> {
    let (server, other) = inp.server.split(running);
    let mut out = Vec::new();
    for d in &inp.data {
        let (dir, flavor) = (d.dir.display(), flavor_of_data(&d.version));
        let data_v = numbers(&d.version);
        let data_mm = &data_v[..data_v.len().min(2)];
        let Some(s) = server else {
            out.push(Finding::new(Level::Note, flavor, format!(
                "{flavor} data {} in {dir}; {}'s server version is unknown (no mariadb or mysql server package in its dpkg database)",
                d.version.trim(), running.side()
            )));
            continue;
        };
        let sv = numbers(upstream(&s.version));
        let server_mm = &sv[..sv.len().min(2)];
        let fits = |p: &Package| {
            let v = numbers(upstream(&p.version));
            flavor_of_package(p) == flavor && v[..v.len().min(2)] >= *data_mm
        };
        let option = match other {
            Some(o) if fits(o) => format!(
                "`--software {}` runs {}'s {o}",
                running.other().flag(),
                running.other().side()
            ),
            _ => format!(
                "install a {flavor} server of version {} or newer",
                join(data_mm)
            ),
        };
        let said = format!(
            "{flavor} data {} in {dir} (its upgrade_info), {}'s server {}",
            d.version.trim(),
            running.side(),
            s
        );
        if flavor_of_package(s) != flavor {
            out.push(Finding::new(
                Level::Refuse,
                flavor,
                format!(
                    "{said}: a {} server cannot run {flavor} data. Options: {option}",
                    flavor_of_package(s)
                ),
            ));
        } else if data_mm > server_mm {
            out.push(Finding::new(
                Level::Refuse,
                flavor,
                format!(
                "{said}: the data is newer than the server, which cannot read it. Options: {option}"
            ),
            ));
        } else if data_mm < server_mm {
            let alt = match other {
                Some(o) if running == Software::Host => {
                    format!("; `--software snapshot` runs the snapshot's own {o}")
                }
                _ => String::new(),
            };
            out.push(Finding::new(Level::Warn, flavor, format!(
                "{said}: the server may upgrade the clone's data on start (the source is never touched){alt}"
            )));
        } else {
            out.push(Finding::new(Level::Ok, flavor, said));
        }
    }
    out
}

fn join(n: &[u64]) -> String {
    n.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// Why the software was chosen, for the plan.
pub fn why(chosen: Software, explicit: bool, findings: &[Finding]) -> String {
    if explicit {
        return format!("--software {}", chosen.flag());
    }
    if findings.iter().any(|f| f.level >= Level::Warn) {
        "the default; the differences below can be handled".into()
    } else if findings.is_empty() {
        "the default; no app data or packages to compare".into()
    } else {
        "the default; no drift found".into()
    }
}

#[cfg(test)]
mod tests;
