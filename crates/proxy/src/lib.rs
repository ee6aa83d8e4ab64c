//! wayback's built-in reverse proxy: routes HTTP/1.1 and h2c requests by Host to per-instance backends over
//! pooled keep-alive connections, splices protocol upgrades (WebSocket), and forwards plain TCP for
//! `--publish`.
//!
//! Responses to clients are deliberately generic: instance names and internal addresses appear only in logs.

mod http;
mod route;
mod tcp;
mod upgrade;

pub use crate::http::{serve_http, ProxyBody, ProxyConfig, ProxyError};
pub use crate::route::{Backend, Dial, Resolve, RouteTable, TcpDial};
pub use crate::tcp::serve_tcp;

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
