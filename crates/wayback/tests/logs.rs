//! Logs that survive (issue 12): the app's own log directory (a profile dir under /var/log) is kept on disk
//! and shown by `wayback logs`; a start that fails prints the app's own last log lines, and its logs stay
//! readable with `wayback logs NAME` (the name is free again) until `gc` after keep_failed_logs.

use std::fs;
use std::time::Duration;

use wayback_testsupport::*;

const PROFILE: &str = r#"
name = "logger"
binds = ["/srv/data"]
dirs = [{ path = "/var/log/wbtapp", owner = "nobody", mode = "0750" }]

[[process]]
name = "app"
user = "nobody"
shell = "echo \"app says $MODE\" >> /var/log/wbtapp/app.log; [ \"$MODE\" != fail ] || exit 13; exec sleep 1000"
ready = { path = "/var/log/wbtapp/app.log" }
"#;

#[test]
fn app_logs_are_kept_and_a_failed_start_keeps_its_logs() {
    if !require_root("app_logs_are_kept_and_a_failed_start_keeps_its_logs") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/data")).unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::with_extra_config("keep_failed_logs = \"1h\"");
    let profile = wb.tmp().join("logger.toml");
    fs::write(&profile, PROFILE).unwrap();
    let (snap, profile) = (snap.to_str().unwrap(), profile.to_str().unwrap());
    let name = unique("wbtlog");

    // A running instance: its app log is on disk and `logs` shows it under the path the app wrote.
    let up = wb.up_background(&[
        snap,
        "--name",
        &name,
        "--profile",
        profile,
        "--env",
        "MODE=ok",
    ]);
    let shown = wait_for(Duration::from_secs(10), || {
        let out = wb.run_ok(&["logs", &name]);
        out.contains("app says ok").then_some(out)
    })
    .expect("the app's log in `wayback logs`");
    assert!(shown.contains("==> /var/log/wbtapp/app.log <=="), "{shown}");
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();

    // A failed start: the error shows the app's own log, `logs` keeps showing it, the name is free again.
    let out = wb.run(&[
        "up",
        snap,
        "--name",
        &name,
        "--profile",
        profile,
        "--env",
        "MODE=fail",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("app says fail"),
        "the app's own last lines: {err}"
    );
    assert!(err.contains(&format!("wayback logs {name}")), "{err}");
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    let kept = wb.run_ok(&["logs", &name]);
    assert!(kept.contains("its last start failed"), "{kept}");
    assert!(kept.contains("app says fail"), "{kept}");
    assert!(kept.contains("(exit status 13)"), "{kept}");
    let status = wb.run_ok(&["status", &name]);
    assert!(status.contains("state      failed"), "{status}");
    assert!(status.contains(&format!("wayback logs {name}")), "{status}");

    // gc keeps them while young, and removes them once older than keep_failed_logs.
    wb.run_ok(&["gc"]);
    assert!(wb.run_ok(&["logs", &name]).contains("app says fail"));
    let state = wb.state_dir();
    // The same state dir with keep_failed_logs = 1s, once the logs are older than that.
    std::thread::sleep(Duration::from_millis(2100));
    let cfg0 = wb.tmp().join("config0.toml");
    let text = fs::read_to_string(wb.config_path()).unwrap();
    fs::write(
        &cfg0,
        text.replace("keep_failed_logs = \"1h\"", "keep_failed_logs = \"1s\""),
    )
    .unwrap();
    let gc = std::process::Command::new(wayback_bin())
        .args(["--config", cfg0.to_str().unwrap(), "gc"])
        .output()
        .unwrap();
    assert!(gc.status.success(), "{}", show(&gc));
    assert!(
        String::from_utf8_lossy(&gc.stdout).contains("logs of a failed start"),
        "{}",
        show(&gc)
    );
    assert!(!state.join("failed").join(&name).exists());
    let gone = wb.run(&["logs", &name]);
    assert_eq!(gone.status.code(), Some(2), "{}", show(&gone));

    // The name was free for a new start all along.
    let up = wb.up_background(&[
        snap,
        "--name",
        &name,
        "--profile",
        profile,
        "--env",
        "MODE=ok",
    ]);
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
