//! Per-connection timeouts: how long a client connection may sit without a request, whatever protocol it
//! speaks (HTTP/1.1, h2, or nothing yet: hyper's version detection and its HTTP/1 header timer do not cover a
//! connection that never sends a byte).
//!
//! Rules, for one client connection:
//! - the first request's head must be complete within `header_timeout` of the connection's start;
//! - while a request is in flight (from its head to the end of its response body) nothing is timed here;
//! - after the last response has ended, the next request's head must be complete within `idle_timeout`, or
//!   within `header_timeout` of its first byte when that byte came late (HTTP/1; on h2, where a request head
//!   is a single frame and control frames arrive any time, `idle_timeout` alone counts).
//!
//! [`Activity`] holds the connection's state; [`Watched`] wraps its I/O, stamps the first byte read while
//! idle, and owns the connection's slot in the connection limit, so that the slot is released whenever and
//! however the I/O is dropped (also after an upgrade handed it to a tunnel).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::limits::ConnGuard;

/// The two timeouts of a client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) header: Duration,
    pub(crate) idle: Duration,
}

/// No byte read since the connection became idle.
const NONE: u64 = u64::MAX;

/// What one client connection is doing, shared by its I/O wrapper, its requests and its watchdog.
pub(crate) struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// A request has begun on this connection.
    served: AtomicBool,
    /// The requests are HTTP/2: bytes between requests are control frames, not the start of a request.
    h2: AtomicBool,
    /// Milliseconds after `epoch` when the last response ended.
    idle_since: AtomicU64,
    /// Milliseconds after `epoch` of the first byte read since then, or [`NONE`].
    first_byte: AtomicU64,
    changed: Notify,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            h2: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            first_byte: AtomicU64::new(NONE),
            changed: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Bytes arrived from the client.
    fn on_read(&self) {
        if self.first_byte.load(Ordering::Relaxed) == NONE {
            let now = self.now_ms();
            let _ =
                self.first_byte
                    .compare_exchange(NONE, now, Ordering::SeqCst, Ordering::Relaxed);
        }
    }

    /// A request's head has arrived (`h2`: an HTTP/2 request); the connection is busy until the returned
    /// guard is dropped (with the response body).
    pub(crate) fn begin(self: &Arc<Self>, h2: bool) -> InFlight {
        self.h2.store(h2, Ordering::SeqCst);
        self.served.store(true, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// Has any request begun on this connection?
    pub(crate) fn served(&self) -> bool {
        self.served.load(Ordering::SeqCst)
    }

    /// When the connection is to be closed if nothing changes; `None` while a request is in flight.
    fn deadline(&self, t: Timeouts) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        if !self.served() {
            return Some(self.epoch + t.header);
        }
        let idle = self.at(self.idle_since.load(Ordering::SeqCst)) + t.idle;
        match self.first_byte.load(Ordering::SeqCst) {
            // An h2 request's head is one frame, and other frames (window updates, pings) arrive any time.
            first if first == NONE || self.h2.load(Ordering::SeqCst) => Some(idle),
            first => Some(idle.max(self.at(first) + t.header)),
        }
    }

    /// Resolves once the connection has waited too long for a request (see the module docs).
    pub(crate) async fn expired(&self, t: Timeouts) {
        loop {
            let changed = self.changed.notified();
            match self.deadline(t) {
                None => changed.await,
                Some(d) if d <= Instant::now() => return,
                Some(d) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(d) => {}
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// A request in flight on a connection; dropping it (with the response body) may make the connection idle.
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        // Stamp the idle start before the count can reach zero, so that the watchdog never sees "idle" with
        // an old stamp. Harmless when other requests (h2 streams) are still running.
        a.idle_since.store(a.now_ms(), Ordering::SeqCst);
        a.first_byte.store(NONE, Ordering::SeqCst);
        if a.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            a.changed.notify_one();
        }
    }
}

/// A client connection's I/O: notes reads in its [`Activity`] and holds its connection-limit slot.
pub(crate) struct Watched<IO> {
    io: IO,
    activity: Arc<Activity>,
    _slot: ConnGuard,
}

impl<IO> Watched<IO> {
    pub(crate) fn new(io: IO, activity: Arc<Activity>, slot: ConnGuard) -> Self {
        Watched {
            io,
            activity,
            _slot: slot,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(30),
    };

    #[tokio::test(start_paused = true)]
    async fn first_request_gets_header_timeout_from_the_start() {
        let a = Activity::new();
        let start = Instant::now();
        a.on_read(); // bytes alone do not extend it
        a.expired(T).await;
        assert_eq!(start.elapsed(), T.header);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_timed_while_a_request_is_in_flight() {
        let a = Activity::new();
        let busy = a.begin(false);
        let watchdog = tokio::spawn({
            let a = a.clone();
            async move {
                let start = Instant::now();
                a.expired(T).await;
                start.elapsed()
            }
        });
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!watchdog.is_finished());
        drop(busy);
        // Idle from now: the idle timeout runs.
        assert_eq!(watchdog.await.unwrap(), Duration::from_secs(100) + T.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_first_byte_gets_the_header_timeout() {
        let a = Activity::new();
        drop(a.begin(false));
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(25)).await;
        a.on_read();
        a.expired(T).await;
        assert_eq!(start.elapsed(), Duration::from_secs(25) + T.header);
    }

    #[tokio::test(start_paused = true)]
    async fn h2_control_frames_do_not_extend_the_idle_timeout() {
        let a = Activity::new();
        drop(a.begin(true));
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(25)).await;
        a.on_read();
        a.expired(T).await;
        assert_eq!(start.elapsed(), T.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn an_early_first_byte_does_not_shorten_the_idle_timeout() {
        let a = Activity::new();
        drop(a.begin(false));
        let start = Instant::now();
        a.on_read();
        a.expired(T).await;
        assert_eq!(start.elapsed(), T.idle);
    }
}
