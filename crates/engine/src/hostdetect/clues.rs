//! Clues: every place in one response where the app names an origin — a redirect (`Location`, `Refresh`,
//! `<meta http-equiv=refresh>`), a cookie's `Domain`, `<base href>`, a form's `action`, links (`<a>`,
//! `<link rel=canonical>`, `Link:`, `og:url`) and assets (`src`, stylesheets, CSP sources). Pure: headers and
//! body bytes in, [`Clue`]s out. Relative URLs name no origin and give no clue.
//!
//! HTML is read with html5gum (a WHATWG tokenizer: entities, unquoted attributes and `<script>` raw text are
//! handled as browsers do), up to [`MAX_HTML`] bytes.

use html5gum::{Token, Tokenizer};
use http::header::{
    HeaderMap, CONTENT_LOCATION, CONTENT_SECURITY_POLICY, LINK, LOCATION, SET_COOKIE,
};

pub use super::origin::Origin;

/// How much of a page is read for links.
pub const MAX_HTML: usize = 2 << 20;

/// What kind of place an origin was named in, weakest first: the order is the rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClueKind {
    /// A script, image, stylesheet, frame, preload, or a CSP source: what the page loads.
    Asset,
    /// A link the user may follow: `<a href>`, `<link rel=canonical|alternate|…>`, `Link:`, `og:url`.
    Link,
    /// A cookie's `Domain` (a domain, not an origin: the scheme is a guess from `Secure`).
    Cookie,
    /// A form's `action` (or `formaction`): where the page sends what the user types.
    Form,
    /// `<base href>`: every relative link of the page resolves against it.
    Base,
    /// nginx serves the app only under this name (`server_name`): the instance's own hostname reaches
    /// another site.
    VirtualHost,
    /// Where the app sends the browser: `Location` of a redirect, `Refresh`, `<meta http-equiv=refresh>`,
    /// or the return address (`redirect_uri=`, `return_to=` …) in a redirect to a login provider.
    Redirect,
}

impl ClueKind {
    pub fn describe(self) -> &'static str {
        match self {
            ClueKind::Asset => "loads assets from",
            ClueKind::Link => "links to",
            ClueKind::Cookie => "sets cookies for",
            ClueKind::Form => "sends its forms to",
            ClueKind::Base => "resolves its links against",
            ClueKind::VirtualHost => "is served only as",
            ClueKind::Redirect => "redirects to",
        }
    }
}

/// One origin named somewhere in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clue {
    pub origin: Origin,
    pub kind: ClueKind,
    /// Where: `Location of GET /`, `<form action> in GET /login`.
    pub place: String,
}

/// The clues in one response's headers. `path` names the request (`/`, `/index.php`) in places; `https`
/// is the scheme the request was made for (for protocol-relative URLs).
pub fn from_headers(path: &str, status: u16, headers: &HeaderMap, https: bool) -> Vec<Clue> {
    let mut out = Vec::new();
    let mut push = |url: &str, kind, what: &str| {
        if let Some(origin) = Origin::of_url(url, https) {
            out.push(Clue {
                origin,
                kind,
                place: format!("{what} of GET {path}"),
            });
        }
    };
    let text = |v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    if (300..400).contains(&status) {
        for v in headers.get_all(LOCATION) {
            push(&text(v), ClueKind::Redirect, "Location");
        }
    }
    for v in headers.get_all(CONTENT_LOCATION) {
        push(&text(v), ClueKind::Link, "Content-Location");
    }
    for v in headers.get_all("refresh") {
        if let Some(url) = refresh_url(&text(v)) {
            push(&url, ClueKind::Redirect, "Refresh");
        }
    }
    for v in headers.get_all(LINK) {
        for (url, rel) in link_header(&text(v)) {
            push(&url, rel_kind(&rel), "Link");
        }
    }
    for name in [
        CONTENT_SECURITY_POLICY.as_str(),
        "content-security-policy-report-only",
    ] {
        for v in headers.get_all(name) {
            for src in csp_sources(&text(v), https) {
                out.push(Clue {
                    origin: src,
                    kind: ClueKind::Asset,
                    place: format!("Content-Security-Policy of GET {path}"),
                });
            }
        }
    }
    for v in headers.get_all(SET_COOKIE) {
        if let Some(origin) = cookie_domain(&text(v)) {
            out.push(Clue {
                origin,
                kind: ClueKind::Cookie,
                place: format!("Set-Cookie of GET {path}"),
            });
        }
    }
    let returns: Vec<Clue> = out
        .iter()
        .filter(|c| c.kind == ClueKind::Redirect)
        .flat_map(|c| return_addresses(headers, c, https))
        .collect();
    if !returns.is_empty() {
        // The redirect goes to a login provider that sends the browser back to the return address: the
        // provider is not the app.
        for c in out.iter_mut().filter(|c| c.kind == ClueKind::Redirect) {
            c.kind = ClueKind::Link;
            c.place = format!("Location (a login provider) of GET {path}");
        }
    }
    out.extend(returns);
    out
}

/// `5; url=https://x/` (also `URL='…'`, or a bare URL) → the URL.
pub fn refresh_url(v: &str) -> Option<String> {
    let lower = v.to_ascii_lowercase();
    let at = lower.find("url")?;
    let rest = v[at + 3..].trim_start();
    let rest = rest.strip_prefix('=')?.trim();
    Some(rest.trim_matches(['\'', '"']).to_string())
}

/// `<url>; rel="x y", <url2>; rel=z` → (url, rel).
fn link_header(v: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = v;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let url = rest[open + 1..open + close].to_string();
        let after = &rest[open + close + 1..];
        let params = &after[..after.find('<').unwrap_or(after.len())];
        let rel = params
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("rel"))
            .map(|(_, r)| r.trim().trim_matches('"').to_ascii_lowercase())
            .unwrap_or_default();
        out.push((url, rel));
        rest = after;
    }
    out
}

/// Links a page loads as part of itself are assets; others (canonical, alternate, EditURI…) are links.
fn rel_kind(rel: &str) -> ClueKind {
    const ASSET: &[&str] = &[
        "stylesheet",
        "icon",
        "apple-touch-icon",
        "mask-icon",
        "preload",
        "modulepreload",
        "prefetch",
        "preconnect",
        "dns-prefetch",
        "manifest",
    ];
    if rel.split_whitespace().any(|r| ASSET.contains(&r)) {
        ClueKind::Asset
    } else {
        ClueKind::Link
    }
}

/// The hosts a CSP allows: `https://x`, `x.example.org`, `x:8443`; not keywords, schemes or wildcards.
fn csp_sources(v: &str, https: bool) -> Vec<Origin> {
    v.split([';', ','])
        .flat_map(|d| d.split_ascii_whitespace().skip(1))
        .filter(|t| !t.starts_with('\'') && !t.ends_with(':') && !t.contains('*'))
        .filter_map(|t| {
            Origin::of_url(t, https).or_else(|| {
                let auth = t.split('/').next().unwrap_or(t);
                auth.contains('.')
                    .then(|| Origin::of_authority(auth, https))
                    .flatten()
            })
        })
        .collect()
}

/// The `Domain` of a `Set-Cookie`, as an origin (https when `Secure`).
fn cookie_domain(v: &str) -> Option<Origin> {
    let mut attrs = v.split(';').skip(1).map(str::trim);
    let secure = v
        .split(';')
        .skip(1)
        .any(|a| a.trim().eq_ignore_ascii_case("secure"));
    let domain = attrs.find_map(|a| {
        let (k, val) = a.split_once('=')?;
        k.trim().eq_ignore_ascii_case("domain").then(|| val.trim())
    })?;
    Origin::of_authority(domain.trim_start_matches('.'), secure)
}

/// Query parameters that hold where a login provider sends the browser back to.
const RETURN_PARAMS: &[&str] = &[
    "redirect_uri",
    "redirect_url",
    "redirect",
    "return_to",
    "returnto",
    "return_url",
    "returnurl",
    "service",
    "continue",
    "next",
    "relaystate",
    "callback",
    "url",
];

/// A redirect to a login provider carries the app's own address (`…/authorize?redirect_uri=https%3A%2F%2F
/// wiki.example.org%2F`): that address is where the app believes it lives.
fn return_addresses(headers: &HeaderMap, redirect: &Clue, https: bool) -> Vec<Clue> {
    let Some(location) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) else {
        return Vec::new();
    };
    if Origin::of_url(location, https).as_ref() != Some(&redirect.origin) {
        return Vec::new();
    }
    let query = location.split_once('?').map_or("", |(_, q)| q);
    let query = query.split('#').next().unwrap_or("");
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| RETURN_PARAMS.contains(&k.to_ascii_lowercase().as_str()))
        .filter_map(|(k, v)| {
            let origin = Origin::of_url(&percent_decode(v), https)?;
            (origin != redirect.origin).then(|| Clue {
                origin,
                kind: ClueKind::Redirect,
                place: format!("{k}= in the redirect to {}", redirect.origin),
            })
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The clues in an HTML page (the first [`MAX_HTML`] bytes).
pub fn from_html(path: &str, body: &[u8], https: bool) -> Vec<Clue> {
    let body = &body[..body.len().min(MAX_HTML)];
    let mut emitter = html5gum::DefaultEmitter::default();
    emitter.naively_switch_states(true);
    let mut out = Vec::new();
    for token in Tokenizer::new_with_emitter(body, emitter).flatten() {
        let Token::StartTag(tag) = token else {
            continue;
        };
        let attr = |name: &str| {
            tag.attributes
                .get(name.as_bytes())
                .map(|v| String::from_utf8_lossy(&v.value).into_owned())
        };
        let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
        let found: Vec<(String, ClueKind, &str)> = match name.as_str() {
            "base" => attr("href")
                .map(|u| (u, ClueKind::Base, "href"))
                .into_iter()
                .collect(),
            "a" | "area" => attr("href")
                .map(|u| (u, ClueKind::Link, "href"))
                .into_iter()
                .collect(),
            "link" => attr("href")
                .map(|u| {
                    (
                        u,
                        rel_kind(&attr("rel").unwrap_or_default().to_ascii_lowercase()),
                        "href",
                    )
                })
                .into_iter()
                .collect(),
            "form" => attr("action")
                .map(|u| (u, ClueKind::Form, "action"))
                .into_iter()
                .collect(),
            "button" | "input" => attr("formaction")
                .map(|u| (u, ClueKind::Form, "formaction"))
                .into_iter()
                .collect(),
            "meta" => meta(&attr),
            "script" | "img" | "iframe" | "frame" | "source" | "video" | "audio" | "embed"
            | "track" => attr("src")
                .map(|u| (u, ClueKind::Asset, "src"))
                .into_iter()
                .collect(),
            "object" => attr("data")
                .map(|u| (u, ClueKind::Asset, "data"))
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        for (url, kind, what) in found {
            if let Some(origin) = Origin::of_url(&url, https) {
                out.push(Clue {
                    origin,
                    kind,
                    place: format!("<{name} {what}> in GET {path}"),
                });
            }
        }
    }
    out
}

/// `<meta http-equiv=refresh content="0; url=…">` and `<meta property=og:url content=…>`.
fn meta(attr: &dyn Fn(&str) -> Option<String>) -> Vec<(String, ClueKind, &'static str)> {
    let content = attr("content").unwrap_or_default();
    let equiv = attr("http-equiv").unwrap_or_default();
    let property = attr("property").unwrap_or_default();
    if equiv.eq_ignore_ascii_case("refresh") {
        return refresh_url(&content)
            .map(|u| (u, ClueKind::Redirect, "http-equiv=refresh"))
            .into_iter()
            .collect();
    }
    if property.eq_ignore_ascii_case("og:url") {
        return vec![(content, ClueKind::Link, "property=og:url")];
    }
    Vec::new()
}
