//! Clear states (issue 12, item 10): `status` and `ls` (and `--json`) tell a running instance, an orphaned
//! one (its `up` was killed: `wayback gc` removes it) and a daemon's instance while the daemon is down (the
//! next `wayback serve` adopts it) apart, each with its next step; `status` shows the binds with where in
//! the snapshot each comes from, the processes and their users, the masquerade host, the gate and the TTL.

use std::fs;
use std::os::unix::fs::symlink;
use std::time::Duration;

use serde_json::Value;
use wayback_testsupport::*;

const SERVER: &str = "exec python3 -m http.server 8000 --bind 127.0.0.1 --directory /srv/www";

fn status_json(wb: &Wayback, name: &str) -> Value {
    let out = wb.run_ok(&["status", name, "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json ({e}): {out}"))
}

fn ls_state(wb: &Wayback, name: &str) -> String {
    let out = wb.run_ok(&["ls", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == name))
        .map_or_else(
            || panic!("ls does not list {name}: {out}"),
            |i| i["state"].as_str().unwrap_or_default().to_string(),
        )
}

fn site(pool: &BtrfsPool) -> std::path::PathBuf {
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/site")).unwrap();
    fs::write(live.join("srv/site/index.html"), "status test\n").unwrap();
    // The bind asked for is a symlink in the snapshot: status shows where it resolved.
    symlink("site", live.join("srv/www")).unwrap();
    pool.snapshot_ro("live", "snaps/s1")
}

#[test]
fn status_shows_a_running_instance_and_an_orphan_with_their_next_steps() {
    if !require_root("status_shows_a_running_instance_and_an_orphan_with_their_next_steps") {
        return;
    }
    let pool = BtrfsPool::new();
    let snap = site(&pool);
    let wb = Wayback::new();
    let name = unique("wbtst");
    let mut up = wb.up_background(&[
        path_str(&snap),
        "--name",
        &name,
        "--bind",
        "/srv/www",
        "--exec",
        SERVER,
        "--user",
        "nobody",
        "--port",
        "8000",
        "--share",
        "2h",
        "--original-host",
        "www.example.org",
        "--ttl",
        "3h",
    ]);

    let v = status_json(&wb, &name);
    assert_eq!(v["state"], "running", "{v:#}");
    assert_eq!(v["meaning"], "it runs and answers");
    assert!(
        v["next"]
            .as_str()
            .unwrap()
            .contains(&format!("wayback shell {name}")),
        "{v:#}"
    );
    let bind = &v["binds"][0];
    assert_eq!(bind["dest"], "/srv/www", "{v:#}");
    assert_eq!(bind["clone"]["path"], "/srv/www");
    assert_eq!(bind["clone"]["resolved"], "/srv/site");
    assert_eq!(bind["clone"]["root"], up.ready["clone"]);
    assert_eq!(v["processes"][0]["user"], "nobody", "{v:#}");
    assert!(v["processes"][0]["command"]
        .as_str()
        .unwrap()
        .contains("http.server"));
    let running = v["running"].as_array().unwrap();
    assert!(
        running.iter().any(
            |p| p["user"] == "nobody" && p["command"].as_str().unwrap().contains("http.server")
        ),
        "{v:#}"
    );
    assert!(running.iter().any(|p| p["pid"] == 1), "{v:#}");
    assert_eq!(v["masquerade"], "https://www.example.org");
    assert_eq!(v["gate"]["share"], "2h", "{v:#}");
    let ttl = v["ttl_left"].as_str().unwrap();
    assert!(
        ttl.starts_with("2h") || ttl.starts_with("3h"),
        "ttl left: {ttl}"
    );

    let text = wb.run_ok(&["status", &name]);
    for want in [
        "state      running: it runs and answers".to_string(),
        format!("next       get inside with `wayback shell {name}`"),
        format!(
            "  /srv/www (rw) <- /srv/www of {} (resolved to /srv/site)",
            up.ready["clone"].as_str().unwrap()
        ),
        "  exec1 as nobody: ".to_string(),
        "masquerade the app sees https://www.example.org".into(),
        "gate       one-time share link (valid 2h)".into(),
        "ttl left   ".into(),
    ] {
        assert!(text.contains(&want), "status lacks {want:?}:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.contains(" nobody ") && l.contains("http.server")),
        "no running process as nobody:\n{text}"
    );

    // Orphaned: the `up` that ran it is killed; its container still runs, but nothing hosts it.
    up.kill_hard();
    let v = status_json(&wb, &name);
    assert_eq!(v["state"], "orphaned", "{v:#}");
    assert_eq!(v["meaning"], "the process that ran it is gone");
    assert!(
        v["next"]
            .as_str()
            .unwrap()
            .contains("`wayback gc` removes it"),
        "{v:#}"
    );
    assert_eq!(ls_state(&wb, &name), "orphaned");
    let out = wb.run(&["ls"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&name) && l.contains(" orphaned ")),
        "{table}"
    );
    assert!(
        show(&out).contains("orphaned: the process that ran it is gone; `wayback gc` removes it"),
        "{}",
        show(&out)
    );
    let text = wb.run_ok(&["status", &name]);
    assert!(
        text.contains("state      orphaned: the process that ran it is gone"),
        "{text}"
    );

    wb.run_ok(&["gc"]);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    let out = wb.run(&["status", &name]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

#[test]
fn status_tells_a_daemon_down_from_an_orphan() {
    if !require_root("status_tells_a_daemon_down_from_an_orphan") {
        return;
    }
    let pool = BtrfsPool::new();
    let snap = site(&pool);
    let wb = Wayback::new();
    let name = unique("wbtsd");
    let mut daemon = start_daemon(&wb, None);
    wb.run_ok(&[
        "up",
        path_str(&snap),
        "--name",
        &name,
        "--bind",
        "/srv/www",
        "--exec",
        SERVER,
        "--port",
        "8000",
        "--detach",
    ]);
    let v = status_json(&wb, &name);
    assert_eq!(v["state"], "running", "{v:#}");
    assert_eq!(v["owner_daemon"], true);
    let text = wb.run_ok(&["status", &name]);
    assert!(text.contains("owner      the daemon (pid "), "{text}");

    // The daemon stops; its instance keeps running, waiting to be adopted.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    daemon.wait().unwrap();
    let v = status_json(&wb, &name);
    assert_eq!(v["state"], "daemon_down", "{v:#}");
    assert!(
        v["meaning"]
            .as_str()
            .unwrap()
            .starts_with("the daemon is down; it will adopt this instance when it starts"),
        "{v:#}"
    );
    assert!(
        v["next"].as_str().unwrap().contains("`wayback serve`"),
        "{v:#}"
    );
    assert_eq!(ls_state(&wb, &name), "daemon_down");
    let out = wb.run(&["ls"]);
    assert!(
        show(&out).contains("daemon_down: the daemon is down; it will adopt this instance"),
        "{}",
        show(&out)
    );
    // Still inside reach.
    let out = wb.run(&["exec", &name, "--", "cat", "/srv/www/index.html"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "status test\n",
        "{}",
        show(&out)
    );

    // gc (from cron, say, while the daemon restarts) leaves it to the daemon.
    let out = wb.run_ok(&["gc"]);
    let _ = out;
    assert_eq!(ls_state(&wb, &name), "daemon_down", "gc must not remove it");

    // The next daemon adopts it, as promised.
    let _ = fs::remove_file(wb.tmp().join("serve.err"));
    let daemon = start_daemon(&wb, None);
    wait_for(Duration::from_secs(30), || {
        (status_json(&wb, &name)["state"] == "running").then_some(())
    })
    .expect("adopted by the next daemon");
    wb.run_ok(&["down", "--all"]);
    drop(daemon);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
