//! What `up --unit` tells the user, kept short: reports that say the same thing about several directives,
//! units or files collapse into one line with a count (the full list stays available for `--verbose`), and
//! the check that an instance would not silently run on empty state.

use std::fmt;
use std::path::PathBuf;

use super::state::{Candidate, PathRole};
use super::{Report, ReportKind};
use crate::profile::Bind;

/// Reports with the same kind and message, whatever directive, unit or file they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportGroup<'a> {
    pub kind: ReportKind,
    pub message: &'a str,
    /// Distinct directives (`ProtectSystem`), in order of appearance; empty names are left out.
    pub directives: Vec<&'a str>,
    /// Distinct units, without `.service`.
    pub units: Vec<String>,
    /// Every report of the group, for `--verbose`.
    pub reports: Vec<&'a Report>,
}

/// Collapse `reports` by kind and message: not honoured first, then honoured differently, then notes; in
/// order of first appearance within a kind.
pub fn group_reports(reports: &[Report]) -> Vec<ReportGroup<'_>> {
    let mut groups: Vec<ReportGroup> = Vec::new();
    let mut sorted: Vec<&Report> = reports.iter().collect();
    sorted.sort_by_key(|r| r.kind);
    for r in sorted {
        let unit = r.unit.trim_end_matches(".service").to_string();
        let g = match groups
            .iter_mut()
            .find(|g| g.kind == r.kind && g.message == r.message)
        {
            Some(g) => g,
            None => {
                groups.push(ReportGroup {
                    kind: r.kind,
                    message: &r.message,
                    directives: Vec::new(),
                    units: Vec::new(),
                    reports: Vec::new(),
                });
                groups.last_mut().expect("just pushed")
            }
        };
        if !r.directive.is_empty() && !g.directives.contains(&r.directive.as_str()) {
            g.directives.push(&r.directive);
        }
        if !g.units.contains(&unit) {
            g.units.push(unit);
        }
        g.reports.push(r);
    }
    groups
}

/// Up to `max` items, then `and N more`.
fn list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        return items.join(", ");
    }
    format!(
        "{}, and {} more",
        items[..max].join(", "),
        items.len() - max
    )
}

impl fmt::Display for ReportGroup<'_> {
    /// One report as [`Report`]'s own line; several as
    /// `ProtectSystem= ignored in 3 units (redis-server, mosquitto, nginx): sandboxing is not applied: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [one] = self.reports.as_slice() {
            return write!(f, "{one}");
        }
        let verb = match self.kind {
            ReportKind::Ignored => "ignored",
            ReportKind::Approximated => "honoured differently",
            ReportKind::Note => "noted",
        };
        let dirs: Vec<String> = self.directives.iter().map(|d| format!("{d}=")).collect();
        let what = match dirs.len() {
            0 => format!("{} reports", self.reports.len()),
            1 => dirs[0].clone(),
            n => format!("{n} directives ({})", list(&dirs, 6)),
        };
        let units = match self.units.len() {
            1 => self.units[0].clone(),
            n => format!("{n} units ({})", list(&self.units, 6)),
        };
        write!(f, "{what} {verb} in {units}: {}", self.message)
    }
}

/// `up` would bind nothing of the snapshot that holds state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NothingBound {
    /// The state paths looked for (none may be in the snapshot, or all were left out with --no-bind), each
    /// once, with every reason it was named for.
    pub looked_for: Vec<Candidate>,
    /// The snapshot and the directories it has where services keep data (`/var/lib/x`, `/srv/y`), when the
    /// caller read it: what the user may want to `--bind` instead.
    pub snapshot: Option<(PathBuf, Vec<String>)>,
}

impl fmt::Display for NothingBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.snapshot {
            Some((path, _)) => write!(
                f,
                "nothing of the snapshot {} would be bound",
                path.display()
            )?,
            None => write!(f, "nothing of the snapshot would be bound")?,
        }
        if self.looked_for.is_empty() {
            write!(f, ", and the units name no state path (no StateDirectory=, no data directory in the app's config)")?;
        } else {
            let items: Vec<String> = self
                .looked_for
                .iter()
                .map(|c| format!("{} ({})", c.named.display(), c.reason))
                .collect();
            write!(f, "; candidates looked for: {}", items.join("; "))?;
        }
        match &self.snapshot {
            Some((_, has)) if has.is_empty() => write!(
                f,
                "; the snapshot has no directory in /var/lib, /srv, /var/www or /home (a snapshot of the whole \
                 root holds them at the live system's paths)"
            )?,
            Some((_, has)) => write!(f, "; the snapshot has {}", list(has, 12))?,
            None => {}
        }
        write!(
            f,
            "; give --bind PATH for the service's state, or --allow-empty to run it on empty state"
        )
    }
}

/// Whether `binds` (the profile's and the command line's, after `--no-bind`) hold nothing of the
/// snapshot's state: every bind is one inferred for a cache, or there is none. `candidates` are all those
/// looked for (`StatePaths::candidates`); the state ones are named in the message.
pub fn nothing_bound(binds: &[Bind], candidates: &[Candidate]) -> Option<NothingBound> {
    let cache_only = |b: &Bind| {
        let mine: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| c.path == b.path() && b.reason().is_some())
            .collect();
        !mine.is_empty() && mine.iter().all(|c| c.role == PathRole::Cache)
    };
    if binds.iter().any(|b| !cache_only(b)) {
        return None;
    }
    let mut looked_for: Vec<Candidate> = Vec::new();
    for c in candidates.iter().filter(|c| c.role == PathRole::State) {
        match looked_for.iter_mut().find(|x| x.named == c.named) {
            Some(x) if !x.reason.split("; ").any(|r| r == c.reason) => {
                x.reason = format!("{}; {}", x.reason, c.reason);
            }
            Some(_) => {}
            None => looked_for.push(c.clone()),
        }
    }
    Some(NothingBound {
        looked_for,
        snapshot: None,
    })
}
