//! The lifecycle verbs `keep` and `reset`, on instances the daemon hosts:
//! - `reset NAME SNAPSHOT` swaps an instance to an older snapshot: the older content answers through the
//!   proxy under the same hostname, the share link's cookie still opens it, the old clone is gone; bad
//!   input (no such snapshot, a writable subvolume) is refused with exit 2 and changes nothing.
//! - `keep` shows in `ls`/`status --json`, holds an instance past its TTL, and `keep --off` lets the TTL
//!   remove it.
//! - A reset killed (SIGKILL of the daemon) at each of its steps, then `wayback gc`, leaves zero residue:
//!   no clone (`.next`/`.prev` included), mount, netns, link, nft chain or process.

use std::fs;
use std::process::Command;
use std::time::Duration;

use wayback_testsupport::*;

/// A site in the pool: `s1` says "version one", `s2` (newer) "version two". Returns (s1, s2).
fn two_versions(pool: &BtrfsPool) -> (String, String) {
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("var/www/html")).unwrap();
    let index = live.join("var/www/html/index.html");
    fs::write(&index, "<p>version one</p>\n").unwrap();
    let s1 = pool.snapshot_ro("live", "snaps/s1");
    fs::write(&index, "<p>version two</p>\n").unwrap();
    let s2 = pool.snapshot_ro("live", "snaps/s2");
    (
        s1.to_str().unwrap().to_string(),
        s2.to_str().unwrap().to_string(),
    )
}

/// `curl` through the proxy with the URL's host resolved to loopback; returns (status, body).
fn curl(url: &str, extra: &[&str]) -> (u16, String) {
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "80"));
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"])
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn status_json(wb: &Wayback, name: &str) -> serde_json::Value {
    serde_json::from_str(&wb.run_ok(&["status", name, "--json"])).unwrap()
}

/// One request line on the daemon's socket; its final reply.
fn socket_request(wb: &Wayback, line: &str) -> serde_json::Value {
    use std::io::{BufRead, Write};
    let mut sock =
        std::os::unix::net::UnixStream::connect(wb.runtime_dir().join("wayback.sock")).unwrap();
    sock.write_all(format!("{line}\n").as_bytes()).unwrap();
    let reader = std::io::BufReader::new(sock);
    let last = reader.lines().map(Result::unwrap).last().expect("a reply");
    serde_json::from_str(&last).unwrap()
}

/// The pool holds exactly the subvolumes the test made: no clone of any kind is left.
fn assert_only_own_subvolumes(pool: &BtrfsPool) {
    let mut all = pool.subvolumes();
    all.retain(|s| {
        !pool
            .own_subvolumes()
            .iter()
            .any(|o| s.ends_with(o.as_str()))
    });
    assert!(all.is_empty(), "subvolumes left in the pool: {all:?}");
}

#[test]
fn reset_swaps_to_an_older_snapshot_and_keep_shows() {
    if !require_root("reset_swaps_to_an_older_snapshot_and_keep_shows") {
        return;
    }
    let pool = BtrfsPool::new();
    let (s1, s2) = two_versions(&pool);
    let wb = Wayback::new();
    let _daemon = start_daemon(&wb, None);
    let name = unique("wbtcreset");
    let out = wb.run_ok(&[
        "up",
        &s2,
        "--name",
        &name,
        "--profile",
        "nginx-static",
        "--share",
        "--detach",
        "--json",
    ]);
    let ready: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let link = ready["share_url"].as_str().expect("share_url").to_string();
    let url = ready["url"].as_str().unwrap().to_string();
    let jar = wb.tmp().join("cookies");
    let jar = jar.to_str().unwrap();
    let (code, body) = curl(&link, &["-L", "-c", jar, "-b", jar]);
    assert_eq!(code, 200, "share link: {body}");
    assert!(body.contains("version two"), "{body}");

    // Bad input: nothing changes, exit 2.
    let bad = wb.run(&["reset", &name, "/nonexistent/snapshot"]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
    let live = pool.path("live");
    let bad = wb.run(&["reset", &name, live.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
    assert!(show(&bad).contains("writable"), "{}", show(&bad));
    assert_eq!(
        status_json(&wb, &name)["source"].as_str(),
        Some(s2.as_str())
    );

    // Reset to the older snapshot: same URL, same cookie, older content.
    let dry = wb.run_ok(&["reset", &name, &s1, "--dry-run"]);
    assert!(dry.contains(&s1), "{dry}");
    let out = wb.run_ok(&["reset", &name, &s1, "--json"]);
    let after: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(after["source"].as_str(), Some(s1.as_str()), "{after}");
    assert_eq!(after["url"].as_str(), Some(url.as_str()), "{after}");
    let (code, body) = curl(&url, &["-b", jar]);
    assert_eq!(code, 200, "the share cookie still opens it: {body}");
    assert!(body.contains("version one"), "{body}");
    assert_eq!(curl(&url, &[]).0, 403, "still gated without the cookie");
    let clone = pool.clone_path(&name);
    for suffix in [".next", ".prev"] {
        let p = format!("{}{suffix}", clone.display());
        assert!(fs::symlink_metadata(&p).is_err(), "{p} left after reset");
    }
    // And forward again (a second reset journals over the first).
    wb.run_ok(&["reset", &name, &s2]);
    let (code, body) = curl(&url, &["-b", jar]);
    assert_eq!((code, body.contains("version two")), (200, true), "{body}");

    // keep: shown in ls and status; bad --until refused; --off ends it.
    wb.run_ok(&["keep", &name, "--until", "2h"]);
    let s = status_json(&wb, &name);
    assert_eq!(s["kept"], true, "{s}");
    assert!(s["kept_until"].as_u64().is_some(), "{s}");
    let ls = wb.run_ok(&["ls"]);
    let row = ls.lines().find(|l| l.starts_with(&name)).unwrap();
    assert!(row.contains("kept"), "{ls}");
    let bad = wb.run(&["keep", &name, "--until", "2000-01-01"]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
    wb.run_ok(&["keep", &name, "--off"]);
    assert_eq!(status_json(&wb, &name)["kept"], false);

    // The same verbs on the daemon's socket.
    let reply = socket_request(
        &wb,
        &format!("{{\"v\":1,\"op\":\"keep\",\"name\":\"{name}\",\"keep\":\"forever\"}}"),
    );
    assert_eq!(reply["reply"], "value", "{reply}");
    assert_eq!(status_json(&wb, &name)["kept"], true);
    let reply = socket_request(
        &wb,
        &format!("{{\"v\":1,\"op\":\"extend\",\"name\":\"{name}\",\"by\":\"2h\"}}"),
    );
    assert!(reply["value"]["expires"].as_u64().is_some(), "{reply}");
    let reply = socket_request(
        &wb,
        "{\"v\":1,\"op\":\"reset\",\"name\":\"../x\",\"snapshot\":\"/\"}",
    );
    assert_eq!(reply["bad_input"], true, "{reply}");

    wb.run_ok(&["down", &name]);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    assert_only_own_subvolumes(&pool);
}

#[test]
fn keep_holds_an_instance_past_its_ttl() {
    if !require_root("keep_holds_an_instance_past_its_ttl") {
        return;
    }
    let pool = BtrfsPool::new();
    let (_s1, s2) = two_versions(&pool);
    let wb = Wayback::new();
    let _daemon = start_daemon(&wb, None);
    let name = unique("wbtckeep");
    wb.run_ok(&[
        "up",
        &s2,
        "--name",
        &name,
        "--profile",
        "nginx-static",
        "--ttl",
        "3s",
        "--detach",
    ]);
    let out = wb.run_ok(&["keep", &name]);
    assert!(out.contains("is kept"), "{out}");
    // Well past the TTL: still there, still answering.
    std::thread::sleep(Duration::from_secs(6));
    let s = status_json(&wb, &name);
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["kept"], true, "{s}");
    let host = format!("{name}.wbt.test");
    let (code, body) = HttpGet::get(wb.proxy_addr(), &host, "/").unwrap();
    assert_eq!((code, body.contains("version two")), (200, true), "{body}");
    // Off: the TTL has passed, so the daemon removes it.
    let out = wb.run_ok(&["keep", &name, "--off"]);
    assert!(out.contains("removed now"), "{out}");
    let dir = wb.state_dir().join("instances").join(&name);
    wait_for(Duration::from_secs(60), || (!dir.exists()).then_some(()))
        .expect("instance removed after keep --off");
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    assert_only_own_subvolumes(&pool);
}

/// A foreground `up`'s instance: `keep` works on it (its owner reads the file), `reset` is refused with
/// the reason (exit 2) and changes nothing.
#[test]
fn foreground_instance_keep_works_and_reset_is_refused() {
    if !require_root("foreground_instance_keep_works_and_reset_is_refused") {
        return;
    }
    let pool = BtrfsPool::new();
    let (s1, s2) = two_versions(&pool);
    let wb = Wayback::new();
    let name = unique("wbtcfg");
    let mut up = wb
        .up(std::path::Path::new(&s2))
        .name(&name)
        .profile("nginx-static")
        .start();
    wb.run_ok(&["keep", &name]);
    assert_eq!(status_json(&wb, &name)["kept"], true);
    let out = wb.run(&["reset", &name, &s1]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(show(&out).contains("foreground"), "{}", show(&out));
    assert_eq!(
        status_json(&wb, &name)["source"].as_str(),
        Some(s2.as_str())
    );
    up.terminate(Duration::from_secs(60)).expect("up stops");
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    assert_only_own_subvolumes(&pool);
}

/// The daemon is killed at each step of a reset (`WAYBACK_FAULT_POINT=reset:K`). Once the old container
/// is stopped, `gc` removes everything: both clones, the network, the container. Before that the instance
/// still runs: gc leaves it, the restarted daemon adopts it, and the retried reset completes. Either way
/// nothing is left after `down`.
#[test]
fn reset_killed_at_every_step_then_gc_leaves_nothing() {
    if !require_root("reset_killed_at_every_step_then_gc_leaves_nothing") {
        return;
    }
    let pool = BtrfsPool::new();
    let (s1, s2) = two_versions(&pool);
    let wb = Wayback::new();
    let (mut killed, mut removed_by_gc, mut adopted_after_kill) = (0, 0, 0);
    for k in 1.. {
        let mut daemon = start_daemon_with(&wb, &format!("reset:{k}"));
        let name = unique("wbtcrkill");
        wb.run_ok(&[
            "up",
            &s2,
            "--name",
            &name,
            "--profile",
            "nginx-static",
            "--detach",
        ]);
        let out = wb.run(&["reset", &name, &s1]);
        let exited = wait_for(Duration::from_secs(60), || daemon.try_wait().unwrap());
        if out.status.success() {
            // Past the last point: the reset completed.
            assert!(exited.is_none(), "the daemon died after a successful reset");
            assert!(k > 5, "a reset has more than 5 steps; finished at {k}");
            wb.run_ok(&["down", &name]);
            Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
            break;
        }
        assert!(
            exited.is_some(),
            "reset failed without the fault: {}",
            show(&out)
        );
        killed += 1;
        let gc = wb.run_ok(&["gc", "--json"]);
        let dir = wb.state_dir().join("instances").join(&name);
        if dir.exists() {
            // Killed before the old container stopped: it still runs, so gc leaves it to the next daemon,
            // which adopts it; the retried reset then completes (removing the half-made clone first).
            assert!(!gc.contains(&name), "gc touched a running instance: {gc}");
            assert_eq!(status_json(&wb, &name)["state"], "daemon_down");
            adopted_after_kill += 1;
            let _daemon = start_daemon(&wb, None);
            wait_for(Duration::from_secs(30), || {
                (status_json(&wb, &name)["state"] == "running").then_some(())
            })
            .expect("adopted");
            wb.run_ok(&["reset", &name, &s1]);
            let host = format!("{name}.wbt.test");
            let (code, body) =
                HttpGet::get_retry(wb.proxy_addr(), &host, "/", Duration::from_secs(10)).unwrap();
            assert_eq!((code, body.contains("version one")), (200, true), "{body}");
            wb.run_ok(&["down", &name]);
        } else {
            assert!(gc.contains(&name), "gc removed {name}: {gc}");
            removed_by_gc += 1;
        }
        Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
        assert_only_own_subvolumes(&pool);
    }
    eprintln!(
        "reset killed at {killed} points: {removed_by_gc} removed by gc, {adopted_after_kill} adopted and reset again"
    );
    assert!(removed_by_gc > 0 && adopted_after_kill > 0);
    assert!(killed >= 8, "only {killed} fault points in reset");
}

/// A daemon with `WAYBACK_FAULT_POINT` set to a prefixed point.
fn start_daemon_with(wb: &Wayback, point: &str) -> Daemon {
    let sock = wb.runtime_dir().join("wayback.sock");
    let _ = fs::remove_file(&sock);
    let err = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(wb.tmp().join("serve.err"))
        .unwrap();
    let child = wb
        .command(&["serve"])
        .env("WAYBACK_FAULT_POINT", point)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    let daemon = Daemon(child);
    wait_for(Duration::from_secs(30), || sock.exists().then_some(())).expect("daemon socket");
    daemon
}
