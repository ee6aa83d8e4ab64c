//! `wayback diff PATH --from SELECTOR [--to SELECTOR]`: one file's version in a snapshot against another
//! snapshot's or live's, as a unified diff (the `similar` crate); binary files as sizes and SHA-256
//! hashes; symlinks by target; a missing side as `/dev/null` (like `diff -N`). Reads through [`Tree`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use sha2::{Digest, Sha256};
use similar::TextDiff;
use wayback_core::change::{display_path, FileType};
use wayback_core::civil::format_utc;
use wayback_core::history::{hex, Entry};
use wayback_core::Config;

use crate::cmd::show::is_binary;
use crate::cmd::subject::Subject;
use wayback_engine::error::BadInput;
use wayback_engine::sys::history as fs;
use wayback_engine::sys::inroot::Tree;

/// Largest file compared as text (larger ones: sizes and hashes).
const MAX_TEXT: u64 = 64 << 20;

struct Side {
    label: String,
    entry: Option<Entry>,
    bytes: Option<Vec<u8>>,
}

fn side(root: &Path, rel: &Path, label: String) -> Result<Side> {
    let tree = Tree::open(root)?;
    let entry = fs::observe(&tree, rel)?;
    if entry.as_ref().is_some_and(|e| e.kind == FileType::Dir) {
        return Err(BadInput::new(format!(
            "{} is a directory in {label}: compare trees with `wayback diff A B --path {}`",
            display_path(rel),
            display_path(rel)
        ))
        .into());
    }
    let bytes = match &entry {
        Some(e) if e.kind == FileType::File && e.size <= MAX_TEXT => {
            Some(fs::read(&tree, rel, MAX_TEXT)?)
        }
        Some(e) if e.kind == FileType::File => None,
        Some(e) => Some(
            format!(
                "symlink -> {}\n",
                e.target.as_deref().unwrap_or(Path::new("?")).display()
            )
            .into_bytes(),
        ),
        None => Some(Vec::new()),
    };
    Ok(Side {
        label,
        entry,
        bytes,
    })
}

fn sha(root: &Path, rel: &Path, b: &Option<Vec<u8>>) -> Option<String> {
    match b {
        Some(b) => Some(hex(&Sha256::digest(b).into())),
        None => fs::hash(&Tree::open(root).ok()?, rel).ok().map(|d| hex(&d)),
    }
}

pub fn run(
    cfg: &Config,
    path: &str,
    from: &str,
    to: Option<&str>,
    roots: &[PathBuf],
    json: bool,
) -> Result<ExitCode> {
    let out = report(cfg, path, from, to, roots)?;
    let (shown, da, db) = (out["path"].as_str().unwrap_or(""), &out["a"], &out["b"]);
    let label = |d: &serde_json::Value| d["side"].as_str().unwrap_or("").to_string();
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if out["same"] == true {
        println!("{shown}: the same in {} and {}", label(da), label(db));
    } else if out["binary"] == true {
        println!("binary file {shown} differs:");
        for d in [da, db] {
            match d["present"].as_bool() {
                Some(true) => println!(
                    "  {:<24} {} bytes  mtime {}  sha256 {}",
                    d["side"].as_str().unwrap_or(""),
                    d["size"],
                    d["mtime_utc"].as_str().unwrap_or(""),
                    d["sha256"].as_str().unwrap_or("-")
                ),
                _ => println!("  {:<24} absent", d["side"].as_str().unwrap_or("")),
            }
        }
    } else {
        print!("{}", out["diff"].as_str().unwrap_or(""));
    }
    Ok(ExitCode::SUCCESS)
}

/// The comparison as `diff PATH --json` prints it (also the console's `/api/diff`).
pub fn report(
    cfg: &Config,
    path: &str,
    from: &str,
    to: Option<&str>,
    roots: &[PathBuf],
) -> Result<serde_json::Value> {
    let s = Subject::resolve(cfg, path, roots, None, Some(from))?;
    let a_snap = s.select(from)?;
    let label = |id: u64, date: i64| format!("#{id} {}", format_utc(date));
    let a_root = a_snap.path.clone();
    let (b_root, b_label) = match to {
        Some(t) => {
            let b = s.select(t)?;
            (b.path.clone(), label(b.id, b.date))
        }
        None => match &s.live {
            Some(l) => (l.clone(), "live".to_string()),
            None => {
                return Err(BadInput::new(format!(
                    "no live subvolume is known for {}: give --to SELECTOR",
                    s.series
                ))
                .into())
            }
        },
    };
    let a = side(&a_root, &s.rel, label(a_snap.id, a_snap.date))?;
    let b = side(&b_root, &s.rel, b_label)?;
    if a.entry.is_none() && b.entry.is_none() {
        return Err(BadInput::new(format!(
            "{} is in neither {} nor {}; `wayback versions {}` shows where it is",
            display_path(&s.rel),
            a.label,
            b.label,
            s.text
        ))
        .into());
    }
    let shown = display_path(&s.rel);
    let binary = [&a, &b]
        .iter()
        .any(|x| x.bytes.as_deref().is_none_or(is_binary));
    let same = a.entry.is_some() == b.entry.is_some() && a.bytes.is_some() && a.bytes == b.bytes
        || (binary
            && a.entry.is_some()
            && b.entry.is_some()
            && sha(&a_root, &s.rel, &a.bytes) == sha(&b_root, &s.rel, &b.bytes));
    let name = |x: &Side| {
        if x.entry.is_some() {
            format!("{shown} ({})", x.label)
        } else {
            "/dev/null".to_string()
        }
    };
    let text = if same || binary {
        String::new()
    } else {
        let (ta, tb) = (
            String::from_utf8_lossy(a.bytes.as_deref().unwrap_or_default()),
            String::from_utf8_lossy(b.bytes.as_deref().unwrap_or_default()),
        );
        TextDiff::from_lines(ta.as_ref(), tb.as_ref())
            .unified_diff()
            .context_radius(3)
            .header(&name(&a), &name(&b))
            .to_string()
    };
    let describe = |x: &Side, root: &Path| -> serde_json::Value {
        match &x.entry {
            None => serde_json::json!({"side": x.label, "present": false}),
            Some(e) => serde_json::json!({
                "side": x.label, "present": true, "type": e.kind, "size": e.size,
                "mtime_utc": format_utc(e.mtime),
                "sha256": if binary && e.kind == FileType::File { sha(root, &s.rel, &x.bytes) } else { None },
            }),
        }
    };
    let (da, db) = (describe(&a, &a_root), describe(&b, &b_root));
    Ok(
        serde_json::json!({"path": shown, "a": da, "b": db, "same": same, "binary": binary, "diff": text}),
    )
}
