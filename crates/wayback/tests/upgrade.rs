//! Upgrades never disturb instances (issue 20). The previous release (v0.1.0, built by
//! scripts/prev-release.sh from its commit) starts two instances — one hosted by its daemon (`up --detach`),
//! one by its foreground `up` — from its own binary, in its own file formats. This release's daemon then
//! replaces the old daemon: both instances keep answering, this release lists, extends (the old foreground
//! `up` sees the new expiry) and removes them, leaving nothing behind. A state file from a future release
//! is refused with both versions named, and left unchanged.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use wayback_testsupport::*;

/// The previous release's binary (built once, then cached in target/prev-release).
fn previous_release() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/prev-release.sh");
    let out = output_timeout(Command::new("bash").arg(&script), Duration::from_secs(1800))
        .unwrap_or_else(|e| panic!("scripts/prev-release.sh: {e}"));
    assert!(
        out.status.success(),
        "scripts/prev-release.sh failed\n{}",
        show(&out)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `PREV --config CFG ARGS` (the old binary on this test's config).
fn old(prev: &Path, wb: &Wayback, args: &[&str]) -> Command {
    let mut c = Command::new(prev);
    c.arg("--config").arg(wb.config_path()).args(args);
    c.env_remove("WAYBACK_CONFIG").current_dir(wb.tmp());
    c
}

/// The page at `host`, once it answers 200 (the old foreground `up` prints nothing we wait for).
fn page(wb: &Wayback, host: &str) -> (u16, String) {
    wait_for(Duration::from_secs(60), || {
        let r = HttpGet::get(wb.proxy_addr(), host, "/").ok()?;
        (r.0 == 200).then_some(r)
    })
    .unwrap_or_else(|| HttpGet::get(wb.proxy_addr(), host, "/").unwrap())
}

fn stop(mut d: Daemon) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = d.wait();
}

#[test]
fn instances_of_the_previous_release_survive_the_upgrade() {
    if !require_root("instances_of_the_previous_release_survive_the_upgrade") {
        return;
    }
    let prev = previous_release();
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("var/www/html")).unwrap();
    fs::write(live.join("var/www/html/index.html"), "the old page\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let snap = snap.to_str().unwrap();
    let wb = Wayback::new();
    let (a, b) = (unique("wbtupa"), unique("wbtupb"));
    let (host_a, host_b) = (format!("{a}.wbt.test"), format!("{b}.wbt.test"));

    // The previous release: its daemon hosts A, its foreground `up` hosts B.
    let old_daemon = spawn_daemon(old(&prev, &wb, &["serve"]), &wb);
    let up_a = [
        "up",
        snap,
        "--name",
        &a,
        "--profile",
        "nginx-static",
        "--host",
        &host_a,
        "--detach",
    ];
    let out = output_timeout(&mut old(&prev, &wb, &up_a), Duration::from_secs(120)).unwrap();
    assert!(out.status.success(), "old up --detach\n{}", show(&out));
    // A guard: stopped (SIGTERM, ours, by PID) and waited for even when the test fails half-way.
    let up_b_args = [
        "up",
        snap,
        "--name",
        &b,
        "--profile",
        "nginx-static",
        "--host",
        &host_b,
        "--json",
    ];
    let mut up_b = Daemon(
        old(&prev, &wb, &up_b_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert_eq!(page(&wb, &host_a), (200, "the old page\n".into()));
    assert_eq!(page(&wb, &host_b), (200, "the old page\n".into()));
    assert!(
        !fs::read_to_string(wb.state_dir().join("instances").join(&a).join("plan.json"))
            .unwrap()
            .contains("\"format\""),
        "the old release writes format 0"
    );

    // The upgrade: the old daemon stops (its instance keeps running), this release's starts and adopts.
    stop(old_daemon);
    let new_daemon = spawn_daemon(wb.command(&["serve"]), &wb);
    let log = wait_for(Duration::from_secs(20), || {
        let l = fs::read_to_string(wb.tmp().join("serve.err")).unwrap_or_default();
        l.contains(&format!("adopted {a}")).then_some(l)
    });
    assert!(log.is_some(), "the new daemon adopts A");
    assert_eq!(page(&wb, &host_a), (200, "the old page\n".into()));
    assert_eq!(page(&wb, &host_b), (200, "the old page\n".into()));

    // This release lists, extends and removes them.
    let ls = wb.run_ok(&["ls"]);
    assert!(ls.contains(&a) && ls.contains(&b), "{ls}");
    for name in [&a, &b] {
        wb.run_ok(&["extend", name, "3h"]);
        let s: serde_json::Value =
            serde_json::from_str(&wb.run_ok(&["status", name, "--json"])).unwrap();
        assert_eq!(s["state"], "running", "{s}");
        let left = s["ttl_left"].as_str().unwrap_or_default().to_string();
        assert!(
            left.starts_with("3h") || left.starts_with("2h"),
            "{name} extended: {s}"
        );
    }
    wb.run_ok(&["down", &a]);
    wb.run_ok(&["down", &b]);
    let status = wait_for(Duration::from_secs(60), || up_b.try_wait().unwrap());
    assert!(
        status.is_some_and(|s| s.success()),
        "the old foreground up ends cleanly: {status:?}"
    );
    stop(new_daemon);
    for name in [&a, &b] {
        Residue::new(name).pool(&pool).wayback(&wb).assert_none();
    }
}

#[test]
fn a_state_file_from_a_future_release_is_refused_and_left_alone() {
    if !require_root("a_state_file_from_a_future_release_is_refused_and_left_alone") {
        return;
    }
    let wb = Wayback::new();
    let name = unique("wbtfuture");
    let dir = wb.state_dir().join("instances").join(&name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(".wayback-instance"), format!("{name}\n")).unwrap();
    fs::write(
        dir.join("plan.json"),
        r#"{"format": 99, "name": "x", "future": true}"#,
    )
    .unwrap();
    fs::write(dir.join("journal.jsonl"), "{\"format\":99}\n{\"seq\":0,\"resource\":{\"kind\":\"netns\",\"path\":\"/run/netns/wb-x\"}}\n").unwrap();
    let before = tree_checksum(&dir);
    let status = wb.run(&["status", &name]);
    assert!(show(&status).contains("format 99"), "{}", show(&status));
    let down = wb.run(&["down", &name]);
    assert!(!down.status.success(), "{}", show(&down));
    assert!(
        show(&down).contains("format 99") && show(&down).contains("newer wayback"),
        "{}",
        show(&down)
    );
    let gc = wb.run(&["gc"]);
    assert!(show(&gc).contains("format 99"), "{}", show(&gc));
    assert_eq!(before, tree_checksum(&dir), "nothing changed");
    fs::remove_dir_all(&dir).unwrap();
}
