//! Dialing TCP *inside* an instance's network namespace from the host process, so a service bound only to
//! 127.0.0.1 in the instance (Debian's default for PostgreSQL and MariaDB) is reachable from the host.
//!
//! A socket belongs to the network namespace of the thread that created it, for its whole life. A
//! [`NetnsDialer`] keeps one dedicated std::thread that has `setns(CLONE_NEWNET)`-ed into the namespace
//! and does nothing but `socket(AF_INET{,6}, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC)` on request; the fd
//! comes back over a channel and the (non-blocking) `connect` runs in the caller's tokio runtime like any
//! other socket. Syscalls: `open` of the namespace file, `setns`, `socket`, `connect`, `setsockopt
//! (TCP_NODELAY)`.

use std::fmt;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use nix::sched::{setns, CloneFlags};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;

use crate::NetError;

/// Connects to addresses as seen from inside one network namespace (127.0.0.1 is the instance's own
/// loopback). Cheap to clone; the helper thread exits when the last clone is dropped. While a dialer
/// (or a stream it made) exists, it keeps the namespace alive even after `netns::delete`.
#[derive(Clone)]
pub struct NetnsDialer {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Kept open so the namespace the thread lives in is the one at `path` when we opened it.
    _ns: File,
    /// Dropping the sender (with the last clone) ends the helper thread's loop.
    requests: mpsc::Sender<Request>,
}

/// "Make me a TCP socket of this family in your namespace."
struct Request {
    domain: Domain,
    reply: oneshot::Sender<io::Result<OwnedFd>>,
}

impl NetnsDialer {
    /// Open the namespace file and start the helper thread inside it. Fails if the file cannot be
    /// opened or is not a network namespace (`setns` refuses).
    pub fn open(netns_path: &Path) -> Result<Self, NetError> {
        let open_err = |source| NetError::Open {
            path: netns_path.to_path_buf(),
            source,
        };
        let ns = File::open(netns_path).map_err(open_err)?;
        let thread_ns = ns.try_clone().map_err(open_err)?;
        let thread_err = |source| NetError::Thread {
            what: "dialing into a network namespace",
            source,
        };
        let (requests, incoming) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("wb-netns-dial".into())
            .spawn(move || serve(thread_ns, incoming, ready_tx))
            .map_err(thread_err)?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(source)) => {
                return Err(NetError::SetNs {
                    path: netns_path.to_path_buf(),
                    source,
                })
            }
            Err(_) => return Err(thread_err(io::Error::other("thread exited early"))),
        }
        Ok(NetnsDialer {
            inner: Arc::new(Inner {
                path: netns_path.to_path_buf(),
                _ns: ns,
                requests,
            }),
        })
    }

    /// Open a TCP connection to `addr` from inside the namespace, with `TCP_NODELAY` set. Errors are
    /// the plain `connect` errors (e.g. `ConnectionRefused` while the service is still starting).
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            domain: Domain::for_address(addr),
            reply,
        };
        let gone = || {
            io::Error::other(format!(
                "the dialer thread for network namespace {} is gone",
                self.inner.path.display()
            ))
        };
        self.inner.requests.send(request).map_err(|_| gone())?;
        let fd = answer.await.map_err(|_| gone())??;
        let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// The namespace file this dialer was opened on.
    pub fn netns_path(&self) -> &Path {
        &self.inner.path
    }
}

impl fmt::Debug for NetnsDialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetnsDialer")
            .field("netns_path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// The helper thread: enter the namespace, report, then make sockets until every sender is gone.
fn serve(ns: File, incoming: mpsc::Receiver<Request>, ready: mpsc::SyncSender<io::Result<()>>) {
    let entered = setns(&ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from);
    drop(ns);
    let ok = entered.is_ok();
    let _ = ready.send(entered);
    if !ok {
        return;
    }
    for req in incoming {
        // The caller may have given up (dropped its future); the fd is then simply closed.
        let _ = req.reply.send(new_socket(req.domain));
    }
}

/// A non-blocking, close-on-exec TCP socket in the calling thread's network namespace.
fn new_socket(domain: Domain) -> io::Result<OwnedFd> {
    let ty = Type::STREAM.nonblocking().cloexec();
    Socket::new(domain, ty, Some(Protocol::TCP)).map(OwnedFd::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_of_a_missing_namespace_names_the_path() {
        let err = NetnsDialer::open(Path::new("/nonexistent/wbtn-netns")).unwrap_err();
        assert!(matches!(err, NetError::Open { .. }));
        assert!(err.to_string().contains("/nonexistent/wbtn-netns"));
    }

    #[test]
    fn open_of_a_plain_file_fails_at_setns() {
        let f = std::env::temp_dir().join(format!("wbtn-dial-{}", std::process::id()));
        std::fs::write(&f, b"").unwrap();
        let err = NetnsDialer::open(&f).unwrap_err();
        std::fs::remove_file(&f).unwrap();
        assert!(matches!(err, NetError::SetNs { .. }), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dialer_in_our_own_namespace_reaches_loopback() {
        // /proc/self/ns/net is the namespace we are already in; setns into it needs CAP_SYS_ADMIN.
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root for setns");
            return;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dialer = NetnsDialer::open(Path::new("/proc/self/ns/net")).unwrap();
        let clone = dialer.clone();
        let (client, server) = tokio::join!(clone.connect(addr), listener.accept());
        let client = client.unwrap();
        assert!(client.nodelay().unwrap());
        assert_eq!(server.unwrap().1, client.local_addr().unwrap());
        assert_eq!(dialer.netns_path(), Path::new("/proc/self/ns/net"));
    }
}
