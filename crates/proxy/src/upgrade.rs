//! Protocol upgrades (WebSocket and any other `Upgrade:`): once the backend has answered `101 Switching
//! Protocols`, hand the 101 to the client and splice the two upgraded connections byte for byte.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{self, HeaderMap};
use hyper::upgrade::OnUpgrade;
use hyper::{Response, Version};
use hyper_util::rt::TokioIo;

use crate::http::{connection_tokens, strip_hop_by_hop, ProxyBody};
use crate::route::Backend;
use crate::tcp::DrainToken;
use crate::ErrorChain;

/// Does the request ask for a protocol upgrade (`Connection: upgrade` plus an `Upgrade` header)?
pub(crate) fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

/// Build the 101 for the client from the backend's, and spawn the task that joins both upgraded streams.
///
/// The tunnel counts in [`Backend::open_upgrades`] while open and is closed when the server's shutdown grace
/// period ends.
pub(crate) fn splice<B>(
    backend: &Arc<Backend>,
    client: OnUpgrade,
    mut resp: Response<B>,
    mut drain: DrainToken,
) -> Response<ProxyBody> {
    let upstream = hyper::upgrade::on(&mut resp);
    let guard = backend.upgrade_guard();
    let backend = backend.clone();
    tokio::spawn(async move {
        let _guard = guard;
        tokio::select! {
            r = tunnel(client, upstream) => match r {
                Ok((up, down)) => tracing::debug!(
                    backend = backend.name(), to_backend = up, to_client = down, "upgraded connection closed"
                ),
                Err(e) => tracing::debug!(
                    backend = backend.name(), error = %ErrorChain(&e), "upgraded connection failed"
                ),
            },
            () = drain.stopped() => {}
        }
    });

    let (mut parts, _empty) = resp.into_parts();
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers, true);
    Response::from_parts(parts, Either::Right(Full::new(Bytes::new())))
}

/// Wait for both sides to finish upgrading, then copy both ways until both directions are closed.
/// Returns the bytes copied (client → backend, backend → client).
async fn tunnel(client: OnUpgrade, upstream: OnUpgrade) -> io::Result<(u64, u64)> {
    // The client side completes once hyper has written our 101; the backend side is ready already.
    let (client, upstream) = tokio::try_join!(client, upstream).map_err(io::Error::other)?;
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn detects_upgrade_requests() {
        assert!(is_upgrade_request(&headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket")
        ])));
        assert!(is_upgrade_request(&headers(&[
            ("connection", "keep-alive, upgrade"),
            ("upgrade", "h2c")
        ])));
        assert!(is_upgrade_request(&headers(&[
            ("connection", "keep-alive"),
            ("connection", "UPGRADE"),
            ("upgrade", "websocket")
        ])));
    }

    #[test]
    fn rejects_partial_upgrades() {
        assert!(!is_upgrade_request(&headers(&[("upgrade", "websocket")])));
        assert!(!is_upgrade_request(&headers(&[("connection", "upgrade")])));
        assert!(!is_upgrade_request(&headers(&[
            ("connection", "upgraded"),
            ("upgrade", "websocket")
        ])));
        assert!(!is_upgrade_request(&headers(&[])));
    }

    #[test]
    fn switching_protocols_headers_keep_upgrade_only() {
        let mut h = headers(&[
            ("connection", "Upgrade, x-hop"),
            ("upgrade", "websocket"),
            ("x-hop", "1"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ("keep-alive", "timeout=5"),
        ]);
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(!h.contains_key("x-hop"));
        assert!(!h.contains_key("keep-alive"));
    }
}
