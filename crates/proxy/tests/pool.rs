//! The backend connection pool's edge cases: backends that close connections (with and without saying so),
//! streamed (chunked) bodies, and clients that go away mid-body.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wayback_proxy::{Backend, RouteTable, TcpDial};

/// A raw backend that answers one request per connection and then closes it, without `Connection: close`
/// (like a backend whose keep-alive timeout is shorter than the proxy's). Counts connections.
async fn closing_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut b = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&b[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn backend_that_closes_idle_connections() {
    let (addr, count) = closing_backend().await;
    let routes = Arc::new(RouteTable::default());
    routes.insert("close.test", Backend::new("close", Arc::new(TcpDial(addr))));
    let proxy = TestProxy::start(routes).await;
    for _ in 0..5 {
        assert_eq!(get(&proxy, "close.test", "/").await, (200, "ok".into()));
        // Give the FIN time to arrive, as a real idle timeout would.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn connection_close_responses_are_not_reused() {
    let backend = spawn_backend(|_req| async move {
        let mut r = Response::new(full("bye"));
        r.headers_mut()
            .insert("connection", "close".parse().unwrap());
        r
    })
    .await;
    let routes = Arc::new(RouteTable::default());
    routes.insert("bye.test", backend.backend("bye"));
    let proxy = TestProxy::start(routes).await;
    for _ in 0..5 {
        assert_eq!(get(&proxy, "bye.test", "/").await, (200, "bye".into()));
    }
    assert_eq!(backend.connections(), 5);
}

#[tokio::test]
async fn chunked_bodies_return_the_connection() {
    let backend = spawn_backend(|_req| async move {
        let frames = ["a", "b", "c"].map(|s| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from(s)))
        });
        Response::new(StreamBody::new(futures::stream::iter(frames)).boxed())
    })
    .await;
    let routes = Arc::new(RouteTable::default());
    routes.insert("chunk.test", backend.backend("chunk"));
    let proxy = TestProxy::start(routes).await;
    for _ in 0..10 {
        assert_eq!(get(&proxy, "chunk.test", "/").await, (200, "abc".into()));
    }
    assert_eq!(backend.connections(), 1);
}

#[tokio::test]
async fn abandoned_body_closes_the_backend_connection() {
    // 1 MiB, so that the body cannot complete in socket buffers before the client goes away.
    let backend =
        spawn_backend(|_req| async move { Response::new(full(vec![b'x'; 1 << 20])) }).await;
    let routes = Arc::new(RouteTable::default());
    let b = backend.backend("big");
    routes.insert("big.test", b.clone());
    let proxy = TestProxy::start(routes).await;
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: big.test\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    drop(s);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The next request gets a fresh, clean connection and the whole body.
    let (status, body) = get(&proxy, "big.test", "/").await;
    assert_eq!((status, body.len()), (200, 1 << 20));
    assert_eq!(backend.connections(), 2);
    assert_eq!(b.requests(), 2);
}
