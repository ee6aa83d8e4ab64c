//! TTL: an instance whose time is up tears itself down (the foreground `up` exits 0) and leaves no trace.

mod support;

use std::fs;
use std::time::{Duration, Instant};

use support::*;

#[test]
fn instance_expires_after_its_ttl_and_leaves_no_trace() {
    if !require_root("instance_expires_after_its_ttl_and_leaves_no_trace") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv")).unwrap();
    fs::write(live.join("srv/data"), "x\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let before = tree_checksum(&snap);

    let wb = Wayback::new();
    let name = unique("wbtttl");
    let t0 = Instant::now();
    let mut up = wb.up_background(&[
        snap.to_str().unwrap(),
        "--name",
        &name,
        "--exec",
        "exec sleep 1000",
        "--ttl",
        "3s",
    ]);
    let ready_at = t0.elapsed();
    assert_eq!(up.ready["name"], name.as_str(), "{}", up.ready);
    assert!(
        Residue::new(&name)
            .pool(&pool)
            .wayback(&wb)
            .leftovers()
            .iter()
            .any(|l| l.starts_with("clone path exists")),
        "the instance should exist while it runs"
    );

    let status = up.wait_exit(Duration::from_secs(15));
    let lived = t0.elapsed();
    assert!(
        status.is_some(),
        "`up --ttl 3s` still running {lived:?} after start (ready after {ready_at:?})\n{}",
        up.describe()
    );
    assert!(
        status.unwrap().success(),
        "`up` exited {status:?} at TTL\n{}",
        up.describe()
    );
    assert!(
        lived >= Duration::from_secs(3),
        "instance exited after {lived:?}, before its 3 s TTL\n{}",
        up.describe()
    );
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    assert!(is_readonly_subvolume(&snap));
    assert_eq!(before, tree_checksum(&snap));
}
