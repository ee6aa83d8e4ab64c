//! ACME end to end through `wayback up`: the built-in proxy, configured with `[proxy] https_listen` and
//! `[proxy.acme]` pointing at a Pebble test CA on loopback, gets a certificate for the instance's hostname at
//! the first HTTPS handshake (Pebble really validates http-01 against the proxy's plain listener; hostnames
//! resolve to 127.0.0.1 through pebble-challtestsrv), and curl trusting only Pebble's issuing root gets the
//! instance's page over HTTPS.

use std::fs;
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wayback_testsupport::*;

/// Processes we started, killed (by PID, ours only) on drop.
struct Procs(Vec<Child>);
impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn pebble_issues_the_instance_certificate() {
    if !require_root("pebble_issues_the_instance_certificate") {
        return;
    }
    if !have("pebble") || !have("pebble-challtestsrv") {
        assert!(
            std::env::var("CI").is_err(),
            "pebble must be installed in CI (scripts/packages.sh)"
        );
        eprintln!("SKIP: pebble_issues_the_instance_certificate: pebble not installed (apt-get install pebble)");
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("var/www/html")).unwrap();
    fs::write(live.join("var/www/html/index.html"), "over acme tls\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");

    // Pebble's own HTTPS listener needs a certificate: a throwaway CA made with rcgen.
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    make_certificate(
        dir.path(),
        "pebble",
        "localhost",
        "DNS:localhost,IP:127.0.0.1",
    );
    let https_port = free_port();
    let (acme_port, mgmt_port, dns_port) = (free_port(), free_port(), udp_port());
    let wb = Wayback::with_proxy_extra(&format!(
        "https_listen = \"127.0.0.1:{https_port}\"\n[proxy.acme]\ndirectory_url = \"https://127.0.0.1:{acme_port}/dir\"\ncontact = [\"admin@wbt.test\"]\nca_root = \"{}\"\ncache_dir = \"{}\"",
        p("ca.pem"),
        p("acme-cache")
    ));
    let config = serde_json::json!({ "pebble": {
        "listenAddress": format!("127.0.0.1:{acme_port}"),
        "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
        "certificate": p("pebble.pem"), "privateKey": p("pebble.key"),
        "httpPort": wb.proxy_addr().port(), "tlsPort": https_port,
        "ocspResponderURL": "", "externalAccountBindingRequired": false,
    }});
    fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
    let log = |f: &str| fs::File::create(dir.path().join(f)).unwrap();
    let dns = Command::new("pebble-challtestsrv")
        .args([
            "-dns01",
            &format!("127.0.0.1:{dns_port}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
        ])
        .args([
            "-management",
            &format!("127.0.0.1:{}", free_port()),
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
        ])
        .stdin(Stdio::null())
        .stdout(log("dns.log"))
        .stderr(log("dns.err"))
        .spawn()
        .unwrap();
    let pebble = Command::new("pebble")
        .args([
            "-config",
            &p("pebble.json"),
            "-dnsserver",
            &format!("127.0.0.1:{dns_port}"),
        ])
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdin(Stdio::null())
        .stdout(log("pebble.log"))
        .stderr(log("pebble.err"))
        .spawn()
        .unwrap();
    let _procs = Procs(vec![dns, pebble]);
    wait_for(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", acme_port)).ok()
    })
    .expect("pebble listens");

    let name = unique("wbtacme");
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
    // Pebble's issuing root, from its management API.
    let root = Command::new("curl")
        .args([
            "-s",
            "--cacert",
            &p("ca.pem"),
            &format!("https://127.0.0.1:{mgmt_port}/roots/0"),
        ])
        .output()
        .unwrap();
    let root = String::from_utf8_lossy(&root.stdout).into_owned();
    assert!(
        root.contains("BEGIN CERTIFICATE"),
        "no issuing root from pebble: {root}"
    );
    fs::write(dir.path().join("issuer.pem"), &root).unwrap();
    let out = Command::new("curl")
        .args(["-s", "--max-time", "60", "--cacert", &p("issuer.pem")])
        .args(["--resolve", &format!("{host}:{https_port}:127.0.0.1")])
        .arg(format!("https://{host}:{https_port}/"))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        body,
        "over acme tls\n",
        "HTTPS with the ACME certificate failed: {}\n--- pebble ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(dir.path().join("pebble.log")).unwrap_or_default()
    );
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
