//! Per-core serving, as nginx runs its workers: one OS thread per core, each with a single-threaded tokio
//! runtime and its own `SO_REUSEPORT` listening socket on the proxy's address ([`bind_listeners`],
//! [`run_per_core`]). The kernel spreads new connections over the sockets; a connection, its requests and
//! its pooled backend connections then stay on one thread, so no request is handed between threads and no
//! worker wakes another.
//!
//! What the workers share is read-mostly or per connection: the route resolver (each server keeps its own
//! route cache in front of it, see `serve.rs`), the connection limit (taken once per connection), and per
//! backend a [`PerWorker`] slot each (idle keep-alive connections, request counters), so that the hot path
//! writes only to memory its own core owns.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::LazyLock;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

thread_local! {
    /// This thread's worker index (0 on threads that are not per-core workers).
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// How many per-core workers [`run_per_core`] should run: the CPUs this process may use.
pub fn worker_count() -> usize {
    static N: LazyLock<usize> =
        LazyLock::new(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    *N
}

/// This thread's worker index, below [`worker_count`].
pub(crate) fn worker_index() -> usize {
    WORKER.with(Cell::get) % worker_count()
}

/// `count` listening sockets on `addr` (SO_REUSEADDR and SO_REUSEPORT, non-blocking), each with an accept
/// queue of `backlog`, for [`run_per_core`]. Fails like a plain bind when another program holds the address
/// (unless that program, running as the same user, also set SO_REUSEPORT).
pub fn bind_listeners(
    addr: SocketAddr,
    backlog: i32,
    count: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    (0..count.max(1))
        .map(|_| {
            let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            sock.set_reuse_address(true)?;
            sock.set_reuse_port(true)?;
            sock.set_nonblocking(true)?;
            sock.bind(&addr.into())?;
            sock.listen(backlog)?;
            Ok(sock.into())
        })
        .collect()
}

/// Run `serve(index, item)` for each of `items` on a thread of its own with a single-threaded tokio runtime
/// (typically one item per core, each holding that worker's listeners from [`bind_listeners`]). Resolves when
/// every worker has returned, with the first error.
///
/// `serve` is called on the worker's thread, inside its runtime: it may turn std listeners into tokio ones
/// and spawn tasks (they run on that worker).
pub async fn run_per_core<T, F, Fut>(items: Vec<T>, serve: F) -> io::Result<()>
where
    T: Send + 'static,
    F: Fn(usize, T) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = io::Result<()>>,
{
    let mut done = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let serve = serve.clone();
        std::thread::Builder::new()
            .name(format!("wb-proxy-{index}"))
            .spawn(move || {
                WORKER.with(|w| w.set(index));
                let r = rt.block_on(async move { serve(index, item).await });
                let _ = tx.send(r);
            })?;
        done.push(rx);
    }
    let mut first = Ok(());
    for rx in done {
        let r = rx
            .await
            .unwrap_or_else(|_| Err(io::Error::other("a proxy worker thread panicked")));
        if first.is_ok() {
            first = r;
        }
    }
    first
}

/// Turn a listener from [`bind_listeners`] into a tokio one; call inside the worker's runtime.
pub fn tokio_listener(l: std::net::TcpListener) -> io::Result<TcpListener> {
    TcpListener::from_std(l)
}

/// One `T` per worker, each on its own cache lines: a worker reads and writes its own ([`PerWorker::local`])
/// without touching memory another core writes.
pub(crate) struct PerWorker<T> {
    slots: Box<[Padded<T>]>,
}

/// Aligned to 128 bytes: two cache lines, as adjacent-line prefetching pairs them.
#[repr(align(128))]
struct Padded<T>(T);

impl<T: Default> Default for PerWorker<T> {
    fn default() -> Self {
        PerWorker {
            slots: (0..worker_count()).map(|_| Padded(T::default())).collect(),
        }
    }
}

impl<T> PerWorker<T> {
    /// This worker's slot.
    pub(crate) fn local(&self) -> &T {
        &self.slots[worker_index() % self.slots.len()].0
    }

    /// Every worker's slot.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().map(|p| &p.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn listeners_share_one_address() {
        let ls = bind_listeners("127.0.0.1:0".parse().unwrap(), 128, 1).unwrap();
        let addr = ls[0].local_addr().unwrap();
        let more = bind_listeners(addr, 128, 3).unwrap();
        assert_eq!(more.len(), 3);
        assert!(more.iter().all(|l| l.local_addr().unwrap() == addr));
    }

    #[tokio::test]
    async fn workers_run_on_their_own_threads_with_their_index() {
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        run_per_core(vec![10, 20, 30], move |i, item: usize| {
            let s = s.clone();
            async move {
                assert_eq!(worker_index(), i % worker_count());
                assert!(std::thread::current()
                    .name()
                    .unwrap()
                    .starts_with("wb-proxy-"));
                tokio::spawn(async {}).await.unwrap();
                s.fetch_add(item + i, Ordering::SeqCst);
                Ok(())
            }
        })
        .await
        .unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 63);
        let e = run_per_core(vec![()], |_, ()| async { Err(io::Error::other("no")) }).await;
        assert_eq!(e.unwrap_err().to_string(), "no");
    }

    #[test]
    fn per_worker_slots() {
        let p: PerWorker<AtomicUsize> = PerWorker::default();
        p.local().fetch_add(2, Ordering::Relaxed);
        assert_eq!(
            p.iter().map(|a| a.load(Ordering::Relaxed)).sum::<usize>(),
            2
        );
        assert_eq!(p.iter().count(), worker_count());
    }
}
