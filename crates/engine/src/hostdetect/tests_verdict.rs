//! Tier-0 tests of the pinned-hostname check, part 2: given responses and pages, which origin is found and
//! what is said about it; nginx's names.

use http::header::HeaderMap;
use http::HeaderValue;

use super::clues::ClueKind;
use super::fetch::Fetched;
use super::verdict::{self, Confidence, OwnHost};
use super::vhosts;

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

/// The instance as a browser reaches it.
fn own() -> Vec<OwnHost> {
    vec![OwnHost {
        host: "wiki-old.wayback.example".into(),
        port: Some(8080),
    }]
}

fn page(path: &str, status: u16, h: &[(&str, &str)], html: &str) -> Fetched {
    Fetched {
        path: path.into(),
        status,
        headers: headers(h),
        html: html.as_bytes().to_vec(),
    }
}

fn best(chain: &[Fetched]) -> Option<verdict::Candidate> {
    verdict::rank(&super::clues_of(chain, false), &own())
        .into_iter()
        .next()
}

#[test]
fn a_redirect_of_the_front_page_to_another_host_is_certain() {
    let chain = [page(
        "/",
        302,
        &[("location", "https://live.example.org/")],
        "",
    )];
    let b = best(&chain).unwrap();
    assert_eq!(b.origin.to_string(), "https://live.example.org");
    assert_eq!(b.confidence(), Confidence::Certain);
    assert_eq!(
        b.evidence(),
        "redirects to https://live.example.org (Location of GET /)"
    );
    let msg = super::refusal(std::slice::from_ref(&b));
    assert!(
        msg.contains("--original-host https://live.example.org"),
        "{msg}"
    );
    assert!(
        msg.contains("--original-host auto") && msg.contains("--no-host-check"),
        "{msg}"
    );
}

#[test]
fn redirects_and_links_on_the_instance_itself_are_no_clue() {
    let chain = [
        page(
            "/",
            301,
            &[("location", "http://wiki-old.wayback.example:8080/start")],
            "",
        ),
        page(
            "/start",
            200,
            &[("content-type", "text/html")],
            r#"<a href="/x">x</a><a href="doku.php?id=y">y</a><a href="http://WIKI-OLD.wayback.example:8080/z">z</a>"#,
        ),
    ];
    assert!(best(&chain).is_none());
}

#[test]
fn cookies_for_another_domain_point_to_the_host_below_it() {
    let chain = [page(
        "/",
        200,
        &[
            (
                "set-cookie",
                "sid=1; Domain=.live.example.org; Path=/; Secure",
            ),
            ("set-cookie", "lang=en; Path=/"),
            ("content-type", "text/html"),
        ],
        r#"<link rel="canonical" href="https://wiki.live.example.org/start">"#,
    )];
    let ranked = verdict::rank(&super::clues_of(&chain, false), &own());
    assert_eq!(ranked.len(), 1, "{ranked:?}");
    assert_eq!(
        ranked[0].origin.to_string(),
        "https://wiki.live.example.org"
    );
    assert_eq!(ranked[0].strongest(), ClueKind::Cookie);
    assert_eq!(ranked[0].confidence(), Confidence::Likely);
    // A cookie for a domain above the instance's own host is the app being right.
    let chain = [page(
        "/",
        200,
        &[("set-cookie", "a=1; Domain=.wayback.example")],
        "",
    )];
    assert!(best(&chain).is_none());
}

#[test]
fn known_third_parties_are_ignored_and_assets_are_weak() {
    let html = r#"<script src="https://cdn.jsdelivr.net/npm/x.js"></script>
        <link rel=stylesheet href="https://fonts.googleapis.com/css?family=x">
        <a href="https://www.mediawiki.org/">Powered by MediaWiki</a>
        <a href="http://nginx.org/">nginx.org</a><a href="https://github.com/x/y">code</a>
        <img src="https://static.example.net/logo.png">"#;
    let chain = [page("/", 200, &[("content-type", "text/html")], html)];
    let ranked = verdict::rank(&super::clues_of(&chain, false), &own());
    assert_eq!(ranked.len(), 1, "{ranked:?}");
    assert_eq!(ranked[0].origin.host, "static.example.net");
    assert_eq!(ranked[0].confidence(), Confidence::Weak);
    assert_eq!(verdict::choose(&ranked), Ok(None));
}

#[test]
fn a_redirect_to_a_login_provider_names_the_app_by_its_return_address() {
    let loc = "https://sso.example.com/auth/realms/x/protocol/openid-connect/auth?client_id=wiki&redirect_uri=https%3A%2F%2Fwiki.live.example%2Fcallback&state=1";
    let chain = [page("/", 302, &[("location", loc)], "")];
    let ranked = verdict::rank(&super::clues_of(&chain, false), &own());
    assert_eq!(ranked[0].origin.to_string(), "https://wiki.live.example");
    assert_eq!(ranked[0].strongest(), ClueKind::Redirect);
    assert_eq!(
        ranked[0].clues[0].place,
        "redirect_uri= in the redirect to https://sso.example.com"
    );
    assert_eq!(ranked[1].origin.host, "sso.example.com");
    assert_eq!(ranked[1].strongest(), ClueKind::Link);
    assert_eq!(
        verdict::choose(&ranked).unwrap().unwrap().origin.host,
        "wiki.live.example"
    );
}

#[test]
fn redirects_outrank_links_and_counts_break_ties() {
    let html = r#"<a href="https://other.example.net/1">1</a><a href="https://other.example.net/2">2</a>
        <a href="https://other.example.net/3">3</a>"#;
    let chain = [
        page(
            "/",
            302,
            &[("location", "http://live.example.org:8000/start")],
            "",
        ),
        page("/start", 200, &[("content-type", "text/html")], html),
    ];
    let ranked = verdict::rank(&super::clues_of(&chain, false), &own());
    assert_eq!(ranked[0].origin.to_string(), "http://live.example.org:8000");
    assert_eq!(ranked[1].clues.len(), 3);
    assert_eq!(
        verdict::choose(&ranked).unwrap().unwrap().origin.port,
        Some(8000)
    );
}

#[test]
fn auto_refuses_to_choose_between_equals() {
    let html = r#"<a href="https://a.example.net/">a</a><a href="https://b.example.net/">b</a>"#;
    let chain = [page("/", 200, &[("content-type", "text/html")], html)];
    let ranked = verdict::rank(&super::clues_of(&chain, false), &own());
    let close = verdict::choose(&ranked).unwrap_err();
    assert_eq!(close.len(), 2);
    let msg = super::ambiguous(&close);
    assert!(
        msg.contains("https://a.example.net") && msg.contains("https://b.example.net"),
        "{msg}"
    );
    // Twice as many links to one of them decide.
    let html = r#"<a href="https://a.example.net/1">a</a><a href="https://a.example.net/2">a</a>
        <a href="https://b.example.net/">b</a>"#;
    let chain = [page("/", 200, &[("content-type", "text/html")], html)];
    let ranked = verdict::rank(&super::clues_of(&chain, false), &own());
    assert_eq!(
        verdict::choose(&ranked).unwrap().unwrap().origin.host,
        "a.example.net"
    );
}

#[test]
fn the_masquerades_original_host_is_the_instances_own() {
    let chain = [page(
        "/",
        302,
        &[("location", "https://live.example.org/")],
        "",
    )];
    let mut own = own();
    own.push(OwnHost {
        host: "live.example.org".into(),
        port: None,
    });
    assert!(verdict::rank(&super::clues_of(&chain, false), &own).is_empty());
    // Another port of it is another service: not masqueraded.
    let chain = [page(
        "/",
        302,
        &[("location", "https://live.example.org:8443/")],
        "",
    )];
    let b = verdict::rank(&super::clues_of(&chain, false), &own);
    assert_eq!(b[0].origin.to_string(), "https://live.example.org:8443");
}

#[test]
fn the_warning_names_the_host_and_the_flag() {
    let chain = [page(
        "/",
        200,
        &[("content-type", "text/html")],
        r#"<link rel="canonical" href="https://wiki.live.example/start">"#,
    )];
    let b = best(&chain).unwrap();
    assert_eq!(b.confidence(), Confidence::Likely);
    let w = super::warning(&b);
    assert!(
        w.starts_with("the app links to https://wiki.live.example (<link href> in GET /)"),
        "{w}"
    );
    assert!(
        w.contains("`--original-host https://wiki.live.example` (or `--original-host auto`)"),
        "{w}"
    );
}

#[test]
fn nginx_server_names() {
    let conf = "# server_name commented.example;\nserver {\n listen 80 default_server;\n server_name _;\n}\n\
                server { server_name wiki.live.test \"www.Wiki.live.test\" *.wild.example ~^re\\.example$ localhost; }\n\
                server { server_name wiki.live.test 10.0.0.1:80; }";
    assert_eq!(
        vhosts::names_in(conf),
        ["wiki.live.test", "www.wiki.live.test", "10.0.0.1"]
    );
}

#[test]
fn nginx_includes_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("sites-enabled")).unwrap();
    std::fs::write(
        d.join("nginx.conf"),
        "http {\n include mime.types;\n include sites-enabled/*;\n server { server_name main.example; }\n}\n",
    )
    .unwrap();
    std::fs::write(d.join("mime.types"), "types { text/html html; }").unwrap();
    std::fs::write(
        d.join("sites-enabled/b"),
        "server { server_name b.example; }",
    )
    .unwrap();
    std::fs::write(
        d.join("sites-enabled/a"),
        "server { server_name a.example; include ../loop.conf; }",
    )
    .unwrap();
    std::fs::write(d.join("loop.conf"), "include nginx.conf;").unwrap();
    assert_eq!(
        vhosts::server_names(&d.join("nginx.conf")),
        ["main.example", "a.example", "b.example"]
    );
}

#[test]
fn a_name_based_site_takes_its_scheme_from_its_own_redirects() {
    let chain = [page(
        "/",
        301,
        &[("location", "http://wiki.live.test/index.php/Main_Page")],
        "",
    )];
    let c = vhosts::candidate("wiki.live.test", &chain, false);
    assert_eq!(c.origin.to_string(), "http://wiki.live.test");
    assert_eq!(c.confidence(), Confidence::Certain);
    let chain = [page(
        "/",
        301,
        &[("location", "https://wiki.live.test/")],
        "",
    )];
    assert_eq!(
        vhosts::candidate("wiki.live.test", &chain, false)
            .origin
            .to_string(),
        "https://wiki.live.test"
    );
}

#[test]
fn placeholder_pages_are_recognised() {
    let welcome = "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body><a href=\"http://nginx.org/\">nginx.org</a></body></html>";
    assert!(vhosts::is_placeholder(&page("/", 200, &[], welcome)));
    assert!(vhosts::is_placeholder(&page("/", 404, &[], "not found")));
    assert!(vhosts::is_placeholder(&page("/", 502, &[], "")));
    assert!(!vhosts::is_placeholder(&page(
        "/",
        200,
        &[],
        "<title>My wiki</title>"
    )));
    assert!(!vhosts::is_placeholder(&page(
        "/",
        302,
        &[("location", "/start")],
        ""
    )));
    // nginx's welcome page links only to known third parties: no clue, so the names are asked for.
    assert!(best(&[page("/", 200, &[("content-type", "text/html")], welcome)]).is_none());
}

#[test]
fn several_name_based_sites_are_all_named() {
    let a = vhosts::candidate("wiki.live.test", &[page("/", 200, &[], "wiki")], false);
    let b = vhosts::candidate("blog.live.test", &[page("/", 200, &[], "blog")], false);
    let msg = super::refusal(&[a.clone(), b]);
    assert!(
        msg.contains(
            "nginx serves these sites only by name: http://wiki.live.test, http://blog.live.test"
        ),
        "{msg}"
    );
    let one = super::refusal(&[a]);
    assert!(
        one.starts_with(
            "the app is served only as http://wiki.live.test (nginx server_name wiki.live.test;"
        ),
        "{one}"
    );
    assert!(
        one.contains("`--original-host http://wiki.live.test`"),
        "{one}"
    );
}
