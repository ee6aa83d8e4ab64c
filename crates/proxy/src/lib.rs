//! wayback's built-in reverse proxy: routes HTTP/1.1 and h2c requests by Host to per-instance backends over
//! pooled keep-alive connections, splices protocol upgrades (WebSocket), and forwards plain TCP for
//! `--publish`. Per instance, an access gate (share link, basic auth, allowed networks) decides who gets
//! through; TLS terminates here with certificate files or on-demand ACME certificates. Open client
//! connections are capped (globally and per client address, within the process's file budget) and timed
//! (header and idle timeouts).
//!
//! A process serves with one single-threaded runtime per core, each on its own `SO_REUSEPORT` listener
//! ([`bind_listeners`], [`run_per_core`]): a request never leaves the thread that accepted its connection.
//!
//! Responses to clients are deliberately generic: instance names and internal addresses appear only in logs.

mod acme;
mod budget;
pub mod client;
mod conn;
mod gate;
mod http;
mod limits;
mod pool;
mod route;
mod serve;
mod tcp;
mod tls;
mod upgrade;
mod workers;

pub use crate::acme::AcmeConfig;
pub use crate::budget::{open_files_limit, FdBudget, FdBudgetError, MIN_CONNECTIONS};
pub use crate::gate::{
    random_token, sha256_hex, share_url, BasicAuth, DirGateStore, Gate, GateConfig, GateError,
    GateStore, MemoryGateStore, ShareLink, BCRYPT_COST, BCRYPT_MAX_PASSWORD, SESSION_COOKIE,
    SHARE_QUERY_PARAM,
};
pub use crate::http::{ProxyBody, ProxyConfig, ProxyError};
pub use crate::limits::{
    ConnectionLimit, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
};
pub use crate::pool::BackendBody;
pub use crate::route::{Backend, Dial, Resolve, RouteCache, RouteTable, TcpDial};
pub use crate::serve::{serve_http, serve_https, serve_https_redirect};
pub use crate::tcp::serve_tcp;
pub use crate::tls::{CertificateFiles, Tls, TlsConfig, TlsError};
pub use crate::workers::{bind_listeners, run_per_core, tokio_listener, worker_count};

/// Displays an error with its whole `source()` chain, for logs.
pub(crate) struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cur = self.0.source();
        while let Some(e) = cur {
            write!(f, ": {e}")?;
            cur = e.source();
        }
        Ok(())
    }
}
