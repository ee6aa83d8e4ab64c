//! Concurrency: 20 `up`s of distinct names from one snapshot at the same time never collide on names,
//! addresses, ports or clone paths; all are reachable; `down --all` leaves nothing.

use std::collections::BTreeSet;
use std::fs;
use std::thread;
use std::time::Duration;

use wayback_testsupport::*;

const N: usize = 20;

#[test]
fn twenty_parallel_ups_are_distinct_and_reachable() {
    if !require_root("twenty_parallel_ups_are_distinct_and_reachable") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("var/www/html")).unwrap();
    fs::write(live.join("var/www/html/index.html"), "<h1>parallel</h1>\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let snap = snap.to_str().unwrap().to_string();
    let wb = Wayback::new();
    let names: Vec<String> = (0..N).map(|_| unique("wbtpar")).collect();

    let handles: Vec<UpHandle> = thread::scope(|s| {
        let spawned: Vec<_> = names
            .iter()
            .map(|name| {
                let (wb, snap) = (wb.clone(), snap.clone());
                s.spawn(move || {
                    wb.up_background_timeout(
                        &[&snap, "--name", name, "--profile", "nginx-static"],
                        Duration::from_secs(180),
                    )
                })
            })
            .collect();
        spawned
            .into_iter()
            .map(|h| h.join().expect("up thread"))
            .collect()
    });

    let mut addresses = BTreeSet::new();
    for name in &names {
        let status: serde_json::Value =
            serde_json::from_str(&wb.run_ok(&["status", name, "--json"])).unwrap();
        assert_eq!(status["state"], "running", "{status}");
        addresses.insert(status["address"].as_str().unwrap().to_string());
        let host = format!("{name}.wbt.test");
        let (code, body) = HttpGet::get_retry(wb.proxy_addr(), &host, "/", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("GET {host}: {e}"));
        assert_eq!(code, 200, "{host}: {body}");
    }
    assert_eq!(
        addresses.len(),
        N,
        "every instance has its own address: {addresses:?}"
    );

    wb.run_ok(&["down", "--all"]);
    drop(handles);
    for name in &names {
        Residue::new(name).pool(&pool).wayback(&wb).assert_none();
    }
}
