//! What `versions`, `show`, `restore` and `diff PATH` are about: one path, relative to the root of a
//! subvolume, the snapshots of that subvolume (its series, oldest first, read-only only), and the live
//! subvolume they were taken from, when there is one.
//!
//! PATH may be absolute — a path on the host, in the live subvolume (`/persist/var/lib/app/report.odt`,
//! which need not exist any more) or inside a snapshot — or relative to the snapshot root
//! (`var/lib/app/report.odt`) together with `--root` (or the config's `snapshot_roots`). An absolute
//! PATH is placed by the subvolume holding it, so its snapshots are exactly that subvolume's; a relative
//! one must match one series only, else the candidates are listed (exit 2).

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::Result;
use wayback_core::catalog::{self, Catalog, Snapshot};
use wayback_core::selector::{self, Selector};
use wayback_core::Config;

use wayback_engine::catalog::canonical_selector;
use wayback_engine::clock::now;
use wayback_engine::error::BadInput;
use wayback_engine::sys::snapdiff;
use wayback_engine::sys::walk::{self, FsProbe};

/// One path and the snapshots that hold its history.
#[derive(Debug)]
pub struct Subject {
    /// As the user wrote it (for messages and hints).
    pub text: String,
    /// Relative to the subvolume root ("" for the root itself).
    pub rel: PathBuf,
    /// The series' snapshots (after `--in`), oldest first.
    pub snaps: Vec<Snapshot>,
    /// e.g. "snapper /persist".
    pub series: String,
    /// The live subvolume the snapshots were taken from, when known.
    pub live: Option<PathBuf>,
}

/// `a/./b/` → `a/b`; `..` (it would leave the snapshot) is bad input.
pub fn clean_rel(p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                return Err(BadInput::new(format!(
                    "{}: '..' would leave the snapshot; give a path relative to its root, or an absolute path",
                    p.display()
                ))
                .into())
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The subvolume holding `path` (absolute), and `path` relative to it. Host symlinks above the
/// subvolume are followed (`/persist -> /mnt/pool/persist`); below its root nothing is: from the first
/// symlink (or missing entry) on, the rest is taken literally, to be resolved inside each snapshot.
fn holding_subvolume(path: &Path) -> Result<(PathBuf, PathBuf)> {
    let deepest = |p: &Path| {
        p.ancestors()
            .find(|a| walk::subvol_meta(a).is_some())
            .map(Path::to_path_buf)
    };
    let mut cur = PathBuf::from("/");
    let mut sub = deepest(&cur);
    let mut rest = PathBuf::new();
    let comps: Vec<Component> = path.components().collect();
    let dev = |p: &Path| std::fs::symlink_metadata(p).map(|m| m.dev()).ok();
    for (i, c) in comps.iter().enumerate() {
        let name = match c {
            Component::Normal(n) => n,
            // Above any subvolume `..` is the host's; inside one it is refused (clean_rel).
            Component::ParentDir if sub.is_none() => {
                cur.pop();
                continue;
            }
            Component::ParentDir => {
                rest = comps[i..].iter().collect();
                break;
            }
            _ => continue,
        };
        let p = cur.join(name);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() && sub.is_none() => {
                cur = std::fs::canonicalize(&p)
                    .map_err(|e| BadInput::new(format!("{}: {e}", p.display())))?;
                sub = deepest(&cur);
            }
            Ok(m) if m.is_dir() => {
                cur = p;
                if walk::subvol_meta(&cur).is_some() {
                    sub = Some(cur.clone());
                } else if sub.as_deref().is_some_and(|s| dev(s) != Some(m.dev())) {
                    // Another filesystem mounted inside the subvolume: not its history.
                    sub = None;
                }
            }
            Ok(m) if !m.file_type().is_symlink() => cur = p,
            _ => {
                rest = comps[i..].iter().collect();
                break;
            }
        }
    }
    let Some(sub) = sub else {
        return Err(BadInput::new(format!(
            "{}: not on a btrfs subvolume, so it has no snapshots here; give a path relative to the snapshot root with --root ROOT",
            path.display()
        ))
        .into());
    };
    let rel = cur.strip_prefix(&sub).unwrap_or(Path::new("")).join(rest);
    Ok((sub, clean_rel(&rel)?))
}

fn catalog_of(roots: Vec<PathBuf>) -> Catalog {
    let mut abs: Vec<PathBuf> = Vec::new();
    for r in roots {
        if let Ok(c) = std::fs::canonicalize(&r) {
            if !abs.contains(&c) {
                abs.push(c);
            }
        }
    }
    let cat = catalog::discover_lenient(&abs, &FsProbe);
    for w in &cat.warnings {
        eprintln!("wayback: warning: {}: {}", w.path.display(), w.message);
    }
    cat
}

impl Subject {
    /// Resolve PATH (see the module doc). `from` (a selector) helps pick the series of a relative PATH.
    pub fn resolve(
        cfg: &Config,
        text: &str,
        roots: &[PathBuf],
        range: Option<&str>,
        from: Option<&str>,
    ) -> Result<Subject> {
        for r in roots {
            if !r.is_dir() {
                return Err(
                    BadInput::new(format!("--root {}: not a directory", r.display())).into(),
                );
            }
        }
        let range = range
            .map(wayback_engine::catalog::canonical_range)
            .transpose()?;
        let mut all: Vec<PathBuf> = range
            .iter()
            .flat_map(|r| r.roots())
            .map(Path::to_path_buf)
            .collect();
        all.extend(roots.iter().cloned());
        if all.is_empty() {
            all.extend(cfg.snapshot_roots.iter().cloned());
        }
        let path = Path::new(text);
        let (cat, key, rel, live) = if path.is_absolute() {
            let (sub, rel) = holding_subvolume(path)?;
            let meta = walk::subvol_meta(&sub).unwrap_or_default();
            all.push(sub.clone());
            if meta.readonly {
                // Inside a snapshot: its siblings in the catalog, and the live subvolume it came from.
                if let Some(d) = sub.parent() {
                    let snapper = d.parent().filter(|p| p.ends_with(".snapshots"));
                    all.push(snapper.unwrap_or(d).to_path_buf());
                }
                let live = snapdiff::live_of(&sub).ok();
                all.extend(live.clone());
                let cat = catalog_of(all);
                let key = cat
                    .snapshots
                    .iter()
                    .find(|s| s.path == sub)
                    .map(origin)
                    .or(meta.parent_uuid);
                (cat, key, rel, live)
            } else {
                (catalog_of(all), meta.uuid, rel, Some(sub))
            }
        } else {
            if all.is_empty() {
                return Err(BadInput::new(format!(
                    "{text}: relative to which snapshots? give --root ROOT (e.g. --root /persist), an absolute path (e.g. /persist/{text}), or set snapshot_roots in the config"
                ))
                .into());
            }
            let cat = catalog_of(all);
            let (key, live) = pick_series(&cat, text, from)?;
            (cat, Some(key), clean_rel(path)?, live)
        };
        let mut snaps: Vec<Snapshot> = match key.as_deref() {
            Some(k) => cat
                .snapshots
                .iter()
                .filter(|s| origin(s) == k)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        if let Some(r) = &range {
            let chosen =
                selector::select_in(r, &cat, now()).map_err(|e| BadInput::new(e.to_string()))?;
            snaps.retain(|s| chosen.iter().any(|c| c.path == s.path));
        }
        if snaps.is_empty() {
            return Err(BadInput::new(format!(
                "{text}: no snapshots of {} found{} (run `wayback snapshots ROOT`; give --root where they are)",
                live.as_deref().map_or("its subvolume".into(), |l| l.display().to_string()),
                if range.is_some() { " in --in's range" } else { " under the snapshot roots" }
            ))
            .into());
        }
        Ok(Subject {
            text: text.into(),
            rel,
            series: snaps[0].series(),
            snaps,
            live,
        })
    }

    /// The snapshot a `--from` / `--to` selector names, among this subject's series.
    pub fn select(&self, text: &str) -> Result<&Snapshot> {
        let sel: Selector = text.parse().map_err(|e| BadInput::new(format!("{e}")))?;
        let sel = canonical_selector(sel)?;
        let cat = Catalog {
            snapshots: self.snaps.clone(),
            ..Catalog::default()
        };
        let s = selector::resolve_in(&sel, &cat, now()).map_err(|e| {
            BadInput::new(format!(
                "{e} (among the {} snapshots of {}; `wayback versions {}` lists them)",
                self.snaps.len(),
                self.series,
                self.text
            ))
        })?;
        let i = self
            .snaps
            .iter()
            .position(|x| x.path == s.path)
            .expect("same list");
        Ok(&self.snaps[i])
    }
}

/// What groups snapshots into one history: the subvolume they were taken from (its uuid), or, for
/// snapshots that do not say (received ones), their series.
fn origin(s: &Snapshot) -> String {
    s.parent_uuid
        .clone()
        .unwrap_or_else(|| format!("series {}", s.series()))
}

/// For a relative PATH: the one origin the catalog's snapshots share, or the one `from` names; and its
/// live subvolume.
fn pick_series(cat: &Catalog, text: &str, from: Option<&str>) -> Result<(String, Option<PathBuf>)> {
    let mut origins: Vec<String> = Vec::new();
    for s in &cat.snapshots {
        let o = origin(s);
        if !origins.contains(&o) {
            origins.push(o);
        }
    }
    if let Some(f) = from.filter(|_| origins.len() > 1) {
        let sel = canonical_selector(f.parse().map_err(|e| BadInput::new(format!("{e}")))?)?;
        let s = selector::resolve_in(&sel, cat, now()).map_err(|e| BadInput::new(e.to_string()))?;
        origins.retain(|o| *o == origin(s));
    }
    let of =
        |o: &str| -> Vec<&Snapshot> { cat.snapshots.iter().filter(|s| origin(s) == o).collect() };
    match origins.as_slice() {
        [] => Err(BadInput::new(
            "no snapshots found under the snapshot roots (run `wayback snapshots ROOT`)",
        )
        .into()),
        [one] => {
            let live = cat
                .live
                .iter()
                .find(|l| l.uuid.as_deref() == Some(one.as_str()))
                .map(|l| l.path.clone())
                .or_else(|| snapdiff::live_of(&of(one)[0].path).ok());
            Ok((one.clone(), live))
        }
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|o| {
                    let v = of(o);
                    format!(
                        "{} ({} snapshots, e.g. {})",
                        v[0].series(),
                        v.len(),
                        v[0].path.display()
                    )
                })
                .collect();
            Err(BadInput::new(format!(
                "{text}: the snapshot roots hold snapshots of {} subvolumes:\n  {}\ngive --root ROOT closer to one, --from ROOT@N, or PATH as an absolute path in its live subvolume",
                many.len(),
                list.join("\n  ")
            ))
            .into())
        }
    }
}
