//! `up --proxy nginx` end to end: the host's nginx (here one started by the test with its own config and
//! include directory, holding a foreign site) serves the instance by Host header through a vhost file that
//! wayback writes; a hostname another vhost already has is bad input found in planning (exit 2, naming
//! the file), before anything is created (nginx's own rejection is tested in drivers.rs); after `down` the
//! include directory is exactly as before and nginx still serves its own site.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wayback_testsupport::*;

struct Nginx {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    /// SIGTERM, so the master stops its workers (a SIGKILLed master leaves them running); SIGKILL only if it
    /// does not exit.
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if wait_for(Duration::from_secs(10), || {
            self.child.try_wait().ok().flatten()
        })
        .is_none()
        {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn start_nginx() -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let d = dir.path().display().to_string();
    let port = free_port();
    fs::create_dir_all(dir.path().join("sites")).unwrap();
    fs::create_dir_all(dir.path().join("www")).unwrap();
    fs::write(dir.path().join("www/index.html"), "foreign site\n").unwrap();
    fs::write(
        dir.path().join("sites/foreign.conf"),
        format!("server {{\n    listen 127.0.0.1:{port} default_server;\n    server_name foreign.test;\n    root {d}/www;\n}}\n"),
    )
    .unwrap();
    fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log notice;\nevents {{ worker_connections 64; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {d}/t1;\n    proxy_temp_path {d}/t2;\n    fastcgi_temp_path {d}/t3;\n\
             uwsgi_temp_path {d}/t4;\n    scgi_temp_path {d}/t5;\n    include {d}/sites/*.conf;\n}}\n"
        ),
    )
    .unwrap();
    let child = Command::new("nginx")
        .args(["-p", &d, "-c", &format!("{d}/nginx.conf")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let n = Nginx { dir, child, port };
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    HttpGet::get_retry(addr, "foreign.test", "/", Duration::from_secs(10))
        .expect("the test's nginx serves");
    n
}

fn listing(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn up_with_proxy_nginx_publishes_through_the_hosts_nginx() {
    if !require_root("up_with_proxy_nginx_publishes_through_the_hosts_nginx") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("var/www/html")).unwrap();
    fs::write(
        live.join("var/www/html/index.html"),
        "through the host's nginx\n",
    )
    .unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let nginx = start_nginx();
    let d = nginx.dir.path().display().to_string();
    let wb = Wayback::with_proxy_extra(&format!(
        "driver = \"nginx\"\n[proxy.nginx]\ninclude_dir = \"{d}/sites\"\nprefix = \"{d}\"\nconf = \"{d}/nginx.conf\"\nhttp_listen = [\"127.0.0.1:{}\"]",
        nginx.port
    ));
    let sites = nginx.dir.path().join("sites");
    let before = listing(&sites);
    let nginx_addr = format!("127.0.0.1:{}", nginx.port).parse().unwrap();

    // A hostname the foreign site already has: found in planning (bad input, nothing created), before
    // nginx -t would warn of the conflict; nothing changes.
    let name = unique("wbthp");
    let out = wb.run(&[
        "up",
        snap.to_str().unwrap(),
        "--name",
        &name,
        "--profile",
        "nginx-static",
        "--host",
        "foreign.test",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        show(&out).contains("hostname foreign.test is already published by nginx vhost")
            && show(&out).contains("sites/foreign.conf"),
        "the message names the vhost: {}",
        show(&out)
    );
    assert_eq!(listing(&sites), before, "the include directory changed");
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();

    let name = unique("wbthp");
    let host = format!("{name}.wbt.test");
    let up = wb.up_background(&[
        snap.to_str().unwrap(),
        "--name",
        &name,
        "--profile",
        "nginx-static",
        "--host",
        &host,
    ]);
    let (code, body) = HttpGet::get_retry(nginx_addr, &host, "/", Duration::from_secs(10)).unwrap();
    assert_eq!((code, body.as_str()), (200, "through the host's nginx\n"));
    assert_eq!(
        listing(&sites).len(),
        before.len() + 1,
        "one vhost file added"
    );
    drop(up);
    assert_eq!(
        listing(&sites),
        before,
        "after down the include directory is exactly as before"
    );
    let (code, body) =
        HttpGet::get_retry(nginx_addr, "foreign.test", "/", Duration::from_secs(10)).unwrap();
    assert_eq!((code, body.as_str()), (200, "foreign site\n"));
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
