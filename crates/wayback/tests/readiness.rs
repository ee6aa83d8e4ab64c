//! Readiness gate: the route is published only once the service answers; a service that never answers
//! makes `up` roll back within the configured timeout, exit 1, and show the tail of the service's log.

mod support;

use std::fs;
use std::time::{Duration, Instant};

use support::*;

#[test]
fn a_service_that_never_answers_is_rolled_back_with_its_log() {
    if !require_root("a_service_that_never_answers_is_rolled_back_with_its_log") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv")).unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::with_extra_config("ready_timeout = \"3s\"");
    let name = unique("wbtready");
    let t0 = Instant::now();
    let out = wb.run(&[
        "up",
        snap.to_str().unwrap(),
        "--name",
        &name,
        "--bind",
        "/srv",
        "--exec",
        "echo the-service-says-hello; exec sleep 1000",
        "--port",
        "8080",
    ]);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not answer within 3s"), "{err}");
    assert!(
        err.contains("the-service-says-hello"),
        "the log tail is missing: {err}"
    );
    assert!(took < Duration::from_secs(30), "rollback took {took:?}");
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
