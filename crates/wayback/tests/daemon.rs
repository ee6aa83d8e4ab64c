//! The daemon: instances handed over with `up --detach` outlive the CLI; restarting the daemon (SIGTERM, and
//! SIGKILL as a crash) adopts every running instance — still reachable through the proxy, no duplicate
//! containers; a second daemon on the same runtime dir refuses to start; `down --all` leaves nothing.

use std::fs;
use std::process::Child;
use std::time::Duration;

use wayback_testsupport::*;

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig);
}

/// The socket file stays after SIGKILL: wait until the new daemon answers by checking its log.
fn wait_adopted(wb: &Wayback, n: usize) {
    let log = wb.tmp().join("serve.err");
    wait_for(Duration::from_secs(30), || {
        let text = fs::read_to_string(&log).unwrap_or_default();
        (text.matches("adopted").count() >= n).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "daemon did not adopt {n} instances:\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        )
    });
}

fn assert_serving(wb: &Wayback, names: &[String]) {
    for name in names {
        let host = format!("{name}.wbt.test");
        let (status, body) =
            HttpGet::get_retry(wb.proxy_addr(), &host, "/", Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("GET {host}: {e}"));
        assert_eq!(status, 200, "{host}: {body}");
        assert!(body.contains("daemon test"), "{host}: {body}");
        // One nspawn per instance (its init names the machine too, and is counted separately).
        let procs: Vec<String> = processes_with_machine(&format!("wb-{name}"))
            .into_iter()
            .filter(|p| p.contains("systemd-nspawn"))
            .collect();
        assert_eq!(
            procs.len(),
            1,
            "exactly one container process for {name}: {procs:?}"
        );
    }
}

#[test]
fn daemon_restart_adopts_running_instances() {
    if !require_root("daemon_restart_adopts_running_instances") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("var/www/html")).unwrap();
    fs::write(
        live.join("var/www/html/index.html"),
        "<h1>daemon test</h1>\n",
    )
    .unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let snap = snap.to_str().unwrap();
    let wb = Wayback::new();

    let mut daemon = start_daemon(&wb, None);
    let second = wb.run(&["serve"]);
    assert!(
        !second.status.success(),
        "a second daemon must refuse to start"
    );
    assert!(show(&second).contains("already runs"), "{}", show(&second));

    let names: Vec<String> = (0..3).map(|_| unique("wbtdm")).collect();
    for name in &names {
        wb.run_ok(&[
            "up",
            snap,
            "--name",
            name,
            "--profile",
            "nginx-static",
            "--detach",
        ]);
    }
    assert_serving(&wb, &names);

    // Orderly restart.
    signal(&daemon, nix::sys::signal::Signal::SIGTERM);
    daemon.wait().unwrap();
    let _ = fs::remove_file(wb.tmp().join("serve.err"));
    daemon = start_daemon(&wb, None);
    wait_adopted(&wb, 3);
    assert_serving(&wb, &names);

    // Crash and restart.
    signal(&daemon, nix::sys::signal::Signal::SIGKILL);
    daemon.wait().unwrap();
    let _ = fs::remove_file(wb.tmp().join("serve.err"));
    daemon = start_daemon(&wb, None);
    wait_adopted(&wb, 3);
    assert_serving(&wb, &names);

    wb.run_ok(&["down", "--all"]);
    signal(&daemon, nix::sys::signal::Signal::SIGTERM);
    daemon.wait().unwrap();
    for name in &names {
        Residue::new(name).pool(&pool).wayback(&wb).assert_none();
    }
    assert!(is_readonly_subvolume(std::path::Path::new(snap)));
}
