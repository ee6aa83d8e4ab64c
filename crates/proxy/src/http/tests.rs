//! Unit tests of the pure request/response header logic in `http.rs`.

use super::*;
use http_body_util::BodyExt;

fn hv(s: &'static str) -> HeaderValue {
    HeaderValue::from_static(s)
}

#[test]
fn normalize_host_strips_port_dot_and_case() {
    let ok = |raw: &str| normalize_host(raw).map(Cow::into_owned);
    assert_eq!(ok("app.example"), Some("app.example".into()));
    assert!(matches!(
        normalize_host("app.example"),
        Some(Cow::Borrowed(_))
    ));
    assert_eq!(ok("App.Example:8080"), Some("app.example".into()));
    assert_eq!(ok("app.example."), Some("app.example".into()));
    assert_eq!(ok("APP.example.:443"), Some("app.example".into()));
    assert_eq!(ok("app.example:"), Some("app.example".into()));
    assert_eq!(ok("127.0.0.1:80"), Some("127.0.0.1".into()));
    assert_eq!(ok("[::1]:8080"), Some("[::1]".into()));
    assert_eq!(ok("[FE80::1]"), Some("[fe80::1]".into()));
    assert_eq!(ok("under_score.local"), Some("under_score.local".into()));
}

#[test]
fn normalize_host_rejects_malformed() {
    for bad in [
        "",
        ".",
        ":80",
        "a:b",
        "a:123456",
        "::1",
        "a b",
        "a/b",
        "user@host",
        "[]",
        "[zz::1]",
        "[::1]x",
        "[::1]:x",
        "[::1",
    ] {
        assert_eq!(normalize_host(bad), None, "{bad:?}");
    }
}

#[test]
fn strip_hop_by_hop_removes_listed_and_named_headers() {
    let mut h = HeaderMap::new();
    h.insert(header::CONNECTION, hv("keep-alive, X-Custom"));
    h.append(header::CONNECTION, hv("x-other"));
    h.insert("x-custom", hv("1"));
    h.insert("x-other", hv("1"));
    h.insert("keep-alive", hv("timeout=5"));
    h.insert("proxy-connection", hv("keep-alive"));
    h.insert(header::TE, hv("trailers"));
    h.insert(header::TRAILER, hv("x-checksum"));
    h.insert(header::TRANSFER_ENCODING, hv("chunked"));
    h.insert(header::UPGRADE, hv("websocket"));
    h.insert(header::CONTENT_TYPE, hv("text/plain"));
    h.insert(header::CONTENT_LENGTH, hv("3"));
    h.insert("x-kept", hv("yes"));
    strip_hop_by_hop(&mut h, false);
    let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["content-length", "content-type", "x-kept"]);
}

#[test]
fn strip_hop_by_hop_without_connection_header_keeps_end_to_end() {
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT, hv("*/*"));
    h.insert(header::TRANSFER_ENCODING, hv("chunked"));
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h.len(), 1);
    assert_eq!(h[header::ACCEPT], "*/*");
}

#[test]
fn append_forwarded_for_sets_or_appends() {
    let ip = hv("10.1.2.3");
    let mut h = HeaderMap::new();
    append_forwarded_for(&mut h, &ip);
    assert_eq!(h[&X_FORWARDED_FOR], "10.1.2.3");

    let mut h = HeaderMap::new();
    h.insert(&X_FORWARDED_FOR, hv("203.0.113.7"));
    append_forwarded_for(&mut h, &ip);
    assert_eq!(h[&X_FORWARDED_FOR], "203.0.113.7, 10.1.2.3");

    let mut h = HeaderMap::new();
    h.append(&X_FORWARDED_FOR, hv("a"));
    h.append(&X_FORWARDED_FOR, hv("b, c"));
    append_forwarded_for(&mut h, &ip);
    let all: Vec<_> = h.get_all(&X_FORWARDED_FOR).iter().collect();
    assert_eq!(all, [&hv("a, b, c, 10.1.2.3")]);
}

#[test]
fn prepare_request_headers_sets_forwarding_and_host() {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, hv("App.Example:8080"));
    h.insert(&X_FORWARDED_PROTO, hv("spoofed"));
    h.insert(&X_FORWARDED_HOST, hv("spoofed"));
    h.insert(header::CONNECTION, hv("close"));
    h.insert(header::COOKIE, hv("a=b"));
    prepare_request_headers(
        &mut h,
        hv("App.Example:8080"),
        &hv("127.0.0.1"),
        &hv("https"),
        false,
    );
    assert_eq!(h[header::HOST], "App.Example:8080");
    assert_eq!(h[&X_FORWARDED_HOST], "App.Example:8080");
    assert_eq!(h[&X_FORWARDED_PROTO], "https");
    assert_eq!(h[&X_FORWARDED_FOR], "127.0.0.1");
    assert_eq!(h[header::COOKIE], "a=b");
    assert!(!h.contains_key(header::CONNECTION));
}

#[test]
fn prepare_request_headers_keeps_upgrade_when_asked() {
    let mut h = HeaderMap::new();
    h.insert(header::CONNECTION, hv("keep-alive, Upgrade"));
    h.insert(header::UPGRADE, hv("websocket"));
    prepare_request_headers(&mut h, hv("x"), &hv("::1"), &hv("http"), true);
    assert_eq!(h[header::CONNECTION], "upgrade");
    assert_eq!(h[header::UPGRADE], "websocket");
}

#[test]
fn backend_uri_is_origin_path_and_query() {
    let cases = [
        ("/", "/"),
        ("/a/b?c=1&d", "/a/b?c=1&d"),
        ("https://Some.Host:8443/x?y=z", "/x?y=z"),
        ("http://some.host", "/"),
    ];
    for (input, want) in cases {
        let uri: Uri = input.parse().unwrap();
        assert_eq!(backend_uri(&uri).unwrap().to_string(), want, "{input}");
    }
}

#[test]
fn request_host_prefers_authority_over_host_header() {
    let req = Request::builder()
        .uri("/p")
        .header(header::HOST, "a.example")
        .body(())
        .unwrap();
    assert_eq!(request_host(&req).unwrap(), "a.example");

    let req = Request::builder()
        .uri("http://b.example:81/p")
        .header(header::HOST, "a.example")
        .body(())
        .unwrap();
    assert_eq!(request_host(&req).unwrap(), "b.example:81");

    let req = Request::builder().uri("/p").body(()).unwrap();
    assert!(request_host(&req).is_none());
}

#[test]
fn forwarded_proto_is_validated() {
    assert_eq!(forwarded_proto_value("http").unwrap(), "http");
    assert_eq!(forwarded_proto_value("https").unwrap(), "https");
    for bad in ["", "1http", "ht tp", "http\n", "h/2"] {
        let err = forwarded_proto_value(bad).unwrap_err();
        assert!(err.to_string().contains("forwarded_proto"));
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidInput);
    }
}

#[test]
fn ip_header_values() {
    assert_eq!(ip_header_value("127.0.0.1".parse().unwrap()), "127.0.0.1");
    assert_eq!(ip_header_value("::1".parse().unwrap()), "::1");
    assert_eq!(
        ip_header_value("::ffff:192.0.2.1".parse().unwrap()),
        "192.0.2.1"
    );
}

#[tokio::test]
async fn plain_responses_are_generic_text() {
    let resp = plain(StatusCode::NOT_FOUND, "no such instance\n");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"no such instance\n");
}

#[test]
fn error_chain_shows_sources() {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] io::Error);
    let e = Outer(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
    assert_eq!(ErrorChain(&e).to_string(), "outer: refused");
}
