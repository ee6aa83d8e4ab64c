//! The foreground `up` stays until SIGINT (Ctrl-C) or SIGTERM, then tears everything down and exits 0.

use std::fs;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use wayback_testsupport::*;

fn stops_on(sig: Signal, test: &str) {
    if !require_root(test) {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("var/www/html")).unwrap();
    fs::write(live.join("var/www/html/index.html"), "sig\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::new();
    let name = unique("wbtsig");
    let host = format!("{name}.wbt.test");
    let mut up = wb.up_background(&[
        snap.to_str().unwrap(),
        "--name",
        &name,
        "--profile",
        "nginx-static",
        "--host",
        &host,
    ]);
    let (status, _) =
        HttpGet::get_retry(wb.proxy_addr(), &host, "/", Duration::from_secs(10)).unwrap();
    assert_eq!(status, 200);
    // Still there a moment later: `up` does not return on its own.
    assert!(
        up.wait_exit(Duration::from_millis(500)).is_none(),
        "`up` exited without being asked\n{}",
        up.describe()
    );

    let t0 = Instant::now();
    up.signal(sig);
    let st = up.wait_exit(Duration::from_secs(30));
    assert!(
        st.is_some_and(|s| s.success()),
        "`up` after {sig}: {st:?} after {:?}\n{}",
        t0.elapsed(),
        up.describe()
    );
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}

#[test]
fn sigint_tears_down_and_exits_0() {
    stops_on(Signal::SIGINT, "sigint_tears_down_and_exits_0");
}

#[test]
fn sigterm_tears_down_and_exits_0() {
    stops_on(Signal::SIGTERM, "sigterm_tears_down_and_exits_0");
}
