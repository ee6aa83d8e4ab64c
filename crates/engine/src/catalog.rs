//! The snapshot catalog on this host: the snapshots snapper, btrbk and plain read-only subvolumes left in
//! and below the given roots, the live (writable) subvolumes found there (never snapshots), selectors
//! resolved against them, and [`inspect_path`]: is a path live data, and what are its snapshots. Reads
//! only (readdir, info.xml, subvolume ioctls). `wayback snapshots`, `find`, `diff`, `up`, `verify` and the
//! daemon all read snapshots through here.

use std::path::{Path, PathBuf};

use anyhow::Result;
use wayback_core::catalog::{self, Catalog, PathInfo};
use wayback_core::selector::{self, Kind, Selector};

use crate::error::BadInput;
use crate::sys::walk::FsProbe;

fn canonical(p: &Path, what: &str) -> Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|e| {
        BadInput::new(format!(
            "{what} {} does not exist or cannot be reached: {e}",
            p.display()
        ))
        .into()
    })
}

/// A selector with its ROOT (or path) made absolute, so it compares with discovered paths.
pub fn canonical_selector(sel: Selector) -> Result<Selector> {
    let kind = match sel.kind {
        Kind::Path(p) => Kind::Path(canonical(&p, "snapshot")?),
        Kind::At {
            root: Some(r),
            target,
        } => Kind::At {
            root: Some(canonical(&r, "snapshot root")?),
            target,
        },
        k @ Kind::At { .. } => k,
    };
    Ok(Selector {
        text: sel.text,
        kind,
    })
}

/// A `--in` range with both ends made canonical (their roots resolved).
pub fn canonical_range(text: &str) -> Result<selector::Range> {
    let r: selector::Range = text
        .parse()
        .map_err(|e| BadInput::new(format!("--in: {e}")))?;
    let canon = |s: Option<Selector>| s.map(canonical_selector).transpose();
    Ok(selector::Range {
        from: canon(r.from)?,
        to: canon(r.to)?,
        text: r.text,
    })
}

/// Make each root absolute, dropping duplicates.
fn canonical_roots(roots: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut abs: Vec<PathBuf> = Vec::new();
    for r in roots {
        let c = canonical(r, "snapshot root")?;
        if !abs.contains(&c) {
            abs.push(c);
        }
    }
    Ok(abs)
}

/// Discover the snapshots (and live subvolumes) under `roots` (made absolute, duplicates dropped);
/// warnings go to stderr.
pub fn load_catalog(roots: &[PathBuf]) -> Result<Catalog> {
    let abs = canonical_roots(roots)?;
    let cat = catalog::discover(&abs, &FsProbe).map_err(|e| BadInput::new(e.to_string()))?;
    for w in &cat.warnings {
        eprintln!("wayback: warning: {}: {}", w.path.display(), w.message);
    }
    Ok(cat)
}

/// What `path` is for a command that wants a snapshot, in one call: a read-only subvolume (a snapshot,
/// with its catalog entry if `roots` hold it), a writable one (live data, never a snapshot: with what it
/// is and its snapshots under `roots`, oldest first), or not a subvolume. Roots that cannot be read are
/// skipped quietly; a `path` that does not exist is bad input.
// For `up` (a writable SNAPSHOT needs --from-live), wired in by the lead's branch.
#[allow(dead_code)]
pub fn inspect_path(path: &Path, roots: &[PathBuf]) -> Result<PathInfo> {
    let path = canonical(path, "snapshot")?;
    let abs: Vec<PathBuf> = roots
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .collect();
    let cat = catalog::discover_lenient(&abs, &FsProbe);
    Ok(catalog::inspect(&path, &cat, &FsProbe))
}

/// Resolve one selector to a snapshot path: a path is taken as it is; anything else is looked up in
/// the catalog of `roots` plus the selector's own ROOT, and only ever names a read-only snapshot.
pub fn resolve_path(text: &str, roots: &[PathBuf]) -> Result<PathBuf> {
    let sel: Selector = text.parse().map_err(|e| BadInput::new(format!("{e}")))?;
    let sel = canonical_selector(sel)?;
    if let Some(p) = sel.path() {
        return Ok(p.to_path_buf());
    }
    // The selector's own ROOT first: a snapshot found under several roots keeps the id the first one
    // gives it, so ROOT@N means the id `wayback snapshots ROOT` shows.
    let mut all: Vec<PathBuf> = sel.root().map(Path::to_path_buf).into_iter().collect();
    all.extend(roots.iter().cloned());
    if all.is_empty() {
        return Err(BadInput::new(format!(
            "{text}: which snapshots? give ROOT{text} (e.g. /persist{text}) or --root ROOT"
        ))
        .into());
    }
    let cat = load_catalog(&all)?;
    let snap = selector::resolve_in(&sel, &cat, crate::clock::now())
        .map_err(|e| BadInput::new(e.to_string()))?;
    Ok(snap.path.clone())
}
