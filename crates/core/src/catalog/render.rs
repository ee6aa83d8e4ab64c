//! `wayback snapshots` output: the snapshot table and, apart from it, the live (writable) subvolumes —
//! as text, and as one JSON object `{"snapshots": [...], "live": [...], "warnings": [...]}`. Pure.

use std::fmt::Write;

use super::{live::created_utc, Catalog, LiveSubvol, Snapshot, Source};
use crate::civil::format_utc;

fn source_col(s: &Snapshot) -> String {
    match &s.source {
        Source::Snapper { kind, .. } => format!("snapper/{kind}"),
        Source::Btrbk { name } => format!("btrbk {name}"),
        Source::Plain => "plain".into(),
    }
}

/// How many snapshots of `l` the catalog has, and the newest.
fn snapshots_of<'a>(cat: &'a Catalog, l: &LiveSubvol) -> (usize, Option<&'a Snapshot>) {
    let of = l
        .uuid
        .as_deref()
        .map(|u| cat.snapshots_of(u))
        .unwrap_or_default();
    (of.len(), of.last().copied())
}

/// The text listing: snapshots (if any) by date, then live subvolumes (if any). Empty when neither.
pub fn render(cat: &Catalog) -> String {
    let mut out = String::new();
    if !cat.snapshots.is_empty() {
        let _ = writeln!(
            out,
            "{:>7}  {:<19}  {:<16}  {:<24}  PATH",
            "ID", "DATE (UTC)", "SOURCE", "DESCRIPTION"
        );
    }
    for s in &cat.snapshots {
        let _ = writeln!(
            out,
            "{:>7}  {:<19}  {:<16}  {:<24}  {}",
            format!("#{}", s.id),
            format_utc(s.date),
            source_col(s),
            s.description.as_deref().unwrap_or("-"),
            s.path.display()
        );
    }
    if cat.live.is_empty() {
        return out;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(
        "Live subvolumes (writable: today's data, never picked as a snapshot; `up` on one needs \
         --from-live):\n",
    );
    let _ = writeln!(
        out,
        "  {:<19}  {:>9}  PATH  (WHAT)",
        "CREATED (UTC)", "SNAPSHOTS"
    );
    for l in &cat.live {
        let (n, _) = snapshots_of(cat, l);
        let _ = writeln!(
            out,
            "  {:<19}  {:>9}  {}  ({})",
            created_utc(l),
            n,
            l.path.display(),
            l.what()
        );
    }
    out
}

/// The JSON listing: each snapshot with `date_utc` and `series`; each live subvolume with
/// `created_utc`, `what`, `snapshot_count` and `newest_snapshot`; the warnings.
pub fn to_json(cat: &Catalog) -> serde_json::Value {
    let snaps: Vec<serde_json::Value> = cat
        .snapshots
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).expect("serialisable");
            v["date_utc"] = format_utc(s.date).into();
            v["series"] = s.series().into();
            v
        })
        .collect();
    let live: Vec<serde_json::Value> = cat
        .live
        .iter()
        .map(|l| {
            let (n, newest) = snapshots_of(cat, l);
            let mut v = serde_json::to_value(l).expect("serialisable");
            v["created_utc"] = created_utc(l).into();
            v["what"] = l.what().into();
            v["snapshot_count"] = n.into();
            v["newest_snapshot"] = serde_json::to_value(newest.map(|s| &s.path)).expect("path");
            v
        })
        .collect();
    serde_json::json!({ "snapshots": snaps, "live": live, "warnings": cat.warnings })
}
