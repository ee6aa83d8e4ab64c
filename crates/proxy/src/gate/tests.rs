//! The access gate: share links, sessions, basic auth and allow lists, including forged and expired values.

use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderMap, HeaderValue};
use hyper::Uri;

use super::check::{parse_basic, session_cookies, strip_session_cookie, take_token, ShareState};
use super::*;

#[test]
fn take_token_strips_only_the_token() {
    let u: Uri = "/a/b?x=1&wayback-token=T0k&y=2".parse().unwrap();
    assert_eq!(take_token(&u), Some(("T0k".into(), "/a/b?x=1&y=2".into())));
    let u: Uri = "/?wayback-token=abc".parse().unwrap();
    assert_eq!(take_token(&u), Some(("abc".into(), "/".into())));
    let u: Uri = "/?wayback-tokens=abc".parse().unwrap();
    assert_eq!(take_token(&u), None);
    let u: Uri = "/plain".parse().unwrap();
    assert_eq!(take_token(&u), None);
}

#[test]
fn session_cookie_is_found_and_stripped() {
    let mut h = HeaderMap::new();
    h.append(
        "cookie",
        HeaderValue::from_static("a=1; wayback_session=S1; b=2"),
    );
    h.append("cookie", HeaderValue::from_static("wayback_session=S2"));
    assert_eq!(session_cookies(&h).collect::<Vec<_>>(), vec!["S1", "S2"]);
    strip_session_cookie(&mut h);
    assert_eq!(
        h.get_all("cookie").iter().collect::<Vec<_>>(),
        vec!["a=1; b=2"]
    );

    let mut only = HeaderMap::new();
    only.insert("cookie", HeaderValue::from_static("wayback_session=S"));
    strip_session_cookie(&mut only);
    assert!(!only.contains_key("cookie"));
}

#[test]
fn basic_header_parsing() {
    // "user:pa:ss" — the password may contain ':'.
    assert_eq!(
        parse_basic(b"Basic dXNlcjpwYTpzcw=="),
        Some((b"user".to_vec(), b"pa:ss".to_vec()))
    );
    assert_eq!(
        parse_basic(b"bAsIc dXNlcjpw"),
        Some((b"user".to_vec(), b"p".to_vec()))
    );
    assert_eq!(parse_basic(b"Bearer dXNlcjpw"), None);
    assert_eq!(parse_basic(b"Basic !!!"), None);
    assert_eq!(parse_basic(b"Basic bm9jb2xvbg=="), None);
}

#[test]
fn session_cookie_roundtrip_and_scope() {
    let (link, _token) =
        ShareLink::generate(Duration::from_secs(60), Duration::from_secs(100)).unwrap();
    let s = ShareState::new(&link).unwrap();
    let now = 1_700_000_000;
    let v = s.issue_for_test("inst", "app.test", now);
    assert!(s.valid_for_test(&v, "inst", "app.test", now + 99));
    assert!(
        !s.valid_for_test(&v, "inst", "app.test", now + 100),
        "expired"
    );
    assert!(
        !s.valid_for_test(&v, "other", "app.test", now),
        "other instance"
    );
    assert!(
        !s.valid_for_test(&v, "inst", "evil.test", now),
        "other host"
    );
    let (exp, mac) = v.split_once('.').unwrap();
    let later = format!("{}.{mac}", exp.parse::<u64>().unwrap() + 1000);
    assert!(
        !s.valid_for_test(&later, "inst", "app.test", now),
        "extended expiry"
    );
    assert!(!s.valid_for_test("garbage", "inst", "app.test", now));
    // Another link's secret does not verify this one's cookies.
    let (other, _) =
        ShareLink::generate(Duration::from_secs(60), Duration::from_secs(100)).unwrap();
    assert!(!ShareState::new(&other)
        .unwrap()
        .valid_for_test(&v, "inst", "app.test", now));
}

#[test]
fn config_serde_roundtrip_and_validation() {
    let (link, token) =
        ShareLink::generate(Duration::from_secs(900), Duration::from_secs(3600)).unwrap();
    assert_eq!(token.len(), 43);
    assert_eq!(link.token_sha256, sha256_hex(token.as_bytes()));
    let cfg = GateConfig {
        share: Some(link),
        basic_auth: Some(BasicAuth::with_cost("alice", "pw", 4).unwrap()),
        allow: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
    };
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(!json.contains(&token), "the token itself is never stored");
    let back: GateConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cfg);
    assert!(serde_json::from_str::<GateConfig>("{}").unwrap().is_open());

    let store: Arc<dyn GateStore> = Arc::new(MemoryGateStore::default());
    assert!(Gate::new(cfg.clone(), store.clone()).is_ok());
    let mut bad = cfg.clone();
    bad.share.as_mut().unwrap().token_sha256 = "xyz".into();
    assert!(matches!(
        Gate::new(bad, store.clone()),
        Err(GateError::BadTokenHash(_))
    ));
    let mut bad = cfg.clone();
    bad.basic_auth.as_mut().unwrap().password_bcrypt = "plain".into();
    let err = Gate::new(bad, store).unwrap_err();
    assert!(err.to_string().contains("htpasswd"), "{err}");
    assert!(BasicAuth::with_cost("a:b", "pw", 4).is_err());
}

#[test]
fn stores_consume_exactly_once() {
    let mem = MemoryGateStore::default();
    assert!(mem.consume_token("i", "h"));
    assert!(!mem.consume_token("i", "h"));
    assert!(mem.consume_token("j", "h"));

    let dir = tempfile::tempdir().unwrap();
    let store = DirGateStore::new(dir.path());
    assert!(
        !store.consume_token("inst", "abc"),
        "no instance directory: fail closed"
    );
    std::fs::create_dir(dir.path().join("inst")).unwrap();
    assert!(store.consume_token("inst", "abc"));
    assert!(!store.consume_token("inst", "abc"));
    // A second store over the same directory (another process, or after a restart) agrees.
    assert!(!DirGateStore::new(dir.path()).consume_token("inst", "abc"));
    assert!(
        !store.consume_token("../inst", "abd"),
        "path tricks are refused"
    );
}
