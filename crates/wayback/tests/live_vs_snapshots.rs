//! Snapshots are never confused with live data (issue 12, item 3), on a real loop btrfs pool. A plain ROOT
//! holds the live, writable subvolume (created first, so it is the oldest subvolume there: the one that used
//! to be listed as snapshot #1), read-only snapshots of it under ROOT/snaps, a writable snapshot made by hand
//! after them (the newest subvolume in ROOT/snaps), and a symlink out of ROOT and a bind mount below it, both
//! leading to another read-only subvolume. `wayback snapshots` lists only the read-only snapshots as
//! snapshots and the writable ones apart; `ROOT@N`, `ROOT/snaps@DATE`, `find` and `diff` never pick a
//! writable one — proven with a file that exists only in the live data (and in the writable copy). Nothing is
//! left behind.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use wayback_testsupport::*;

/// A bind mount, unmounted on drop (also when the test panics), before the pool goes.
struct BindMount(PathBuf);

impl BindMount {
    fn new(src: &Path, dst: &Path) -> BindMount {
        fs::create_dir_all(dst).unwrap();
        cmd_ok("mount", &["--bind", path_str(src), path_str(dst)]);
        BindMount(dst.to_path_buf())
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let out = cmd("umount", &[path_str(&self.0)]);
        if !out.status.success() {
            eprintln!("cleanup: umount {}: {}", self.0.display(), show(&out));
        }
    }
}

fn json(wb: &Wayback, args: &[&str]) -> Value {
    let out = wb.run_ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("wayback {args:?}: {e}\n{out}"))
}

fn strs(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|e| e[key].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn live_subvolumes_are_never_snapshots() {
    if !require_root("live_subvolumes_are_never_snapshots") {
        return;
    }
    let pool = BtrfsPool::new();
    let root = pool.path("root");
    let live = pool.subvolume_create("root/live");
    fs::create_dir_all(live.join("srv/data")).unwrap();
    fs::write(live.join("srv/data/state"), "version 1\n").unwrap();
    // An older snapshot outside ROOT: numbered #1 when the whole pool is the root.
    let archived = pool.snapshot_ro("root/live", "archive/old");
    // Snapshots one second apart: "newest at or before" must not see a tie.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let s1 = pool.snapshot_ro("root/live", "root/snaps/1");
    fs::write(live.join("srv/data/state"), "version 2\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let s2 = pool.snapshot_ro("root/live", "root/snaps/2");
    // Today's data: a file only live has; then a writable copy of it, by hand, the newest of all.
    fs::write(live.join("srv/data/only-live"), "today\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let fork = pool.snapshot_rw("root/live", "root/snaps/3");
    // A symlink out of ROOT to another read-only subvolume: never followed.
    pool.subvolume_create("outside-src");
    let outside = pool.snapshot_ro("outside-src", "outside/snap");
    std::os::unix::fs::symlink(pool.path("outside"), root.join("link")).unwrap();
    // And a mount point below ROOT showing the same directory: never searched either.
    let _bound = BindMount::new(&pool.path("outside"), &root.join("mounted"));
    let wb = Wayback::new();
    let root_s = path_str(&root);
    let p = |x: &Path| path_str(x).to_string();

    // The listing: two snapshots, ids 1 and 2; the live subvolume and the writable copy apart.
    let v = json(&wb, &["snapshots", root_s, "--json"]);
    assert_eq!(strs(&v["snapshots"], "path"), [p(&s1), p(&s2)], "{v:#}");
    let ids: Vec<u64> = v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2]);
    assert!(v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["readonly"] == true));
    assert_eq!(strs(&v["live"], "path"), [p(&live), p(&fork)], "{v:#}");
    assert_eq!(strs(&v["live"], "kind"), ["live", "writable_snapshot"]);
    assert_eq!(v["live"][0]["snapshot_count"], 3 - 1, "{v:#}");
    assert_eq!(v["live"][1]["origin"], p(&live));
    let all = v.to_string();
    assert!(
        !all.contains(path_str(&outside)) && !all.contains("mounted"),
        "followed the symlink or searched below a mount point: {v:#}"
    );

    // The text listing: the live ones only after the "Live subvolumes" heading, never with an id.
    let text = wb.run_ok(&["snapshots", root_s]);
    let (table, apart) = text
        .split_once("Live subvolumes")
        .unwrap_or_else(|| panic!("no live section:\n{text}"));
    assert!(
        table.contains(path_str(&s1)) && table.contains(path_str(&s2)),
        "{text}"
    );
    assert!(
        !table.contains(path_str(&live)) && !table.contains(path_str(&fork)),
        "{text}"
    );
    assert!(
        apart.contains(&format!("{}  (live data)", p(&live))),
        "{text}"
    );
    assert!(
        apart.contains(&format!(
            "{}  (writable snapshot of {})",
            p(&fork),
            p(&live)
        )),
        "{text}"
    );

    // The pool's top as ROOT: the snapshots are found two levels down.
    let v = json(&wb, &["snapshots", path_str(pool.mount()), "--json"]);
    let found = strs(&v["snapshots"], "path");
    assert!(found.contains(&p(&s1)) && found.contains(&p(&s2)), "{v:#}");
    assert!(
        !found.contains(&p(&live)) && !found.contains(&p(&fork)),
        "{v:#}"
    );

    // With the whole pool configured as a root, ROOT/snaps@1 still means the id `snapshots ROOT/snaps`
    // shows (#1 there), not the pool's numbering (where #1 is the archived one).
    let snaps_root = pool.path("root/snaps");
    let wb_pool = Wayback::with_extra_config(&format!(
        "snapshot_roots = [\"{}\"]",
        path_str(pool.mount())
    ));
    let v = json(&wb_pool, &["snapshots", "--json"]);
    assert_eq!(v["snapshots"][0]["path"], p(&archived), "{v:#}");
    let plan = wb_pool.run_ok(&[
        "up",
        &format!("{}@1", path_str(&snaps_root)),
        "--exec",
        "true",
        "--bind",
        "/srv",
        "--dry-run",
    ]);
    assert!(plan.contains(path_str(&s1)), "{plan}");
    assert!(!plan.contains(path_str(&archived)), "{plan}");

    // Selectors: ROOT@1 is the first snapshot, not the (older) live subvolume; "the newest" is #2, not
    // the writable copy; ROOT@3 does not exist and says which writable subvolumes it passed over.
    let dry = |sel: &str| wb.run_ok(&["up", sel, "--exec", "true", "--bind", "/srv", "--dry-run"]);
    let plan = dry(&format!("{root_s}@1"));
    assert!(plan.contains(path_str(&s1)), "{plan}");
    assert!(!plan.contains(path_str(&live)), "{plan}");
    let plan = dry(&format!("{root_s}/snaps@2100-01-01"));
    assert!(plan.contains(path_str(&s2)), "{plan}");
    assert!(!plan.contains(path_str(&fork)), "{plan}");
    let out = wb.run(&["up", &format!("{root_s}@3"), "--exec", "true", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("passed over") && err.contains(path_str(&live)),
        "{err}"
    );

    // find: the live-only file is in no snapshot, so there is no "last good"; only the two snapshots
    // were searched. The file both have: last good is #2.
    let v = json(
        &wb,
        &["find", "srv/data/only-live", "--root", root_s, "--json"],
    );
    assert_eq!(strs(&v["snapshots"], "path"), [p(&s1), p(&s2)], "{v:#}");
    assert!(v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["hits"].as_array().unwrap().is_empty()));
    assert_eq!(v["last_good"], serde_json::json!([]), "{v:#}");
    let text = wb.run_ok(&["find", "srv/data/only-live", "--root", root_s]);
    assert!(!text.contains("last good"), "{text}");
    let v = json(&wb, &["find", "srv/data/state", "--root", root_s, "--json"]);
    assert_eq!(strs(&v["last_good"], "path"), [p(&s2)], "{v:#}");
    // A range naming the live subvolume is refused, saying what it is.
    let out = wb.run(&[
        "find",
        "srv/data/state",
        "--root",
        root_s,
        "--in",
        path_str(&live),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a writable subvolume (live data)"), "{err}");
    assert!(err.contains("newest snapshot is #2"), "{err}");

    // diff by selector compares snapshots; "B: live" stays the explicit default.
    let v = json(
        &wb,
        &[
            "diff",
            &format!("{root_s}@1"),
            &format!("{root_s}@2"),
            "--json",
        ],
    );
    assert_eq!(v["b"], p(&s2));
    assert_eq!(v["b_live"], false);
    let changed = strs(&v["changes"], "path");
    assert!(changed.contains(&"srv/data/state".to_string()), "{v:#}");
    assert!(
        !changed.contains(&"srv/data/only-live".to_string()),
        "{v:#}"
    );
    let v = json(&wb, &["diff", &format!("{root_s}@2"), "--json"]);
    assert_eq!(Path::new(v["b"].as_str().unwrap()), live, "{v:#}");
    assert_eq!(v["b_live"], true);
    assert!(strs(&v["changes"], "path").contains(&"srv/data/only-live".to_string()));

    // Nothing of wayback's left: no subvolume but the test's own (diff's temporary snapshot is gone).
    for w in [&wb, &wb_pool] {
        Residue::new(&unique("wbtlive"))
            .pool(&pool)
            .wayback(w)
            .assert_none();
    }
}
