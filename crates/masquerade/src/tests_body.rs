//! Unit tests of body selection and streaming body rewriting (plain and gzip), and a throughput measurement.

use std::io::{Read, Write};
use std::time::Instant;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::header::{HeaderMap, HeaderValue};

use crate::{BodyRewriter, Masquerade, MasqueradeError, Scheme};

const PUB: &str = "cloud-old.wayback.example.org:8080";

fn m() -> Masquerade {
    Masquerade::new("cloud.example.org", Scheme::Https, PUB, Scheme::Http).unwrap()
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

/// A tiny deterministic PRNG (xorshift64*), so chunkings are random but reproducible.
struct Prng(u64);

impl Prng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

const HTML: &str = r#"<!DOCTYPE html><html><head>
<link rel="stylesheet" href="https://cloud.example.org/core/css/server.css">
<script src="//cloud.example.org/core/js/main.js"></script>
<script nonce="n">var oc = {"webroot":"https:\/\/cloud.example.org\/","host":"cloud.example.org","proto":"http:\/\/CLOUD.example.org","rel":"\/\/cloud.example.org\/x"};</script>
</head><body>
<a href="http://CLOUD.Example.ORG/index.php/login?redirect_url=https%3A%2F%2Fcloud.example.org%2Fapps">Log in</a>
<a href="https://cloud.example.org:443/a">default port</a> <a href="https://cloud.example.org:8443/a">other port</a>
<a href="/relative">relative</a> <script>new WebSocket("wss://cloud.example.org/push")</script>
notcloud.example.org www.cloud.example.org cloud.example.org.evil.com admin@cloud.example.org cloud.example.orgx
Visit cloud.example.org.
</body></html>"#;

fn expected_html() -> String {
    let p = PUB;
    format!(
        r#"<!DOCTYPE html><html><head>
<link rel="stylesheet" href="http://{p}/core/css/server.css">
<script src="//{p}/core/js/main.js"></script>
<script nonce="n">var oc = {{"webroot":"http:\/\/{p}\/","host":"{p}","proto":"http:\/\/{p}","rel":"\/\/{p}\/x"}};</script>
</head><body>
<a href="http://{p}/index.php/login?redirect_url=http%3A%2F%2F{p}%2Fapps">Log in</a>
<a href="http://{p}/a">default port</a> <a href="https://cloud.example.org:8443/a">other port</a>
<a href="/relative">relative</a> <script>new WebSocket("ws://{p}/push")</script>
notcloud.example.org www.cloud.example.org cloud.example.org.evil.com admin@cloud.example.org cloud.example.orgx
Visit {p}.
</body></html>"#
    )
}

/// Feed `body` in the given chunk sizes (cycled), return the concatenated output.
fn run(
    rw: &mut BodyRewriter,
    body: &[u8],
    mut next_len: impl FnMut() -> usize,
) -> Result<Vec<u8>, MasqueradeError> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = next_len().clamp(1, rest.len());
        out.extend_from_slice(&rw.push(&rest[..n])?);
        rest = &rest[n..];
    }
    out.extend_from_slice(&rw.finish()?);
    Ok(out)
}

fn plain_rewriter() -> BodyRewriter {
    m().body_rewriter(&headers(&[("content-type", "text/html; charset=utf-8")]))
}

fn gzip_rewriter() -> BodyRewriter {
    m().body_rewriter(&headers(&[
        ("content-type", "text/html"),
        ("content-encoding", "gzip"),
    ]))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(data).read_to_end(&mut out).unwrap();
    out
}

#[test]
fn html_with_many_forms_in_one_chunk() {
    let out = run(&mut plain_rewriter(), HTML.as_bytes(), || usize::MAX).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), expected_html());
}

#[test]
fn every_split_point_and_one_byte_at_a_time() {
    let want = expected_html().into_bytes();
    let body = HTML.as_bytes();
    for split in 0..=body.len() {
        let mut rw = plain_rewriter();
        let mut out = rw.push(&body[..split]).unwrap().to_vec();
        out.extend_from_slice(&rw.push(&body[split..]).unwrap());
        out.extend_from_slice(&rw.finish().unwrap());
        assert_eq!(out, want, "split at {split}");
    }
    assert_eq!(run(&mut plain_rewriter(), body, || 1).unwrap(), want);
}

#[test]
fn random_chunk_sizes() {
    let want = expected_html().into_bytes();
    let mut rng = Prng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let max = 1 + rng.below(64);
        let out = run(&mut plain_rewriter(), HTML.as_bytes(), || {
            1 + rng.below(max)
        })
        .unwrap();
        assert_eq!(out, want);
    }
}

#[test]
fn json_escaped_urls_and_bare_hosts() {
    let body = br#"{"url":"https:\/\/cloud.example.org\/index.php","trusted_domains":["cloud.example.org","localhost"]}"#;
    let out = run(&mut plain_rewriter(), body, || 7).unwrap();
    let want =
        format!(r#"{{"url":"http:\/\/{PUB}\/index.php","trusted_domains":["{PUB}","localhost"]}}"#);
    assert_eq!(String::from_utf8(out).unwrap(), want);
}

#[test]
fn label_boundaries_are_respected() {
    for text in [
        "notcloud.example.org",
        "my-cloud.example.org",
        "www.cloud.example.org",
        "cloud.example.org.evil",
        "cloud.example.org-2",
        "cloud.example.org_x",
        "cloud.example.orgs",
        "mail admin@cloud.example.org",
        "https://cloud.example.org:8443/",
        "cloud.example.org:123456",
    ] {
        let out = run(&mut plain_rewriter(), text.as_bytes(), || 3).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), text);
    }
    let out = run(
        &mut plain_rewriter(),
        b"(cloud.example.org) cloud.example.org",
        || 5,
    )
    .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), format!("({PUB}) {PUB}"));
}

#[test]
fn original_with_port_matches_only_that_port() {
    let m = Masquerade::new(
        "wiki.example.org:8443",
        Scheme::Https,
        "w.wb.localhost",
        Scheme::Http,
    )
    .unwrap();
    let h = headers(&[("content-type", "text/html")]);
    let body = "https://wiki.example.org:8443/a https://wiki.example.org/b https://wiki.example.org:84430/c";
    let out = run(&mut m.body_rewriter(&h), body.as_bytes(), || 4).unwrap();
    let want =
        "http://w.wb.localhost/a https://wiki.example.org/b https://wiki.example.org:84430/c";
    assert_eq!(String::from_utf8(out).unwrap(), want);
}

#[test]
fn gzip_round_trip_in_chunks() {
    let big = HTML.repeat(200);
    let want = expected_html().repeat(200).into_bytes();
    let compressed = gzip(big.as_bytes());
    let mut rng = Prng(42);
    for chunking in 0..4 {
        let out = match chunking {
            0 => run(&mut gzip_rewriter(), &compressed, || usize::MAX),
            1 => run(&mut gzip_rewriter(), &compressed, || 1),
            2 => run(&mut gzip_rewriter(), &compressed, || 1 + rng.below(100)),
            _ => run(&mut gzip_rewriter(), &compressed, || 4096),
        }
        .unwrap();
        assert_eq!(gunzip(&out), want, "chunking {chunking}");
    }
}

#[test]
fn gzip_every_split_point_and_streaming_output() {
    let compressed = gzip(HTML.as_bytes());
    let want = expected_html().into_bytes();
    for split in 0..=compressed.len() {
        let mut rw = gzip_rewriter();
        let mut out = rw.push(&compressed[..split]).unwrap().to_vec();
        out.extend_from_slice(&rw.push(&compressed[split..]).unwrap());
        out.extend_from_slice(&rw.finish().unwrap());
        assert_eq!(gunzip(&out), want, "split at {split}");
    }
    // Output flows before the end of the body: a push that completes data yields decodable bytes.
    let big = gzip(HTML.repeat(50).as_bytes());
    let mut rw = gzip_rewriter();
    let first = rw.push(&big).unwrap();
    assert!(
        first.len() > 100,
        "sync-flushed output expected, got {} bytes",
        first.len()
    );
}

#[test]
fn gzip_multi_member_and_empty_body() {
    let mut two = gzip(HTML.as_bytes());
    two.extend_from_slice(&gzip(HTML.as_bytes()));
    let out = run(&mut gzip_rewriter(), &two, || 33).unwrap();
    assert_eq!(gunzip(&out), expected_html().repeat(2).into_bytes());
    assert!(gzip_rewriter().finish().unwrap().is_empty());
}

#[test]
fn corrupt_or_truncated_gzip_is_an_error() {
    let compressed = gzip(HTML.as_bytes());
    let truncated = &compressed[..compressed.len() - 10];
    let err = run(&mut gzip_rewriter(), truncated, || 64).unwrap_err();
    assert!(matches!(err, MasqueradeError::Gzip(_)), "{err}");
    assert!(err.to_string().contains("gzip"), "{err}");
    let mut bad_crc = compressed.clone();
    let n = bad_crc.len();
    bad_crc[n - 6] ^= 0xff;
    assert!(matches!(
        run(&mut gzip_rewriter(), &bad_crc, || 64),
        Err(MasqueradeError::Gzip(_))
    ));
    assert!(matches!(
        run(&mut gzip_rewriter(), b"this is not gzip at all", || 64),
        Err(MasqueradeError::Gzip(_))
    ));
    let mut rw = gzip_rewriter();
    assert!(rw.push(b"garbage!garbage!").is_err());
    assert!(matches!(rw.push(b"more"), Err(MasqueradeError::Finished)));
}

#[test]
fn selection_of_bodies() {
    let m = m();
    let yes = |ct: &'static str| m.should_rewrite_body(200, &headers(&[("content-type", ct)]));
    let text = "text/html, text/html; charset=UTF-8, TEXT/CSS, text/javascript, application/javascript, \
                application/json, application/xml, text/xml, application/ld+json, application/xhtml+xml, image/svg+xml";
    for ct in text.split(", ") {
        assert!(yes(ct), "{ct} should be rewritten");
    }
    let binary = "image/png, image/jpeg, application/zip, application/octet-stream, application/pdf, text/plain, \
                  video/mp4, ";
    for ct in binary.split(", ") {
        assert!(!yes(ct), "{ct} must pass through");
    }
    assert!(!m.should_rewrite_body(200, &HeaderMap::new()));
    let html_with = |pairs: &[(&'static str, &'static str)]| {
        let mut h = headers(&[("content-type", "text/html")]);
        h.extend(headers(pairs));
        h
    };
    assert!(m.should_rewrite_body(200, &html_with(&[("content-encoding", "gzip")])));
    assert!(m.should_rewrite_body(404, &html_with(&[("content-encoding", "identity")])));
    for enc in ["br", "zstd", "deflate", "gzip, br", "compress"] {
        let mut h = html_with(&[]);
        h.insert("content-encoding", HeaderValue::from_static(enc));
        assert!(!m.should_rewrite_body(200, &h), "{enc} must pass through");
        assert!(m.body_rewriter(&h).is_passthrough());
    }
    for status in [101, 204, 206, 304] {
        assert!(!m.should_rewrite_body(status, &html_with(&[])), "{status}");
    }
    assert!(!m.should_rewrite_body(200, &html_with(&[("content-range", "bytes 0-9/100")])));
    assert!(!m.should_rewrite_body(
        200,
        &html_with(&[("content-disposition", "attachment; filename=a.html")])
    ));
    assert!(m.should_rewrite_body(200, &html_with(&[("content-disposition", "inline")])));
    let off = m.clone().with_bodies(false);
    assert!(!off.should_rewrite_body(200, &html_with(&[])));
    assert!(off.body_rewriter(&html_with(&[])).is_passthrough());
}

#[test]
fn rewritten_response_headers() {
    let mut h = headers(&[
        ("content-type", "text/html"),
        ("content-length", "1234"),
        ("content-encoding", "gzip"),
        ("etag", "\"abc\""),
        ("digest", "sha-256=xyz"),
        ("accept-ranges", "bytes"),
    ]);
    m().prepare_rewritten_response_headers(&mut h);
    assert!(!h.contains_key("content-length") && !h.contains_key("digest"));
    assert_eq!(h["etag"], "W/\"abc\"");
    assert_eq!(h["content-encoding"], "gzip");
    assert_eq!(h["accept-ranges"], "none");
    let mut h = headers(&[("etag", "W/\"weak\"")]);
    m().prepare_rewritten_response_headers(&mut h);
    assert_eq!(h["etag"], "W/\"weak\"");
}

/// Not a benchmark with a threshold: prints MB/s (this is usually a debug build).
#[test]
fn throughput_50_mb_in_chunks() {
    // 1 MiB of HTML-like text: the sample page, then a paragraph of pseudo-random words (so gzip sees a
    // realistic ratio, not a repeated block), repeated.
    let words = [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "<b>",
        "</b>",
        "consectetur",
        "adipiscing",
        "elit",
    ];
    let mut rng = Prng(7);
    let mut block = String::new();
    while block.len() < 1 << 20 {
        block.push_str(HTML);
        block.push_str("\n<p>");
        for _ in 0..400 {
            block.push_str(words[rng.below(words.len())]);
            block.push_str(&rng.below(1000).to_string());
            block.push(' ');
        }
        block.push_str("</p>\n");
    }
    let per_block = block.matches("cloud.example.org").count();
    let mut rw = plain_rewriter();
    let (mut bytes_in, mut bytes_out) = (0usize, 0usize);
    let start = Instant::now();
    for _ in 0..50 {
        for chunk in block.as_bytes().chunks(16 * 1024) {
            bytes_out += rw.push(chunk).unwrap().len();
            bytes_in += chunk.len();
        }
    }
    bytes_out += rw.finish().unwrap().len();
    let secs = start.elapsed().as_secs_f64();
    let mb = bytes_in as f64 / 1e6;
    println!(
        "masquerade throughput: {mb:.1} MB plain text in 16 KiB chunks, {secs:.2} s, {:.1} MB/s",
        mb / secs
    );
    assert!(bytes_out > bytes_in && per_block > 0);

    let gz = gzip(&block.as_bytes().repeat(10));
    let mut rw = gzip_rewriter();
    let start = Instant::now();
    let out = run(&mut rw, &gz, || 16 * 1024).unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "masquerade throughput: {:.1} MB gzip-decoded text ({:.1} MB compressed), {secs:.2} s, {:.1} MB/s decoded",
        10.0 * block.len() as f64 / 1e6,
        gz.len() as f64 / 1e6,
        10.0 * block.len() as f64 / 1e6 / secs
    );
    let one = run(&mut plain_rewriter(), block.as_bytes(), || usize::MAX).unwrap();
    assert_eq!(gunzip(&out), one.repeat(10));
}

#[test]
fn types_can_cross_tasks() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Masquerade>();
    send::<BodyRewriter>();
}
