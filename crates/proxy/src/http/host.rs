//! Which host a request is for: the request target's authority or the one `Host` header (refusing requests
//! that name two different ones), normalized for routing.

use std::borrow::Cow;

use hyper::header::{self, HeaderValue};
use hyper::Request;

/// The host the client asked for: the request target's authority (h2 `:authority`, HTTP/1 absolute-form),
/// else the `Host` header. More than one `Host` header, or a `Host` naming another host or port than the
/// target's authority, is an error: proxies in a chain could each pick a different one.
pub(crate) fn request_host<B>(req: &Request<B>) -> Result<HeaderValue, &'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("bad request: more than one Host\n");
    }
    match (req.uri().authority(), host) {
        (Some(auth), host) => {
            if host.is_some_and(|h| !same_authority(auth.as_str(), h)) {
                return Err("bad request: Host does not match the request target\n");
            }
            HeaderValue::from_str(auth.as_str()).map_err(|_| "bad request: invalid Host\n")
        }
        (None, Some(h)) => Ok(h.clone()),
        (None, None) => Err("bad request: missing Host\n"),
    }
}

/// Do a request target's authority and a `Host` value name the same host (and, where both give one, the same
/// port)?
fn same_authority(authority: &str, host: &HeaderValue) -> bool {
    let Ok(host) = host.to_str() else {
        return false;
    };
    let same_port = match (explicit_port(authority), explicit_port(host)) {
        (Some(a), Some(b)) => a.parse::<u16>().ok() == b.parse::<u16>().ok(),
        _ => true,
    };
    same_port
        && normalize_host(authority).is_some()
        && normalize_host(authority) == normalize_host(host)
}

/// Normalize a Host value for routing: port and trailing dot stripped, lowercased. `None` if malformed.
/// Borrows unless the host contains uppercase letters.
pub(crate) fn normalize_host(raw: &str) -> Option<Cow<'_, str>> {
    let host = if let Some(rest) = raw.strip_prefix('[') {
        let end = rest.find(']')?;
        let (literal, after) = (&rest[..end], &rest[end + 1..]);
        if literal.is_empty()
            || !literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        if !after.is_empty() && !after.strip_prefix(':').is_some_and(is_port) {
            return None;
        }
        &raw[..end + 2]
    } else {
        let host = match raw.rsplit_once(':') {
            Some((h, port)) if is_port(port) => h,
            Some(_) => return None,
            None => raw,
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() || !host.bytes().all(is_reg_name_byte) {
            return None;
        }
        host
    };
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

/// The port an authority or Host value names explicitly (`a:8080`, `[::1]:8080`), if any.
fn explicit_port(raw: &str) -> Option<&str> {
    let after = raw.rsplit_once(']').map_or(raw, |(_, rest)| rest);
    after
        .rsplit_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
}

fn is_port(s: &str) -> bool {
    s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// RFC 3986 reg-name: unreserved / pct-encoded / sub-delims.
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
}
