//! Selectors and nested subvolumes in `up`: `up @N` picks snapper-style snapshot N from the configured
//! snapshot_roots; a bind path that is a nested subvolume's empty stand-in in the snapshot is refused (exit
//! 2, nothing created) with a message naming the live subvolume and its snapshot from the same moment.

use std::fs;

use wayback_testsupport::*;

#[test]
fn up_by_selector_and_nested_subvolume_refusal() {
    if !require_root("up_by_selector_and_nested_subvolume_refusal") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("var/lib")).unwrap();
    fs::create_dir_all(live.join("srv")).unwrap();
    let db = pool.subvolume_create("live/var/lib/db");
    fs::write(db.join("table"), "rows\n").unwrap();
    // snapper layout: .snapshots/N/snapshot + info.xml, for the parent; the nested one has its own series.
    fs::create_dir_all(pool.path("snaps/.snapshots/1")).unwrap();
    fs::create_dir_all(pool.path("dbsnaps")).unwrap();
    let db_snap = pool.snapshot_ro("live/var/lib/db", "dbsnaps/db.20261114T1000");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let parent = pool.snapshot_ro("live", "snaps/.snapshots/1/snapshot");
    fs::write(
        pool.path("snaps/.snapshots/1/info.xml"),
        "<?xml version=\"1.0\"?>\n<snapshot>\n  <type>single</type>\n  <num>1</num>\n  <date>2026-11-14 10:00:05</date>\n  <description>nightly</description>\n</snapshot>\n",
    )
    .unwrap();
    let roots = format!(
        "snapshot_roots = [\"{}\", \"{}\"]",
        pool.path("snaps").display(),
        pool.path("dbsnaps").display()
    );
    let wb = Wayback::with_extra_config(&roots);

    // @1 is ambiguous between the two series; ROOT@1 picks the snapper snapshot.
    let out = wb.run(&["up", "@1", "--exec", "true", "--bind", "/srv", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(show(&out).contains("ambiguous"), "{}", show(&out));
    let sel = format!("{}@1", pool.path("snaps").display());
    let plan = wb.run_ok(&["up", &sel, "--exec", "true", "--bind", "/srv", "--dry-run"]);
    assert!(plan.contains(parent.to_str().unwrap()), "{plan}");

    // The nested subvolume's stand-in is refused, naming where the data is.
    let name = unique("wbtnest");
    let out = wb.run(&[
        "up",
        &sel,
        "--name",
        &name,
        "--exec",
        "true",
        "--bind",
        "/var/lib/db",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("separate btrfs subvolume"), "{err}");
    assert!(
        err.contains(live.join("var/lib/db").to_str().unwrap()),
        "names the live subvolume: {err}"
    );
    assert!(
        err.contains(db_snap.to_str().unwrap()),
        "names its snapshot: {err}"
    );
    assert!(!wb.state_dir().join("instances").join(&name).exists());
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
