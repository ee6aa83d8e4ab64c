//! Request and response header rewriting.
//!
//! Request side (browser → app): `Host` becomes the original host; `Origin`, `Referer` and WebDAV's
//! `Destination` have the public origin swapped for the original one; `X-Forwarded-Host/-Proto/-Port`, when
//! present, name the original side; cookies renamed on the way out (below) get their `__Host-`/`__Secure-`
//! names back; and `Accept-Encoding` is narrowed to gzip so bodies stay rewritable.
//!
//! Response side (app → browser): URL-bearing headers (`Location`, `Content-Location`, `Refresh`, `Link`,
//! `Access-Control-Allow-Origin`, `Content-Security-Policy[-Report-Only]`) go through the text patterns of
//! `matcher.rs`. `Set-Cookie`: a `Domain` equal to the original host or one of its parent domains becomes the
//! public host. When the public side is plain http, cookies must not need https or the browser drops them:
//! `Secure` and `Partitioned` are removed, `SameSite=None` becomes `SameSite=Lax`, and `__Host-X`/`__Secure-X`
//! are renamed `wb-host--X`/`wb-secure--X` (and back on requests); the CSP loses `upgrade-insecure-requests`
//! and `block-all-mixed-content`.

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};

use crate::{split_port, Masquerade, Scheme};

/// Response headers whose values are rewritten with the text patterns.
const URL_HEADERS: [&str; 7] = [
    "location",
    "content-location",
    "refresh",
    "link",
    "access-control-allow-origin",
    "content-security-policy",
    "content-security-policy-report-only",
];

/// Cookie name prefixes browsers only accept over https, and what they are renamed to over http.
const COOKIE_PREFIXES: [(&str, &str); 2] = [("__Host-", "wb-host--"), ("__Secure-", "wb-secure--")];

impl Masquerade {
    /// Rewrite a request's headers before it goes to the app. Call it after the proxy has set its own
    /// `X-Forwarded-*` headers; the request URI should be origin-form (the app sees the host in `Host`).
    pub fn rewrite_request_headers(&self, headers: &mut HeaderMap) {
        headers.insert(header::HOST, value(&self.original_host));
        for name in [
            header::ORIGIN,
            header::REFERER,
            HeaderName::from_static("destination"),
        ] {
            for_each_value(headers, name, |v| {
                swap_origin(v.as_bytes(), &self.public_origin, &self.original_origin)
            });
        }
        let (_, port) = split_port(&self.original_host);
        let port = port.map_or_else(
            || self.original_scheme.default_port().to_string(),
            str::to_owned,
        );
        for (name, new) in [
            ("x-forwarded-host", self.original_host.as_str()),
            ("x-forwarded-proto", self.original_scheme.as_str()),
            ("x-forwarded-port", port.as_str()),
        ] {
            if headers.contains_key(name) {
                headers.insert(name, value(new));
            }
        }
        if self.public_scheme == Scheme::Http {
            for_each_value(headers, header::COOKIE, |v| {
                restore_cookie_names(v.as_bytes())
            });
        }
        if self.bodies && headers.contains_key(header::ACCEPT_ENCODING) {
            let gzip = headers
                .get_all(header::ACCEPT_ENCODING)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(accepts_gzip);
            let only = if gzip { "gzip" } else { "identity" };
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(only));
        }
    }

    /// Rewrite a response's headers before it goes to the browser.
    pub fn rewrite_response_headers(&self, headers: &mut HeaderMap) {
        if self.public_scheme == Scheme::Http {
            for name in [
                "content-security-policy",
                "content-security-policy-report-only",
            ] {
                for_each_value(headers, HeaderName::from_static(name), |v| {
                    drop_https_only_directives(v)
                });
            }
        }
        for name in URL_HEADERS {
            for_each_value(headers, HeaderName::from_static(name), |v| {
                self.matcher
                    .rewrite_all(v.as_bytes())
                    .and_then(|b| HeaderValue::from_bytes(&b).ok())
            });
        }
        for_each_value(headers, header::SET_COOKIE, |v| self.rewrite_set_cookie(v));
    }

    /// One `Set-Cookie` value; `None` if unchanged.
    fn rewrite_set_cookie(&self, v: &HeaderValue) -> Option<HeaderValue> {
        let text = v.to_str().ok()?;
        let http = self.public_scheme == Scheme::Http;
        let (original, _) = split_port(&self.original_host);
        let (public, _) = split_port(&self.public_host);
        let mut parts = text.split(';');
        let mut pair = parts.next().unwrap_or("").trim().to_owned();
        let mut changed = false;
        if http {
            for (prefix, renamed) in COOKIE_PREFIXES {
                if pair.len() >= prefix.len() && pair[..prefix.len()].eq_ignore_ascii_case(prefix) {
                    pair = format!("{renamed}{}", &pair[prefix.len()..]);
                    changed = true;
                }
            }
        }
        let mut out = vec![pair];
        for attr in parts {
            let attr = attr.trim();
            let (name, val) = attr.split_once('=').unwrap_or((attr, ""));
            let name = name.trim();
            if name.eq_ignore_ascii_case("domain") {
                let domain = val.trim().trim_start_matches('.').trim_end_matches('.');
                let ours = !domain.is_empty()
                    && (original.eq_ignore_ascii_case(domain)
                        || (original.len() > domain.len()
                            && original.ends_with(&format!(".{}", domain.to_ascii_lowercase()))));
                if ours {
                    changed = true;
                    // A Domain attribute cannot name an IP address; host-only is the same there.
                    if !is_ip_literal(public) {
                        out.push(format!("Domain={public}"));
                    }
                    continue;
                }
            } else if http
                && (name.eq_ignore_ascii_case("secure") || name.eq_ignore_ascii_case("partitioned"))
            {
                changed = true;
                continue;
            } else if http
                && name.eq_ignore_ascii_case("samesite")
                && val.trim().eq_ignore_ascii_case("none")
            {
                changed = true;
                out.push("SameSite=Lax".to_owned());
                continue;
            }
            if !attr.is_empty() {
                out.push(attr.to_owned());
            }
        }
        if !changed {
            return None;
        }
        HeaderValue::from_str(&out.join("; ")).ok()
    }
}

/// Apply `f` to every value of `name`, replacing those for which it returns a new value.
fn for_each_value(
    headers: &mut HeaderMap,
    name: HeaderName,
    mut f: impl FnMut(&HeaderValue) -> Option<HeaderValue>,
) {
    if let Entry::Occupied(mut entry) = headers.entry(name) {
        for v in entry.iter_mut() {
            if let Some(new) = f(v) {
                *v = new;
            }
        }
    }
}

fn value(s: &str) -> HeaderValue {
    // Hosts and schemes were validated in `Masquerade::new`: always visible ASCII.
    HeaderValue::from_str(s).expect("validated host is a valid header value")
}

/// `from` + rest → `to` + rest, when `value` is `from` itself or `from` followed by a path, query or fragment.
fn swap_origin(value: &[u8], from: &str, to: &str) -> Option<HeaderValue> {
    let n = from.len();
    let head = value.get(..n)?;
    if !head.eq_ignore_ascii_case(from.as_bytes()) {
        return None;
    }
    if value.get(n).is_some_and(|b| !b"/?#".contains(b)) {
        return None;
    }
    let mut out = to.as_bytes().to_vec();
    out.extend_from_slice(&value[n..]);
    HeaderValue::from_bytes(&out).ok()
}

/// `wb-host--X=…` → `__Host-X=…` (and `wb-secure--`) in a `Cookie` header value.
fn restore_cookie_names(v: &[u8]) -> Option<HeaderValue> {
    let text = std::str::from_utf8(v).ok()?;
    if !COOKIE_PREFIXES
        .iter()
        .any(|(_, renamed)| text.contains(renamed))
    {
        return None;
    }
    let pairs: Vec<String> = text
        .split(';')
        .map(|pair| {
            let pair = pair.trim();
            COOKIE_PREFIXES
                .iter()
                .find_map(|(prefix, renamed)| {
                    pair.strip_prefix(renamed)
                        .map(|rest| format!("{prefix}{rest}"))
                })
                .unwrap_or_else(|| pair.to_owned())
        })
        .collect();
    HeaderValue::from_str(&pairs.join("; ")).ok()
}

/// Whether one `Accept-Encoding` element accepts gzip (`gzip`, `x-gzip` or `*`, with a non-zero q).
fn accepts_gzip(element: &str) -> bool {
    let mut parts = element.split(';');
    let coding = parts.next().unwrap_or("").trim();
    let named = ["gzip", "x-gzip", "*"]
        .iter()
        .any(|c| coding.eq_ignore_ascii_case(c));
    let zero = parts.any(|p| {
        p.trim().split_once('=').is_some_and(|(k, q)| {
            k.trim().eq_ignore_ascii_case("q") && q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
        })
    });
    named && !zero
}

/// Remove the CSP directives that force https, which an http public side cannot honour.
fn drop_https_only_directives(v: &HeaderValue) -> Option<HeaderValue> {
    let text = v.to_str().ok()?;
    let is_https_only = |d: &str| {
        let name = d.split_whitespace().next().unwrap_or("");
        name.eq_ignore_ascii_case("upgrade-insecure-requests")
            || name.eq_ignore_ascii_case("block-all-mixed-content")
    };
    if !text.split(';').any(is_https_only) {
        return None;
    }
    let kept: Vec<&str> = text
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !is_https_only(d))
        .collect();
    HeaderValue::from_str(&kept.join("; ")).ok()
}

fn is_ip_literal(host: &str) -> bool {
    host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok()
}
