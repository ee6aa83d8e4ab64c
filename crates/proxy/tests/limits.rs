//! Resource limits of the proxy on loopback: the connection caps (global, per client, trusted proxies exempt
//! from the per-client one, upgraded tunnels counted), the `503` a connection over the cap gets, and the
//! header and idle timeouts, for connections that never send a byte, trickle their head, or sit idle after
//! a response — over plain HTTP, h2c and TLS.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pki::TestCa;
use common::*;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Response;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use wayback_proxy::{serve_https, ConnectionLimit, ProxyConfig, RouteTable, Tls, TlsConfig};

const HOST: &str = "app.test";

fn cfg(max: usize, per_client: usize) -> ProxyConfig {
    ProxyConfig {
        connections: ConnectionLimit::new(max, per_client),
        ..ProxyConfig::default()
    }
}

fn timeouts(mut cfg: ProxyConfig, header: u64, idle: u64) -> ProxyConfig {
    cfg.header_timeout = Duration::from_secs(header);
    cfg.idle_timeout = Duration::from_secs(idle);
    cfg
}

async fn proxy(cfg: ProxyConfig) -> (TestProxy, TestBackend) {
    let backend = fixed_backend("hello").await;
    let routes = Arc::new(RouteTable::default());
    routes.insert(HOST, backend.backend("app"));
    (TestProxy::with_config(routes, cfg).await, backend)
}

fn ip(last: u8) -> IpAddr {
    [127, 0, 0, last].into()
}

/// A TCP connection to `addr` from the loopback address `from`.
async fn connect_from(addr: SocketAddr, from: IpAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from, 0)).unwrap();
    within(sock.connect(addr)).await.unwrap()
}

/// Everything the server sends until it closes (a reset counts as a close).
async fn read_until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match within(s.read(&mut buf)).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&out).into_owned(),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// One keep-alive request on an open connection; returns the response head and body.
async fn request_on(s: &mut TcpStream) -> String {
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_head(s).await;
    let mut body = [0u8; 5];
    within(s.read_exact(&mut body)).await.unwrap();
    format!("{head}{}", String::from_utf8_lossy(&body))
}

/// Wait until the limit counts `n` open connections (a closed connection's slot is freed by its task).
async fn wait_open(limit: &ConnectionLimit, n: usize) {
    within(async {
        while limit.open() != n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

fn assert_refusal(answer: &str) {
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
    assert!(answer.contains("\r\nRetry-After: 5\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\ntoo many connections\n"),
        "{answer}"
    );
}

#[tokio::test]
async fn per_client_cap_refuses_with_503_and_spares_other_clients() {
    let (proxy, backend) = proxy(cfg(100, 2)).await;
    let limit = proxy.config.connections.clone();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(connect_from(proxy.addr, ip(1)).await);
    }
    wait_open(&limit, 2).await;
    // The third from the same address: 503 without sending a byte, then closed.
    let mut third = connect_from(proxy.addr, ip(1)).await;
    assert_refusal(&read_until_closed(&mut third).await);
    assert_eq!(limit.open_from(ip(1)), 2);

    // Another client is served, and so is the first one on a connection it already has.
    let mut other = connect_from(proxy.addr, ip(2)).await;
    assert!(request_on(&mut other).await.ends_with("hello"));
    assert!(request_on(&mut held[0]).await.ends_with("hello"));
    assert_eq!(backend.connections(), 1, "refusals never reach the backend");

    // Closing one frees its slot.
    drop(held.pop());
    wait_open(&limit, 2).await;
    let mut again = connect_from(proxy.addr, ip(1)).await;
    assert!(request_on(&mut again).await.ends_with("hello"));
}

#[tokio::test]
async fn global_cap_refuses_with_503_until_a_slot_is_free() {
    let (proxy, _backend) = proxy(cfg(3, 3)).await;
    let limit = proxy.config.connections.clone();
    let mut held = Vec::new();
    for last in 2..5 {
        held.push(connect_from(proxy.addr, ip(last)).await);
    }
    wait_open(&limit, 3).await;
    let mut fourth = connect_from(proxy.addr, ip(5)).await;
    assert_refusal(&read_until_closed(&mut fourth).await);

    drop(held.remove(0));
    wait_open(&limit, 2).await;
    let mut fifth = connect_from(proxy.addr, ip(5)).await;
    assert!(request_on(&mut fifth).await.ends_with("hello"));
    drop((held, fifth));
    wait_open(&limit, 0).await;
}

#[tokio::test]
async fn trusted_proxies_are_not_capped_per_client() {
    let mut c = cfg(10, 1);
    c.trusted_proxies = vec!["127.0.0.9/32".parse().unwrap()];
    let (proxy, _backend) = proxy(c).await;
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from(proxy.addr, ip(9)).await;
        assert!(request_on(&mut s).await.ends_with("hello"));
        conns.push(s);
    }
    assert_eq!(proxy.config.connections.open(), 3);
}

#[tokio::test]
async fn silent_connection_is_closed_after_the_header_timeout() {
    let (proxy, _backend) = proxy(timeouts(cfg(10, 10), 1, 30)).await;
    let started = Instant::now();
    let mut s = connect_from(proxy.addr, ip(1)).await;
    let answer = read_until_closed(&mut s).await;
    let waited = started.elapsed();
    println!("a silent connection was closed after {waited:?} (header_timeout 1s)");
    assert_eq!(answer, "", "nothing is sent to a silent connection");
    assert!(waited >= Duration::from_secs(1), "closed early: {waited:?}");
    wait_open(&proxy.config.connections, 0).await;
}

#[tokio::test]
async fn a_trickled_head_is_not_extended_by_its_bytes() {
    let (proxy, _backend) = proxy(timeouts(cfg(10, 10), 1, 30)).await;
    let mut s = connect_from(proxy.addr, ip(1)).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n")
        .await
        .unwrap();
    let (mut r, mut w) = s.into_split();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = r.read_to_end(&mut out).await;
        out
    });
    // One header line every 200 ms, for at most 10 s (the head never ends).
    for i in 0..50 {
        if reader.is_finished() {
            break;
        }
        if w.write_all(format!("X-{i}: y\r\n").as_bytes())
            .await
            .is_err()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reader.is_finished(), "the trickling client was not cut off");
    assert!(within(reader).await.unwrap().is_empty());
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    // header_timeout (30 s) is longer than the test's wait limit (20 s): only the idle timeout can close it.
    let (proxy, _backend) = proxy(timeouts(cfg(10, 10), 30, 1)).await;
    let mut s = connect_from(proxy.addr, ip(1)).await;
    assert!(request_on(&mut s).await.ends_with("hello"));
    let idle = Instant::now();
    assert_eq!(read_until_closed(&mut s).await, "");
    let waited = idle.elapsed();
    println!("an idle keep-alive connection was closed after {waited:?} (idle_timeout 1s)");
    assert!(waited >= Duration::from_secs(1), "closed early: {waited:?}");
    wait_open(&proxy.config.connections, 0).await;
}

#[tokio::test]
async fn idle_h2_connection_is_closed_after_the_idle_timeout() {
    let (proxy, _backend) = proxy(timeouts(cfg(10, 10), 30, 1)).await;
    let stream = connect_from(proxy.addr, ip(1)).await;
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(format!("http://{HOST}/"))
        .body(full(""))
        .unwrap();
    let resp = within(send.send_request(req)).await.unwrap();
    let body = within(resp.into_body().collect()).await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello");
    // The server ends the idle connection (GOAWAY, close): the client's connection task finishes.
    within(conn).await.unwrap().ok();
    wait_open(&proxy.config.connections, 0).await;
}

#[tokio::test]
async fn slow_responses_are_not_cut_by_the_timeouts() {
    let backend = spawn_backend(|_req| async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let stream = futures::stream::unfold(0, |i| async move {
            if i == 2 {
                return None;
            }
            if i == 1 {
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            let frame: Result<Frame<bytes::Bytes>, Box<dyn std::error::Error + Send + Sync>> =
                Ok(Frame::data(bytes::Bytes::from_static(b"part;")));
            Some((frame, i + 1))
        });
        Response::new(StreamBody::new(stream).boxed())
    })
    .await;
    let routes = Arc::new(RouteTable::default());
    routes.insert(HOST, backend.backend("slow"));
    let proxy = TestProxy::with_config(routes, timeouts(cfg(10, 10), 1, 1)).await;
    let (status, body) = get(&proxy, HOST, "/").await;
    assert_eq!((status, body.as_str()), (200, "part;part;"));
}

/// A raw backend that answers an upgrade with 101 and then echoes bytes.
async fn upgrade_backend() -> SocketAddr {
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                read_head(&mut s).await;
                s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
                    .await
                    .unwrap();
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_upgraded_tunnel_keeps_its_slot_until_closed() {
    let backend = upgrade_backend().await;
    let routes = Arc::new(RouteTable::default());
    routes.insert(
        HOST,
        wayback_proxy::Backend::new("echo", Arc::new(wayback_proxy::TcpDial(backend))),
    );
    let proxy = TestProxy::with_config(routes, timeouts(cfg(1, 1), 1, 1)).await;
    let limit = proxy.config.connections.clone();

    let mut tunnel = connect_from(proxy.addr, ip(1)).await;
    tunnel
        .write_all(
            format!(
                "GET / HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    assert!(read_head(&mut tunnel).await.starts_with("HTTP/1.1 101"));
    // Longer than both timeouts: a tunnel is not timed, and it still holds the only slot.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    tunnel.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    within(tunnel.read_exact(&mut echo)).await.unwrap();
    assert_eq!(&echo, b"ping");
    assert_eq!(limit.open(), 1);
    let mut other = connect_from(proxy.addr, ip(2)).await;
    assert_refusal(&read_until_closed(&mut other).await);

    drop(tunnel);
    wait_open(&limit, 0).await;
    let mut later = connect_from(proxy.addr, ip(2)).await;
    later
        .write_all(
            format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    assert!(read_head(&mut later).await.starts_with("HTTP/1.1 "));
}

// ---------------------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------------------

struct TlsProxy {
    addr: SocketAddr,
    ca: TestCa,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn tls_proxy(cfg: ProxyConfig) -> TlsProxy {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("limits test CA");
    let files = ca.write_leaf(dir.path(), "app", &[HOST]);
    let tls = Tls::new(TlsConfig {
        certificates: vec![files],
        acme: None,
    })
    .unwrap();
    let backend = fixed_backend("hello").await;
    let routes = Arc::new(RouteTable::default());
    routes.insert(HOST, backend.backend("app"));
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_https(l, routes, tls, cfg, async move {
        let _ = rx.await;
    }));
    TlsProxy {
        addr,
        ca,
        _dir: dir,
        _stop: tx,
    }
}

async fn tls_connect(p: &TlsProxy) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(p.ca.pem().as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = connect_from(p.addr, ip(1)).await;
    within(connector.connect(ServerName::try_from(HOST).unwrap(), tcp))
        .await
        .unwrap()
}

#[tokio::test]
async fn tls_over_the_cap_is_closed_and_silent_tls_connections_time_out() {
    let c = timeouts(cfg(1, 1), 1, 30);
    let limit = c.connections.clone();
    let p = tls_proxy(c).await;

    // Handshake done, then not a byte of HTTP: closed after the header timeout.
    let started = Instant::now();
    let mut s = tls_connect(&p).await;
    let mut out = Vec::new();
    let _ = within(s.read_to_end(&mut out)).await;
    assert!(out.is_empty(), "{out:?}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    wait_open(&limit, 0).await;

    // No ClientHello at all: closed by the handshake timeout (the header timeout, when shorter).
    let mut silent = connect_from(p.addr, ip(1)).await;
    wait_open(&limit, 1).await;
    // Meanwhile a connection over the cap is closed at once, without a byte (no 503 over TLS).
    let mut over = connect_from(p.addr, ip(2)).await;
    assert_eq!(read_until_closed(&mut over).await, "");
    assert_eq!(read_until_closed(&mut silent).await, "");
    wait_open(&limit, 0).await;

    // And a normal HTTPS request works.
    let mut s = tls_connect(&p).await;
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut resp = Vec::new();
    let _ = within(s.read_to_end(&mut resp)).await;
    let resp = String::from_utf8_lossy(&resp);
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.ends_with("hello"),
        "{resp}"
    );
}
