//! Profiles from the host's systemd units: `wayback profile from-units nginx` writes a profile that parses,
//! and `up --unit nginx` runs the host's nginx exactly as its unit file says (Type=forking, PID file), on
//! the snapshot's /var/www, with the host's /var skeleton so the package's directories exist.

use std::fs;
use std::time::Duration;

use wayback_testsupport::*;

#[test]
fn nginx_from_its_unit_file_serves_the_snapshot() {
    if !require_root("nginx_from_its_unit_file_serves_the_snapshot") {
        return;
    }
    let wb = Wayback::new();
    let toml = wb.run_ok(&["profile", "from-units", "nginx", "--port", "80"]);
    assert!(toml.contains("name = \"nginx\""), "{toml}");
    let file = wb.tmp().join("nginx.toml");
    fs::write(&file, &toml).unwrap();

    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("var/www/html")).unwrap();
    fs::write(live.join("var/www/html/old.txt"), "from the unit\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let snap = snap.to_str().unwrap();

    for (i, how) in [
        vec!["--unit", "nginx"],
        vec!["--profile", file.to_str().unwrap()],
    ]
    .into_iter()
    .enumerate()
    {
        let name = unique("wbtunit");
        let host = format!("{name}.wbt.test");
        let mut args = vec![
            snap, "--name", &name, "--bind", "/var/www", "--port", "80", "--host", &host,
        ];
        args.extend(how);
        let up = wb.up_background(&args);
        let (code, body) =
            HttpGet::get_retry(wb.proxy_addr(), &host, "/old.txt", Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("run {i}: {e}"));
        assert_eq!((code, body.as_str()), (200, "from the unit\n"), "run {i}");
        drop(up);
        Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    }
}

/// A file or directory a test puts on the host (a unit file, an app's config), removed again on drop (also
/// on a panic).
struct OnHost(std::path::PathBuf);

impl Drop for OnHost {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0).or_else(|_| fs::remove_dir_all(&self.0));
    }
}

/// A service that runs as an unprivileged `User=` and listens on port 80 (what systemd lets it do with
/// `AmbientCapabilities=CAP_NET_BIND_SERVICE`, which wayback does not apply) binds it inside the instance's
/// network namespace and serves the snapshot.
#[test]
fn an_unprivileged_user_binds_port_80_in_the_instance() {
    if !require_root("an_unprivileged_user_binds_port_80_in_the_instance") {
        return;
    }
    let name = unique("wbtlow");
    let unit = OnHost(format!("/etc/systemd/system/{name}.service").into());
    fs::write(
        &unit.0,
        "[Service]\nUser=nobody\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n\
         ExecStart=/usr/bin/busybox httpd -f -p 80 -h /srv/wbtlow\n",
    )
    .unwrap();
    let wb = Wayback::new();
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/wbtlow")).unwrap();
    fs::write(live.join("srv/wbtlow/old.txt"), "served as nobody\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let host = format!("{name}.wbt.test");
    let mut up = wb.up_background(&[
        snap.to_str().unwrap(),
        "--unit",
        &name,
        "--name",
        &name,
        "--bind",
        "/srv/wbtlow",
        "--port",
        "80",
        "--host",
        &host,
    ]);
    let got = HttpGet::get_retry(wb.proxy_addr(), &host, "/old.txt", Duration::from_secs(20));
    let (code, body) = got.unwrap_or_else(|e| panic!("{e}\n{}", up.describe()));
    assert_eq!((code, body.as_str()), (200, "served as nobody\n"));
    let who = wb.run_ok(&["exec", &name, "--", "ps", "-o", "user=,args="]);
    assert!(
        who.lines()
            .any(|l| l.starts_with("nobody") && l.contains("httpd -f -p 80")),
        "httpd runs as nobody\n{who}"
    );
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}

/// Caddy as Debian's unit runs it (`Type=notify`, `User=caddy`, port 80): `up --unit` finds the served
/// files from the `root` of the host's Caddyfile and waits for the site's port; nothing is bound by hand.
#[test]
fn caddy_from_its_unit_serves_the_snapshots_site() {
    if !require_root("caddy_from_its_unit_serves_the_snapshots_site") {
        return;
    }
    let name = unique("wbtcaddy");
    let conf = OnHost(format!("/etc/{name}").into());
    fs::create_dir_all(&conf.0).unwrap();
    fs::write(
        conf.0.join("Caddyfile"),
        format!("{{\n\tadmin off\n}}\n\n:80 {{\n\troot * /srv/{name}\n\tfile_server\n}}\n"),
    )
    .unwrap();
    let unit = OnHost(format!("/etc/systemd/system/{name}.service").into());
    fs::write(
        &unit.0,
        format!(
            "[Service]\nType=notify\nUser=caddy\nGroup=caddy\n\
             ExecStart=/usr/bin/caddy run --environ --config /etc/{name}/Caddyfile\n\
             AmbientCapabilities=CAP_NET_BIND_SERVICE\n"
        ),
    )
    .unwrap();
    let wb = Wayback::new();
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv").join(&name)).unwrap();
    fs::write(
        live.join("srv").join(&name).join("old.txt"),
        "caddy's old page\n",
    )
    .unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    fs::write(
        live.join("srv").join(&name).join("old.txt"),
        "today's page\n",
    )
    .unwrap();
    let snap = snap.to_str().unwrap();

    let plan = wb.run_ok(&["up", snap, "--unit", &name, "--port", "80", "--dry-run"]);
    assert!(
        plan.contains(&format!("/srv/{name}")),
        "the root is bound\n{plan}"
    );

    let host = format!("{name}.wbt.test");
    let mut up = wb.up_background(&[
        snap, "--unit", &name, "--name", &name, "--port", "80", "--host", &host,
    ]);
    let got = HttpGet::get_retry(wb.proxy_addr(), &host, "/old.txt", Duration::from_secs(20));
    let (code, body) = got.unwrap_or_else(|e| panic!("{e}\n{}", up.describe()));
    assert_eq!((code, body.as_str()), (200, "caddy's old page\n"));
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
