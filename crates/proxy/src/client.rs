//! wayback's one HTTP/1.1 client (hyper), for its own requests: Caddy's admin API (loopback TCP or a unix
//! socket), the readiness check (over a socket dialed inside the instance's network namespace), and the
//! tests' requests through the proxy. One request per connection (`Connection: close`); the answer is read
//! whole, up to a size limit, within a deadline.
//!
//! [`Client::send`] and [`Client::status`] take a connected stream of any kind; [`Client::tcp`] and
//! [`Client::unix`] connect first. [`blocking`] runs any of them from synchronous code.

use std::future::Future;
use std::io;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper::header::{HeaderMap, CONNECTION, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// A request as [`Client`] sends it.
pub type ClientRequest = Request<Full<Bytes>>;

/// A whole answer.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    /// Names are lower case.
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How long to wait, and how much to read.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// For connecting ([`Client::tcp`], [`Client::unix`]).
    pub connect_timeout: Duration,
    /// For the exchange once connected: the request sent and the answer read.
    pub timeout: Duration,
    /// The largest body read; a longer one is an error.
    pub max_body: usize,
}

/// `METHOD path` with `Host: host` (empty is allowed: Caddy wants that on a unix socket), `Connection:
/// close`, the extra `headers`, and `body`. `Err` (InvalidInput) when the path or a header is not valid
/// HTTP.
pub fn request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> io::Result<ClientRequest> {
    let invalid = |e: hyper::http::Error| io::Error::new(io::ErrorKind::InvalidInput, e);
    let mut b = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).map_err(|e| invalid(e.into()))?)
        .uri(path)
        .header(HOST, host)
        .header(CONNECTION, "close");
    for (name, value) in headers {
        b = b.header(*name, *value);
    }
    b.body(Full::new(body.into())).map_err(invalid)
}

fn timed_out(what: &str, after: Duration) -> io::Error {
    let ms = after.as_millis();
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} within {ms} ms"))
}

impl Client {
    /// Send `req` over `io` and read the whole answer.
    pub async fn send<S>(&self, io: S, req: ClientRequest) -> io::Result<Response>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let read = exchange(io, req, Some(self.max_body));
        let (head, body) = tokio::time::timeout(self.timeout, read)
            .await
            .map_err(|_| timed_out("no complete answer", self.timeout))??;
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body,
        })
    }

    /// Send `req` over `io` and read only the answer's status (the body is not waited for).
    pub async fn status<S>(&self, io: S, req: ClientRequest) -> io::Result<StatusCode>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let head = tokio::time::timeout(self.timeout, exchange(io, req, None))
            .await
            .map_err(|_| timed_out("no answer", self.timeout))??;
        Ok(head.0.status)
    }

    /// Connect to `HOST:PORT` (each address it resolves to in turn) and [`Client::send`].
    pub async fn tcp(&self, authority: &str, req: ClientRequest) -> io::Result<Response> {
        let io = tokio::time::timeout(self.connect_timeout, TcpStream::connect(authority))
            .await
            .map_err(|_| timed_out("not connected", self.connect_timeout))??;
        self.send(io, req).await
    }

    /// Connect to the unix socket at `path` and [`Client::send`].
    pub async fn unix(&self, path: &Path, req: ClientRequest) -> io::Result<Response> {
        let io = tokio::time::timeout(self.connect_timeout, UnixStream::connect(path))
            .await
            .map_err(|_| timed_out("not connected", self.connect_timeout))??;
        self.send(io, req).await
    }
}

/// One request on a fresh connection: the answer's head, and its body when `max_body` is given (else
/// nothing of it is read). The connection is driven here, not in a spawned task, so it ends with this.
async fn exchange<S>(
    io: S,
    req: ClientRequest,
    max_body: Option<usize>,
) -> io::Result<(hyper::http::response::Parts, Bytes)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sender, conn) = http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(io))
        .await
        .map_err(io::Error::other)?;
    let answer = async move {
        let (head, body) = sender
            .send_request(req)
            .await
            .map_err(io::Error::other)?
            .into_parts();
        let Some(max) = max_body else {
            return Ok((head, Bytes::new()));
        };
        let body = Limited::new(body, max).collect().await.map_err(|e| {
            match e.downcast::<http_body_util::LengthLimitError>() {
                Ok(_) => io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("answer larger than {max} bytes"),
                ),
                Err(e) => io::Error::other(e),
            }
        })?;
        Ok((head, body.to_bytes()))
    };
    tokio::pin!(conn, answer);
    tokio::select! {
        biased;
        r = &mut answer => r,
        // The connection ended (closed, or failed): what was received is buffered, and a failure
        // reaches the answer too, with its cause.
        _ = &mut conn => answer.await,
    }
}

/// Run `f` to completion from synchronous code: on this thread with a runtime of its own, or, when this
/// thread is inside a tokio runtime already, on a helper thread while this one waits.
pub fn blocking<F>(f: F) -> io::Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let run = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(f))
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return run();
    }
    std::thread::scope(|s| {
        s.spawn(run)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const C: Client = Client {
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(5),
        max_body: 16,
    };

    /// The client against a canned answer on an in-memory stream; returns what it sent too.
    async fn against(answer: &'static [u8], req: ClientRequest) -> (io::Result<Response>, String) {
        let (client, mut server) = tokio::io::duplex(4096);
        let serve = async move {
            let mut got = vec![0u8; 4096];
            let n = server.read(&mut got).await.unwrap();
            server.write_all(answer).await.unwrap();
            drop(server);
            String::from_utf8_lossy(&got[..n]).into_owned()
        };
        tokio::join!(C.send(client, req), serve)
    }

    fn get(path: &str) -> ClientRequest {
        request("GET", path, "a.test", &[("accept", "*/*")], Bytes::new()).unwrap()
    }

    #[tokio::test]
    async fn bodies_by_length_chunked_or_until_close() {
        let (r, sent) = against(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nEtag: x\r\n\r\n",
            get("/config/"),
        )
        .await;
        let r = r.unwrap();
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "{\"a\":1}"));
        assert!(sent.starts_with("GET /config/ HTTP/1.1\r\n"), "{sent}");
        for h in [
            "Host: a.test\r\n",
            "Connection: close\r\n",
            "Accept: */*\r\n",
        ] {
            assert!(sent.contains(h), "{h} in {sent}");
        }
        let (r, _) = against(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nX-A: b\r\n\r\n{}",
            get("/"),
        )
        .await;
        let r = r.unwrap();
        assert_eq!((r.status.as_u16(), r.text().as_str()), (404, "{}"));
        assert_eq!(r.headers["x-a"], "b");
        let (r, _) = against(b"HTTP/1.0 200 OK\r\n\r\nnull", get("/")).await;
        assert_eq!(r.unwrap().text(), "null");
    }

    #[tokio::test]
    async fn bodies_json_limits_and_garbage() {
        let post = request(
            "POST",
            "/load",
            "",
            &[("content-type", "application/json")],
            "{}",
        )
        .unwrap();
        let (r, sent) = against(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", post).await;
        assert_eq!(r.unwrap().status, StatusCode::OK);
        assert!(sent.contains("\r\nContent-Length: 2\r\n"), "{sent}");
        assert!(
            sent.contains("\r\nContent-Type: application/json\r\n"),
            "{sent}"
        );
        assert!(sent.ends_with("\r\n\r\n{}"), "{sent}");
        let (r, _) = against(b"HTTP/1.1 200 OK\r\n\r\n0123456789abcdefXYZ", get("/")).await;
        let e = r.unwrap_err();
        assert!(e.to_string().contains("larger than 16 bytes"), "{e}");
        let (r, _) = against(b"SSH-2.0-OpenSSH\r\n", get("/")).await;
        assert!(r.is_err());
        assert!(request("GET", "no spaces allowed", "a.test", &[], "").is_err());
    }

    /// Paused time: the deadline passes without waiting for it.
    #[tokio::test(start_paused = true)]
    async fn status_only_and_deadline() {
        let (client, mut server) = tokio::io::duplex(4096);
        let serve = async move {
            let mut got = [0u8; 1024];
            let _ = server.read(&mut got).await.unwrap();
            // The head only; the body never comes.
            server
                .write_all(b"HTTP/1.1 302 Found\r\nContent-Length: 100\r\n\r\n")
                .await
                .unwrap();
            server
        };
        let (status, _server) = tokio::join!(C.status(client, get("/")), serve);
        assert_eq!(status.unwrap(), StatusCode::FOUND);
        let (client, _server) = tokio::io::duplex(4096);
        let e = C.status(client, get("/")).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn blocking_inside_and_outside_a_runtime() {
        assert_eq!(blocking(async { 1 }).unwrap(), 1);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let n = rt.block_on(async { blocking(async { 2 }).unwrap() });
        assert_eq!(n, 2);
    }
}
