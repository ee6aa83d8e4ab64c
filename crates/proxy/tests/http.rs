//! End-to-end tests of the HTTP proxy on loopback: routing, errors, forwarding headers, streaming, pooling,
//! h2c, and graceful shutdown.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use tokio::sync::{mpsc, oneshot, Notify};
use wayback_proxy::{Backend, RouteTable, TcpDial};

async fn two_backend_proxy() -> (TestProxy, TestBackend, TestBackend) {
    let alpha = fixed_backend("from-alpha").await;
    let beta = fixed_backend("from-beta").await;
    let routes = Arc::new(RouteTable::default());
    routes.insert("alpha.test", alpha.backend("alpha-instance"));
    routes.insert("beta.test", beta.backend("beta-instance"));
    (TestProxy::start(routes).await, alpha, beta)
}

#[tokio::test]
async fn routes_by_host() {
    let (proxy, _a, _b) = two_backend_proxy().await;
    assert_eq!(
        get(&proxy, "alpha.test", "/").await,
        (200, "from-alpha".into())
    );
    assert_eq!(
        get(&proxy, "beta.test", "/x").await,
        (200, "from-beta".into())
    );
    assert_eq!(
        get(&proxy, "alpha.test", "/y").await,
        (200, "from-alpha".into())
    );

    let alpha = proxy.routes.remove("alpha.test").unwrap();
    assert_eq!(alpha.requests(), 2);
    assert!(alpha.last_activity() > 0);
    assert_eq!(proxy.routes.remove("beta.test").unwrap().requests(), 1);
}

#[tokio::test]
async fn host_port_case_and_trailing_dot_are_normalized() {
    let (proxy, _a, _b) = two_backend_proxy().await;
    for host in [
        "ALPHA.test:8080",
        "Alpha.Test",
        "alpha.test.",
        "alpha.test.:80",
    ] {
        assert_eq!(
            get(&proxy, host, "/").await,
            (200, "from-alpha".into()),
            "{host}"
        );
    }
}

#[tokio::test]
async fn unknown_host_is_a_generic_404() {
    let (proxy, a, b) = two_backend_proxy().await;
    let (status, body) = get(&proxy, "gamma.test", "/").await;
    assert_eq!(status, 404);
    assert_eq!(body, "no such instance\n");
    for secret in [
        "alpha",
        "beta",
        &a.addr.port().to_string(),
        &b.addr.port().to_string(),
    ] {
        assert!(!body.contains(secret), "404 body leaks {secret:?}");
    }
    assert_eq!(a.connections() + b.connections(), 0);
}

#[tokio::test]
async fn missing_or_bad_host_is_400() {
    let (proxy, _a, _b) = two_backend_proxy().await;
    let resp = raw_exchange(proxy.addr, b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(
        resp.starts_with("HTTP/1.0 400") || resp.starts_with("HTTP/1.1 400"),
        "{resp}"
    );
    let resp = raw_exchange(proxy.addr, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    let resp = raw_exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: a b:x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
}

#[tokio::test]
async fn dead_backend_is_a_generic_502() {
    let dead = dead_addr().await;
    let routes = Arc::new(RouteTable::default());
    routes.insert(
        "dead.test",
        Backend::new("secret-instance", Arc::new(TcpDial(dead))),
    );
    let proxy = TestProxy::start(routes).await;
    let (status, body) = get(&proxy, "dead.test", "/").await;
    assert_eq!(status, 502);
    assert_eq!(body, "bad gateway\n");
    assert!(!body.contains("secret") && !body.contains(&dead.port().to_string()));
    // The proxy stays healthy for the next request.
    assert_eq!(get(&proxy, "dead.test", "/").await.0, 502);
}

/// A backend that answers with its view of the request: request line, then headers, one per line.
async fn echo_head_backend() -> TestBackend {
    spawn_backend(|req: Request<hyper::body::Incoming>| async move {
        let mut out = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
        for (k, v) in req.headers() {
            out.push_str(&format!("{}: {}\n", k, v.to_str().unwrap()));
        }
        Response::new(full(out))
    })
    .await
}

#[tokio::test]
async fn forwards_request_with_x_forwarded_headers() {
    let backend = echo_head_backend().await;
    let routes = Arc::new(RouteTable::default());
    routes.insert("app.test", backend.backend("app"));
    let proxy = TestProxy::start(routes).await;

    let req = b"POST /path/to?q=1&r=two HTTP/1.1\r\n\
        Host: App.Test:8080\r\n\
        X-Forwarded-For: 198.51.100.9\r\n\
        X-Forwarded-Proto: gopher\r\n\
        X-Forwarded-Host: evil.example\r\n\
        Forwarded: for=198.51.100.9;proto=https\r\n\
        X-Real-IP: 198.51.100.9\r\n\
        Connection: close, X-Secret-Hop\r\n\
        X-Secret-Hop: 1\r\n\
        Keep-Alive: timeout=5\r\n\
        Proxy-Connection: keep-alive\r\n\
        X-End-To-End: kept\r\n\
        Content-Length: 5\r\n\
        \r\nhello";
    let resp = raw_exchange(proxy.addr, req).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let body = resp.split("\r\n\r\n").nth(1).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "POST /path/to?q=1&r=two HTTP/1.1");
    let has = |l: &str| lines.contains(&l);
    assert!(has("host: App.Test:8080"), "{body}");
    // The client's own X-Forwarded-For is replaced by its real address (it is not a trusted proxy).
    assert!(has("x-forwarded-for: 127.0.0.1"), "{body}");
    assert!(!body.contains("198.51.100.9"), "{body}");
    assert!(has("x-forwarded-host: App.Test:8080"), "{body}");
    assert!(has("x-forwarded-proto: http"), "{body}");
    assert!(has("x-end-to-end: kept"), "{body}");
    assert!(has("content-length: 5"), "{body}");
    for hop in ["x-secret-hop", "keep-alive", "proxy-connection"] {
        assert!(!body.contains(hop), "{hop} forwarded: {body}");
    }
    for spoof in ["forwarded:", "x-real-ip", "gopher", "evil.example"] {
        assert!(!body.contains(spoof), "{spoof} forwarded: {body}");
    }
    // Only a keep-alive pool connection header (or none) may reach the backend, never the client's.
    assert!(!body.contains("close"), "{body}");
}

#[tokio::test]
async fn trusted_proxy_extends_forwarding_headers() {
    let backend = echo_head_backend().await;
    let routes = Arc::new(RouteTable::default());
    routes.insert("app.test", backend.backend("app"));
    let cfg = wayback_proxy::ProxyConfig {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    };
    let proxy = TestProxy::with_config(routes, cfg).await;
    let req = b"GET / HTTP/1.1\r\n\
        Host: app.test\r\n\
        X-Forwarded-For: 198.51.100.9\r\n\
        X-Forwarded-Proto: https\r\n\
        X-Forwarded-Host: public.example\r\n\
        Forwarded: for=198.51.100.9\r\n\
        X-Real-IP: 198.51.100.9\r\n\
        Connection: close\r\n\r\n";
    let resp = raw_exchange(proxy.addr, req).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let body = resp.split("\r\n\r\n").nth(1).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    let has = |l: &str| lines.contains(&l);
    assert!(has("x-forwarded-for: 198.51.100.9, 127.0.0.1"), "{body}");
    assert!(has("x-forwarded-proto: https"), "{body}");
    assert!(has("x-forwarded-host: public.example"), "{body}");
    assert!(
        !body.contains("forwarded: for") && !body.contains("x-real-ip"),
        "{body}"
    );
}

#[tokio::test]
async fn duplicate_or_conflicting_host_is_400() {
    let (proxy, a, b) = two_backend_proxy().await;
    for req in [
        &b"GET / HTTP/1.1\r\nHost: alpha.test\r\nHost: beta.test\r\nConnection: close\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: alpha.test\r\nHost: alpha.test\r\nConnection: close\r\n\r\n",
        b"GET http://alpha.test/ HTTP/1.1\r\nHost: beta.test\r\nConnection: close\r\n\r\n",
        b"GET http://alpha.test:8080/ HTTP/1.1\r\nHost: alpha.test:9090\r\nConnection: close\r\n\r\n",
    ] {
        let resp = raw_exchange(proxy.addr, req).await;
        assert!(
            resp.starts_with("HTTP/1.1 400"),
            "{}\n-> {resp}",
            String::from_utf8_lossy(req)
        );
    }
    assert_eq!(a.connections() + b.connections(), 0);
    // Absolute-form with the same host in Host is fine.
    let resp = raw_exchange(
        proxy.addr,
        b"GET http://alpha.test/x HTTP/1.1\r\nHost: ALPHA.test:80\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.ends_with("from-alpha"),
        "{resp}"
    );

    // h2: a `host` header that names another host than `:authority`.
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://alpha.test/")
        .header("host", "beta.test")
        .body(full(""))
        .unwrap();
    let resp = within(send.send_request(req)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(a.connections() + b.connections(), 1);
}

#[tokio::test]
async fn h2c_routes_by_authority() {
    let backend = echo_head_backend().await;
    let routes = Arc::new(RouteTable::default());
    routes.insert("h2.test", backend.backend("h2"));
    let proxy = TestProxy::start(routes).await;

    // Prior-knowledge h2c over a raw connection, so :authority can name a host other than the address.
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://H2.test:8443/over/h2?x=1")
        .body(full(""))
        .unwrap();
    let resp = within(send.send_request(req)).await.unwrap();
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let body = within(resp.into_body().collect()).await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.starts_with("GET /over/h2?x=1 HTTP/1.1\n"), "{body}");
    assert!(body.contains("host: H2.test:8443\n"), "{body}");
    assert!(body.contains("x-forwarded-host: H2.test:8443\n"), "{body}");
}

#[tokio::test]
async fn response_body_streams_before_backend_finishes() {
    // The backend sends one chunk, then waits until the test has seen it at the client before finishing.
    let (seen_tx, seen_rx) = oneshot::channel::<()>();
    let seen_rx = Arc::new(tokio::sync::Mutex::new(Some(seen_rx)));
    let backend = spawn_backend(move |_req| {
        let seen_rx = seen_rx.clone();
        async move {
            let (tx, rx) =
                mpsc::channel::<Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>>(4);
            tokio::spawn(async move {
                tx.send(Ok(Frame::data(Bytes::from_static(b"first;"))))
                    .await
                    .unwrap();
                let rx = seen_rx.lock().await.take().unwrap();
                rx.await.unwrap();
                tx.send(Ok(Frame::data(Bytes::from_static(b"second"))))
                    .await
                    .unwrap();
            });
            let stream =
                futures::stream::unfold(
                    rx,
                    |mut rx| async move { rx.recv().await.map(|f| (f, rx)) },
                );
            Response::new(StreamBody::new(stream).boxed())
        }
    })
    .await;
    let routes = Arc::new(RouteTable::default());
    routes.insert("slow.test", backend.backend("slow"));
    let proxy = TestProxy::start(routes).await;

    let req = Request::get(proxy.url("/"))
        .header("host", "slow.test")
        .body(full(""))
        .unwrap();
    let resp = within(client().request(req)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = within(body.frame())
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(&first[..], b"first;");
    seen_tx.send(()).unwrap();
    let rest = within(body.collect()).await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"second");
}

#[tokio::test]
async fn large_upload_streams_through() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 256; // 16 MiB
    let first_seen = Arc::new(Notify::new());
    let notify = first_seen.clone();
    let backend = spawn_backend(move |req: Request<hyper::body::Incoming>| {
        let notify = notify.clone();
        async move {
            let mut body = req.into_body();
            let (mut total, mut sum) = (0usize, 0u64);
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    if total == 0 {
                        notify.notify_one();
                    }
                    total += data.len();
                    sum += data.iter().map(|&b| u64::from(b)).sum::<u64>();
                }
            }
            Response::new(full(format!("{total} {sum}")))
        }
    })
    .await;
    let routes = Arc::new(RouteTable::default());
    routes.insert("up.test", backend.backend("up"));
    let proxy = TestProxy::start(routes).await;

    let (mut tx, body) =
        http_body_util::channel::Channel::<Bytes, Box<dyn std::error::Error + Send + Sync>>::new(2);
    let req = Request::post(proxy.url("/upload"))
        .header("host", "up.test")
        .body(body.boxed())
        .unwrap();
    let resp = tokio::spawn(client().request(req));
    let chunk = Bytes::from((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    tx.send_data(chunk.clone()).await.unwrap();
    // The backend must see data while the upload is still open: nothing buffers the whole request.
    within(first_seen.notified()).await;
    for _ in 1..CHUNKS {
        within(tx.send_data(chunk.clone())).await.unwrap();
    }
    drop(tx);
    let resp = within(resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let body = within(resp.into_body().collect()).await.unwrap().to_bytes();
    let chunk_sum: u64 = chunk.iter().map(|&b| u64::from(b)).sum();
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("{} {}", CHUNK * CHUNKS, chunk_sum * CHUNKS as u64)
    );
}

#[tokio::test]
async fn backend_connections_are_kept_alive() {
    let backend = fixed_backend("pooled").await;
    let routes = Arc::new(RouteTable::default());
    let b = backend.backend("pooled");
    routes.insert("pool.test", b.clone());
    let proxy = TestProxy::start(routes).await;
    for _ in 0..20 {
        assert_eq!(get(&proxy, "pool.test", "/").await, (200, "pooled".into()));
    }
    assert_eq!(b.requests(), 20);
    assert_eq!(
        backend.connections(),
        1,
        "sequential requests should reuse one backend connection"
    );

    // Concurrent bursts open a few connections but far fewer than requests.
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let url = proxy.url("/");
            tokio::spawn(async move {
                let c = client();
                for _ in 0..25 {
                    let req = Request::get(&url)
                        .header("host", "pool.test")
                        .body(full(""))
                        .unwrap();
                    let resp = c.request(req).await.unwrap();
                    resp.into_body().collect().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        within(t).await.unwrap();
    }
    assert_eq!(b.requests(), 120);
    assert!(
        backend.connections() <= 5,
        "{} backend connections",
        backend.connections()
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_and_stops_accepting() {
    let backend = spawn_backend(|_req| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Response::new(full("late but complete"))
    })
    .await;
    let routes = Arc::new(RouteTable::default());
    routes.insert("slow.test", backend.backend("slow"));
    let mut proxy = TestProxy::start(routes).await;
    let addr = proxy.addr;

    let req = Request::get(proxy.url("/"))
        .header("host", "slow.test")
        .body(full(""))
        .unwrap();
    let in_flight = tokio::spawn(client().request(req));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let server = proxy.shutdown();

    let resp = within(in_flight).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let body = within(resp.into_body().collect()).await.unwrap().to_bytes();
    assert_eq!(&body[..], b"late but complete");

    within(server).await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener still accepting after shutdown"
    );
}

#[tokio::test]
async fn invalid_forwarded_proto_is_a_setup_error() {
    let l = listener().await;
    let cfg = wayback_proxy::ProxyConfig {
        forwarded_proto: "not a scheme",
        ..Default::default()
    };
    let err = within(wayback_proxy::serve_http(
        l,
        Arc::new(RouteTable::default()),
        cfg,
        std::future::pending(),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn expect_100_continue_upload() {
    let backend = spawn_backend(|req: Request<hyper::body::Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Response::new(full(format!("got {}", String::from_utf8_lossy(&body))))
    })
    .await;
    let routes = Arc::new(RouteTable::default());
    routes.insert("up.test", backend.backend("up"));
    let proxy = TestProxy::start(routes).await;

    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(
        b"POST /u HTTP/1.1\r\nHost: up.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\
          Connection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let interim = read_head(&mut s).await;
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "{interim}"
    );
    s.write_all(b"hello").await.unwrap();
    let mut rest = Vec::new();
    within(s.read_to_end(&mut rest)).await.unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    assert!(rest.ends_with("got hello"), "{rest}");
}
