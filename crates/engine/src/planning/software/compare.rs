//! The snapshot's state against the software that would run it (`wayback_core::drift` decides): reads
//! PostgreSQL's `PG_VERSION` and MariaDB's `mysql_upgrade_info` under the bind paths (in the snapshot they
//! come from), the PostgreSQL majors under `/usr/lib/postgresql` and the server packages on both sides, and
//! each program the processes run with its package (dpkg's status and file lists, or the Nix store path's
//! name) on both sides. Refuses (exit 2) what the chosen software cannot run; the rest goes to the plan.
//! The host's files are read directly, the snapshot's inside it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;
use wayback_core::drift::{self, versions, Level, MyData, PgCluster, PgNamed, Sides};
use wayback_core::plan::UpRequest;
use wayback_core::Plan;

use crate::error::BadInput;
use crate::sys::inroot::Tree;

/// Small files (PG_VERSION, upgrade_info) and package databases are read up to these sizes.
const SMALL: u64 = 256;
pub(super) const DB_MAX: u64 = 64 << 20;

/// A side's files: the host's, read directly, or the snapshot's, read inside it.
pub(super) enum Side<'a> {
    Host,
    Snap(Option<&'a Tree>),
}

impl Side<'_> {
    pub(super) fn read(&self, p: &Path, max: u64) -> Option<String> {
        match self {
            Side::Host => {
                use std::io::Read;
                let mut s = String::new();
                std::fs::File::open(p)
                    .ok()?
                    .take(max)
                    .read_to_string(&mut s)
                    .ok()?;
                Some(s)
            }
            Side::Snap(t) => (*t)?.read_to_string(p, max).ok(),
        }
    }
    pub(super) fn list(&self, p: &Path) -> Vec<(OsString, bool)> {
        match self {
            Side::Host => std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| (e.file_name(), e.file_type().is_ok_and(|t| t.is_dir())))
                .collect(),
            Side::Snap(t) => t.and_then(|t| t.read_dir(p).ok()).unwrap_or_default(),
        }
    }
    pub(super) fn is_file(&self, p: &Path) -> bool {
        match self {
            Side::Host => p.is_file(),
            Side::Snap(t) => t.is_some_and(|t| t.resolve(p).is_ok_and(|f| f.is_file())),
        }
    }
    /// Installed packages from dpkg's status file.
    pub(super) fn dpkg(&self) -> BTreeMap<String, String> {
        self.read(Path::new("/var/lib/dpkg/status"), DB_MAX)
            .map(|s| versions::dpkg_installed(&s))
            .unwrap_or_default()
    }
}

/// Compare, refuse what cannot run, and put the findings and the reason for the choice in the plan.
pub fn check(req: &UpRequest, mut plan: Plan) -> Result<Plan> {
    if req.boot {
        return Ok(plan);
    }
    let running = plan.software.source;
    let main = Tree::open(&plan.source.path).ok();
    let sides = Sides {
        host: Side::Host,
        snapshot: Side::Snap(main.as_ref()),
    };
    let texts: Vec<(String, String)> = plan
        .init
        .processes
        .iter()
        .map(|p| (p.name.clone(), p.argv(&plan.init.shell).join(" ")))
        .collect();
    let mentions = |words: &[&str]| {
        texts
            .iter()
            .any(|(_, t)| words.iter().any(|w| t.contains(w)))
    };
    let mut findings = Vec::new();
    if mentions(&["postgres", "pg_ctl"]) {
        findings.extend(drift::postgres(&pg_inputs(&plan, &sides, &texts), running));
    }
    if mentions(&["mariadbd", "mysqld", "mariadb", "mysql"]) {
        findings.extend(drift::mysql(&my_inputs(&plan, &sides), running));
    }
    findings.extend(drift::programs(
        &super::packages::programs(&plan, &sides, running),
        running,
    ));
    let refused: Vec<String> = findings
        .iter()
        .filter(|f| f.level == Level::Refuse)
        .map(|f| format!("  {}", f.message))
        .collect();
    if !refused.is_empty() {
        let asked = req
            .software
            .map(|s| format!(" (--software {})", s.flag()))
            .unwrap_or_default();
        return Err(BadInput::new(format!(
            "{}'s software{asked} cannot run the snapshot's state:\n{}",
            running.side(),
            refused.join("\n")
        ))
        .into());
    }
    plan.software.why = drift::why(running, req.software.is_some(), &findings);
    plan.software.findings = findings;
    Ok(plan)
}

/// Each bind of a clone, as (the tree of its snapshot, the path resolved there, where the container sees it).
fn bind_trees(plan: &Plan) -> Vec<(Tree, PathBuf, PathBuf)> {
    plan.container
        .binds
        .iter()
        .filter(|b| !b.readonly)
        .filter_map(|b| {
            let data = b.clone.as_ref()?;
            let snap = plan.snapshot_of(&data.root)?;
            Some((
                Tree::open(snap).ok()?,
                data.resolved.clone(),
                b.dest.clone(),
            ))
        })
        .collect()
}

/// `dest/rel`, without a trailing `/` for an empty `rel`.
fn join_rel(dest: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        dest.to_path_buf()
    } else {
        dest.join(rel)
    }
}

/// `name` at the bind's path and one and two directory levels below it (`15/main/PG_VERSION`).
fn find_below(tree: &Tree, at: &Path, names: &[&str]) -> Vec<(PathBuf, PathBuf, String)> {
    let mut out = Vec::new();
    let mut level = vec![PathBuf::new()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for rel in &level {
            for n in names {
                if let Ok(text) = tree.read_to_string(&at.join(rel).join(n), SMALL) {
                    out.push((rel.clone(), PathBuf::from(n), text));
                }
            }
            for (name, is_dir) in tree.read_dir(&at.join(rel)).unwrap_or_default() {
                if is_dir && next.len() < 64 {
                    next.push(rel.join(name));
                }
            }
        }
        level = next;
    }
    out
}

fn pg_inputs(plan: &Plan, sides: &Sides<Side>, texts: &[(String, String)]) -> drift::PgInputs {
    let mut clusters = Vec::new();
    for (tree, at, dest) in bind_trees(plan) {
        for (rel, _, version) in find_below(&tree, &at, &["PG_VERSION"]) {
            clusters.push(PgCluster {
                dir: join_rel(&dest, &rel),
                version,
            });
        }
    }
    let majors = |s: &Side| -> Vec<String> {
        let base = Path::new("/usr/lib/postgresql");
        let mut v: Vec<String> = s
            .list(base)
            .into_iter()
            .filter_map(|(n, _)| n.into_string().ok())
            .filter(|n| s.is_file(&base.join(n).join("bin/postgres")))
            .collect();
        v.sort_by(|a, b| versions::dpkg_cmp(a, b));
        v
    };
    // Only a whole root's binaries can run (`--software snapshot` needs one).
    let whole = |s: &Side| !s.list(Path::new("/etc")).is_empty();
    drift::PgInputs {
        clusters,
        installed: Sides {
            host: majors(&sides.host),
            snapshot: if whole(&sides.snapshot) {
                majors(&sides.snapshot)
            } else {
                Vec::new()
            },
        },
        named: texts.iter().flat_map(|(p, t)| pg_named(p, t)).collect(),
    }
}

/// Versions of PostgreSQL a process names: `pg_ctlcluster 15-main`, `/usr/lib/postgresql/15/bin/…`, a Nix
/// store `postgresql-15.4`. A version built at run time (`$v`) is none.
fn pg_named(process: &str, text: &str) -> Vec<PgNamed> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ';')
        .map(|w| w.trim_matches(['"', '\'']))
        .collect();
    let is_version = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.');
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if w.ends_with("pg_ctlcluster") {
            let arg = words[i + 1..]
                .iter()
                .find(|a| !a.starts_with('-') && !a.is_empty());
            if let Some(v) = arg
                .and_then(|a| a.split(['-', '/']).next())
                .filter(|v| is_version(v))
            {
                out.push(PgNamed {
                    version: v.to_string(),
                    why: format!("process {process} (pg_ctlcluster {})", arg.unwrap_or(&"")),
                    debian: true,
                });
            }
        } else if let Some(rest) = w.split("/usr/lib/postgresql/").nth(1) {
            if let Some(v) = rest.split('/').next().filter(|v| is_version(v)) {
                out.push(PgNamed {
                    version: v.to_string(),
                    why: format!("process {process} ({w})"),
                    debian: true,
                });
            }
        } else if let Some(p) =
            versions::store_package(Path::new(w)).filter(|p| p.name == "postgresql")
        {
            out.push(PgNamed {
                version: p.version.clone(),
                why: format!("process {process} ({w})"),
                debian: false,
            });
        }
    }
    out.dedup();
    out
}

fn my_inputs(plan: &Plan, sides: &Sides<Side>) -> drift::MyInputs {
    let mut data = Vec::new();
    for (tree, at, dest) in bind_trees(plan) {
        for (rel, _, version) in
            find_below(&tree, &at, &["mysql_upgrade_info", "mariadb_upgrade_info"])
        {
            if rel.components().count() <= 1 {
                data.push(MyData {
                    dir: join_rel(&dest, &rel),
                    version: version.trim_matches(['\0', '\n', ' ']).to_string(),
                });
            }
        }
    }
    let server = |s: &Side| {
        let db = s.dpkg();
        [
            "mariadb-server-core",
            "mysql-server-core",
            "percona-server-server",
            "mariadb-server",
            "mysql-server",
        ]
        .iter()
        .find_map(|prefix| db.iter().find(|(n, _)| n.starts_with(prefix)))
        .map(|(n, v)| versions::Package {
            name: n.clone(),
            version: v.clone(),
        })
    };
    drift::MyInputs {
        data,
        server: Sides {
            host: server(&sides.host),
            snapshot: server(&sides.snapshot),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_versions_the_processes_name() {
        let named = pg_named(
            "postgresql@15-main.service",
            "/usr/bin/pg_ctlcluster --skip-systemctl-redirect 15-main start",
        );
        assert_eq!(named[0].version, "15");
        assert!(named[0].why.contains("pg_ctlcluster 15-main"), "{named:?}");
        assert_eq!(
            pg_named("p", "exec \"/usr/lib/postgresql/$v/bin/postgres\" -D x"),
            vec![]
        );
        assert_eq!(
            pg_named("p", "/usr/lib/postgresql/13/bin/postgres -D /d")[0].version,
            "13"
        );
        let nix = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-postgresql-16.3/bin/postgres -D /d";
        assert_eq!(pg_named("p", nix)[0].version, "16.3");
        assert!(!pg_named("p", nix)[0].debian);
        assert_eq!(
            pg_named("p", "pg_ctlcluster 9.6 main start")[0].version,
            "9.6"
        );
    }
}
