//! `serve_tcp` (`--publish`) on loopback: echo with half-close, failed dials, shutdown.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wayback_proxy::{serve_tcp, ConnectionLimit, TcpDial};

/// Reads everything until EOF, then answers with the data reversed and closes: only works if the client's
/// half-close reaches it and the way back stays open.
async fn reverse_after_eof_backend() -> SocketAddr {
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut data = Vec::new();
                s.read_to_end(&mut data).await.unwrap();
                data.reverse();
                s.write_all(&data).await.unwrap();
                s.shutdown().await.unwrap();
            });
        }
    });
    addr
}

async fn start_publish(
    target: SocketAddr,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    JoinHandle<std::io::Result<()>>,
) {
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let limit = ConnectionLimit::default();
    let task = tokio::spawn(serve_tcp(l, Arc::new(TcpDial(target)), limit, async move {
        let _ = rx.await;
    }));
    (addr, tx, task)
}

#[tokio::test]
async fn echo_round_trip_with_half_close() {
    let backend = reverse_after_eof_backend().await;
    let (addr, _stop, _task) = start_publish(backend).await;
    for size in [0usize, 5, 1 << 20] {
        let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&data).await.unwrap();
        s.shutdown().await.unwrap();
        let mut back = Vec::new();
        within(s.read_to_end(&mut back)).await.unwrap();
        let mut want = data.clone();
        want.reverse();
        assert_eq!(back.len(), want.len());
        assert!(back == want, "payload of {size} bytes corrupted");
    }
}

#[tokio::test]
async fn failed_dial_closes_client() {
    let (addr, _stop, _task) = start_publish(dead_addr().await).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    // Closed (EOF) or reset, but promptly and without data.
    match within(s.read(&mut buf)).await {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
}

#[tokio::test]
async fn shutdown_stops_accepting_and_drains() {
    let backend = reverse_after_eof_backend().await;
    let (addr, stop, task) = start_publish(backend).await;

    // A connection open across the shutdown still completes.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"abc").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    within(s.read_to_end(&mut back)).await.unwrap();
    assert_eq!(back, b"cba");
    within(task).await.unwrap().unwrap();
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_and_slots_come_back() {
    let backend = reverse_after_eof_backend().await;
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let limit = ConnectionLimit::new(1, 1);
    let (_stop, rx) = oneshot::channel::<()>();
    tokio::spawn(serve_tcp(
        l,
        Arc::new(TcpDial(backend)),
        limit.clone(),
        async move {
            let _ = rx.await;
        },
    ));

    let mut first = TcpStream::connect(addr).await.unwrap();
    within(async {
        while limit.open() != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // The second is closed at once, without reaching the backend.
    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    match within(second.read(&mut buf)).await {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    // The first works, and once it is done its slot is free again.
    first.write_all(b"abc").await.unwrap();
    first.shutdown().await.unwrap();
    let mut back = Vec::new();
    within(first.read_to_end(&mut back)).await.unwrap();
    assert_eq!(back, b"cba");
    drop(first);
    within(async {
        while limit.open() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}
