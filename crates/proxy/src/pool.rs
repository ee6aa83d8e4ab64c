//! Per-backend HTTP/1.1 keep-alive connections without background tasks ([`Pool`]).
//!
//! Each pooled connection is a hyper `SendRequest` plus its connection driver. Instead of spawning the driver
//! as a task (one more task to wake per request, often on another worker thread), the proxy polls it inline:
//! alongside the response future while waiting for the head, then from [`BackendBody::poll_frame`] while the
//! body streams to the client. All I/O of one proxied request thus happens in the client connection's task,
//! as in an nginx worker. When the body has ended the connection goes back to the pool; a body dropped early
//! closes it. Only a protocol upgrade (101) hands the driver to a task of its own, which completes the upgrade.
//!
//! Idle connections are kept per worker thread ([`PerWorker`]): with per-core runtimes a connection is
//! created, used and returned by one thread, and workers never contend for a backend's idle list.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use wayback_masquerade::BodyRewriter;

use crate::route::{dial_stream, Dial};
use crate::workers::PerWorker;

/// Idle connections older than this are closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many idle connections are kept per backend and worker thread.
const MAX_IDLE: usize = 256;

type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("connecting to the backend")]
    Connect(#[source] io::Error),
    #[error("HTTP exchange with the backend")]
    Http(#[source] hyper::Error),
}

/// One backend connection: the request sender and the connection's driver (`None` once it has finished).
pub(crate) struct Conn {
    sender: SendRequest<Incoming>,
    driver: Option<Driver>,
}

impl Conn {
    /// Let the connection do its I/O; `false` once it has closed.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(d) = self.driver.as_mut() else {
            return false;
        };
        match d.as_mut().poll(cx) {
            Poll::Pending => true,
            Poll::Ready(r) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "backend connection ended with error");
                }
                self.driver = None;
                false
            }
        }
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// The idle keep-alive connections of one backend, oldest first, one list per worker thread.
#[derive(Default)]
pub(crate) struct Pool {
    idle: PerWorker<Mutex<VecDeque<Idle>>>,
}

impl Pool {
    /// Send `req` over a pooled or new connection and wait for the response head. A request that a reused
    /// connection could not even start sending (it was closing) is retried once on a new connection.
    pub(crate) async fn request(
        self: &Arc<Self>,
        dial: &dyn Dial,
        mut req: Request<Incoming>,
    ) -> Result<Response<BackendBody>, UpstreamError> {
        let mut allow_reuse = true;
        loop {
            let (mut conn, reused) = self.checkout(dial, allow_reuse).await?;
            let mut fut = std::pin::pin!(conn.sender.try_send_request(req));
            let result = poll_fn(|cx| {
                conn.drive(cx);
                fut.as_mut().poll(cx)
            })
            .await;
            match result {
                Ok(resp) => return Ok(self.wrap(resp, conn)),
                Err(mut e) => match e.take_message() {
                    Some(r) if reused => {
                        req = r;
                        allow_reuse = false;
                    }
                    _ => return Err(UpstreamError::Http(e.into_error())),
                },
            }
        }
    }

    fn wrap(self: &Arc<Self>, resp: Response<Incoming>, mut conn: Conn) -> Response<BackendBody> {
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            // The driver hands the connection over to the upgrade once it has seen the 101.
            if let Some(driver) = conn.driver.take() {
                tokio::spawn(async move {
                    if let Err(e) = driver.await {
                        tracing::debug!(error = %e, "backend upgrade failed");
                    }
                });
            }
            return resp.map(|body| BackendBody {
                rewriter: None,
                finishing: false,
                body,
                conn: None,
                pool: None,
            });
        }
        let pool = Some(self.clone());
        resp.map(|body| BackendBody {
            rewriter: None,
            finishing: false,
            body,
            conn: Some(conn),
            pool,
        })
    }

    /// The most recently used idle connection that is still open and ready, else a new one.
    async fn checkout(
        &self,
        dial: &dyn Dial,
        allow_reuse: bool,
    ) -> Result<(Conn, bool), UpstreamError> {
        while let Some(Idle { mut conn, since }) = allow_reuse.then(|| self.pop_idle()).flatten() {
            if since.elapsed() > IDLE_TIMEOUT {
                continue;
            }
            let ready = poll_fn(|cx| {
                let alive = conn.drive(cx);
                Poll::Ready(alive && matches!(conn.sender.poll_ready(cx), Poll::Ready(Ok(()))))
            })
            .await;
            if ready {
                return Ok((conn, true));
            }
        }
        let stream = dial_stream(dial).await.map_err(UpstreamError::Connect)?;
        let (sender, driver) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Http)?;
        Ok((
            Conn {
                sender,
                driver: Some(Box::pin(driver.with_upgrades())),
            },
            false,
        ))
    }

    fn checkin(&self, conn: Conn) {
        if conn.driver.is_none() || conn.sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.lock();
        while idle
            .front()
            .is_some_and(|i| now.duration_since(i.since) > IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE {
            idle.push_back(Idle { conn, since: now });
        }
    }

    /// The most recently returned idle connection (the lock is released before returning).
    fn pop_idle(&self) -> Option<Idle> {
        self.lock().pop_back()
    }

    /// This worker's idle list (uncontended with per-core runtimes).
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        self.idle
            .local()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A backend's response body. Streams the backend's body while driving the backend connection, and returns
/// the connection to its pool once the body has been read to the end.
pub struct BackendBody {
    body: Incoming,
    conn: Option<Conn>,
    pool: Option<Arc<Pool>>,
    /// Hostname masquerade: rewrites text bodies as they stream.
    rewriter: Option<BodyRewriter>,
    /// The rewriter's final output is still to be sent.
    finishing: bool,
}

impl BackendBody {
    /// Rewrite the body through `r` (hostname masquerade) as it streams.
    pub(crate) fn rewrite_with(&mut self, r: BodyRewriter) {
        self.rewriter = Some(r);
    }

    fn release(&mut self, ended: bool) {
        if let (Some(conn), Some(pool)) = (self.conn.take(), self.pool.take()) {
            if ended {
                pool.checkin(conn);
            }
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Body for BackendBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(conn) = this.conn.as_mut() {
            conn.drive(cx);
        }
        loop {
            if this.finishing {
                this.finishing = false;
                let tail = match this.rewriter.as_mut().map(BodyRewriter::finish) {
                    Some(Ok(t)) => t,
                    Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                    None => Bytes::new(),
                };
                this.rewriter = None;
                if !tail.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(tail))));
                }
                return Poll::Ready(None);
            }
            let r = Pin::new(&mut this.body).poll_frame(cx);
            match r {
                Poll::Ready(None) => {
                    this.release(true);
                    if this.rewriter.is_some() {
                        this.finishing = true;
                        continue;
                    }
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.release(false);
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let Some(rw) = this.rewriter.as_mut() else {
                        return Poll::Ready(Some(Ok(frame)));
                    };
                    match frame.into_data() {
                        Ok(data) => match rw.push(&data) {
                            Ok(out) if out.is_empty() => {}
                            Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                            Err(e) => return Poll::Ready(Some(Err(e.into()))),
                        },
                        // Trailers (the proxy does not rewrite responses that announce them).
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rewriter.is_none() && !self.finishing && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.rewriter {
            Some(_) => SizeHint::default(),
            None => self.body.size_hint(),
        }
    }
}

impl Drop for BackendBody {
    fn drop(&mut self) {
        // hyper stops polling a body whose length says it is complete, so "ended" may be known only here.
        let ended = self.body.is_end_stream();
        self.release(ended);
    }
}

impl std::fmt::Debug for BackendBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendBody")
            .field("pooled", &self.conn.is_some())
            .finish()
    }
}
