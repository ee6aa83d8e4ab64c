//! Running one check against a running verify instance; what it observed is evaluated by
//! `wayback_core::verify::check`.
//!
//! - `http`, `tcp`: dialed inside the instance's network namespace to its 127.0.0.1
//!   (`wayback_net::NetnsDialer`, as readiness and publishes are): no proxy route, no published port.
//!   HTTP/1.1 with hyper; the body is read up to [`BODY_MAX`]; redirects are not followed (a check can
//!   expect a 302). What says "not answering yet" — a refused connection, or 502/503/504 from a front
//!   server whose backend is still starting (php-fpm behind nginx has no readiness of its own) — is
//!   retried until the check's timeout; any other answer is final.
//! - `sql`, `command`: `wayback exec NAME --user U -- ARGV` as a child process, so they run exactly as
//!   `exec` runs commands: in the container's namespaces, with its capability sets, no-new-privileges and
//!   system-call filter (exec must be single-threaded to join a mount namespace, which this process is
//!   not). On a timeout the child gets SIGTERM (which exec passes on), then SIGKILL.
//! - `file`: the path resolved inside the instance's clone (`sys::inroot`: no symlink leads out of it).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use wayback_core::verify::check::{self, CheckKind, FileFacts};
use wayback_core::verify::Check;
use wayback_core::Plan;
use wayback_net::NetnsDialer;

use crate::serve::loopback;
use crate::sys::inroot::Tree;

/// The most of a response body an `http` check reads.
const BODY_MAX: usize = 4 << 20;
/// The most of a command's output a check keeps.
const OUTPUT_MAX: u64 = 1 << 20;

/// What a check runs against.
pub struct Target<'a> {
    pub plan: &'a Plan,
    /// The config file the `wayback exec` children read (the one this process read).
    pub config: Option<&'a Path>,
    /// The verified snapshot's date (`file` checks' `{date}` and `max_age`).
    pub snapshot_date: i64,
}

/// Run `c`, bounded by its timeout; Err is the failure reason.
pub async fn run(t: &Target<'_>, c: &Check) -> Result<(), String> {
    let work = async {
        match &c.kind {
            CheckKind::Tcp { port } => retried(c, || tcp(t, *port)).await,
            CheckKind::Http { .. } => retried(c, || http(t, &c.kind)).await,
            CheckKind::Sql { argv, user, .. } => {
                let (code, out, err) = exec(t, argv, Some(user), &[], c.timeout).await?;
                check::eval_exec(&c.kind, code, &out, &err).map_err(|e| anyhow!(e))
            }
            CheckKind::Command {
                argv, user, env, ..
            } => {
                let (code, out, err) = exec(t, argv, user.as_ref(), env, c.timeout).await?;
                check::eval_exec(&c.kind, code, &out, &err).map_err(|e| anyhow!(e))
            }
            CheckKind::File { path, .. } => file(t, path, &c.kind),
        }
    };
    // `exec` ends its child itself at the timeout; this bounds everything else.
    let limit = c.timeout.as_std() + Duration::from_secs(5);
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(crate::error::render(&e)),
        Err(_) => Err(format!("timed out after {}", c.timeout)),
    }
}

/// An attempt's result: `Retry` when the service is not answering yet.
enum Attempt {
    Done(Result<()>),
    Retry(anyhow::Error),
}

/// Repeat `attempt` while it says retry, until shortly before the check's timeout; the last reason.
async fn retried<F, Fut>(c: &Check, mut attempt: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Attempt>,
{
    let until = std::time::Instant::now()
        + c.timeout
            .as_std()
            .saturating_sub(Duration::from_millis(500));
    loop {
        match attempt().await {
            Attempt::Done(r) => return r,
            Attempt::Retry(e) if std::time::Instant::now() >= until => return Err(e),
            Attempt::Retry(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A failed connect: the service is not listening yet (retry), or something else (final).
fn refused(e: std::io::Error, port: u16) -> Attempt {
    let retry = e.kind() == std::io::ErrorKind::ConnectionRefused;
    let e = anyhow::Error::new(e).context(format!(
        "nothing answers on port {port} inside the instance"
    ));
    if retry {
        Attempt::Retry(e)
    } else {
        Attempt::Done(Err(e))
    }
}

async fn tcp(t: &Target<'_>, port: u16) -> Attempt {
    let dialer = match NetnsDialer::open(&t.plan.netns_path) {
        Ok(d) => d,
        Err(e) => return Attempt::Done(Err(e.into())),
    };
    match dialer.connect(loopback(port)).await {
        Ok(_) => Attempt::Done(Ok(())),
        Err(e) => refused(e, port),
    }
}

async fn http(t: &Target<'_>, kind: &CheckKind) -> Attempt {
    let CheckKind::Http { port, .. } = kind else {
        unreachable!("an http check");
    };
    let dialer = match NetnsDialer::open(&t.plan.netns_path) {
        Ok(d) => d,
        Err(e) => return Attempt::Done(Err(e.into())),
    };
    let stream = match dialer.connect(loopback(*port)).await {
        Ok(s) => s,
        Err(e) => return refused(e, *port),
    };
    match request(stream, kind).await {
        Ok((status @ (502..=504), body)) => Attempt::Retry(
            check::eval_http(kind, status, &body)
                .err()
                .map_or_else(|| anyhow!("status {status}"), |e| anyhow!(e)),
        ),
        Ok((status, body)) => {
            Attempt::Done(check::eval_http(kind, status, &body).map_err(|e| anyhow!(e)))
        }
        Err(e) => Attempt::Done(Err(e)),
    }
}

/// One request on `stream`: (status, body).
async fn request(stream: tokio::net::TcpStream, kind: &CheckKind) -> Result<(u16, String)> {
    let CheckKind::Http {
        method,
        path,
        port,
        host,
        ..
    } = kind
    else {
        unreachable!("an http check");
    };
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    let driver = tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method.as_str())
        .uri(path.as_str())
        .header(hyper::header::HOST, host.as_str())
        .header(hyper::header::USER_AGENT, "wayback-verify")
        .header(hyper::header::ACCEPT, "*/*")
        .body(Empty::<Bytes>::new())
        .context("building the request")?;
    let resp = send
        .send_request(req)
        .await
        .with_context(|| format!("{method} {path} on port {port}"))?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), BODY_MAX)
        .collect()
        .await
        .map_err(|e| anyhow!("reading the response body: {e}"))?
        .to_bytes();
    driver.abort();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// `wayback exec` of `argv` in the instance: (exit status, stdout, stderr).
async fn exec(
    t: &Target<'_>,
    argv: &[String],
    user: Option<&String>,
    env: &[(String, String)],
    timeout: wayback_core::Duration,
) -> Result<(i32, String, String)> {
    let exe = std::env::current_exe().context("locating the wayback binary")?;
    let mut cmd = tokio::process::Command::new(exe);
    if let Some(c) = t.config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(["-q", "exec", t.plan.name.as_str()]);
    if let Some(u) = user {
        cmd.arg(format!("--user={u}"));
    }
    for (k, v) in env {
        cmd.arg(format!("--env={k}={v}"));
    }
    cmd.arg("--").args(argv);
    cmd.env_remove("WAYBACK_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting `wayback exec`")?;
    let mut out = child.stdout.take().expect("piped").take(OUTPUT_MAX);
    let mut err = child.stderr.take().expect("piped").take(OUTPUT_MAX);
    let (mut o, mut e) = (Vec::new(), Vec::new());
    let collect = async {
        let (a, b) = tokio::join!(out.read_to_end(&mut o), err.read_to_end(&mut e));
        a.and(b)?;
        child.wait().await
    };
    let status = match tokio::time::timeout(timeout.as_std(), collect).await {
        Ok(s) => s.context("waiting for `wayback exec`")?,
        Err(_) => {
            stop(&mut child).await;
            return Err(anyhow!(
                "timed out after {timeout}: {} was still running (ended)",
                wayback_core::plan::shell_words(argv)
            ));
        }
    };
    let code = status.code().unwrap_or(128 + 9);
    Ok((
        code,
        String::from_utf8_lossy(&o).into_owned(),
        String::from_utf8_lossy(&e).into_owned(),
    ))
}

/// SIGTERM (exec passes it on to the command inside), then SIGKILL after 2 s.
async fn stop(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(2), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

fn file(t: &Target<'_>, path: &Path, kind: &CheckKind) -> Result<()> {
    let path: PathBuf = check::expand_date(path, t.snapshot_date);
    let tree = Tree::open(&t.plan.clone)?;
    let found = tree.resolve(&path)?;
    let entries = if found.is_dir() {
        tree.read_dir(&path)?.len()
    } else {
        0
    };
    let facts = FileFacts {
        is_dir: found.is_dir(),
        size: found.stat.st_size.max(0) as u64,
        mtime: found.stat.st_mtime,
        entries,
    };
    check::eval_file(kind, &facts, t.snapshot_date)
        .map_err(|e| anyhow!("{} in the snapshot: {e}", path.display()))
}
