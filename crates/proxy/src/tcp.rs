//! `--publish`: plain TCP forwarding ([`serve_tcp`]), plus what both kinds of server share: the accept loop
//! that survives running out of file descriptors, and the connection-draining machinery ([`Drain`]) for
//! graceful shutdown.

use std::future::Future;
use std::io;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::limits::{ConnectionLimit, Throttle};
use crate::route::{dial_stream, Dial};

/// How long in-flight connections may keep running after shutdown was requested.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Phases of a server's life, broadcast to every connection task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Running,
    /// Stop taking new requests; finish what is in flight.
    Draining,
    /// Grace period over: drop everything.
    Stopped,
}

/// Tracks live connection tasks and tells them when to drain and when to stop.
pub(crate) struct Drain {
    tx: watch::Sender<Phase>,
}

/// Held by each connection task; the server waits for all tokens to drop (or the grace period to end).
#[derive(Clone)]
pub(crate) struct DrainToken {
    rx: watch::Receiver<Phase>,
}

impl Drain {
    pub(crate) fn new() -> Self {
        Drain {
            tx: watch::Sender::new(Phase::Running),
        }
    }

    pub(crate) fn token(&self) -> DrainToken {
        DrainToken {
            rx: self.tx.subscribe(),
        }
    }

    /// Ask tokens to drain, wait up to `grace` for all of them to drop, then force-stop the rest.
    pub(crate) async fn finish(self, grace: Duration) {
        self.tx.send_replace(Phase::Draining);
        if tokio::time::timeout(grace, self.tx.closed()).await.is_err() {
            tracing::warn!(
                remaining = self.tx.receiver_count(),
                "grace period over, closing remaining connections"
            );
        }
        self.tx.send_replace(Phase::Stopped);
    }
}

impl DrainToken {
    async fn reached(&mut self, phase: Phase) {
        // An error means the Drain is gone, which only happens after `Stopped` was sent.
        let _ = self.rx.wait_for(|p| *p >= phase).await;
    }

    /// Resolves once the server starts draining.
    pub(crate) async fn draining(&mut self) {
        self.reached(Phase::Draining).await;
    }

    /// Resolves once the grace period is over and the connection must be dropped.
    pub(crate) async fn stopped(&mut self) {
        self.reached(Phase::Stopped).await;
    }
}

/// Accept one connection, retrying transient accept errors. Returns `None` on shutdown.
///
/// Out of file descriptors (`EMFILE`, `ENFILE`) or memory, the pending connection stays in the kernel's
/// backlog and `accept` would fail again at once: wait, doubling the pause up to a second, so that the loop
/// never spins. Failures are logged at most every ten seconds, with their count.
pub(crate) async fn accept_or_shutdown<F: Future<Output = ()>>(
    listener: &TcpListener,
    shutdown: &mut std::pin::Pin<&mut F>,
) -> Option<(TcpStream, std::net::SocketAddr)> {
    let mut pause = MIN_ACCEPT_PAUSE;
    loop {
        tokio::select! {
            biased;
            () = shutdown.as_mut() => return None,
            r = listener.accept() => match r {
                Ok(conn) => return Some(conn),
                Err(e) => {
                    ACCEPT_ERRORS.note(|n| tracing::warn!(error = %e, failures = n, "accept failed"));
                    if let Some(wait) = accept_pause(&e, pause) {
                        pause = (wait * 2).min(MAX_ACCEPT_PAUSE);
                        tokio::select! {
                            biased;
                            () = shutdown.as_mut() => return None,
                            () = tokio::time::sleep(wait) => {}
                        }
                    }
                }
            },
        }
    }
}

const MIN_ACCEPT_PAUSE: Duration = Duration::from_millis(10);
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);
static ACCEPT_ERRORS: LazyLock<Throttle> = LazyLock::new(|| Throttle::new(Duration::from_secs(10)));

/// How long to wait after accept failed with `e` (`pause`: the current back-off). `None`: retry at once,
/// the error concerned only that one connection.
fn accept_pause(e: &io::Error, pause: Duration) -> Option<Duration> {
    match e.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted => None,
        _ => Some(pause),
    }
}

/// Accept TCP on `listener`; for each connection dial the backend and copy bytes both ways (half-closes are
/// propagated) until `shutdown` resolves. Then stop accepting, give open connections a few seconds, and
/// return. A failed dial closes the client connection, and so does a connection over `limit` (which it shares
/// with every server given a clone of it).
pub async fn serve_tcp(
    listener: TcpListener,
    dial: Arc<dyn Dial>,
    limit: ConnectionLimit,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let drain = Drain::new();
    let mut shutdown = std::pin::pin!(shutdown);
    while let Some((client, peer)) = accept_or_shutdown(&listener, &mut shutdown).await {
        let Some(slot) = limit.try_acquire(peer.ip(), true) else {
            continue; // dropping the stream closes it
        };
        let _ = client.set_nodelay(true);
        let dial = dial.clone();
        let mut token = drain.token();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                r = forward(client, &*dial) => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "tcp forward ended with error");
                    }
                }
                () = token.stopped() => {}
            }
        });
    }
    drop(listener);
    drain.finish(SHUTDOWN_GRACE).await;
    Ok(())
}

async fn forward(mut client: TcpStream, dial: &dyn Dial) -> io::Result<()> {
    let mut upstream = match dial_stream(dial).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "publish: backend dial failed");
            return Ok(());
        }
    };
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_pauses_on_resource_errors_only() {
        let pause = Duration::from_millis(40);
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            let e = io::Error::from_raw_os_error(errno);
            assert_eq!(accept_pause(&e, pause), Some(pause), "{e}");
        }
        for errno in [libc::ECONNABORTED, libc::EINTR] {
            let e = io::Error::from_raw_os_error(errno);
            assert_eq!(accept_pause(&e, pause), None, "{e}");
        }
    }

    #[tokio::test]
    async fn drain_waits_for_tokens_then_stops() {
        let drain = Drain::new();
        let mut t = drain.token();
        let task = tokio::spawn(async move {
            t.draining().await;
            // Finish promptly once asked to drain.
        });
        tokio::time::timeout(
            Duration::from_secs(2),
            drain.finish(Duration::from_secs(10)),
        )
        .await
        .expect("drain finishes as soon as all tokens dropped");
        task.await.unwrap();
    }

    #[tokio::test]
    async fn drain_force_stops_after_grace() {
        let drain = Drain::new();
        let mut t = drain.token();
        let task = tokio::spawn(async move {
            t.draining().await;
            t.stopped().await;
        });
        let started = std::time::Instant::now();
        drain.finish(Duration::from_millis(100)).await;
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("stopped() fires after the grace period")
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}
