//! Selectors resolved against a whole [`Catalog`]: only its snapshots are candidates, never its live
//! (writable) subvolumes. A path naming a live subvolume is a [`SelectorError::Live`] that says what it
//! is and which snapshots of it there are; a selection that finds nothing names the live subvolumes it
//! passed over, so "no snapshot" is never mistaken for "nothing there".

use std::path::Path;

use super::{resolve, select_by, Kind, Range, Selector, SelectorError};
use crate::catalog::{Catalog, LiveSubvol, Snapshot};

/// How many passed-over live subvolumes an error names.
const NAMED: usize = 3;

/// Resolve a selector to exactly one snapshot of `cat` (never a live subvolume).
pub fn resolve_in<'a>(
    sel: &Selector,
    cat: &'a Catalog,
    now: i64,
) -> Result<&'a Snapshot, SelectorError> {
    if let Kind::Path(p) = &sel.kind {
        if let Some(l) = cat.live_at(p) {
            return Err(live_error(sel, l, cat));
        }
    }
    resolve(sel, &cat.snapshots, now).map_err(|e| with_live_hint(e, sel.root(), cat))
}

/// The snapshots of `cat` inside `range` (never a live subvolume), in catalog order. Empty is an error.
pub fn select_in<'a>(
    range: &Range,
    cat: &'a Catalog,
    now: i64,
) -> Result<Vec<&'a Snapshot>, SelectorError> {
    let one = |s: &Selector| resolve_in(s, cat, now);
    select_by(range, &cat.snapshots, now, &one).map_err(|e| match e {
        SelectorError::Empty { .. } => {
            let root = range.roots().into_iter().next();
            with_live_hint(e, root, cat)
        }
        other => other,
    })
}

fn live_error(sel: &Selector, l: &LiveSubvol, cat: &Catalog) -> SelectorError {
    let snaps: Vec<Snapshot> = match l.uuid.as_deref() {
        Some(u) => cat.snapshots_of(u).into_iter().cloned().collect(),
        None => Vec::new(),
    };
    SelectorError::Live {
        selector: sel.text.clone(),
        message: l.not_a_snapshot(&snaps),
    }
}

/// Add to an empty-selection error the live subvolumes under `root` (all roots when `None`).
fn with_live_hint(e: SelectorError, root: Option<&Path>, cat: &Catalog) -> SelectorError {
    let SelectorError::Empty { selector, hint } = e else {
        return e;
    };
    let passed: Vec<&LiveSubvol> = cat
        .live
        .iter()
        .filter(|l| root.is_none_or(|r| l.root == r || l.path.starts_with(r)))
        .collect();
    if passed.is_empty() {
        return SelectorError::Empty { selector, hint };
    }
    let mut names: Vec<String> = passed
        .iter()
        .take(NAMED)
        .map(|l| format!("{} ({})", l.path.display(), l.what()))
        .collect();
    if passed.len() > NAMED {
        names.push(format!("{} more", passed.len() - NAMED));
    }
    SelectorError::Empty {
        selector,
        hint: format!(
            "{hint}; writable subvolumes are never snapshots, so these were passed over: {}",
            names.join(", ")
        ),
    }
}
