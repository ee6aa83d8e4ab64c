//! The per-instance access gate: its serialisable settings ([`GateConfig`]: one-time share link, basic auth,
//! allowed client networks), the runtime [`Gate`] built from them, and [`GateStore`], where the proxy records
//! that a one-time link was used so that the record outlives the proxy process.
//!
//! The request-time checks live in `gate/check.rs`. A request that fails the gate is answered by the proxy
//! (401/403/redirect) and never reaches the instance: no dial, no activity recorded.
//!
//! What is stored where:
//! - the share *token* is printed once (in the URL) and never stored; the config holds its SHA-256 and expiry;
//! - "this link was used" is recorded through [`GateStore::consume_token`], which must return `true` exactly
//!   once per token, also across proxy restarts (see [`DirGateStore`]);
//! - the session cookie the link is exchanged for is `EXPIRY.HMAC-SHA256(session_secret, instance, host,
//!   EXPIRY)`: nothing per session is stored, and changing `session_secret` revokes every session;
//! - the basic-auth password is stored as a bcrypt hash (htpasswd-compatible `$2b$`/`$2y$`).

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ipnet::IpNet;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

mod check;
#[cfg(test)]
mod tests;

/// Query parameter that carries a one-time share token: `https://HOST/?wayback-token=TOKEN` (any path).
pub const SHARE_QUERY_PARAM: &str = "wayback-token";
/// Name of the session cookie a share link is exchanged for.
pub const SESSION_COOKIE: &str = "wayback_session";
/// bcrypt cost used by [`BasicAuth::new`].
pub const BCRYPT_COST: u32 = 10;
/// The longest basic-auth password, in bytes (UTF-8): bcrypt uses only the first 72 bytes, so a longer
/// password is refused rather than silently cut.
pub const BCRYPT_MAX_PASSWORD: usize = 72;

/// Who may reach one instance. Every configured condition must hold (allow AND basic auth AND share session).
/// The default (nothing configured) lets everyone through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateConfig {
    /// One-time link exchanged for a session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<ShareLink>,
    /// HTTP basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// Client networks allowed in (empty: any). A client outside gets 403.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<IpNet>,
}

impl GateConfig {
    /// True when no condition is configured (the gate lets everything through).
    pub fn is_open(&self) -> bool {
        self.share.is_none() && self.basic_auth.is_none() && self.allow.is_empty()
    }
}

/// A one-time share link: the token's hash and expiry, plus the key for the sessions it opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareLink {
    /// SHA-256 of the token (the exact string in the URL), lowercase hex.
    pub token_sha256: String,
    /// Unix time (seconds) from which the link no longer works, used or not.
    pub expires_at: u64,
    /// HMAC key for session cookies: 32 random bytes, base64url without padding.
    pub session_secret: String,
    /// Lifetime of the session cookie, in seconds.
    pub session_ttl_secs: u64,
}

impl ShareLink {
    /// A new link valid for `link_ttl` that opens sessions lasting `session_ttl`. Returns the settings to store
    /// and the token to put in the URL (with [`share_url`]); the token itself is not kept anywhere.
    pub fn generate(
        link_ttl: Duration,
        session_ttl: Duration,
    ) -> Result<(ShareLink, String), GateError> {
        let token = URL_SAFE_NO_PAD.encode(random_bytes()?);
        let link = ShareLink {
            token_sha256: sha256_hex(token.as_bytes()),
            expires_at: crate::route::unix_now().saturating_add(link_ttl.as_secs()),
            session_secret: URL_SAFE_NO_PAD.encode(random_bytes()?),
            session_ttl_secs: session_ttl.as_secs(),
        };
        Ok((link, token))
    }
}

/// The link to hand out: `BASE/?wayback-token=TOKEN`, e.g. `share_url("https://app.example.org", &t)`.
pub fn share_url(base: &str, token: &str) -> String {
    format!(
        "{}/?{SHARE_QUERY_PARAM}={token}",
        base.trim_end_matches('/')
    )
}

/// HTTP basic authentication with one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasicAuth {
    /// The user name, compared exactly.
    pub user: String,
    /// bcrypt hash of the password (`$2b$…`, as `htpasswd -B` writes it).
    pub password_bcrypt: String,
}

impl BasicAuth {
    /// Hash `password` with bcrypt ([`BCRYPT_COST`]). A password longer than [`BCRYPT_MAX_PASSWORD`] bytes is
    /// an error.
    pub fn new(user: impl Into<String>, password: &str) -> Result<BasicAuth, GateError> {
        Self::with_cost(user, password, BCRYPT_COST)
    }

    /// Like [`BasicAuth::new`] with an explicit bcrypt cost (4..=31; tests use 4).
    pub fn with_cost(
        user: impl Into<String>,
        password: &str,
        cost: u32,
    ) -> Result<BasicAuth, GateError> {
        let user = user.into();
        if user.is_empty() || user.contains(':') {
            return Err(GateError::BadUser(user));
        }
        if password.len() > BCRYPT_MAX_PASSWORD {
            return Err(GateError::PasswordTooLong {
                user,
                len: password.len(),
            });
        }
        let password_bcrypt = bcrypt::hash(password, cost).map_err(GateError::Hash)?;
        Ok(BasicAuth {
            user,
            password_bcrypt,
        })
    }
}

/// What is wrong with a [`GateConfig`] (or with making one).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(
        "gate: share.token_sha256 {0:?} is not 64 hex digits (make links with ShareLink::generate)"
    )]
    BadTokenHash(String),
    #[error("gate: share.session_secret is not base64url of at least 16 bytes (make links with ShareLink::generate)")]
    BadSessionSecret,
    #[error("gate: basic_auth.password_bcrypt for user {0:?} is not a bcrypt hash (expected $2b$…, as from `htpasswd -nB`)")]
    BadPasswordHash(String),
    #[error("gate: basic-auth user {0:?} must be non-empty and contain no ':'")]
    BadUser(String),
    #[error(
        "gate: the basic-auth password for user {user:?} is {len} bytes long; bcrypt uses at most \
         {BCRYPT_MAX_PASSWORD} bytes, so it would be cut silently: choose a password of at most \
         {BCRYPT_MAX_PASSWORD} bytes"
    )]
    PasswordTooLong { user: String, len: usize },
    #[error("gate: cannot hash the password: {0}")]
    Hash(#[source] bcrypt::BcryptError),
    #[error("gate: the system random generator failed (is /dev/urandom available?)")]
    Random,
}

/// Records the use of one-time share tokens. The lead process implements it over its instance state so that a
/// used link stays used when the proxy restarts; [`MemoryGateStore`] and [`DirGateStore`] are provided.
pub trait GateStore: Send + Sync + 'static {
    /// Mark the token with hash `token_sha256` (lowercase hex) of `instance` as used. Must return `true` for
    /// exactly one call per `(instance, token_sha256)`, ever, and `false` afterwards, including when called
    /// concurrently or from another process. When in doubt (e.g. an I/O error), return `false`: the link then
    /// fails closed.
    fn consume_token(&self, instance: &str, token_sha256: &str) -> bool;
}

/// A [`GateStore`] in memory: used tokens are forgotten when the process exits. For tests and one-process use.
#[derive(Debug, Default)]
pub struct MemoryGateStore {
    used: Mutex<HashSet<(String, String)>>,
}

impl GateStore for MemoryGateStore {
    fn consume_token(&self, instance: &str, token_sha256: &str) -> bool {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        used.insert((instance.to_owned(), token_sha256.to_owned()))
    }
}

/// A [`GateStore`] on disk: using a token creates `ROOT/INSTANCE/share-used-HASH` with `O_CREAT|O_EXCL`,
/// which succeeds for exactly one caller across processes and restarts. `ROOT/INSTANCE` must exist (it is the
/// instance's state directory, so the marks go away with the instance); if it does not, links fail closed.
#[derive(Debug, Clone)]
pub struct DirGateStore {
    root: PathBuf,
}

impl DirGateStore {
    /// Store marks under `root/<instance>/`.
    pub fn new(root: impl Into<PathBuf>) -> DirGateStore {
        DirGateStore { root: root.into() }
    }
}

impl GateStore for DirGateStore {
    fn consume_token(&self, instance: &str, token_sha256: &str) -> bool {
        let safe = |s: &str| {
            !s.is_empty()
                && !s.starts_with('.')
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !safe(instance) || !safe(token_sha256) {
            return false;
        }
        let path = self
            .root
            .join(instance)
            .join(format!("share-used-{token_sha256}"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot record a share-link use; refusing the link");
                false
            }
        }
    }
}

/// A [`GateConfig`] checked and ready for requests.
pub struct Gate {
    config: GateConfig,
    store: std::sync::Arc<dyn GateStore>,
    share: Option<check::ShareState>,
    basic: Option<check::BasicState>,
}

impl Gate {
    /// Validate `config` (hash and key formats) and attach the store that records used links.
    pub fn new(
        config: GateConfig,
        store: std::sync::Arc<dyn GateStore>,
    ) -> Result<Gate, GateError> {
        let share = config
            .share
            .as_ref()
            .map(check::ShareState::new)
            .transpose()?;
        let basic = config
            .basic_auth
            .as_ref()
            .map(check::BasicState::new)
            .transpose()?;
        Ok(Gate {
            config,
            store,
            share,
            basic,
        })
    }

    /// The settings this gate enforces.
    pub fn config(&self) -> &GateConfig {
        &self.config
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No secrets: only which conditions are on.
        f.debug_struct("Gate")
            .field("share", &self.share.is_some())
            .field("basic_auth", &self.basic.is_some())
            .field("allow", &self.config.allow)
            .finish()
    }
}

fn random_bytes() -> Result<[u8; 32], GateError> {
    let mut b = [0u8; 32];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| GateError::Random)?;
    Ok(b)
}

/// A fresh 256-bit secret, URL-safe base64 (share tokens, the console's login tokens, sessions, CSRF).
pub fn random_token() -> Result<String, GateError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes()?))
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
