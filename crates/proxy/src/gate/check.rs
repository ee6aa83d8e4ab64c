//! Request-time checks of a [`Gate`]: client network, basic auth (bcrypt, with a constant-time cache of the
//! last accepted `Authorization` value so that only the first request pays for bcrypt), and the share link /
//! session cookie exchange. Everything secret is compared in constant time.

use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use ring::hmac;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::{BasicAuth, Gate, GateError, ShareLink, SESSION_COOKIE, SHARE_QUERY_PARAM};
use crate::http::{plain, ProxyBody};
use crate::route::unix_now;

/// At most this many bcrypt verifications run at once (process-wide), so that a flood of wrong passwords
/// costs a bounded amount of CPU.
static BCRYPT_SLOTS: Semaphore = Semaphore::const_new(2);

/// A share link's settings, decoded.
pub(crate) struct ShareState {
    token_hash: [u8; 32],
    expires_at: u64,
    key: hmac::Key,
    session_ttl: u64,
}

impl ShareState {
    pub(crate) fn new(link: &ShareLink) -> Result<ShareState, GateError> {
        let token_hash = decode_hex32(&link.token_sha256)
            .ok_or_else(|| GateError::BadTokenHash(link.token_sha256.clone()))?;
        let secret = URL_SAFE_NO_PAD
            .decode(link.session_secret.trim_end_matches('='))
            .ok()
            .filter(|s| s.len() >= 16)
            .ok_or(GateError::BadSessionSecret)?;
        Ok(ShareState {
            token_hash,
            expires_at: link.expires_at,
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            session_ttl: link.session_ttl_secs,
        })
    }

    fn mac(&self, instance: &str, host: &str, expiry: u64) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in [
            b"wayback-session/1\n".as_slice(),
            instance.as_bytes(),
            b"\n",
            host.as_bytes(),
            b"\n",
        ] {
            ctx.update(part);
        }
        ctx.update(expiry.to_string().as_bytes());
        ctx.sign()
    }

    /// A fresh session cookie value: `EXPIRY.MAC`.
    fn issue(&self, instance: &str, host: &str, now: u64) -> String {
        let expiry = now.saturating_add(self.session_ttl);
        let tag = self.mac(instance, host, expiry);
        format!("{expiry}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Is `value` an unexpired session cookie for this instance and host?
    fn valid(&self, value: &str, instance: &str, host: &str, now: u64) -> bool {
        let Some((exp, mac)) = value.split_once('.') else {
            return false;
        };
        let (Ok(expiry), Ok(mac)) = (exp.parse::<u64>(), URL_SAFE_NO_PAD.decode(mac)) else {
            return false;
        };
        let expected = self.mac(instance, host, expiry);
        let mac_ok: bool = expected.as_ref().ct_eq(&mac).into();
        mac_ok && expiry > now
    }

    #[cfg(test)]
    pub(crate) fn issue_for_test(&self, instance: &str, host: &str, now: u64) -> String {
        self.issue(instance, host, now)
    }

    #[cfg(test)]
    pub(crate) fn valid_for_test(&self, value: &str, instance: &str, host: &str, now: u64) -> bool {
        self.valid(value, instance, host, now)
    }

    fn token_matches(&self, token: &str) -> bool {
        let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        d.as_ref().ct_eq(&self.token_hash).into()
    }
}

/// Basic-auth settings plus the digest of the last `Authorization` value that passed bcrypt.
pub(crate) struct BasicState {
    user: String,
    hash: String,
    accepted: Mutex<Option<[u8; 32]>>,
}

impl BasicState {
    pub(crate) fn new(b: &BasicAuth) -> Result<BasicState, GateError> {
        let h = &b.password_bcrypt;
        let looks_bcrypt = h.len() == 60
            && ["$2a$", "$2b$", "$2x$", "$2y$"]
                .iter()
                .any(|p| h.starts_with(p));
        if !looks_bcrypt {
            return Err(GateError::BadPasswordHash(b.user.clone()));
        }
        Ok(BasicState {
            user: b.user.clone(),
            hash: h.clone(),
            accepted: Mutex::new(None),
        })
    }

    async fn verify(&self, value: &HeaderValue) -> bool {
        let digest = sha256(value.as_bytes());
        let cached = *self.accepted.lock().unwrap_or_else(PoisonError::into_inner);
        if cached.is_some_and(|c| bool::from(c.ct_eq(&digest))) {
            return true;
        }
        let Some((user, pass)) = parse_basic(value.as_bytes()) else {
            return false;
        };
        let user_ok: bool = user.as_slice().ct_eq(self.user.as_bytes()).into();
        // Always run bcrypt, also for a wrong user, so that timing does not tell which part was wrong.
        let Ok(_permit) = BCRYPT_SLOTS.acquire().await else {
            return false;
        };
        let hash = self.hash.clone();
        // Passwords are at most BCRYPT_MAX_PASSWORD bytes; bcrypt would compare only a longer one's prefix.
        let len_ok = pass.len() <= crate::gate::BCRYPT_MAX_PASSWORD;
        let pass_ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(pass, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
                && len_ok;
        if user_ok && pass_ok {
            *self.accepted.lock().unwrap_or_else(PoisonError::into_inner) = Some(digest);
        }
        user_ok && pass_ok
    }
}

impl Gate {
    /// Check one request for `instance` at (normalized) `host` from `peer`. `None`: let it through (the
    /// gate's own cookie and credentials have been removed from `req`); `Some`: answer with this instead.
    /// `secure` marks the session cookie `Secure` (the request came over TLS).
    pub(crate) async fn check<B>(
        &self,
        instance: &str,
        host: &str,
        req: &mut Request<B>,
        peer: IpAddr,
        secure: bool,
    ) -> Option<Response<ProxyBody>> {
        let peer = peer.to_canonical();
        if !self.config.allow.is_empty() && !self.config.allow.iter().any(|n| n.contains(&peer)) {
            return Some(plain(StatusCode::FORBIDDEN, "forbidden\n"));
        }
        if let Some(basic) = &self.basic {
            let ok = match req.headers().get(header::AUTHORIZATION) {
                Some(v) => basic.verify(v).await,
                None => false,
            };
            if !ok {
                return Some(unauthorized());
            }
            req.headers_mut().remove(header::AUTHORIZATION);
        }
        if let Some(share) = &self.share {
            let now = unix_now();
            let has_session =
                session_cookies(req.headers()).any(|v| share.valid(v, instance, host, now));
            if let Some((token, location)) = take_token(req.uri()) {
                let mut cookie = None;
                if !has_session {
                    if now >= share.expires_at || !share.token_matches(&token) {
                        return Some(link_refused());
                    }
                    let hash = super::sha256_hex(token.as_bytes());
                    if !self.store.consume_token(instance, &hash) {
                        return Some(link_refused());
                    }
                    tracing::info!(instance, "share link used");
                    cookie = Some(share.issue(instance, host, now));
                }
                return Some(redirect(
                    &location,
                    cookie.as_deref(),
                    share.session_ttl,
                    secure,
                ));
            }
            if !has_session {
                return Some(plain(
                    StatusCode::FORBIDDEN,
                    "forbidden: open the share link you were given\n",
                ));
            }
            strip_session_cookie(req.headers_mut());
        }
        None
    }
}

fn unauthorized() -> Response<ProxyBody> {
    let mut r = plain(StatusCode::UNAUTHORIZED, "authentication required\n");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"wayback\", charset=\"UTF-8\""),
    );
    r
}

fn link_refused() -> Response<ProxyBody> {
    plain(
        StatusCode::FORBIDDEN,
        "forbidden: this share link has expired or was already used\n",
    )
}

/// 303 to `location` (the same URL without the token), setting the session cookie if given.
fn redirect(location: &str, cookie: Option<&str>, ttl: u64, secure: bool) -> Response<ProxyBody> {
    let mut r = plain(StatusCode::SEE_OTHER, "");
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Some(value) = cookie {
        let secure = if secure { "; Secure" } else { "" };
        let c = format!(
            "{SESSION_COOKIE}={value}; Path=/; Max-Age={ttl}; HttpOnly; SameSite=Lax{secure}"
        );
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.insert(header::SET_COOKIE, v);
        }
    }
    r
}

/// If the query carries the share token: the token and the path-and-query without it.
pub(crate) fn take_token(uri: &hyper::Uri) -> Option<(String, String)> {
    let query = uri.query()?;
    let mut token = None;
    let mut rest: Vec<&str> = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((SHARE_QUERY_PARAM, v)) => token = Some(v.to_owned()),
            _ if pair == SHARE_QUERY_PARAM => token = Some(String::new()),
            _ => rest.push(pair),
        }
    }
    let token = token?;
    let path = if uri.path().is_empty() {
        "/"
    } else {
        uri.path()
    };
    let location = if rest.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", rest.join("&"))
    };
    Some((token, location))
}

/// Values of every `wayback_session` cookie in the request.
pub(crate) fn session_cookies(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// Remove the gate's session cookie from the `Cookie` headers, so the instance never sees it.
pub(crate) fn strip_session_cookie(headers: &mut HeaderMap) {
    if session_cookies(headers).next().is_none() {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && c.split_once('=').is_none_or(|(n, _)| n != SESSION_COOKIE))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(header::COOKIE, v);
        }
    }
}

/// `Basic BASE64(user:password)` → (user, password).
pub(crate) fn parse_basic(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = STANDARD.decode(value[6..].trim_ascii()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    out
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}
