//! Hostname masquerade: the app behind an instance keeps seeing its usual origin (say
//! `https://cloud.example.org`) while the browser stays on the instance's public one (say
//! `http://cloud-old.wayback.example.org:8080`).
//!
//! This crate is pure (no I/O, no async): the proxy calls it once per request and once per response.
//!
//! - `lib.rs` (this file) owns the configuration: [`Scheme`], [`Masquerade`] (validated, canonical hosts and the
//!   origins built from them) and [`MasqueradeError`].
//! - `matcher.rs` owns *what* is rewritten in free text: the patterns (`https://HOST`, `//HOST`,
//!   `https:\/\/HOST`, `https%3A%2F%2FHOST`, bare `HOST`, …), the label-boundary and port rules, and the
//!   streaming scanner that keeps a bounded tail between chunks.
//! - `headers.rs` owns request and response header rewriting (Host, Origin, Referer, Location, Set-Cookie, CSP …).
//! - `body.rs` owns response bodies: which are rewritten, how their headers change, and [`BodyRewriter`], the
//!   per-response streaming rewriter (plain text, or gunzip → rewrite → gzip).
//! - `tests_headers.rs` and `tests_body.rs` hold the unit tests.
//!
//! Bodies compressed with anything but gzip (br, zstd, deflate) are never rewritten: they pass through untouched.
//! See `docs/masquerade.md` for what admins can expect.

mod body;
mod headers;
mod matcher;

#[cfg(test)]
mod tests_body;
#[cfg(test)]
mod tests_headers;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

pub use body::BodyRewriter;

use matcher::Matcher;

/// A URL scheme on either side of the masquerade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http`, default port 80.
    Http,
    /// `https`, default port 443.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// 80 or 443.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// The WebSocket scheme with the same security: `"ws"` or `"wss"`.
    pub fn ws_str(self) -> &'static str {
        match self {
            Scheme::Http => "ws",
            Scheme::Https => "wss",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = MasqueradeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("http") {
            Ok(Scheme::Http)
        } else if s.eq_ignore_ascii_case("https") {
            Ok(Scheme::Https)
        } else {
            Err(MasqueradeError::InvalidScheme(s.to_owned()))
        }
    }
}

/// Everything that can fail here.
#[derive(Debug, thiserror::Error)]
pub enum MasqueradeError {
    /// A host given to [`Masquerade::new`] is not a plain `host[:port]`.
    #[error("invalid {which} host {host:?}: {reason}")]
    InvalidHost {
        /// `"original"` or `"public"`.
        which: &'static str,
        /// The value as given.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Not `http` or `https`.
    #[error("invalid scheme {0:?}: expected \"http\" or \"https\"")]
    InvalidScheme(String),
    /// The response body announced gzip but is not valid gzip (corrupt, truncated, bad CRC).
    #[error("rewriting a gzip response body failed: {0}")]
    Gzip(#[source] std::io::Error),
    /// `push` or `finish` after `finish`.
    #[error("body rewriter used after finish")]
    Finished,
}

/// The app's usual origin and the instance's public one, and whether text bodies are rewritten.
///
/// Cheap to clone (the compiled patterns are shared). Hosts are canonical: lowercased, and a port equal to the
/// scheme's default dropped (`cloud.example.org:443` with https is `cloud.example.org`).
#[derive(Clone)]
pub struct Masquerade {
    original_host: String,
    original_scheme: Scheme,
    public_host: String,
    public_scheme: Scheme,
    bodies: bool,
    /// `scheme://host` of each side, as browsers write it in `Origin`.
    original_origin: String,
    public_origin: String,
    matcher: Arc<Matcher>,
}

impl fmt::Debug for Masquerade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masquerade")
            .field("original", &self.original_origin)
            .field("public", &self.public_origin)
            .field("bodies", &self.bodies)
            .finish()
    }
}

impl Masquerade {
    /// Masquerade `original_scheme://original_host` (what the app expects) as
    /// `public_scheme://public_host` (what the browser uses). Hosts are `host` or `host:port` (IPv6 in
    /// brackets), without scheme, path or userinfo. Body rewriting is on; see [`Masquerade::with_bodies`].
    pub fn new(
        original_host: &str,
        original_scheme: Scheme,
        public_host: &str,
        public_scheme: Scheme,
    ) -> Result<Self, MasqueradeError> {
        let original_host = canonical_host("original", original_host, original_scheme)?;
        let public_host = canonical_host("public", public_host, public_scheme)?;
        let matcher = Matcher::new(&original_host, original_scheme, &public_host, public_scheme);
        Ok(Masquerade {
            original_origin: format!("{original_scheme}://{original_host}"),
            public_origin: format!("{public_scheme}://{public_host}"),
            original_host,
            original_scheme,
            public_host,
            public_scheme,
            bodies: true,
            matcher: Arc::new(matcher),
        })
    }

    /// Turn text body rewriting on (the default) or off; headers are rewritten either way.
    pub fn with_bodies(mut self, bodies: bool) -> Self {
        self.bodies = bodies;
        self
    }

    /// The app's host as it expects it in `Host` (canonical, with a non-default port if any).
    pub fn original_host(&self) -> &str {
        &self.original_host
    }

    /// The app's usual scheme.
    pub fn original_scheme(&self) -> Scheme {
        self.original_scheme
    }

    /// The instance's public host (canonical, with a non-default port if any).
    pub fn public_host(&self) -> &str {
        &self.public_host
    }

    /// The scheme the browser uses for the instance.
    pub fn public_scheme(&self) -> Scheme {
        self.public_scheme
    }

    /// Whether text bodies are rewritten.
    pub fn bodies(&self) -> bool {
        self.bodies
    }

    /// Rewrite every occurrence of the original origin/host in `text` (the same rules as for bodies).
    /// `None` when nothing matched.
    pub fn rewrite_text(&self, text: &[u8]) -> Option<Vec<u8>> {
        self.matcher.rewrite_all(text)
    }
}

/// Split `host[:port]` into the host and the port, if any. IPv6 literals keep their brackets.
pub(crate) fn split_port(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        match host.find(']') {
            Some(end) => match host[end + 1..].strip_prefix(':') {
                Some(port) => (&host[..=end], Some(port)),
                None => (&host[..=end], None),
            },
            None => (host, None),
        }
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) => (h, Some(port)),
            None => (host, None),
        }
    }
}

fn canonical_host(
    which: &'static str,
    raw: &str,
    scheme: Scheme,
) -> Result<String, MasqueradeError> {
    let invalid = |reason| MasqueradeError::InvalidHost {
        which,
        host: raw.to_owned(),
        reason,
    };
    let lower = raw.trim().to_ascii_lowercase();
    if lower.contains("://") || lower.contains('/') {
        return Err(invalid("give the host only, without scheme or path"));
    }
    let (host, port) = split_port(&lower);
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    let valid_byte = |b: u8| b.is_ascii_alphanumeric() || b"-._".contains(&b);
    let valid = if let Some(inner) = host.strip_prefix('[') {
        inner.strip_suffix(']').is_some_and(|a| {
            !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_hexdigit() || b":.".contains(&b))
        })
    } else {
        host.bytes().all(valid_byte) && !host.starts_with('.') && !host.contains("..")
    };
    if !valid {
        return Err(invalid("not a DNS name or IP address"));
    }
    match port {
        None => Ok(host.to_owned()),
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(invalid("port is not a number from 1 to 65535")),
            Ok(n) if n == scheme.default_port() => Ok(host.to_owned()),
            Ok(n) => Ok(format!("{host}:{n}")),
        },
    }
}
