//! Readiness gate: the route is published only once the service answers; a service that never answers
//! makes `up` roll back within the configured timeout, exit 1, and show the tail of the service's log.

use std::fs;
use std::time::{Duration, Instant};

use wayback_testsupport::*;

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

const HTTP_PROFILE: &str = r#"
name = "http-ready"
binds = ["/srv/www"]
http_port = 8000
ready = { http = 8000, http_path = "READY_PATH" }

[[process]]
name = "web"
shell = "exec python3 -m http.server 8000 --bind 127.0.0.1 --directory /srv/www"
"#;

/// The HTTP check (wayback's HTTP client, dialed inside the instance's netns): a 2xx answer on the path
/// makes the instance ready and its route published; a 404 never does, and `up` rolls back naming the
/// port and path.
#[test]
fn an_http_check_waits_for_an_answer_that_counts() {
    if !require_root("an_http_check_waits_for_an_answer_that_counts") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/www/health")).unwrap();
    fs::write(live.join("srv/www/health/index.html"), "fine\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::with_extra_config("ready_timeout = \"3s\"");
    let profile = |name: &str, path: &str| {
        let p = wb.tmp().join(format!("{name}.toml"));
        fs::write(&p, HTTP_PROFILE.replace("READY_PATH", path)).unwrap();
        p
    };
    let (good, bad) = (profile("good", "/health/"), profile("bad", "/missing"));
    let snap = snap.to_str().unwrap();

    let name = unique("wbtreadyhttp");
    let host = format!("{name}.wbt.test");
    let up = wb.up_background(&[
        snap,
        "--name",
        &name,
        "--profile",
        good.to_str().unwrap(),
        "--host",
        &host,
    ]);
    let (code, body) =
        HttpGet::get_retry(wb.proxy_addr(), &host, "/health/", Duration::from_secs(20)).unwrap();
    assert_eq!((code, body.as_str()), (200, "fine\n"));
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();

    let name = unique("wbtreadyhttp");
    let out = wb.run(&[
        "up",
        snap,
        "--name",
        &name,
        "--profile",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("did not answer within 3s (HTTP port 8000 path /missing)"),
        "{err}"
    );
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
