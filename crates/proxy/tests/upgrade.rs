//! WebSocket-style upgrades through the proxy, against a hand-rolled raw backend.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use wayback_proxy::RouteTable;

/// RFC 6455 §1.3 sample key and its accept value.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A raw backend: performs the WebSocket handshake by hand (reporting the request head it saw), then echoes
/// bytes until the client closes. Answers a non-upgrade request with a plain 200.
async fn ws_echo_backend() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let (heads_tx, heads_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let heads_tx = heads_tx.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                let _ = heads_tx.send(head.clone());
                if !head.to_ascii_lowercase().contains("upgrade: websocket") {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nno")
                        .await;
                    return;
                }
                let resp = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Accept: {WS_ACCEPT}\r\n\r\n"
                );
                s.write_all(resp.as_bytes()).await.unwrap();
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (addr, heads_rx)
}

fn upgrade_request(host: &str) -> String {
    format!(
        "GET /chat?room=1 HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

#[tokio::test]
async fn websocket_echo_through_proxy() {
    let (backend_addr, mut heads) = ws_echo_backend().await;
    let routes = Arc::new(RouteTable::default());
    let backend = wayback_proxy::Backend::new("ws", Arc::new(wayback_proxy::TcpDial(backend_addr)));
    routes.insert("ws.test", backend.clone());
    let proxy = TestProxy::start(routes).await;

    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(upgrade_request("WS.test:9000").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    let lower = head.to_ascii_lowercase();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(lower.contains("upgrade: websocket\r\n"), "{head}");
    assert!(lower.contains("connection: upgrade\r\n"), "{head}");
    assert!(head.contains(WS_ACCEPT), "{head}");

    let seen = within(heads.recv()).await.unwrap();
    assert!(seen.starts_with("GET /chat?room=1 HTTP/1.1\r\n"), "{seen}");
    let seen_lower = seen.to_ascii_lowercase();
    assert!(seen_lower.contains("host: ws.test:9000\r\n"), "{seen}");
    assert!(seen_lower.contains("connection: upgrade\r\n"), "{seen}");
    assert!(seen.contains(WS_KEY), "{seen}");
    assert!(
        seen_lower.contains("x-forwarded-for: 127.0.0.1\r\n"),
        "{seen}"
    );

    // A masked text frame "hi" followed by arbitrary bytes: the tunnel is byte-transparent in both directions.
    let frame = [0x81u8, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    for round in 0..3u8 {
        let mut msg = frame.to_vec();
        msg.extend(std::iter::repeat_n(round, 1000));
        s.write_all(&msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        within(s.read_exact(&mut back)).await.unwrap();
        assert_eq!(back, msg);
    }
    assert_eq!(backend.open_upgrades(), 1);
    assert_eq!(backend.requests(), 1);

    // Client half-closes: the backend's echo loop ends and the tunnel closes both ways.
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    within(s.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty());
    within(async {
        while backend.open_upgrades() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn declined_upgrade_is_an_ordinary_response() {
    let (backend_addr, _heads) = ws_echo_backend().await;
    let routes = Arc::new(RouteTable::default());
    routes.insert(
        "ws.test",
        wayback_proxy::Backend::new("ws", Arc::new(wayback_proxy::TcpDial(backend_addr))),
    );
    let proxy = TestProxy::start(routes).await;
    // Upgrade to something the backend does not speak: it answers 200 and the proxy relays that.
    let req =
        "GET / HTTP/1.1\r\nHost: ws.test\r\nUpgrade: foo/1\r\nConnection: upgrade, close\r\n\r\n";
    let resp = raw_exchange(proxy.addr, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("no"), "{resp}");
}
