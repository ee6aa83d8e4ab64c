//! `wayback find` results: which snapshots hold a path (or glob), grouped into runs per series
//! ("present in #11900–#11921, gone from #11922 on") so the last good snapshot is obvious. Pure: the
//! binary gathers one [`Observation`] per snapshot (see `wayback::sys::walk`).

use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use crate::catalog::Snapshot;
use crate::change::{display_path, FileType};
use crate::civil::format_utc;

/// One matching path in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hit {
    /// Relative to the snapshot root.
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
    #[serde(rename = "type")]
    pub kind: FileType,
    pub size: u64,
    pub mtime: i64,
}

fn lossy<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

/// What one snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observation {
    pub id: u64,
    pub date: i64,
    pub series: String,
    pub path: PathBuf,
    pub hits: Vec<Hit>,
}

impl Observation {
    pub fn of(s: &Snapshot, hits: Vec<Hit>) -> Observation {
        Observation {
            id: s.id,
            date: s.date,
            series: s.series(),
            path: s.path.clone(),
            hits,
        }
    }
    pub fn present(&self) -> bool {
        !self.hits.is_empty()
    }
}

/// Consecutive snapshots of one series with the same presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub series: String,
    pub present: bool,
    pub first_id: u64,
    pub last_id: u64,
    pub count: usize,
    pub first_date: i64,
    pub last_date: i64,
}

/// Group observations (in catalog order) into runs, per series, series in order of first appearance.
pub fn runs(obs: &[Observation]) -> Vec<Run> {
    let mut series: Vec<&str> = Vec::new();
    for o in obs {
        if !series.contains(&o.series.as_str()) {
            series.push(&o.series);
        }
    }
    let mut out: Vec<Run> = Vec::new();
    for s in series {
        let start = out.len();
        for o in obs.iter().filter(|o| o.series == s) {
            match out[start..].last_mut() {
                Some(r) if r.present == o.present() => {
                    r.last_id = o.id;
                    r.last_date = o.date;
                    r.count += 1;
                }
                _ => out.push(Run {
                    series: s.into(),
                    present: o.present(),
                    first_id: o.id,
                    last_id: o.id,
                    count: 1,
                    first_date: o.date,
                    last_date: o.date,
                }),
            }
        }
    }
    out
}

/// The newest observation of each series that holds a match.
pub fn last_good(obs: &[Observation]) -> Vec<&Observation> {
    let mut out: Vec<&Observation> = Vec::new();
    for o in obs.iter().filter(|o| o.present()) {
        match out.iter_mut().find(|x| x.series == o.series) {
            Some(x) if (o.date, o.id) >= (x.date, x.id) => *x = o,
            Some(_) => {}
            None => out.push(o),
        }
    }
    out
}

fn ids(first: u64, last: u64) -> String {
    if first == last {
        format!("#{first}")
    } else {
        format!("#{first}–#{last}")
    }
}

/// One sentence per series: "present in #6–#15, gone from #16 on".
pub fn sentence(runs: &[Run], series: &str) -> String {
    let rs: Vec<&Run> = runs.iter().filter(|r| r.series == series).collect();
    let total: usize = rs.iter().map(|r| r.count).sum();
    if rs.iter().all(|r| !r.present) {
        return format!("not in any of the {total} snapshots");
    }
    let mut parts = Vec::new();
    for (i, r) in rs.iter().enumerate() {
        let last = i + 1 == rs.len();
        parts.push(match (r.present, last) {
            (true, true) => format!("present in {} (the newest)", ids(r.first_id, r.last_id)),
            (true, false) => format!("present in {}", ids(r.first_id, r.last_id)),
            (false, true) if i > 0 => format!("gone from #{} on", r.first_id),
            (false, _) if i == 0 => format!("absent before #{}", rs[1].first_id),
            (false, _) => format!("gone in {}", ids(r.first_id, r.last_id)),
        });
    }
    parts.join(", ")
}

/// The text report: per series, its runs, the sentence, and the last good snapshot with its matches.
pub fn render(pattern: &str, obs: &[Observation]) -> String {
    let runs = runs(obs);
    let good = last_good(obs);
    let mut out = String::new();
    let mut seen: Vec<&str> = Vec::new();
    for r in &runs {
        if seen.contains(&r.series.as_str()) {
            continue;
        }
        seen.push(&r.series);
        let n: usize = runs
            .iter()
            .filter(|x| x.series == r.series)
            .map(|x| x.count)
            .sum();
        out.push_str(&format!("{pattern} in {n} snapshots of {}\n", r.series));
        for x in runs.iter().filter(|x| x.series == r.series) {
            out.push_str(&format!(
                "  {:<8} {:<16} {:>4}  {} .. {}\n",
                if x.present { "present" } else { "absent" },
                ids(x.first_id, x.last_id),
                x.count,
                format_utc(x.first_date),
                format_utc(x.last_date)
            ));
        }
        out.push_str(&format!("  {}\n", sentence(&runs, &r.series)));
        if let Some(g) = good.iter().find(|g| g.series == r.series) {
            out.push_str(&format!(
                "  last good: #{}  {}  {}\n",
                g.id,
                format_utc(g.date),
                g.path.display()
            ));
            const SHOWN: usize = 20;
            for h in g.hits.iter().take(SHOWN) {
                out.push_str(&format!(
                    "    {}  {} bytes  mtime {}\n",
                    display_path(&h.path),
                    h.size,
                    format_utc(h.mtime)
                ));
            }
            if g.hits.len() > SHOWN {
                out.push_str(&format!(
                    "    ... and {} more (--json lists all)\n",
                    g.hits.len() - SHOWN
                ));
            }
        }
    }
    if obs.is_empty() {
        out.push_str("no snapshots to search\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(series: &str, id: u64, present: bool) -> Observation {
        Observation {
            id,
            date: 1_794_650_400 + id as i64 * 3600,
            series: series.into(),
            path: format!("/p/.snapshots/{id}/snapshot").into(),
            hits: if present {
                vec![Hit {
                    path: "var/report.odt".into(),
                    kind: FileType::File,
                    size: 42,
                    mtime: 1_794_650_400,
                }]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn runs_and_sentences() {
        let s = "snapper /p";
        let o: Vec<Observation> = (1..=10).map(|i| obs(s, i, (4..=7).contains(&i))).collect();
        let r = runs(&o);
        assert_eq!(r.len(), 3);
        assert_eq!((r[1].first_id, r[1].last_id, r[1].count), (4, 7, 4));
        assert_eq!(
            sentence(&r, s),
            "absent before #4, present in #4–#7, gone from #8 on"
        );
        assert_eq!(last_good(&o)[0].id, 7);
        let all: Vec<Observation> = (1..=3).map(|i| obs(s, i, true)).collect();
        assert_eq!(sentence(&runs(&all), s), "present in #1–#3 (the newest)");
        let none: Vec<Observation> = (1..=3).map(|i| obs(s, i, false)).collect();
        assert_eq!(sentence(&runs(&none), s), "not in any of the 3 snapshots");
        let gap: Vec<Observation> = (1..=5).map(|i| obs(s, i, i != 3)).collect();
        assert_eq!(
            sentence(&runs(&gap), s),
            "present in #1–#2, gone in #3, present in #4–#5 (the newest)"
        );
    }

    #[test]
    fn report_text() {
        let mut o: Vec<Observation> = (1..=6)
            .map(|i| obs("snapper /p", i, (2..=4).contains(&i)))
            .collect();
        o.insert(2, obs("btrbk /b/home", 1, true));
        insta::assert_snapshot!(render("var/report.odt", &o), @r"
        var/report.odt in 6 snapshots of snapper /p
          absent   #1                  1  2026-11-14 11:00:00 .. 2026-11-14 11:00:00
          present  #2–#4               3  2026-11-14 12:00:00 .. 2026-11-14 14:00:00
          absent   #5–#6               2  2026-11-14 15:00:00 .. 2026-11-14 16:00:00
          absent before #2, present in #2–#4, gone from #5 on
          last good: #4  2026-11-14 14:00:00  /p/.snapshots/4/snapshot
            var/report.odt  42 bytes  mtime 2026-11-14 10:00:00
        var/report.odt in 1 snapshots of btrbk /b/home
          present  #1                  1  2026-11-14 11:00:00 .. 2026-11-14 11:00:00
          present in #1 (the newest)
          last good: #1  2026-11-14 11:00:00  /p/.snapshots/1/snapshot
            var/report.odt  42 bytes  mtime 2026-11-14 10:00:00
        ");
    }
}
