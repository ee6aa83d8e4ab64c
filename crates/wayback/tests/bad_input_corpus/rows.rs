//! A row of the corpus, and the `up` rows: one bad argument (or a bad combination) on an otherwise valid
//! `up`, for every flag family (snapshots and names here; the rest in `up_paths`, `up_front`, `up_modes`).
//! `up` rows get a unique `--name` unless they are about the name, so anything one creates is found by name.

use std::path::PathBuf;

use crate::fixture::{Cx, Fixture};
use crate::{up_front, up_modes, up_paths};

/// One invocation and what must come of it.
pub struct Row {
    pub label: String,
    /// After `wayback`; `--config` comes from `config` (the fixture's when `None`).
    pub args: Vec<String>,
    pub config: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub code: i32,
    /// Each must be in stderr.
    pub has: Vec<String>,
    /// None may be in stdout or stderr.
    pub lacks: Vec<String>,
}

pub fn row(label: &str, args: &[&str]) -> Row {
    Row {
        label: label.into(),
        args: args.iter().map(std::string::ToString::to_string).collect(),
        config: None,
        env: Vec::new(),
        code: 2,
        has: Vec::new(),
        lacks: Vec::new(),
    }
}

impl Row {
    pub fn has(mut self, s: &[&str]) -> Row {
        self.has
            .extend(s.iter().map(std::string::ToString::to_string));
        self
    }
    pub fn lacks(mut self, s: &[&str]) -> Row {
        self.lacks
            .extend(s.iter().map(std::string::ToString::to_string));
        self
    }
    pub fn config(mut self, p: PathBuf) -> Row {
        self.config = Some(p);
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Row {
        self.env.push((k.into(), v.into()));
        self
    }
}

/// `wayback up ARGS`.
pub fn up(label: &str, args: &[&str]) -> Row {
    let mut r = row(label, args);
    r.args.insert(0, "up".into());
    r
}

/// A command that exits at once if it is ever started by mistake.
pub const EXIT: &str = "exit 3";
pub const NAME_RULE: &str = "use 1-32 characters a-z, 0-9 and '-'";
pub const HOST_RULE: &str = "use dot-separated labels";
pub const GATE: &str = "they need an HTTP route (--port";

pub fn up_rows(f: &Fixture) -> Vec<Row> {
    let cx = &f.cx;
    let mut v = Vec::new();
    v.extend(snapshots(cx));
    v.extend(names(cx));
    v.extend(up_paths::profiles(cx));
    v.extend(up_paths::binds(cx));
    v.extend(up_paths::host_view(cx));
    v.extend(up_front::network(cx));
    v.extend(up_front::gate(cx));
    v.extend(up_modes::modes(cx));
    v
}

fn snapshots(cx: &Cx) -> Vec<Row> {
    let s = cx.snap.as_str();
    let missing = format!("{}/snaps/wbt-none", cx.pool_root);
    let root_sel = format!("{}@2000-01-01", cx.pool_root);
    let own_sel = format!("{s}@1");
    vec![
        up("no SNAPSHOT", &["--exec", EXIT]).has(&["<SNAPSHOT>"]),
        up("missing snapshot path", &[&missing, "--exec", EXIT]).has(&[&missing, "does not exist"]),
        up("a regular file", &[&cx.file, "--exec", EXIT])
            .has(&[&cx.file, "not on a btrfs filesystem"]),
        up(
            "a directory on btrfs, not a subvolume",
            &[&cx.plain, "--exec", EXIT],
        )
        .has(&[&cx.plain, "not a subvolume", "--overlay"]),
        up(
            "a directory on another filesystem",
            &[&cx.not_btrfs, "--exec", EXIT],
        )
        .has(&[&cx.not_btrfs, "not on a btrfs filesystem", "--overlay"]),
        up(
            "--overlay on a missing path",
            &[&missing, "--overlay", "--exec", EXIT],
        )
        .has(&[&missing]),
        up("selector without a root", &["@99999", "--exec", EXIT]).has(&["@99999", "ROOT@99999"]),
        up(
            "selector under a missing root",
            &["/wbt-none@2w", "--exec", EXIT],
        )
        .has(&["/wbt-none", "does not exist"]),
        up("selector syntax", &["@garbage!", "--exec", EXIT])
            .has(&["invalid snapshot selector \"@garbage!\"", "examples"]),
        up(
            "selector: no snapshot that old",
            &[&root_sel, "--exec", EXIT],
        )
        .has(&["no snapshot matches", "2000-01-01", "the oldest is"]),
        up(
            "selector: no snapshots under the root",
            &[&own_sel, "--exec", EXIT],
        )
        .has(&["no snapshot matches", &own_sel]),
        up(
            "--at syntax",
            &["--at", "garbage", "--bind", "/srv", "--exec", EXIT],
        )
        .has(&["--at garbage"]),
        up(
            "--at: not a date",
            &[s, "--at", "2026-13-45", "--bind", "/srv", "--exec", EXIT],
        )
        .has(&["--at 2026-13-45", "not a date"]),
        up("--at without binds", &["--at", "2w", "--exec", EXIT])
            .has(&["--at needs at least one --bind"]),
        up(
            "--at: a path missing on the live system",
            &["--at", "2w", "--bind", "/wbt-none", "--exec", EXIT],
        )
        .has(&["/wbt-none", "must exist on the live system"]),
        up(
            "--at: no snapshots of the holding subvolume",
            &[s, "--at", "2000-01-01", "--bind", "/srv", "--exec", EXIT],
        )
        .has(&["has no snapshots under snapshot_roots"]),
    ]
}

fn names(cx: &Cx) -> Vec<Row> {
    let s = cx.snap.as_str();
    let long = "a".repeat(300);
    let mut v: Vec<Row> = [
        "",
        ".",
        "..",
        "../x",
        "a/b",
        "Bad_Name",
        "-lead-dash",
        "ümlaut",
        &"a".repeat(33),
        &long,
    ]
    .iter()
    .map(|n| {
        let arg = format!("--name={n}");
        up(&format!("--name {n:.40?}"), &[s, &arg, "--exec", EXIT])
            .has(&["invalid instance name", NAME_RULE])
    })
    .collect();
    let down = format!("wayback down {}", cx.run);
    v.push(
        up(
            "--name of the running instance",
            &[s, "--name", &cx.run, "--exec", EXIT],
        )
        .has(&[&cx.run, "already exists", &down]),
    );
    v
}
