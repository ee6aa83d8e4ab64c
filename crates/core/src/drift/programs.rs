//! Each program the processes run against its package on the other side: missing where it would run
//! (refused when the other side has it), other package versions (this host's newer than the snapshot's: an
//! app may migrate the clone's data on start).

use std::path::PathBuf;

use super::versions::{dpkg_cmp, upstream, Package};
use super::{Finding, Level, Sides, Software};

/// A program a process runs, as each side has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub path: PathBuf,
    /// The process that runs it.
    pub process: String,
    /// The process execs exactly this path: without it, it cannot start.
    pub required: bool,
    /// Whether each side has the file, and its package there (dpkg, or the store path's name).
    pub exists: Sides<bool>,
    pub package: Sides<Option<Package>>,
    /// Whether each side has a package database (dpkg's, or a Nix store) to look packages up in.
    pub databases: Sides<bool>,
}

/// Each program against the other side's: missing where it would run (refused when the other side has it),
/// other package versions (the host's newer than the snapshot's: an app may migrate the clone's data on
/// start).
pub fn programs(list: &[Program], running: Software) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in list {
        let (exists, other_exists) = p.exists.split(running);
        let (pkg, other_pkg) = p.package.split(running);
        let path = p.path.display();
        let app = pkg
            .as_ref()
            .or(other_pkg.as_ref())
            .map_or_else(|| p.process.clone(), |k| k.name.clone());
        if !exists {
            if p.required && *other_exists {
                let from = other_pkg
                    .as_ref()
                    .map(|k| format!(" (from {k})"))
                    .unwrap_or_default();
                out.push(Finding::new(Level::Refuse, &app, format!(
                    "{path}, which process {} runs, is not in {}; {} has it{from}. Options: `--software {}`",
                    p.process,
                    running.side(),
                    running.other().side(),
                    running.other().flag()
                )));
            }
            continue;
        }
        let (a, b) = match (pkg, other_pkg) {
            (Some(a), Some(b)) => (a, b),
            (Some(a), None) if *p.databases.split(running).1 => {
                out.push(Finding::new(
                    Level::Note,
                    &app,
                    format!(
                        "{path} ({}): {a} from {}; {} has no {}",
                        p.process,
                        running.side(),
                        running.other().side(),
                        a.name
                    ),
                ));
                continue;
            }
            _ => continue,
        };
        let (host, snap) = match running {
            Software::Host => (a, b),
            Software::Snapshot => (b, a),
        };
        if a.name != b.name {
            out.push(Finding::new(
                Level::Note,
                &app,
                format!("{path}: {host} on this host, {snap} in the snapshot"),
            ));
            continue;
        }
        let same_upstream = upstream(&host.version) == upstream(&snap.version);
        let (level, what) = match (running, dpkg_cmp(&host.version, &snap.version)) {
            (_, std::cmp::Ordering::Equal) => (Level::Ok, "the same on both sides".to_string()),
            (_, _) if same_upstream => (
                Level::Note,
                "the same upstream version (only the packaging revision differs)".to_string(),
            ),
            (Software::Snapshot, _) => (Level::Note, "the snapshot's own runs".to_string()),
            (Software::Host, std::cmp::Ordering::Greater) => (Level::Warn, "this host's is newer: an app that migrates its data on start rewrites the clone's copy (the source is never touched); `--software snapshot` runs the snapshot's".to_string()),
            (Software::Host, std::cmp::Ordering::Less) => (Level::Warn, "this host's is older than the snapshot's: it may not read state a newer version wrote; `--software snapshot` runs the snapshot's".to_string()),
        };
        out.push(Finding::new(
            level,
            &app,
            format!(
                "{path} ({}): {} on this host, {} in the snapshot: {what}",
                p.process, host.version, snap.version
            ),
        ));
    }
    out
}
