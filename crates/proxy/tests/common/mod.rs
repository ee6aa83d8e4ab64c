//! Shared helpers for the integration tests: tiny hyper backends, a proxy under test, and clients.
#![allow(dead_code)]

pub mod pki;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wayback_proxy::{serve_http, Backend, ProxyConfig, RouteTable, TcpDial};

pub type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Bound every await in tests so that a bug fails fast instead of hanging.
pub const LIMIT: Duration = Duration::from_secs(20);

pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .expect("test step timed out")
}

pub fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A hyper HTTP/1.1 backend on an ephemeral port; counts accepted TCP connections.
pub struct TestBackend {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
}

impl TestBackend {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn backend(&self, name: &str) -> Arc<Backend> {
        Backend::new(name, Arc::new(TcpDial(self.addr)))
    }
}

pub async fn spawn_backend<F, Fut>(handler: F) -> TestBackend
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<TestBody>> + Send + 'static,
{
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = l.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    TestBackend { addr, connections }
}

/// A backend answering every request with a fixed body.
pub async fn fixed_backend(body: &'static str) -> TestBackend {
    spawn_backend(move |_req| async move { Response::new(full(body)) }).await
}

/// An address where nothing listens (bound, then closed).
pub async fn dead_addr() -> SocketAddr {
    let l = listener().await;
    l.local_addr().unwrap()
}

/// A proxy under test, serving `routes` until dropped or shut down.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub routes: Arc<RouteTable>,
    /// The proxy's settings (a clone shares its connection count).
    pub config: ProxyConfig,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<io::Result<()>>>,
}

impl TestProxy {
    pub async fn start(routes: Arc<RouteTable>) -> TestProxy {
        TestProxy::with_config(routes, ProxyConfig::default()).await
    }

    /// A proxy with settings of the test's own (limits, timeouts, trusted proxies).
    pub async fn with_config(routes: Arc<RouteTable>, cfg: ProxyConfig) -> TestProxy {
        let l = listener().await;
        let addr = l.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_http(l, routes.clone(), cfg.clone(), async move {
            let _ = rx.await;
        }));
        TestProxy {
            addr,
            routes,
            config: cfg,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Signal shutdown and return the server task.
    pub fn shutdown(&mut self) -> JoinHandle<io::Result<()>> {
        let _ = self.shutdown.take().unwrap().send(());
        self.task.take().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2c_client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// GET `path` on the proxy with the given Host; returns (status, body).
pub async fn get(proxy: &TestProxy, host: &str, path: &str) -> (u16, String) {
    let req = Request::get(proxy.url(path))
        .header("host", host)
        .body(full(""))
        .unwrap();
    let resp = within(client().request(req)).await.unwrap();
    let status = resp.status().as_u16();
    let body = within(resp.into_body().collect()).await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Send raw bytes to `addr` and read the whole answer (the request should ask for `Connection: close`).
///
/// Does not half-close: hyper's server (like the proxy) treats a client's EOF as the end of the connection.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    within(s.read_to_end(&mut out)).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Read from `s` until the end of an HTTP head (`\r\n\r\n`); returns the head.
pub async fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = within(s.read(&mut byte)).await.unwrap();
        assert!(
            n == 1,
            "EOF before end of head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    String::from_utf8(buf).unwrap()
}
