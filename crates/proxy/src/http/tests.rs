//! Unit tests of the pure request/response header logic in `http.rs`.

use super::*;
use http_body_util::BodyExt;
use std::borrow::Cow;

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

fn fwd<'a>(client_ip: &'a HeaderValue, proto: &'a HeaderValue, trusted: bool) -> Forwarding<'a> {
    Forwarding {
        client_ip,
        proto,
        trusted,
    }
}

#[test]
fn prepare_request_headers_sets_forwarding_and_host() {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, hv("App.Example:8080"));
    h.insert(&X_FORWARDED_PROTO, hv("spoofed"));
    h.insert(&X_FORWARDED_HOST, hv("spoofed"));
    h.insert(header::CONNECTION, hv("close"));
    h.insert(header::COOKIE, hv("a=b"));
    let (ip, proto) = (hv("127.0.0.1"), hv("https"));
    prepare_request_headers(
        &mut h,
        hv("App.Example:8080"),
        &fwd(&ip, &proto, false),
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
fn untrusted_clients_cannot_set_forwarding_headers() {
    let mut h = HeaderMap::new();
    h.append(&X_FORWARDED_FOR, hv("10.9.9.9"));
    h.append(&X_FORWARDED_FOR, hv("10.8.8.8, 10.7.7.7"));
    h.insert(&X_FORWARDED_PROTO, hv("https"));
    h.insert(&X_FORWARDED_HOST, hv("admin.internal"));
    h.insert(header::FORWARDED, hv("for=10.9.9.9;proto=https"));
    h.insert(&X_REAL_IP, hv("10.9.9.9"));
    let (ip, proto) = (hv("192.0.2.7"), hv("http"));
    prepare_request_headers(&mut h, hv("app.test"), &fwd(&ip, &proto, false), false);
    let all: Vec<_> = h.get_all(&X_FORWARDED_FOR).iter().collect();
    assert_eq!(all, [&hv("192.0.2.7")]);
    assert_eq!(h[&X_FORWARDED_PROTO], "http");
    assert_eq!(h[&X_FORWARDED_HOST], "app.test");
    assert!(!h.contains_key(header::FORWARDED));
    assert!(!h.contains_key(&X_REAL_IP));
}

#[test]
fn trusted_proxies_extend_the_chain_and_keep_their_headers() {
    let mut h = HeaderMap::new();
    h.insert(&X_FORWARDED_FOR, hv("203.0.113.5"));
    h.insert(&X_FORWARDED_PROTO, hv("https"));
    h.insert(&X_FORWARDED_HOST, hv("public.example"));
    h.insert(header::FORWARDED, hv("for=203.0.113.5"));
    h.insert(&X_REAL_IP, hv("203.0.113.5"));
    let (ip, proto) = (hv("10.0.0.2"), hv("http"));
    prepare_request_headers(&mut h, hv("app.test"), &fwd(&ip, &proto, true), false);
    assert_eq!(h[&X_FORWARDED_FOR], "203.0.113.5, 10.0.0.2");
    assert_eq!(h[&X_FORWARDED_PROTO], "https");
    assert_eq!(h[&X_FORWARDED_HOST], "public.example");
    assert!(!h.contains_key(header::FORWARDED));
    assert!(!h.contains_key(&X_REAL_IP));

    // A trusted proxy that sends none gets ours.
    let mut h = HeaderMap::new();
    prepare_request_headers(&mut h, hv("app.test"), &fwd(&ip, &proto, true), false);
    assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.2");
    assert_eq!(h[&X_FORWARDED_PROTO], "http");
    assert_eq!(h[&X_FORWARDED_HOST], "app.test");
}

#[test]
fn trusted_proxy_networks_match_canonical_addresses() {
    let cfg = ProxyConfig {
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
        ..ProxyConfig::default()
    };
    assert!(cfg.trusts("10.1.2.3".parse().unwrap()));
    assert!(cfg.trusts("::ffff:10.1.2.3".parse().unwrap()));
    assert!(cfg.trusts("fd12::1".parse().unwrap()));
    assert!(!cfg.trusts("192.0.2.1".parse().unwrap()));
    assert!(!ProxyConfig::default().trusts("127.0.0.1".parse().unwrap()));
}

#[test]
fn prepare_request_headers_keeps_upgrade_when_asked() {
    let mut h = HeaderMap::new();
    h.insert(header::CONNECTION, hv("keep-alive, Upgrade"));
    h.insert(header::UPGRADE, hv("websocket"));
    let (ip, proto) = (hv("::1"), hv("http"));
    prepare_request_headers(&mut h, hv("x"), &fwd(&ip, &proto, false), true);
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

fn host_of(uri: &str, hosts: &[&'static str]) -> Result<HeaderValue, &'static str> {
    let mut b = Request::builder().uri(uri);
    for h in hosts {
        b = b.header(header::HOST, *h);
    }
    request_host(&b.body(()).unwrap())
}

#[test]
fn request_host_uses_authority_or_host_header() {
    assert_eq!(host_of("/p", &["a.example"]).unwrap(), "a.example");
    assert_eq!(
        host_of("http://b.example:81/p", &[]).unwrap(),
        "b.example:81"
    );
    // A Host that names the same host as the target is fine (case, trailing dot, a port on one side only).
    for host in ["b.example:81", "B.Example:81", "b.example.", "b.example"] {
        assert_eq!(
            host_of("http://b.example:81/p", &[host]).unwrap(),
            "b.example:81",
            "{host}"
        );
    }
    assert_eq!(
        host_of("/p", &[]).unwrap_err(),
        "bad request: missing Host\n"
    );
}

#[test]
fn duplicate_or_conflicting_host_is_refused() {
    let dup = host_of("/p", &["a.example", "a.example"]).unwrap_err();
    assert_eq!(dup, "bad request: more than one Host\n");
    let dup = host_of("/p", &["a.example", "b.example"]).unwrap_err();
    assert_eq!(dup, "bad request: more than one Host\n");
    for host in ["a.example", "b.example:82", "[::1]:81", "b.example:x"] {
        let err = host_of("http://b.example:81/p", &[host]).unwrap_err();
        assert_eq!(
            err, "bad request: Host does not match the request target\n",
            "{host}"
        );
    }
    assert_eq!(
        host_of("http://[::1]:81/p", &["[::1]"]).unwrap(),
        "[::1]:81"
    );
    assert!(host_of("http://[::1]:81/p", &["[::2]:81"]).is_err());
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
