//! Crash safety: `wayback up`, `down` and the daemon are killed with SIGKILL at every fault point (after each
//! journal entry is written, after each resource is created, after each undo step), then `gc` (or a
//! restarted daemon) must leave zero residue, the source snapshot must still be read-only and
//! byte-identical, and a fresh `up` of the same name must succeed.

use std::fs;
use std::process::{Child, Stdio};
use std::time::Duration;

use wayback_testsupport::*;

/// More points than wayback has: the loop ends at the first run that is not killed.
const MAX_POINTS: u32 = 60;

struct Source {
    pool: BtrfsPool,
    snap: String,
    manifest: std::collections::BTreeMap<String, String>,
}

fn source() -> Source {
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    let html = live.join("var/www/html");
    fs::create_dir_all(&html).unwrap();
    fs::write(html.join("index.html"), "<h1>fault injection</h1>\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let manifest = tree_manifest(&snap);
    Source {
        snap: snap.to_str().unwrap().to_string(),
        pool,
        manifest,
    }
}

fn assert_clean(src: &Source, wb: &Wayback, name: &str, when: &str) {
    let left = Residue::new(name).pool(&src.pool).wayback(wb).leftovers();
    assert!(left.is_empty(), "{when}: residue:\n  {}", left.join("\n  "));
    let snap = std::path::Path::new(&src.snap);
    assert!(
        is_readonly_subvolume(snap),
        "{when}: the source snapshot is no longer read-only"
    );
    let now = tree_manifest(snap);
    assert!(
        now == src.manifest,
        "{when}: the source snapshot changed: {:?}",
        manifest_diff(&src.manifest, &now)
    );
}

fn up_args<'a>(src: &'a Source, name: &'a str) -> Vec<&'a str> {
    vec![
        "up",
        &src.snap,
        "--name",
        name,
        "--profile",
        "nginx-static",
        "--host",
        "fi.wbt.test",
        "--json",
    ]
}

/// Spawn with WAYBACK_FAULT_POINT=k; stdout piped (ready line), stderr to a file in the runner's tmp.
fn spawn_with_fault(wb: &Wayback, args: &[&str], k: Option<u32>, log: &str) -> Child {
    let mut c = wb.command(args);
    if let Some(k) = k {
        c.env("WAYBACK_FAULT_POINT", k.to_string());
    }
    let err = fs::File::create(wb.tmp().join(log)).unwrap();
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .unwrap()
}

/// Wait for the child to print its ready line (true) or exit first (false).
fn ready_or_exit(child: &mut Child) -> bool {
    use std::io::{BufRead, BufReader};
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    let got = BufReader::new(out).read_line(&mut line).unwrap_or(0) > 0;
    got && line.contains("\"running\"")
}

fn killed(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

#[test]
fn sigkill_at_every_point_of_up_and_down_then_gc_leaves_nothing() {
    if !require_root("sigkill_at_every_point_of_up_and_down_then_gc_leaves_nothing") {
        return;
    }
    let src = source();
    let wb = Wayback::new();
    let name = unique("wbtfi");
    let (mut up_points, mut down_points) = (0, 0);
    for k in 1..=MAX_POINTS {
        let mut child = spawn_with_fault(&wb, &up_args(&src, &name), Some(k), "up.err");
        if ready_or_exit(&mut child) {
            // Up survived every point before k: now crash its teardown.
            let down = wb.run(&["down", &name]);
            let status = child.wait().unwrap();
            if !killed(status) {
                assert!(
                    down.status.success(),
                    "down after point {k}: {}",
                    show(&down)
                );
                wb.run_ok(&["gc"]);
                assert_clean(&src, &wb, &name, &format!("complete run (k={k})"));
                break;
            }
            down_points += 1;
        } else {
            let status = child.wait().unwrap();
            assert!(
                killed(status),
                "up exited without reaching ready and without being killed at point {k}: {status}\n{}",
                fs::read_to_string(wb.tmp().join("up.err")).unwrap_or_default()
            );
            up_points += 1;
        }
        let gc = wb.run(&["gc"]);
        assert!(gc.status.success(), "gc after point {k}: {}", show(&gc));
        assert_clean(
            &src,
            &wb,
            &name,
            &format!("after SIGKILL at point {k} and gc"),
        );
    }
    eprintln!("fault injection (foreground): {up_points} points in up, {down_points} in down");
    assert!(
        up_points >= 10,
        "expected at least 10 fault points in up, got {up_points}"
    );
    assert!(
        down_points >= 5,
        "expected at least 5 fault points in down, got {down_points}"
    );

    // A fresh up of the same name works.
    let up = wb.up_background(&[
        &src.snap,
        "--name",
        &name,
        "--profile",
        "nginx-static",
        "--host",
        "fi.wbt.test",
    ]);
    let (status, _) =
        HttpGet::get_retry(wb.proxy_addr(), "fi.wbt.test", "/", Duration::from_secs(10)).unwrap();
    assert_eq!(status, 200);
    drop(up);
    assert_clean(&src, &wb, &name, "after the final up and down");
}

fn stop_daemon(mut d: Daemon) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = d.wait();
}

#[test]
fn sigkill_of_the_daemon_at_every_point_then_restart_leaves_nothing() {
    if !require_root("sigkill_of_the_daemon_at_every_point_then_restart_leaves_nothing") {
        return;
    }
    let src = source();
    let wb = Wayback::new();
    let name = unique("wbtfd");
    let detached = [
        "up",
        &src.snap,
        "--name",
        &name,
        "--profile",
        "nginx-static",
        "--host",
        "fd.wbt.test",
        "--detach",
    ];
    let (mut up_points, mut down_points) = (0, 0);
    for k in 1..=MAX_POINTS {
        let mut daemon = start_daemon(&wb, Some(k));
        let up = wb.run(&detached);
        let mut status = daemon.try_wait().unwrap();
        if status.is_none() && up.status.success() {
            let _ = wb.run(&["down", &name]);
            status = wait_for(Duration::from_secs(5), || daemon.try_wait().unwrap());
            if status.is_none() {
                // Not killed anywhere: the last point has been passed.
                stop_daemon(daemon);
                assert_clean(&src, &wb, &name, &format!("complete daemon run (k={k})"));
                break;
            }
            down_points += 1;
        } else {
            let status = status.unwrap_or_else(|| daemon.wait().unwrap());
            assert!(
                killed(status),
                "daemon not killed at point {k} although up failed: {}",
                show(&up)
            );
            up_points += 1;
        }
        // Restart the daemon: it removes or adopts what the dead one left; then remove everything.
        let daemon = start_daemon(&wb, None);
        wb.run_ok(&["down", "--all"]);
        stop_daemon(daemon);
        assert_clean(
            &src,
            &wb,
            &name,
            &format!("after daemon SIGKILL at point {k}, restart and down --all"),
        );
    }
    eprintln!("fault injection (daemon): {up_points} points in up, {down_points} in down");
    assert!(
        up_points >= 10 && down_points >= 5,
        "too few daemon fault points: {up_points} up, {down_points} down"
    );
}
