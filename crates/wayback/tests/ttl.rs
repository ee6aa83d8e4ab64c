//! TTL: an instance whose time is up tears itself down (the foreground `up` exits 0) and leaves no trace.

use std::fs;
use std::time::{Duration, Instant};

use wayback_testsupport::*;

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
        "--allow-empty",
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

fn web_snapshot(pool: &BtrfsPool) -> String {
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("var/www/html")).unwrap();
    fs::write(live.join("var/www/html/index.html"), "idle test\n").unwrap();
    pool.snapshot_ro("live", "snaps/s1")
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn idle_instance_expires_while_a_used_one_stays() {
    if !require_root("idle_instance_expires_while_a_used_one_stays") {
        return;
    }
    let pool = BtrfsPool::new();
    let snap = web_snapshot(&pool);
    let wb = Wayback::new();
    let name = unique("wbtidle");
    let host = format!("{name}.wbt.test");
    let mut up = wb.up_background(&[
        &snap,
        "--name",
        &name,
        "--profile",
        "nginx-static",
        "--idle",
        "4s",
    ]);
    // Requests every second for 7 s keep it alive past its idle time.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(7) {
        let (code, _) =
            HttpGet::get_retry(wb.proxy_addr(), &host, "/", Duration::from_secs(5)).unwrap();
        assert_eq!(
            code,
            200,
            "instance gone while in use after {:?}\n{}",
            t0.elapsed(),
            up.describe()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        up.wait_exit(Duration::from_millis(10)).is_none(),
        "expired while in use"
    );
    // Then left alone, it goes by itself.
    let status = up.wait_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "idle instance still running or failed: {status:?}\n{}",
        up.describe()
    );
    assert!(up.stderr().contains("idle"), "{}", up.describe());
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}

#[test]
fn extend_pushes_the_expiry_back() {
    if !require_root("extend_pushes_the_expiry_back") {
        return;
    }
    let pool = BtrfsPool::new();
    let snap = web_snapshot(&pool);
    let wb = Wayback::new();
    let name = unique("wbtext");
    let mut up = wb.up_background(&[
        &snap,
        "--name",
        &name,
        "--profile",
        "nginx-static",
        "--ttl",
        "3s",
    ]);
    let out = wb.run_ok(&["extend", &name, "1h"]);
    assert!(out.contains("expires in"), "{out}");
    assert!(
        up.wait_exit(Duration::from_secs(6)).is_none(),
        "expired despite extend\n{}",
        up.describe()
    );
    let status: serde_json::Value =
        serde_json::from_str(&wb.run_ok(&["status", &name, "--json"])).unwrap();
    let left = status["ttl_left"].as_str().unwrap();
    assert!(
        left.starts_with("59m") || left.starts_with("1h"),
        "ttl_left {left}"
    );
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
