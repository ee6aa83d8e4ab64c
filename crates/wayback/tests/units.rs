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
