//! Who may use the console: login tokens, sessions, CSRF tokens and the login rate limit.
//!
//! - **Login tokens** come from `wayback console token` (root only): 256 random bits, shown once; only
//!   their SHA-256 and expiry are kept, in `<state_dir>/console/tokens.json` (mode 0600). A token logs in
//!   once, within `[console] token_ttl`.
//! - **Sessions** live in the daemon's memory (a restarted daemon asks for a new login): a random id in an
//!   `HttpOnly; SameSite=Strict` cookie (`Secure` with TLS), valid for `session_ttl`, each with its own
//!   CSRF token that every POST must carry (`X-CSRF-Token` header or a `csrf` form field).
//! - **Rate limit**: at most `login_attempts_per_minute` failed logins per client address per minute;
//!   beyond that, logins are refused (429) without looking at the token.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use wayback_core::format::Persisted;
use wayback_core::Config;

/// The session cookie's name.
pub const COOKIE: &str = "wayback_console";

/// A login token's record: its hash and expiry (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub sha256: String,
    pub expires: u64,
}

/// `tokens.json`: the unused login tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub tokens: Vec<TokenRecord>,
}

impl Persisted for Tokens {
    const KIND: &'static str = "console token list";
}

fn tokens_path(cfg: &Config) -> PathBuf {
    cfg.state_dir.join("console").join("tokens.json")
}

fn read_tokens(cfg: &Config) -> Tokens {
    crate::state::read_json(&tokens_path(cfg)).unwrap_or_default()
}

/// `wayback console token`: a new one-time login token; returns it (the only time it is seen).
pub fn new_token(cfg: &Config) -> Result<String> {
    let token = wayback_proxy::random_token().context("making a login token")?;
    let now = crate::clock::now_secs();
    let path = tokens_path(cfg);
    crate::state::create_private_dir_all(path.parent().context("tokens path")?)?;
    let mut t = read_tokens(cfg);
    t.tokens.retain(|r| r.expires > now);
    t.tokens.push(TokenRecord {
        sha256: wayback_proxy::sha256_hex(token.as_bytes()),
        expires: now + cfg.console.token_ttl.as_secs(),
    });
    crate::state::write_json(&path, &t)?;
    Ok(token)
}

/// Use a login token: true when it is valid (it is then removed).
fn take_token(cfg: &Config, token: &str) -> bool {
    let now = crate::clock::now_secs();
    let hash = wayback_proxy::sha256_hex(token.trim().as_bytes());
    let mut t = read_tokens(cfg);
    let before = t.tokens.len();
    let found = t
        .tokens
        .iter()
        .any(|r| r.expires > now && constant_eq(&r.sha256, &hash));
    t.tokens
        .retain(|r| r.expires > now && !constant_eq(&r.sha256, &hash));
    if found || t.tokens.len() != before {
        let _ = crate::state::write_json(&tokens_path(cfg), &t);
    }
    found
}

/// Compare secrets without an early exit on the first difference.
pub fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    pub expires: u64,
}

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Too many failures from this address in the last minute.
    RateLimited,
    /// Unknown, used or expired token.
    BadToken,
}

/// Sessions and failed-login counts, in memory.
#[derive(Default)]
pub struct Auth {
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, Vec<u64>>>,
}

impl Auth {
    /// Check a login token from `peer`; on success a new session id and its session.
    pub fn login(
        &self,
        cfg: &Config,
        peer: IpAddr,
        token: &str,
    ) -> Result<(String, Session), LoginError> {
        let now = crate::clock::now_secs();
        {
            let mut f = self.failures.lock().expect("failures lock");
            // Forget addresses whose failures are all older than the window.
            f.retain(|_, times| times.iter().any(|t| now.saturating_sub(*t) < 60));
            let recent = f.entry(peer).or_default();
            recent.retain(|t| now.saturating_sub(*t) < 60);
            if recent.len() >= cfg.console.login_attempts_per_minute as usize {
                return Err(LoginError::RateLimited);
            }
        }
        if !take_token(cfg, token) {
            let mut f = self.failures.lock().expect("failures lock");
            f.entry(peer).or_default().push(now);
            return Err(LoginError::BadToken);
        }
        let id = wayback_proxy::random_token().map_err(|_| LoginError::BadToken)?;
        let csrf = wayback_proxy::random_token().map_err(|_| LoginError::BadToken)?;
        let session = Session {
            csrf,
            expires: now + cfg.console.session_ttl.as_secs(),
        };
        let mut s = self.sessions.lock().expect("sessions lock");
        s.retain(|_, v| v.expires > now);
        s.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// A session for a user a trusted proxy vouched for (`[console] trusted_proxy_header`).
    pub fn trusted_session(&self, cfg: &Config) -> Option<(String, Session)> {
        let id = wayback_proxy::random_token().ok()?;
        let session = Session {
            csrf: wayback_proxy::random_token().ok()?,
            expires: crate::clock::now_secs() + cfg.console.session_ttl.as_secs(),
        };
        let mut s = self.sessions.lock().expect("sessions lock");
        s.insert(id.clone(), session.clone());
        Some((id, session))
    }

    /// The session named by a cookie header, if it is valid.
    pub fn session(&self, cookie_header: Option<&str>) -> Option<(String, Session)> {
        let id = cookie_value(cookie_header?, COOKIE)?;
        let now = crate::clock::now_secs();
        let s = self.sessions.lock().expect("sessions lock");
        s.get(id)
            .filter(|v| v.expires > now)
            .map(|v| (id.to_string(), v.clone()))
    }

    pub fn logout(&self, id: &str) {
        self.sessions.lock().expect("sessions lock").remove(id);
    }
}

/// One cookie's value from a `Cookie:` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The `Set-Cookie` value for a session (or, with `None`, one that ends it).
pub fn set_cookie(id: Option<&str>, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match id {
        Some(id) => {
            format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
        }
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &std::path::Path) -> Config {
        Config {
            state_dir: dir.to_path_buf(),
            ..Config::default()
        }
    }

    #[test]
    fn a_token_logs_in_once_and_failures_are_limited() {
        let d = tempfile::tempdir().unwrap();
        let cfg = cfg(d.path());
        let auth = Auth::default();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let token = new_token(&cfg).unwrap();
        let (id, s) = auth.login(&cfg, peer, &token).unwrap();
        let header = format!("x=1; {COOKIE}={id}");
        assert_eq!(auth.session(Some(&header)).unwrap().1.csrf, s.csrf);
        assert_eq!(
            auth.login(&cfg, peer, &token).unwrap_err(),
            LoginError::BadToken
        );
        for _ in 0..4 {
            assert_eq!(
                auth.login(&cfg, peer, "nope").unwrap_err(),
                LoginError::BadToken
            );
        }
        let fresh = new_token(&cfg).unwrap();
        assert_eq!(
            auth.login(&cfg, peer, &fresh).unwrap_err(),
            LoginError::RateLimited
        );
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(auth.login(&cfg, other, &fresh).is_ok());
        auth.logout(&id);
        assert!(auth.session(Some(&header)).is_none());
    }

    #[test]
    fn cookies() {
        assert!(set_cookie(Some("a"), 60, false).contains("HttpOnly; SameSite=Strict"));
        assert!(set_cookie(Some("a"), 60, true).ends_with("; Secure"));
        assert_eq!(cookie_value("a=1; b=2", "b"), Some("2"));
        assert!(!constant_eq("ab", "ac"));
    }
}
