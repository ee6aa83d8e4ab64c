//! `wayback versions` output: a table of the path's spans (version or absence, snapshot range, dates,
//! size, mtime, hash when computed), a line for live, and the same as one JSON object.

use std::fmt::Write;

use super::{History, Live, State};
use crate::catalog::Snapshot;
use crate::change::FileType;
use crate::civil::format_utc;

fn ids(a: &Snapshot, b: &Snapshot) -> String {
    if a.id == b.id {
        format!("#{}", a.id)
    } else {
        format!("#{}–#{}", a.id, b.id)
    }
}

fn what(h: &History, version: usize) -> String {
    let v = &h.versions[version - 1];
    let e = &v.entry;
    let mut s = match e.kind {
        FileType::File => format!("{} bytes  mtime {}", e.size, format_utc(e.mtime)),
        FileType::Dir => "directory".to_string(),
        FileType::Symlink => format!(
            "symlink -> {}",
            e.target.as_deref().unwrap_or("?".as_ref()).display()
        ),
        FileType::Other => "special file".to_string(),
    };
    if let Some(h) = &v.sha256 {
        let _ = write!(s, "  sha256 {}…", &h[..12]);
    }
    s
}

/// The text report for `path` over `snaps` (the observations' snapshots, oldest first).
pub fn render(path: &str, series: &str, snaps: &[&Snapshot], h: &History) -> String {
    let mut out = String::new();
    let n = h.versions.len();
    let _ = writeln!(
        out,
        "{path}: {n} version{} in {} snapshots of {series}",
        if n == 1 { "" } else { "s" },
        snaps.len()
    );
    for s in &h.spans {
        let (a, b) = (snaps[s.first], snaps[s.last]);
        let label = match s.state {
            State::Present { version } => format!("v{version}"),
            State::Absent { deleted: true } => "deleted".into(),
            State::Absent { deleted: false } => "absent".into(),
        };
        let detail = match s.state {
            State::Present { version } => what(h, version),
            State::Absent { .. } => String::new(),
        };
        let _ = writeln!(
            out,
            "  {label:<8} {:<14} {:>4}  {} .. {}  {detail}",
            ids(a, b),
            s.last - s.first + 1,
            format_utc(a.date),
            format_utc(b.date),
        );
    }
    let newest = h.spans.last().map(|s| s.state);
    let live = match (h.live, newest) {
        (Live::Unknown, _) => None,
        (Live::Absent, Some(State::Absent { deleted: true })) => {
            Some("deleted (as in the newest snapshots)".to_string())
        }
        (Live::Absent, _) => Some("absent: deleted since the newest snapshot".to_string()),
        (Live::Version { version }, Some(State::Present { version: v })) if v == version => {
            Some(format!("v{version} (unchanged since the newest snapshot)"))
        }
        (Live::Version { version }, _) => Some(format!("v{version} again")),
        (Live::New, _) => {
            Some("changed since the newest snapshot (a version no snapshot has)".into())
        }
    };
    if let Some(l) = live {
        let _ = writeln!(out, "  live: {l}");
    }
    if let Some(s) = h
        .spans
        .iter()
        .rev()
        .find(|s| matches!(s.state, State::Present { .. }))
    {
        let last = snaps[s.last];
        let _ = writeln!(
            out,
            "  newest version in a snapshot: #{}  (wayback restore {path} --from @{})",
            last.id, last.id
        );
    }
    out
}

/// The JSON report: `{"path", "series", "snapshots", "versions": [...], "spans": [...], "live", "hashed"}`.
pub fn to_json(path: &str, series: &str, snaps: &[&Snapshot], h: &History) -> serde_json::Value {
    let snap = |s: &Snapshot| {
        serde_json::json!({
            "id": s.id, "date_utc": format_utc(s.date), "path": s.path,
        })
    };
    let spans: Vec<serde_json::Value> = h
        .spans
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s.state).expect("serialisable");
            v["first"] = snap(snaps[s.first]);
            v["last"] = snap(snaps[s.last]);
            v["count"] = (s.last - s.first + 1).into();
            v
        })
        .collect();
    let versions: Vec<serde_json::Value> = h
        .versions
        .iter()
        .map(|v| {
            let mut j = serde_json::to_value(v).expect("serialisable");
            j["mtime_utc"] = format_utc(v.entry.mtime).into();
            let runs = h.runs_of(v.number);
            j["first"] = snap(snaps[runs[0].first]);
            j["last"] = snap(snaps[runs[runs.len() - 1].last]);
            j["count"] = runs
                .iter()
                .map(|s| s.last - s.first + 1)
                .sum::<usize>()
                .into();
            j
        })
        .collect();
    serde_json::json!({
        "path": path,
        "series": series,
        "snapshots": snaps.len(),
        "versions": versions,
        "spans": spans,
        "live": h.live,
        "hashed": h.hashed,
    })
}
