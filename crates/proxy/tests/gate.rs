//! The access gate end to end on loopback: one-time share link and session cookie, basic auth, allowed
//! networks. Every refusal is checked not to have reached the backend (no connection, no request counted).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http_body_util::BodyExt;
use hyper::header::HeaderMap;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;
use wayback_proxy::{
    Backend, BasicAuth, DirGateStore, Gate, GateConfig, GateError, GateStore, MemoryGateStore,
    RouteTable, ShareLink, TcpDial, BCRYPT_MAX_PASSWORD,
};

const HOST: &str = "shared.test";

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

/// One request to `addr` from the local address `from`, with extra headers.
async fn send(addr: SocketAddr, from: IpAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from, 0)).unwrap();
    let stream = within(sock.connect(addr)).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::get(path).header("host", HOST);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = within(send.send_request(req.body(full("")).unwrap()))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = within(resp.into_body().collect()).await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn get_as(proxy: &TestProxy, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(proxy.addr, [127, 0, 0, 1].into(), path, headers).await
}

/// A backend echoing the request target and the headers the gate must strip.
async fn echo() -> TestBackend {
    spawn_backend(|req: Request<hyper::body::Incoming>| async move {
        let h = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
        Response::new(full(format!(
            "target={} cookie={:?} authorization={:?}",
            req.uri(),
            h("cookie"),
            h("authorization")
        )))
    })
    .await
}

use hyper::Response;

async fn gated(
    backend: &TestBackend,
    cfg: GateConfig,
    store: Arc<dyn GateStore>,
) -> (TestProxy, Arc<Backend>) {
    let gate = Gate::new(cfg, store).unwrap();
    let b = Backend::with_gate("inst", Arc::new(TcpDial(backend.addr)), gate);
    let routes = Arc::new(RouteTable::default());
    routes.insert(HOST, b.clone());
    (TestProxy::start(routes).await, b)
}

fn share_cfg(link_ttl: u64) -> (GateConfig, String) {
    let (link, token) =
        ShareLink::generate(Duration::from_secs(link_ttl), Duration::from_secs(3600)).unwrap();
    (
        GateConfig {
            share: Some(link),
            ..GateConfig::default()
        },
        token,
    )
}

/// `name=value` of a Set-Cookie header.
fn cookie_pair(a: &Answer) -> String {
    let sc = a.headers["set-cookie"].to_str().unwrap();
    sc.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn share_link_works_once_then_cookie_grants_access() {
    let backend = echo().await;
    let (cfg, token) = share_cfg(900);
    let (proxy, b) = gated(&backend, cfg, Arc::new(MemoryGateStore::default())).await;

    let denied = get_as(&proxy, "/", &[]).await;
    assert_eq!(denied.status, 403, "no session yet");

    let link = format!("/page?x=1&wayback-token={token}&y=2");
    let first = get_as(&proxy, &link, &[]).await;
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(first.headers["location"], "/page?x=1&y=2");
    let set_cookie = first.headers["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure") && !set_cookie.contains("Domain"),
        "{set_cookie}"
    );
    assert_eq!(
        (backend.connections(), b.requests()),
        (0, 0),
        "the exchange itself is not forwarded"
    );

    let cookie = format!("app=1; {}", cookie_pair(&first));
    let page = get_as(&proxy, "/page?x=1&y=2", &[("cookie", &cookie)]).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.body, "target=/page?x=1&y=2 cookie=Some(\"app=1\") authorization=None",
        "gate cookie stripped"
    );
    assert_eq!(b.requests(), 1);

    // The link again, from someone without the cookie: used up.
    let second = get_as(&proxy, &link, &[]).await;
    assert_eq!(second.status, 403);
    assert!(
        second.body.contains("expired or was already used"),
        "{}",
        second.body
    );
    // A forged or tampered cookie does not pass either.
    let forged = cookie_pair(&first).replace('.', ".A");
    assert_eq!(
        get_as(&proxy, "/", &[("cookie", &forged)]).await.status,
        403
    );
    assert_eq!(b.requests(), 1, "refusals never reach the backend");
    assert_eq!(backend.connections(), 1);
}

#[tokio::test]
async fn expired_link_is_refused() {
    let backend = echo().await;
    let (cfg, token) = share_cfg(0);
    let store = Arc::new(MemoryGateStore::default());
    let (proxy, b) = gated(&backend, cfg.clone(), store.clone()).await;
    let a = get_as(&proxy, &format!("/?wayback-token={token}"), &[]).await;
    assert_eq!(a.status, 403);
    assert!(!a.headers.contains_key("set-cookie"));
    assert_eq!((backend.connections(), b.requests()), (0, 0));
    // The expired link was not even consumed.
    let hash = &cfg.share.unwrap().token_sha256;
    assert!(store.consume_token("inst", hash));
}

#[tokio::test]
async fn used_link_stays_used_across_proxy_restarts() {
    let backend = echo().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("inst")).unwrap();
    let (cfg, token) = share_cfg(900);
    let link = format!("/?wayback-token={token}");
    {
        let (proxy, _) = gated(
            &backend,
            cfg.clone(),
            Arc::new(DirGateStore::new(dir.path())),
        )
        .await;
        assert_eq!(get_as(&proxy, &link, &[]).await.status, 303);
    }
    // A new proxy (as after a restart) reading the same config and store.
    let (proxy, b) = gated(&backend, cfg, Arc::new(DirGateStore::new(dir.path()))).await;
    assert_eq!(get_as(&proxy, &link, &[]).await.status, 403);
    assert_eq!((backend.connections(), b.requests()), (0, 0));
}

#[tokio::test]
async fn basic_auth() {
    let backend = echo().await;
    let cfg = GateConfig {
        basic_auth: Some(BasicAuth::with_cost("alice", "s3cret", 4).unwrap()),
        ..GateConfig::default()
    };
    let (proxy, b) = gated(&backend, cfg, Arc::new(MemoryGateStore::default())).await;

    let none = get_as(&proxy, "/", &[]).await;
    assert_eq!(none.status, 401);
    assert!(none.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic realm="));
    // alice:wrong, bob:s3cret, garbage
    for bad in [
        "Basic YWxpY2U6d3Jvbmc=",
        "Basic Ym9iOnMzY3JldA==",
        "Basic %%%",
        "Bearer x",
    ] {
        assert_eq!(
            get_as(&proxy, "/", &[("authorization", bad)]).await.status,
            401,
            "{bad}"
        );
    }
    assert_eq!((backend.connections(), b.requests()), (0, 0));

    for _ in 0..2 {
        // The second time is served from the accepted-credentials cache.
        let ok = get_as(&proxy, "/x", &[("authorization", "Basic YWxpY2U6czNjcmV0")]).await;
        assert_eq!(ok.status, 200);
        assert_eq!(
            ok.body, "target=/x cookie=None authorization=None",
            "credentials not forwarded"
        );
    }
    assert_eq!(
        get_as(&proxy, "/", &[("authorization", "Basic YWxpY2U6d3Jvbmc=")])
            .await
            .status,
        401
    );
    assert_eq!(b.requests(), 2);
}

#[tokio::test]
async fn basic_auth_passwords_are_at_most_72_bytes() {
    assert_eq!(BCRYPT_MAX_PASSWORD, 72);
    let too_long = "p".repeat(BCRYPT_MAX_PASSWORD + 1);
    for err in [
        BasicAuth::new("alice", &too_long).unwrap_err(),
        BasicAuth::with_cost("alice", &too_long, 4).unwrap_err(),
    ] {
        assert!(
            matches!(err, GateError::PasswordTooLong { len: 73, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("73 bytes") && msg.contains("at most 72 bytes") && msg.contains("alice"),
            "{msg}"
        );
    }
    // Multi-byte characters count in bytes: 25 × "é" (2 bytes) is 50 bytes, 37 is 74.
    assert!(BasicAuth::with_cost("alice", &"é".repeat(25), 4).is_ok());
    assert!(BasicAuth::with_cost("alice", &"é".repeat(37), 4).is_err());

    // Exactly 72 bytes work, and a longer password that starts with them does not (bcrypt alone would
    // compare only the first 72 bytes).
    let max = "p".repeat(BCRYPT_MAX_PASSWORD);
    let backend = echo().await;
    let cfg = GateConfig {
        basic_auth: Some(BasicAuth::with_cost("alice", &max, 4).unwrap()),
        ..GateConfig::default()
    };
    let (proxy, _b) = gated(&backend, cfg, Arc::new(MemoryGateStore::default())).await;
    let auth = |pw: &str| {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("alice:{pw}"));
        format!("Basic {b64}")
    };
    let longer = auth(&format!("{max}extra"));
    assert_eq!(
        get_as(&proxy, "/", &[("authorization", &longer)])
            .await
            .status,
        401
    );
    assert_eq!(
        get_as(&proxy, "/", &[("authorization", &auth(&max))])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn allow_list_refuses_other_clients() {
    let backend = echo().await;
    let cfg = GateConfig {
        allow: vec!["127.0.0.1/32".parse().unwrap()],
        ..GateConfig::default()
    };
    let (proxy, b) = gated(&backend, cfg, Arc::new(MemoryGateStore::default())).await;

    let outside = send(proxy.addr, [127, 0, 0, 2].into(), "/", &[]).await;
    assert_eq!(outside.status, 403);
    assert_eq!((backend.connections(), b.requests()), (0, 0));

    let inside = send(proxy.addr, [127, 0, 0, 1].into(), "/", &[]).await;
    assert_eq!(inside.status, 200);
    assert_eq!(b.requests(), 1);
}

#[tokio::test]
async fn all_conditions_must_hold() {
    let backend = echo().await;
    let (mut cfg, token) = share_cfg(900);
    cfg.basic_auth = Some(BasicAuth::with_cost("alice", "s3cret", 4).unwrap());
    let (proxy, b) = gated(&backend, cfg, Arc::new(MemoryGateStore::default())).await;
    let auth = ("authorization", "Basic YWxpY2U6czNjcmV0");
    // The link without credentials is refused before it is consumed.
    assert_eq!(
        get_as(&proxy, &format!("/?wayback-token={token}"), &[])
            .await
            .status,
        401
    );
    let first = get_as(&proxy, &format!("/?wayback-token={token}"), &[auth]).await;
    assert_eq!(first.status, 303);
    let cookie = cookie_pair(&first);
    assert_eq!(
        get_as(&proxy, "/", &[auth]).await.status,
        403,
        "credentials alone"
    );
    assert_eq!(
        get_as(&proxy, "/", &[("cookie", &cookie)]).await.status,
        401,
        "cookie alone"
    );
    assert_eq!(
        get_as(&proxy, "/", &[auth, ("cookie", &cookie)])
            .await
            .status,
        200
    );
    assert_eq!(b.requests(), 1);
}
