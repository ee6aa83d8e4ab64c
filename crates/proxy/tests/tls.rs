//! TLS with certificate files, end to end on loopback with curl: a wildcard certificate from a test CA, SNI
//! selection among several certificates, `X-Forwarded-Proto: https`, `Secure` session cookies, the HTTP → HTTPS
//! redirect, and the configuration errors an admin sees.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::pki::{curl, have, TestCa};
use common::*;
use hyper::{Request, Response};
use tokio::sync::oneshot;
use wayback_proxy::{
    serve_https, serve_https_redirect, Backend, CertificateFiles, Gate, GateConfig,
    MemoryGateStore, ProxyConfig, RouteTable, ShareLink, TcpDial, Tls, TlsConfig, TlsError,
};

/// Backend that reports the forwarded scheme and host.
async fn proto_backend() -> TestBackend {
    spawn_backend(|req: Request<hyper::body::Incoming>| async move {
        let h = |n: &str| {
            req.headers()
                .get(n)
                .map_or("-", |v| v.to_str().unwrap())
                .to_owned()
        };
        Response::new(full(format!(
            "proto={} host={}",
            h("x-forwarded-proto"),
            h("host")
        )))
    })
    .await
}

struct TlsProxy {
    https: SocketAddr,
    http: SocketAddr,
    _stop: Vec<oneshot::Sender<()>>,
}

async fn start(routes: Arc<RouteTable>, tls: Arc<Tls>) -> TlsProxy {
    let (l1, l2) = (listener().await, listener().await);
    let (https, http) = (l1.local_addr().unwrap(), l2.local_addr().unwrap());
    let (tx1, rx1) = oneshot::channel::<()>();
    let (tx2, rx2) = oneshot::channel::<()>();
    let cfg = ProxyConfig::default();
    tokio::spawn(serve_https(
        l1,
        routes.clone(),
        tls.clone(),
        cfg.clone(),
        async move {
            let _ = rx1.await;
        },
    ));
    tokio::spawn(serve_https_redirect(
        l2,
        routes,
        tls,
        https.port(),
        cfg,
        async move {
            let _ = rx2.await;
        },
    ));
    TlsProxy {
        https,
        http,
        _stop: vec![tx1, tx2],
    }
}

fn resolve(host: &str, addr: SocketAddr) -> String {
    format!("{host}:{}:127.0.0.1", addr.port())
}

#[tokio::test]
async fn wildcard_certificate_files_and_sni_selection() {
    if !have("curl") {
        eprintln!("SKIP: curl is not installed (apt-get install curl)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("wayback test CA");
    let ca_path = ca.write(dir.path());
    let wildcard = ca.write_leaf(dir.path(), "wildcard", &["*.wb.test"]);
    let other = ca.write_leaf(dir.path(), "other", &["other.example"]);
    let tls = Tls::new(TlsConfig {
        certificates: vec![wildcard, other],
        acme: None,
    })
    .unwrap();

    let backend = proto_backend().await;
    let routes = Arc::new(RouteTable::default());
    routes.insert("app.wb.test", backend.backend("app"));
    routes.insert("other.example", backend.backend("other"));
    let p = start(routes, tls).await;

    let ca = ca_path.to_str().unwrap();
    let url = format!("https://app.wb.test:{}/page", p.https.port());
    let (status, text) = curl(&[
        "--cacert",
        ca,
        "--resolve",
        &resolve("app.wb.test", p.https),
        &url,
    ])
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.ends_with(&format!("proto=https host=app.wb.test:{}", p.https.port())),
        "{text}"
    );

    // HTTP/2 over ALPN works too.
    let (status, text) = curl(&[
        "--http2",
        "--cacert",
        ca,
        "--resolve",
        &resolve("app.wb.test", p.https),
        &url,
    ])
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.starts_with("HTTP/2 200"), "{text}");

    // The second certificate is picked by SNI (curl verifies the name against the CA-signed certificate).
    let url = format!("https://other.example:{}/", p.https.port());
    let (status, text) = curl(&[
        "--cacert",
        ca,
        "--resolve",
        &resolve("other.example", p.https),
        &url,
    ])
    .await;
    assert_eq!(status, 200, "{text}");

    // A name no certificate covers gets the default (first) one, which curl rejects; the proxy stays up.
    let url = format!("https://nope.example:{}/", p.https.port());
    let (status, text) = curl(&[
        "--cacert",
        ca,
        "--resolve",
        &resolve("nope.example", p.https),
        &url,
    ])
    .await;
    assert_eq!(status, 0, "{text}");

    // Plain HTTP redirects to HTTPS, same host and path; unknown hosts are not redirected.
    let url = format!("http://app.wb.test:{}/a/b?c=d", p.http.port());
    let (status, text) = curl(&["--resolve", &resolve("app.wb.test", p.http), &url]).await;
    assert_eq!(status, 308, "{text}");
    let location = format!("location: https://app.wb.test:{}/a/b?c=d", p.https.port());
    assert!(text.to_ascii_lowercase().contains(&location), "{text}");
    let url = format!("http://unknown.wb.test:{}/", p.http.port());
    assert_eq!(
        curl(&["--resolve", &resolve("unknown.wb.test", p.http), &url])
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn share_cookie_is_secure_over_tls() {
    if !have("curl") {
        eprintln!("SKIP: curl is not installed (apt-get install curl)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("wayback test CA");
    let ca_path = ca.write(dir.path());
    let files = ca.write_leaf(dir.path(), "wildcard", &["*.wb.test"]);
    let tls = Tls::new(TlsConfig {
        certificates: vec![files],
        acme: None,
    })
    .unwrap();
    let backend = proto_backend().await;
    let (link, token) =
        ShareLink::generate(Duration::from_secs(60), Duration::from_secs(60)).unwrap();
    let gate = Gate::new(
        GateConfig {
            share: Some(link),
            ..Default::default()
        },
        Arc::new(MemoryGateStore::default()),
    )
    .unwrap();
    let routes = Arc::new(RouteTable::default());
    routes.insert(
        "app.wb.test",
        Backend::with_gate("app", Arc::new(TcpDial(backend.addr)), gate),
    );
    let p = start(routes, tls).await;

    let url = format!(
        "https://app.wb.test:{}/?wayback-token={token}",
        p.https.port()
    );
    let (status, text) = curl(&[
        "--cacert",
        ca_path.to_str().unwrap(),
        "--resolve",
        &resolve("app.wb.test", p.https),
        &url,
    ])
    .await;
    assert_eq!(status, 303, "{text}");
    let set_cookie = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    assert!(
        set_cookie.contains("; Secure") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    assert_eq!(backend.connections(), 0);
}

#[test]
fn configuration_errors_name_the_file_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("wayback test CA");
    let good = ca.write_leaf(dir.path(), "good", &["*.wb.test"]);
    let other = ca.write_leaf(dir.path(), "other", &["x.wb.test"]);

    let missing = CertificateFiles {
        cert: dir.path().join("missing.pem"),
        key: good.key.clone(),
    };
    let err = Tls::new(TlsConfig {
        certificates: vec![missing],
        acme: None,
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::ReadCert { .. }));
    assert!(err.to_string().contains("missing.pem"), "{err}");

    let not_pem = CertificateFiles {
        cert: good.key.clone(),
        key: good.key.clone(),
    };
    let err = Tls::new(TlsConfig {
        certificates: vec![not_pem],
        acme: None,
    })
    .unwrap_err();
    assert!(err.to_string().contains("is it PEM"), "{err}");

    let no_key = CertificateFiles {
        cert: good.cert.clone(),
        key: good.cert.clone(),
    };
    let err = Tls::new(TlsConfig {
        certificates: vec![no_key],
        acme: None,
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::NoKey(_)), "{err}");

    let mismatch = CertificateFiles {
        cert: good.cert.clone(),
        key: other.key.clone(),
    };
    let err = Tls::new(TlsConfig {
        certificates: vec![mismatch],
        acme: None,
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains("other.key") && err.to_string().contains("good.crt"),
        "{err}"
    );

    let err = Tls::new(TlsConfig::default()).unwrap_err();
    assert!(matches!(err, TlsError::NoSource), "{err}");
}
