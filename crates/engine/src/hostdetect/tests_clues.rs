//! Tier-0 tests of the pinned-hostname check, part 1: origins, and where responses and pages name them.

use http::header::HeaderMap;
use http::HeaderValue;

use super::clues::{self, ClueKind, Origin};
use super::fetch::{next_path, Fetched};

fn o(url: &str) -> Origin {
    Origin::of_url(url, false).unwrap_or_else(|| panic!("no origin in {url}"))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn page(path: &str, status: u16, h: &[(&str, &str)], html: &str) -> Fetched {
    Fetched {
        path: path.into(),
        status,
        headers: headers(h),
        html: html.as_bytes().to_vec(),
    }
}

#[test]
fn origins_of_urls() {
    assert_eq!(
        o("https://Wiki.Live.Example/x?y").to_string(),
        "https://wiki.live.example"
    );
    assert_eq!(
        o("https://wiki.live.example:443/").to_string(),
        "https://wiki.live.example"
    );
    assert_eq!(
        o("http://wiki.live.example:8080").to_string(),
        "http://wiki.live.example:8080"
    );
    assert_eq!(
        o("http://user:pw@h.example:81/").to_string(),
        "http://h.example:81"
    );
    assert_eq!(
        o("wss://chat.example.org/ws").to_string(),
        "https://chat.example.org"
    );
    assert_eq!(
        o("http://[2001:db8::1]:8000/").to_string(),
        "http://[2001:db8::1]:8000"
    );
    assert_eq!(
        Origin::of_url("//cdn.example.net/a.js", true)
            .unwrap()
            .to_string(),
        "https://cdn.example.net"
    );
    assert_eq!(
        o("  https://wiki.live.example./  ").host,
        "wiki.live.example"
    );
    for relative in [
        "/index.php",
        "doku.php?id=x",
        "?a=1",
        "#top",
        "mailto:a@b.example",
        "javascript:void(0)",
        "data:x",
        "https://",
        "http://bad host/",
    ] {
        assert_eq!(Origin::of_url(relative, false), None, "{relative}");
    }
}

#[test]
fn relative_redirects_are_followed_inside_and_others_end_the_chain() {
    let inside = o("http://wiki-old.wayback.example:8080");
    let r = |loc: &str| page("/dir/a", 302, &[("location", loc)], "");
    assert_eq!(
        next_path(&r("/login"), "/dir/a", &inside).as_deref(),
        Some("/login")
    );
    assert_eq!(
        next_path(&r("b?x=1"), "/dir/a", &inside).as_deref(),
        Some("/dir/b?x=1")
    );
    assert_eq!(
        next_path(
            &r("http://wiki-old.wayback.example:8080/p#frag"),
            "/",
            &inside
        )
        .as_deref(),
        Some("/p")
    );
    assert_eq!(
        next_path(&r("http://wiki-old.wayback.example:8080?q"), "/", &inside).as_deref(),
        Some("/?q")
    );
    assert_eq!(
        next_path(&r("https://live.example.org/"), "/", &inside),
        None
    );
    assert_eq!(
        next_path(&r("http://wiki-old.wayback.example/"), "/", &inside),
        None,
        "another port"
    );
    let ok = page("/", 200, &[("location", "/x")], "");
    assert_eq!(next_path(&ok, "/", &inside), None, "not a redirect");
}

#[test]
fn links_forms_and_base_in_the_page() {
    let html = r#"<!doctype html><html><head>
        <base href="https://wiki.live.example/">
        <link rel="stylesheet" href="https://wiki.live.example/style.css">
        <link rel="alternate" type="application/rss+xml" href="https://wiki.live.example/feed.php">
        <meta property="og:url" content="https://wiki.live.example/start">
        <meta http-equiv="refresh" content="30; URL='https://wiki.live.example/start'">
        </head><body>
        <form action="https://wiki.live.example/doku.php?do=login&amp;sectok=1" method=post>
        <button formaction=https://wiki.live.example/x>go</button></form>
        <img src="https://wiki.live.example/logo.png"><a href=/relative>r</a>
        </body></html>"#;
    let c = clues::from_html("/", html.as_bytes(), false);
    let kinds: Vec<(ClueKind, &str)> = c.iter().map(|c| (c.kind, c.place.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (ClueKind::Base, "<base href> in GET /"),
            (ClueKind::Asset, "<link href> in GET /"),
            (ClueKind::Link, "<link href> in GET /"),
            (ClueKind::Link, "<meta property=og:url> in GET /"),
            (ClueKind::Redirect, "<meta http-equiv=refresh> in GET /"),
            (ClueKind::Form, "<form action> in GET /"),
            (ClueKind::Form, "<button formaction> in GET /"),
            (ClueKind::Asset, "<img src> in GET /"),
        ]
    );
    assert!(c
        .iter()
        .all(|c| c.origin.to_string() == "https://wiki.live.example"));
}

#[test]
fn script_text_and_comments_are_not_tags() {
    let html = r#"<script>var s = '<a href="https://in-script.example/">';</script>
        <!-- <a href="https://in-comment.example/"> -->
        <textarea><a href="https://in-textarea.example/"></textarea>
        <a href="https://real.example.net/">x</a>"#;
    let c = clues::from_html("/", html.as_bytes(), false);
    let hosts: Vec<&str> = c.iter().map(|c| c.origin.host.as_str()).collect();
    assert_eq!(hosts, ["real.example.net"]);
}

#[test]
fn headers_name_origins() {
    let h = headers(&[
        ("location", "https://live.example.org/home"),
        ("refresh", "0; url=https://refresh.example.org/"),
        ("link", "<https://live.example.org/api>; rel=\"https://api.w.org/\", <https://static.example.net/a.css>; rel=preload"),
        ("content-security-policy", "default-src 'self'; img-src https: data: *.example.com media.example.com; connect-src wss://live.example.org"),
        ("content-location", "/relative"),
    ]);
    let c = clues::from_headers("/", 302, &h, false);
    let got: Vec<(ClueKind, String)> = c.iter().map(|c| (c.kind, c.origin.to_string())).collect();
    assert_eq!(
        got,
        [
            (ClueKind::Redirect, "https://live.example.org".to_string()),
            (ClueKind::Redirect, "https://refresh.example.org".into()),
            (ClueKind::Link, "https://live.example.org".into()),
            (ClueKind::Asset, "https://static.example.net".into()),
            (ClueKind::Asset, "http://media.example.com".into()),
            (ClueKind::Asset, "https://live.example.org".into()),
        ]
    );
    // Location is a redirect only in a 3xx.
    let c = clues::from_headers(
        "/",
        201,
        &headers(&[("location", "https://x.example/")]),
        false,
    );
    assert!(c.is_empty(), "{c:?}");
}
