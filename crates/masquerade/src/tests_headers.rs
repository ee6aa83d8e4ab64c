//! Unit tests of request and response header rewriting and of `Masquerade::new`'s validation.

use http::header::{HeaderMap, HeaderValue};

use crate::{Masquerade, MasqueradeError, Scheme};

const PUB: &str = "cloud-old.wayback.example.org:8080";

/// `https://cloud.example.org` served as `http://cloud-old.wayback.example.org:8080`.
fn http_public() -> Masquerade {
    Masquerade::new("cloud.example.org", Scheme::Https, PUB, Scheme::Http).unwrap()
}

/// `https://cloud.example.org` served as `https://cloud-old.wayback.example.org`.
fn https_public() -> Masquerade {
    Masquerade::new(
        "cloud.example.org",
        Scheme::Https,
        "cloud-old.wayback.example.org",
        Scheme::Https,
    )
    .unwrap()
}

fn response(m: &Masquerade, name: &'static str, value: &str) -> String {
    let mut h = HeaderMap::new();
    h.insert(name, HeaderValue::from_str(value).unwrap());
    m.rewrite_response_headers(&mut h);
    h.get(name).unwrap().to_str().unwrap().to_owned()
}

fn request(m: &Masquerade, pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(*name, HeaderValue::from_str(value).unwrap());
    }
    m.rewrite_request_headers(&mut h);
    h
}

fn set_cookie(m: &Masquerade, value: &str) -> String {
    response(m, "set-cookie", value)
}

#[test]
fn location_absolute_both_schemes_and_protocol_relative() {
    let m = http_public();
    let login = format!("http://{PUB}/index.php/login?x=1");
    let cases = [
        (
            "https://cloud.example.org/index.php/login?x=1",
            login.clone(),
        ),
        (
            "http://cloud.example.org/index.php/login?x=1",
            login.clone(),
        ),
        ("HTTPS://Cloud.Example.ORG/index.php/login?x=1", login),
        ("//cloud.example.org/a", format!("//{PUB}/a")),
        ("https://cloud.example.org", format!("http://{PUB}")),
        // An explicit default port is the same origin; another port is another service.
        ("https://cloud.example.org:443/a", format!("http://{PUB}/a")),
        (
            "https://cloud.example.org:8443/a",
            "https://cloud.example.org:8443/a".into(),
        ),
    ];
    for (from, to) in cases {
        assert_eq!(response(&m, "location", from), to, "{from}");
    }
    let s = https_public();
    let out = response(&s, "location", "http://cloud.example.org/a");
    assert_eq!(out, "https://cloud-old.wayback.example.org/a");
}

#[test]
fn location_relative_and_other_hosts_untouched() {
    let m = http_public();
    for v in [
        "/index.php/apps/files",
        "index.php?redirect=/x",
        "https://notcloud.example.org/",
        "https://cloud.example.org.evil.com/",
        "https://www.cloud.example.org/",
        "https://example.org/cloud.example.orgx",
    ] {
        assert_eq!(response(&m, "location", v), v);
    }
}

#[test]
fn content_location_refresh_link_and_cors() {
    let m = http_public();
    assert_eq!(
        response(&m, "content-location", "https://cloud.example.org/f.json"),
        format!("http://{PUB}/f.json")
    );
    assert_eq!(
        response(&m, "refresh", "5; url=https://cloud.example.org/done"),
        format!("5; url=http://{PUB}/done")
    );
    assert_eq!(
        response(&m, "refresh", "0;URL='/relative'"),
        "0;URL='/relative'"
    );
    assert_eq!(
        response(
            &m,
            "link",
            "<https://cloud.example.org/a.css>; rel=preload, </b.js>; rel=preload"
        ),
        format!("<http://{PUB}/a.css>; rel=preload, </b.js>; rel=preload")
    );
    assert_eq!(
        response(
            &m,
            "access-control-allow-origin",
            "https://cloud.example.org"
        ),
        format!("http://{PUB}")
    );
    assert_eq!(response(&m, "access-control-allow-origin", "*"), "*");
    assert_eq!(
        response(&m, "access-control-allow-origin", "https://other.org"),
        "https://other.org"
    );
}

#[test]
fn csp_host_sources_and_https_only_directives() {
    let m = http_public();
    let csp = "default-src 'self'; connect-src 'self' https://cloud.example.org wss://cloud.example.org \
               cloud.example.org; upgrade-insecure-requests; report-uri https://cloud.example.org/csp";
    assert_eq!(
        response(&m, "content-security-policy", csp),
        format!(
            "default-src 'self'; connect-src 'self' http://{PUB} ws://{PUB} {PUB}; report-uri http://{PUB}/csp"
        )
    );
    // Over https the directive is kept.
    let s = https_public();
    let out = response(
        &s,
        "content-security-policy",
        "img-src https://cloud.example.org; upgrade-insecure-requests",
    );
    assert_eq!(
        out,
        "img-src https://cloud-old.wayback.example.org; upgrade-insecure-requests"
    );
}

#[test]
fn set_cookie_domain_exact_dot_and_parent() {
    let m = https_public();
    let p = "cloud-old.wayback.example.org";
    assert_eq!(
        set_cookie(&m, "a=1; Domain=cloud.example.org; Path=/"),
        format!("a=1; Domain={p}; Path=/")
    );
    assert_eq!(
        set_cookie(&m, "a=1; domain=.Cloud.Example.org"),
        format!("a=1; Domain={p}")
    );
    assert_eq!(
        set_cookie(&m, "a=1; Domain=.example.org; Secure"),
        format!("a=1; Domain={p}; Secure")
    );
    assert_eq!(
        set_cookie(&m, "a=1; Domain=example.org; HttpOnly"),
        format!("a=1; Domain={p}; HttpOnly")
    );
    // Other domains (and lookalikes) untouched, as is a cookie without Domain.
    for v in [
        "a=1; Domain=other.org; Secure",
        "a=1; Domain=notcloud.example.org",
        "a=1; Domain=ample.org",
        "a=1; Path=/; Secure; HttpOnly; SameSite=None",
    ] {
        assert_eq!(set_cookie(&m, v), v);
    }
    // The public port is not part of a cookie domain.
    assert_eq!(
        set_cookie(&http_public(), "a=1; Domain=cloud.example.org"),
        "a=1; Domain=cloud-old.wayback.example.org"
    );
}

#[test]
fn set_cookie_secure_dropped_only_for_http_public() {
    let m = http_public();
    assert_eq!(
        set_cookie(&m, "oc_session=abc; path=/; secure; HttpOnly; SameSite=Lax"),
        "oc_session=abc; path=/; HttpOnly; SameSite=Lax"
    );
    assert_eq!(
        set_cookie(&m, "a=1; Secure; SameSite=None; Partitioned"),
        "a=1; SameSite=Lax"
    );
    let s = https_public();
    assert_eq!(
        set_cookie(&s, "a=1; Secure; SameSite=None"),
        "a=1; Secure; SameSite=None"
    );
}

#[test]
fn prefixed_cookies_renamed_over_http_and_restored_on_requests() {
    let m = http_public();
    assert_eq!(
        set_cookie(
            &m,
            "__Host-nc_sameSiteCookielax=true; path=/; httponly; secure; samesite=lax"
        ),
        "wb-host--nc_sameSiteCookielax=true; path=/; httponly; samesite=lax"
    );
    assert_eq!(set_cookie(&m, "__Secure-id=7; Secure"), "wb-secure--id=7");
    let h = request(
        &m,
        &[
            (
                "cookie",
                "oc_session=abc; wb-host--nc_sameSiteCookielax=true",
            ),
            ("cookie", "wb-secure--id=7"),
        ],
    );
    let cookies: Vec<&str> = h
        .get_all("cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        cookies,
        [
            "oc_session=abc; __Host-nc_sameSiteCookielax=true",
            "__Secure-id=7"
        ]
    );
    // Over https nothing is renamed either way.
    let s = https_public();
    assert_eq!(
        set_cookie(&s, "__Host-x=1; Path=/; Secure"),
        "__Host-x=1; Path=/; Secure"
    );
    let h = request(&s, &[("cookie", "wb-host--x=1")]);
    assert_eq!(h.get("cookie").unwrap(), "wb-host--x=1");
}

#[test]
fn several_set_cookie_headers() {
    let m = http_public();
    let mut h = HeaderMap::new();
    h.append(
        "set-cookie",
        HeaderValue::from_static("a=1; Domain=cloud.example.org; Secure"),
    );
    h.append("set-cookie", HeaderValue::from_static("b=2"));
    m.rewrite_response_headers(&mut h);
    let v: Vec<&str> = h
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(v, ["a=1; Domain=cloud-old.wayback.example.org", "b=2"]);
}

#[test]
fn request_host_origin_referer_destination() {
    let m = http_public();
    let h = request(
        &m,
        &[
            ("host", PUB),
            ("origin", &format!("http://{PUB}")),
            (
                "referer",
                &format!("http://{PUB}/index.php/apps/files?dir=/"),
            ),
            (
                "destination",
                &format!("http://{PUB}/remote.php/dav/files/u/b.txt"),
            ),
        ],
    );
    assert_eq!(h.get("host").unwrap(), "cloud.example.org");
    assert_eq!(h.get("origin").unwrap(), "https://cloud.example.org");
    assert_eq!(
        h.get("referer").unwrap(),
        "https://cloud.example.org/index.php/apps/files?dir=/"
    );
    assert_eq!(
        h.get("destination").unwrap(),
        "https://cloud.example.org/remote.php/dav/files/u/b.txt"
    );
    // Other sites, and a public-origin prefix that is not the origin, are left alone.
    let h = request(
        &m,
        &[
            ("origin", "https://elsewhere.org"),
            ("referer", &format!("http://{PUB}0/x")),
        ],
    );
    assert_eq!(h.get("host").unwrap(), "cloud.example.org");
    assert_eq!(h.get("origin").unwrap(), "https://elsewhere.org");
    assert_eq!(h.get("referer").unwrap(), &format!("http://{PUB}0/x"));
}

#[test]
fn request_forwarded_headers_name_the_original_side() {
    let m = http_public();
    let h = request(
        &m,
        &[
            ("x-forwarded-host", PUB),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-port", "8080"),
        ],
    );
    assert_eq!(h.get("x-forwarded-host").unwrap(), "cloud.example.org");
    assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
    assert_eq!(h.get("x-forwarded-port").unwrap(), "443");
    // Absent ones are not invented.
    let h = request(&m, &[]);
    assert!(!h.contains_key("x-forwarded-host"));
    let ported =
        Masquerade::new("cloud.example.org:8443", Scheme::Https, PUB, Scheme::Http).unwrap();
    let h = request(&ported, &[("x-forwarded-port", "8080")]);
    assert_eq!(h.get("host").unwrap(), "cloud.example.org:8443");
    assert_eq!(h.get("x-forwarded-port").unwrap(), "8443");
}

#[test]
fn request_accept_encoding_narrowed_when_bodies_are_rewritten() {
    let m = http_public();
    let ae =
        |m: &Masquerade, v: &str| request(m, &[("accept-encoding", v)])["accept-encoding"].clone();
    assert_eq!(ae(&m, "gzip, deflate, br, zstd"), "gzip");
    assert_eq!(ae(&m, "br;q=1.0, gzip;q=0.5"), "gzip");
    assert_eq!(ae(&m, "br, gzip;q=0"), "identity");
    assert_eq!(ae(&m, "*"), "gzip");
    let off = http_public().with_bodies(false);
    assert_eq!(ae(&off, "gzip, br"), "gzip, br");
}

#[test]
fn hosts_are_validated_and_canonical() {
    let m = Masquerade::new(
        "Cloud.Example.org:443",
        Scheme::Https,
        "X.wayback.localhost:80",
        Scheme::Http,
    )
    .unwrap();
    assert_eq!(
        (m.original_host(), m.public_host()),
        ("cloud.example.org", "x.wayback.localhost")
    );
    let m = Masquerade::new(
        "[fd00::1]:8443",
        Scheme::Https,
        "10.0.0.1:8080",
        Scheme::Http,
    )
    .unwrap();
    assert_eq!(
        (m.original_host(), m.public_host()),
        ("[fd00::1]:8443", "10.0.0.1:8080")
    );
    for bad in [
        "",
        "https://cloud.example.org",
        "cloud.example.org/x",
        "a b",
        "h:0",
        "h:99999",
        ".x",
        "a..b",
    ] {
        let err = Masquerade::new(bad, Scheme::Https, PUB, Scheme::Http).unwrap_err();
        assert!(
            matches!(
                err,
                MasqueradeError::InvalidHost {
                    which: "original",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
    }
    assert!("HTTPS".parse::<Scheme>().is_ok() && "ftp".parse::<Scheme>().is_err());
}
