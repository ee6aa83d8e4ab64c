//! Side effects off, switches on: a profile hook (a `oneshot` process) runs to completion before the
//! service starts, with `--env` settings visible to every process — how an app is put into maintenance or
//! read-only mode without editing its configuration. A failing hook stops the start with its message.

use std::fs;
use std::time::Duration;

use wayback_testsupport::*;

const PROFILE: &str = r#"
name = "hooked"
binds = ["/srv/www"]
http_port = 8000

[[process]]
name = "switch"
oneshot = true
shell = "echo \"$APP_MODE\" > /srv/www/mode.txt; [ \"$APP_MODE\" != fail ] || { echo 'hook says no' >&2; exit 3; }"

[[process]]
name = "web"
shell = "exec python3 -m http.server 8000 --bind 127.0.0.1 --directory /srv/www"
ready = { tcp = 8000 }
"#;

#[test]
fn a_hook_runs_first_with_the_env_switch() {
    if !require_root("a_hook_runs_first_with_the_env_switch") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/www")).unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::new();
    let profile = wb.tmp().join("hooked.toml");
    fs::write(&profile, PROFILE).unwrap();
    let snap = snap.to_str().unwrap();
    let profile = profile.to_str().unwrap();

    let name = unique("wbthook");
    let host = format!("{name}.wbt.test");
    let up = wb.up_background(&[
        snap,
        "--name",
        &name,
        "--profile",
        profile,
        "--host",
        &host,
        "--env",
        "APP_MODE=read-only",
    ]);
    let (code, body) =
        HttpGet::get_retry(wb.proxy_addr(), &host, "/mode.txt", Duration::from_secs(10)).unwrap();
    assert_eq!((code, body.as_str()), (200, "read-only\n"));
    drop(up);

    let name = unique("wbthook");
    let out = wb.run(&[
        "up",
        snap,
        "--name",
        &name,
        "--profile",
        profile,
        "--env",
        "APP_MODE=fail",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(show(&out).contains("hook says no"), "{}", show(&out));
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
