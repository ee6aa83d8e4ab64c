//! The programs an instance's processes run, with their packages on both sides: a `command`'s argv[0] and
//! what a script `exec`s (the process cannot start without them), other program paths a script names; each
//! looked up in dpkg's file lists and status (or named by its Nix store path) on the host and in the
//! snapshot, for `wayback_core::drift::programs` to compare.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wayback_core::drift::{versions, Program, Sides, Software};
use wayback_core::Plan;

use super::compare::Side;
use super::dpkglists::DpkgLists;

/// Programs compared at most.
const MAX_PROGRAMS: usize = 24;

/// The programs the processes run: a `command`'s argv[0] and what a script `exec`s (required), and other
/// absolute paths of programs its text names that the running side has.
fn program_paths(plan: &Plan, running: &Side) -> Vec<(PathBuf, String, bool)> {
    let mut out: Vec<(PathBuf, String, bool)> = Vec::new();
    let mut add = |p: &str, process: &str, required: bool| {
        let ok = p.starts_with('/') && !p.contains(['$', '*', '`']) && out.len() < MAX_PROGRAMS;
        if ok && !out.iter().any(|(x, _, _)| x == Path::new(p)) {
            out.push((PathBuf::from(p), process.to_string(), required));
        }
    };
    for p in &plan.init.processes {
        if let Some(argv) = &p.command {
            if let Some(a0) = argv.first() {
                add(a0, &p.name, true);
            }
            continue;
        }
        let Some(script) = &p.shell else { continue };
        let words: Vec<&str> = script
            .split(|c: char| c.is_whitespace() || c == ';')
            .map(|w| w.trim_matches(['"', '\'']))
            .collect();
        for (i, w) in words.iter().enumerate() {
            let after_exec = i > 0 && words[i - 1] == "exec";
            let program = ["/usr/", "/bin/", "/sbin/", "/opt/", "/nix/store/"]
                .iter()
                .any(|d| w.starts_with(d));
            if let Some(prefix) = w
                .strip_suffix('*')
                .filter(|x| program && !x.contains(['*', '?', '[']))
            {
                // `for f in /usr/sbin/php-fpm*`: the programs the running side has there.
                for found in expand(running, prefix) {
                    add(&found, &p.name, false);
                }
            } else if after_exec || (program && running.is_file(Path::new(w))) {
                add(w, &p.name, after_exec);
            }
        }
    }
    out
}

pub(super) fn programs(plan: &Plan, sides: &Sides<Side>, running: Software) -> Vec<Program> {
    let (run_side, _) = sides.split(running);
    let paths = program_paths(plan, run_side);
    if paths.is_empty() {
        return Vec::new();
    }
    let db = Sides {
        host: sides.host.dpkg(),
        snapshot: sides.snapshot.dpkg(),
    };
    let mut lists = Sides {
        host: DpkgLists::new(&sides.host),
        snapshot: DpkgLists::new(&sides.snapshot),
    };
    let mut stores: Sides<Option<Vec<versions::Package>>> = Sides::default();
    let has_store = |s: &Side| !s.list(Path::new("/nix/store")).is_empty();
    let databases = Sides {
        host: !db.host.is_empty() || has_store(&sides.host),
        snapshot: !db.snapshot.is_empty() || has_store(&sides.snapshot),
    };
    let mut seen: Vec<(String, String)> = Vec::new();
    paths
        .into_iter()
        .map(|(path, process, required)| {
            let exists = Sides {
                host: sides.host.is_file(&path),
                snapshot: sides.snapshot.is_file(&path),
            };
            let owner = (lists.host.owner(&path)).or_else(|| lists.snapshot.owner(&path));
            let from_db = |db: &BTreeMap<String, String>, there: bool| {
                let name = owner.as_ref().filter(|_| there)?;
                Some(versions::Package {
                    name: name.clone(),
                    version: db.get(name)?.clone(),
                })
            };
            let package = match versions::store_package(&path) {
                Some(own) => Sides {
                    host: store_version(&own, exists.host, &sides.host, &mut stores.host),
                    snapshot: store_version(
                        &own,
                        exists.snapshot,
                        &sides.snapshot,
                        &mut stores.snapshot,
                    ),
                },
                None => Sides {
                    host: from_db(&db.host, exists.host),
                    snapshot: from_db(&db.snapshot, exists.snapshot),
                },
            };
            Program {
                path,
                process,
                required,
                exists,
                package,
                databases: databases.clone(),
            }
        })
        // One line per package of a process (/usr/sbin/mysqld is a link to mariadbd).
        .filter(|p: &Program| {
            let (pkg, _) = p.package.split(running);
            let Some(pkg) = pkg else { return true };
            let key = (p.process.clone(), pkg.name.clone());
            let new = !seen.contains(&key);
            seen.push(key);
            new
        })
        .collect()
}

/// A store program's package on one side: its own name when the side has that very path, else the one
/// version of the same name that side's store holds (none when it holds several: which one ran is unknown).
fn store_version(
    own: &versions::Package,
    there: bool,
    side: &Side,
    cache: &mut Option<Vec<versions::Package>>,
) -> Option<versions::Package> {
    if there {
        return Some(own.clone());
    }
    let store = cache.get_or_insert_with(|| {
        side.list(Path::new("/nix/store"))
            .into_iter()
            .filter_map(|(n, _)| versions::store_package(&Path::new("/nix/store").join(n)))
            .collect()
    });
    let mut same: Vec<&versions::Package> = store.iter().filter(|p| p.name == own.name).collect();
    same.dedup_by(|a, b| a.version == b.version);
    match same.as_slice() {
        [one] => Some((*one).clone()),
        _ => None,
    }
}

/// The files of one directory whose paths start with `prefix` (`/usr/sbin/php-fpm` → `/usr/sbin/php-fpm8.2`).
fn expand(side: &Side, prefix: &str) -> Vec<String> {
    let (dir, start) = prefix.rsplit_once('/').unwrap_or(("", prefix));
    let dir = if dir.is_empty() { "/" } else { dir };
    side.list(Path::new(dir))
        .into_iter()
        .filter_map(|(n, is_dir)| {
            n.into_string()
                .ok()
                .filter(|n| !is_dir && n.starts_with(start))
        })
        .map(|n| format!("{}/{n}", dir.trim_end_matches('/')))
        .filter(|p| side.is_file(Path::new(p)))
        .take(4)
        .collect()
}
