//! The web console of `wayback serve` (docs/console.md): server-rendered pages with a little JavaScript
//! and a JSON API under `/api`, on its own listener (`[console] listen`, default 127.0.0.1:8090; HTTPS with
//! `tls_cert`/`tls_key`, required beyond loopback). Assets are compiled in (`include_str!`).
//!
//! Everything it does goes through the code the CLI uses: `up`, `down` and `reset` are requests on the
//! daemon's own control socket (exactly what `up --detach`, `down` and `reset` send), `extend` and `keep`
//! the engine's [`crate::verbs`], status and logs [`crate::status`], snapshots [`crate::catalog`], and the
//! parts that live in the binary — turning `up`'s arguments into a request, `versions`, `diff PATH`,
//! `show` — are handed in as [`Hooks`] by the binary, so bad input gets the CLI's own messages (HTTP 400).
//!
//! Security ([`auth`]): every page and API call but the login page and the assets needs a session; every
//! POST needs the session's CSRF token; responses carry a strict Content-Security-Policy (no inline script
//! or style), `X-Frame-Options: DENY`, `no-referrer` and `no-store`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use wayback_core::plan::UpRequest;
use wayback_core::{Config, InstanceName};

pub mod api;
pub mod auth;
mod html;
mod jobs;
mod pages;

/// What the console needs from the `wayback` binary: the CLI's own argument parsing and file-history
/// commands (the engine cannot depend on the binary).
pub trait Hooks: Send + Sync + 'static {
    /// The request `wayback up ARGS…` makes (ARGS without `up`), with the CLI's checks and messages.
    fn up_request(&self, cfg: &Config, args: Vec<String>) -> Result<UpRequest>;
    /// `wayback versions PATH --json`.
    fn versions(&self, cfg: &Config, path: &str) -> Result<Value>;
    /// `wayback diff PATH --from SNAPSHOT --json` (against live).
    fn file_diff(&self, cfg: &Config, path: &str, from: &str) -> Result<Value>;
    /// `wayback show PATH --from SNAPSHOT`: the file's bytes.
    fn show(&self, cfg: &Config, path: &str, from: &str) -> Result<Vec<u8>>;
    /// `wayback find PATTERN --json` (a path or glob relative to the snapshot roots), with its text as `text`.
    fn find(&self, cfg: &Config, pattern: &str) -> Result<Value>;
    /// `wayback down NAME`: the daemon's instances through its socket, a foreground `up`'s by signalling
    /// it, an orphan's from its journal.
    fn down<'a>(&'a self, cfg: &'a Config, name: &'a InstanceName) -> HookFuture<'a, ()>;
}

/// What an async hook returns.
pub type HookFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>>;

/// The console's shared state.
pub struct Console {
    pub cfg: Config,
    pub auth: auth::Auth,
    pub hooks: Arc<dyn Hooks>,
    pub jobs: jobs::Jobs,
}

pub type Body = Full<Bytes>;

/// The policy every response carries: only the console's own script, style and connections.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Largest request body accepted (forms and JSON).
const MAX_BODY: usize = 64 * 1024;

/// Bind the console's listener (refusing a non-loopback address without TLS); serve until `stop`.
pub async fn start(
    cfg: Config,
    hooks: Arc<dyn Hooks>,
    stop: watch::Receiver<bool>,
) -> Result<SocketAddr> {
    cfg.console.check().map_err(crate::error::BadInput::new)?;
    let tls = match (&cfg.console.tls_cert, &cfg.console.tls_key) {
        (Some(cert), Some(key)) => Some(wayback_proxy::Tls::new(wayback_proxy::TlsConfig {
            certificates: vec![wayback_proxy::CertificateFiles {
                cert: cert.clone(),
                key: key.clone(),
            }],
            acme: None,
        })?),
        _ => None,
    };
    let listener = TcpListener::bind(cfg.console.listen)
        .await
        .with_context(|| {
            format!(
                "the console cannot listen on {} (set [console] listen, or enabled = false)",
                cfg.console.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let console = Arc::new(Console {
        cfg,
        auth: auth::Auth::default(),
        hooks,
        jobs: jobs::Jobs::default(),
    });
    tokio::spawn(accept_loop(listener, console, tls, stop));
    Ok(addr)
}

async fn accept_loop(
    listener: TcpListener,
    console: Arc<Console>,
    tls: Option<Arc<wayback_proxy::Tls>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("console accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let (console, tls) = (console.clone(), tls.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let console = console.clone();
                async move { Ok::<_, Infallible>(handle(&console, req, peer).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let served = match tls {
                Some(tls) => match tls.acceptor().accept(stream).await {
                    Ok(s) => builder.serve_connection(TokioIo::new(s), svc).await,
                    Err(e) => {
                        tracing::debug!("console TLS handshake from {peer}: {e}");
                        return;
                    }
                },
                None => builder.serve_connection(TokioIo::new(stream), svc).await,
            };
            if let Err(e) = served {
                tracing::debug!("console connection from {peer}: {e}");
            }
        });
    }
}

/// A request as the handlers see it: method, path, query, headers and the body read in full.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub peer: SocketAddr,
}

impl Req {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The body as a form (`application/x-www-form-urlencoded`).
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// The body as JSON (an empty body is `{}`).
    pub fn json(&self) -> Result<Value> {
        if self.body.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            crate::error::BadInput::new(format!("the request body is not JSON: {e}")).into()
        })
    }
}

async fn handle(console: &Console, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return secure(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            ))
        }
    };
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let r = Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        headers: parts.headers,
        body,
        peer,
    };
    secure(route(console, &r).await)
}

async fn route(console: &Console, r: &Req) -> Response<Body> {
    match (r.method.clone(), r.path.as_str()) {
        (Method::GET, "/assets/console.css") => asset("text/css", html::CSS),
        (Method::GET, "/assets/console.js") => asset("text/javascript", html::JS),
        (Method::GET, "/login") => pages::login(console, None),
        (Method::POST, "/login") => pages::do_login(console, r),
        _ => {
            let cookie = r.headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
            let (session, fresh) = match console.auth.session(cookie) {
                Some(s) => (s, false),
                None => match trusted(console, r) {
                    Some(s) => (s, true),
                    None => return unauthenticated(r),
                },
            };
            let (id, session) = session;
            let mut resp = authenticated(console, r, &id, &session).await;
            if fresh {
                let c = &console.cfg.console;
                set_header(
                    &mut resp,
                    header::SET_COOKIE,
                    &auth::set_cookie(Some(&id), c.session_ttl.as_secs(), c.tls()),
                );
            }
            resp
        }
    }
}

/// A session for the user a trusted proxy names (only a GET: a POST needs the session's CSRF token,
/// which a page load gives first).
fn trusted(console: &Console, r: &Req) -> Option<(String, auth::Session)> {
    if r.method != Method::GET {
        return None;
    }
    let user = console.cfg.console.proxy_user(r.peer.ip(), |h| {
        r.headers.get(h).and_then(|v| v.to_str().ok())
    })?;
    tracing::info!(
        "console: {user} logged in through the trusted proxy {}",
        r.peer.ip()
    );
    console.auth.trusted_session(&console.cfg)
}

/// A request with a session: CSRF for POSTs, then logout, the API or a page.
async fn authenticated(
    console: &Console,
    r: &Req,
    id: &str,
    session: &auth::Session,
) -> Response<Body> {
    if r.method == Method::POST && !csrf_ok(r, &session.csrf) {
        return json(
            StatusCode::FORBIDDEN,
            &serde_json::json!({"error": "missing or wrong CSRF token: reload the page"}),
        );
    }
    if r.path == "/logout" && r.method == Method::POST {
        console.auth.logout(id);
        let mut resp = redirect("/login");
        set_header(
            &mut resp,
            header::SET_COOKIE,
            &auth::set_cookie(None, 0, console.cfg.console.tls()),
        );
        return resp;
    }
    if r.path.starts_with("/api/") {
        return api::route(console, r).await;
    }
    pages::route(console, r, session).await
}

/// A POST carries the session's CSRF token in `X-CSRF-Token` or a `csrf` form field.
fn csrf_ok(r: &Req, expected: &str) -> bool {
    let header = r
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let given = header.or_else(|| {
        r.form()
            .into_iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v)
    });
    given.is_some_and(|g| auth::constant_eq(&g, expected))
}

fn unauthenticated(r: &Req) -> Response<Body> {
    if r.path.starts_with("/api/") || r.method != Method::GET {
        return json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"error": "log in first (a token from `wayback console token`)"}),
        );
    }
    redirect("/login")
}

/// The headers every response gets.
fn secure(mut resp: Response<Body>) -> Response<Body> {
    set_header(&mut resp, header::CONTENT_SECURITY_POLICY, CSP);
    set_header(&mut resp, header::X_FRAME_OPTIONS, "DENY");
    set_header(&mut resp, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set_header(&mut resp, header::REFERRER_POLICY, "no-referrer");
    if !resp.headers().contains_key(header::CACHE_CONTROL) {
        set_header(&mut resp, header::CACHE_CONTROL, "no-store");
    }
    resp
}

pub fn set_header(resp: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

pub fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    set_header(&mut resp, header::CONTENT_TYPE, content_type);
    resp
}

fn asset(content_type: &str, body: &'static str) -> Response<Body> {
    let mut resp = respond(StatusCode::OK, content_type, body);
    set_header(&mut resp, header::CACHE_CONTROL, "no-cache");
    resp
}

pub fn text(status: StatusCode, body: &str) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body.to_string())
}

pub fn json(status: StatusCode, v: &Value) -> Response<Body> {
    respond(status, "application/json", v.to_string())
}

pub fn redirect(to: &str) -> Response<Body> {
    let mut resp = respond(StatusCode::SEE_OTHER, "text/plain", "");
    set_header(&mut resp, header::LOCATION, to);
    resp
}

/// An engine error as the API answers it: bad input 400 with the CLI's message, else 500.
pub fn error_response(e: &anyhow::Error) -> Response<Body> {
    let status = if crate::error::is_bad_input(e) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    json(
        status,
        &serde_json::json!({"error": crate::error::render(e), "bad_input": status == StatusCode::BAD_REQUEST}),
    )
}

/// Run blocking engine work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow!("a console worker failed: {e}"))?
}
