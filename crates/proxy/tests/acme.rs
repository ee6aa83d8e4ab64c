//! A real ACME flow against Pebble (Debian package `pebble`) on loopback: Pebble resolves the instance's
//! hostname through `pebble-challtestsrv`'s mock DNS (every name → 127.0.0.1) and validates http-01 against
//! the proxy's own plain-HTTP listener (Pebble's `httpPort` is set to it; no `PEBBLE_VA_ALWAYS_VALID`).
//! Then curl, trusting only Pebble's issuing root, gets the instance's page over HTTPS; a restarted proxy
//! serves the cached certificate without the CA. Skipped (with the reason) when Pebble is not installed.

mod common;

use std::net::{SocketAddr, TcpListener as StdListener, UdpSocket};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pki::{curl, have, TestCa};
use common::*;
use hyper::{Request, Response};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use wayback_proxy::{
    serve_https, serve_https_redirect, AcmeConfig, ProxyConfig, RouteTable, Tls, TlsConfig,
};

const HOST: &str = "app.wb.test";

fn free_tcp_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn wait_listening(port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not start:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pebble plus its mock DNS, validating http-01 on `http_port`. Killed on drop.
struct Pebble {
    _dns: Child,
    _pebble: Child,
    directory: String,
    management: u16,
    log: std::path::PathBuf,
}

async fn start_pebble(dir: &Path, http_port: u16, tls_port: u16) -> (Pebble, std::path::PathBuf) {
    let ca = TestCa::new("pebble listener CA");
    let ca_path = ca.write(dir);
    let pebble_tls = ca.write_leaf(dir, "pebble", &["localhost", "127.0.0.1"]);
    let (acme_port, mgmt_port, dns_port) = (free_tcp_port(), free_tcp_port(), free_udp_port());
    let config = serde_json::json!({ "pebble": {
        "listenAddress": format!("127.0.0.1:{acme_port}"),
        "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
        "certificate": pebble_tls.cert, "privateKey": pebble_tls.key,
        "httpPort": http_port, "tlsPort": tls_port,
        "ocspResponderURL": "", "externalAccountBindingRequired": false,
    }});
    let config_path = dir.join("pebble.json");
    std::fs::write(&config_path, config.to_string()).unwrap();

    let dns_log = dir.join("challtestsrv.log");
    let dns = spawn_logged(
        Command::new("pebble-challtestsrv").args([
            "-dns01",
            &format!("127.0.0.1:{dns_port}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{}", free_tcp_port()),
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
        ]),
        &dns_log,
    );
    let log = dir.join("pebble.log");
    let pebble = spawn_logged(
        Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0"),
        &log,
    );
    wait_listening(acme_port, "pebble", &log).await;
    let p = Pebble {
        _dns: dns,
        _pebble: pebble,
        directory: format!("https://127.0.0.1:{acme_port}/dir"),
        management: mgmt_port,
        log,
    };
    (p, ca_path)
}

/// Pebble's issuing root, from its management API (served over its own TLS, trusted via `listener_ca`).
async fn issuing_root(p: &Pebble, listener_ca: &Path, out: &Path) {
    let url = format!("https://127.0.0.1:{}/roots/0", p.management);
    let (status, text) = curl(&["--cacert", listener_ca.to_str().unwrap(), &url]).await;
    assert_eq!(status, 200, "{text}");
    let pem = &text[text.find("-----BEGIN").expect("a PEM root")..];
    std::fs::write(out, pem).unwrap();
}

async fn start_proxy(
    routes: Arc<RouteTable>,
    tls: Arc<Tls>,
    https: tokio::net::TcpListener,
    http: tokio::net::TcpListener,
) -> Vec<oneshot::Sender<()>> {
    let port = https.local_addr().unwrap().port();
    let (tx1, rx1) = oneshot::channel::<()>();
    let (tx2, rx2) = oneshot::channel::<()>();
    let cfg = ProxyConfig::default();
    tokio::spawn(serve_https(
        https,
        routes.clone(),
        tls.clone(),
        cfg.clone(),
        async move {
            let _ = rx1.await;
        },
    ));
    tokio::spawn(serve_https_redirect(
        http,
        routes,
        tls,
        port,
        cfg,
        async move {
            let _ = rx2.await;
        },
    ));
    vec![tx1, tx2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_issues_a_certificate_over_http01() {
    let missing: Vec<&str> = ["pebble", "pebble-challtestsrv", "curl"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !missing.is_empty() {
        eprintln!("SKIP: {missing:?} not installed (apt-get install pebble curl)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let https = listener().await;
    let http = listener().await;
    let (https_addr, http_addr): (SocketAddr, SocketAddr) =
        (https.local_addr().unwrap(), http.local_addr().unwrap());
    let (pebble, listener_ca) = start_pebble(dir.path(), http_addr.port(), https_addr.port()).await;
    let root = dir.path().join("pebble-root.pem");
    issuing_root(&pebble, &listener_ca, &root).await;

    let cache = dir.path().join("acme-cache");
    let acme = AcmeConfig {
        directory_url: pebble.directory.clone(),
        contact: vec!["admin@wb.test".into()],
        cache_dir: cache.clone(),
        ca_root: Some(listener_ca.clone()),
    };
    let tls = Tls::new(TlsConfig {
        certificates: vec![],
        acme: Some(acme.clone()),
    })
    .unwrap();
    let backend = spawn_backend(|req: Request<hyper::body::Incoming>| async move {
        let proto = req
            .headers()
            .get("x-forwarded-proto")
            .map(|v| v.to_str().unwrap().to_owned());
        Response::new(full(format!("instance page, proto={proto:?}")))
    })
    .await;
    let routes = Arc::new(RouteTable::default());
    routes.insert(HOST, backend.backend("app"));
    let stop = start_proxy(routes.clone(), tls, https, http).await;

    let resolve = format!("{HOST}:{}:127.0.0.1", https_addr.port());
    let url = format!("https://{HOST}:{}/", https_addr.port());
    let (status, text) = curl(&[
        "--cacert",
        root.to_str().unwrap(),
        "--resolve",
        &resolve,
        &url,
    ])
    .await;
    assert_eq!(
        status,
        200,
        "{text}\n--- pebble log:\n{}",
        std::fs::read_to_string(&pebble.log).unwrap_or_default()
    );
    assert!(
        text.ends_with("instance page, proto=Some(\"https\")"),
        "{text}"
    );
    let log = std::fs::read_to_string(&pebble.log).unwrap();
    assert!(
        log.contains("validate w/ HTTP: http://app.wb.test:"),
        "pebble validated http-01:\n{log}"
    );

    // Unknown hosts get no certificate (no order is even placed).
    let ghost = format!("ghost.wb.test:{}:127.0.0.1", https_addr.port());
    let ghost_url = format!("https://ghost.wb.test:{}/", https_addr.port());
    let (status, _) = curl(&[
        "--cacert",
        root.to_str().unwrap(),
        "--resolve",
        &ghost,
        &ghost_url,
    ])
    .await;
    assert_eq!(status, 0);
    let mut cached: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    cached.sort();
    assert_eq!(cached.len(), 2, "{cached:?}");
    assert!(
        cached[0].starts_with("account-") && cached[1] == format!("{HOST}.pem"),
        "{cached:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(cache.join(format!("{HOST}.pem")))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A restarted proxy serves the cached certificate, with the CA gone.
    drop(stop);
    drop(pebble);
    let tls = Tls::new(TlsConfig {
        certificates: vec![],
        acme: Some(acme),
    })
    .unwrap();
    let (https, http) = (listener().await, listener().await);
    let port = https.local_addr().unwrap().port();
    let _stop = start_proxy(routes, tls, https, http).await;
    let resolve = format!("{HOST}:{port}:127.0.0.1");
    let url = format!("https://{HOST}:{port}/again");
    let (status, text) = curl(&[
        "--cacert",
        root.to_str().unwrap(),
        "--resolve",
        &resolve,
        &url,
    ])
    .await;
    assert_eq!(status, 200, "{text}");
}
