//! On-demand ACME (RFC 8555) certificates with `instant-acme`: one certificate per hostname, issued at the
//! first TLS handshake for a host the resolver knows (never for unknown hosts), validated with **http-01** —
//! the plain-HTTP listener ([`crate::serve_https_redirect`]) answers `/.well-known/acme-challenge/TOKEN` from
//! [`Acme::challenge`]. Certificates and the account key are cached on disk (mode 0600) and renewed in the
//! background when less than 30 days remain.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;

use crate::route::unix_now;
use crate::tls::{certified_key_from_pem, not_after, TlsError};

/// Renew a certificate when it has less than this left.
const RENEW_BEFORE_SECS: u64 = 30 * 86_400;
/// After a failed issuance, handshakes for that host do not try again for this long.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);
/// Upper bound on one issuance (order, validation, finalization, download).
const ISSUE_TIMEOUT: Duration = Duration::from_secs(120);

/// ACME settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// The CA's directory URL (`https://…/directory`; Let's Encrypt's, a private CA's, or Pebble's `/dir`).
    pub directory_url: String,
    /// Contact email addresses for the account (`mailto:` is added when missing); may be empty.
    pub contact: Vec<String>,
    /// Where the account key and the certificates are kept (created 0700 if missing).
    pub cache_dir: PathBuf,
    /// PEM root certificate that the ACME server's own HTTPS chains to, for private CAs and tests (Pebble).
    /// `None`: the system's trust store.
    pub ca_root: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AcmeError {
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error("ACME: {0} (is the host reachable from the CA on the HTTP listener for http-01?)")]
    Status(String),
    #[error("ACME: the CA offers no http-01 challenge")]
    NoHttp01,
    #[error("ACME: no certificate within {}s", ISSUE_TIMEOUT.as_secs())]
    Timeout,
    #[error("ACME: the last attempt failed less than {}s ago; not retrying yet", RETRY_AFTER_FAILURE.as_secs())]
    Backoff,
    #[error("ACME: the CA returned a certificate that does not match its key")]
    BadCertificate,
    #[error("ACME: cannot write {path}: {source} (is the cache directory writable?)")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Clone)]
struct Cached {
    key: Arc<CertifiedKey>,
    not_after: u64,
}

/// The ACME state of one server: account, issued certificates, pending challenges.
pub(crate) struct Acme {
    cfg: AcmeConfig,
    account: tokio::sync::OnceCell<Account>,
    certs: RwLock<HashMap<String, Cached>>,
    /// One issuance at a time per host.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    failed: Mutex<HashMap<String, Instant>>,
    renewing: Mutex<HashSet<String>>,
    /// http-01 token → key authorization.
    challenges: RwLock<HashMap<String, String>>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("directory_url", &self.cfg.directory_url)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Acme {
    pub(crate) fn new(cfg: AcmeConfig) -> Result<Acme, TlsError> {
        if !cfg.directory_url.starts_with("https://") {
            return Err(TlsError::AcmeUrl(cfg.directory_url));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.cache_dir)
            .map_err(|source| TlsError::AcmeCache {
                path: cfg.cache_dir.clone(),
                source,
            })?;
        // instant-acme's HTTPS client uses the process-wide rustls provider; make sure there is one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Acme {
            cfg,
            account: tokio::sync::OnceCell::new(),
            certs: RwLock::default(),
            locks: Mutex::default(),
            failed: Mutex::default(),
            renewing: Mutex::default(),
            challenges: RwLock::default(),
        })
    }

    /// The unexpired certificate for `host`, if one was issued or loaded.
    pub(crate) fn cached(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.read().unwrap_or_else(PoisonError::into_inner);
        certs
            .get(host)
            .filter(|c| c.not_after > unix_now())
            .map(|c| c.key.clone())
    }

    /// The key authorization to answer an http-01 request for `token` with.
    pub(crate) fn challenge(&self, token: &str) -> Option<String> {
        self.challenges
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    fn entry(&self, host: &str) -> Option<Cached> {
        self.certs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(host)
            .cloned()
    }

    /// Make sure a usable certificate for `host` is in memory: from memory, the disk cache, or the CA. A
    /// certificate close to expiry is used while a renewal runs in the background.
    pub(crate) async fn ensure(self: &Arc<Self>, host: &str) -> Result<(), AcmeError> {
        if self.usable(host) {
            return Ok(());
        }
        let host_lock = lock(&self.locks)
            .entry(host.to_owned())
            .or_default()
            .clone();
        let _guard = host_lock.lock().await;
        if self.usable(host) {
            return Ok(());
        }
        if let Some(c) = self.load_disk(host) {
            self.certs
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(host.to_owned(), c);
            if self.usable(host) {
                return Ok(());
            }
        }
        if lock(&self.failed)
            .get(host)
            .is_some_and(|t| t.elapsed() < RETRY_AFTER_FAILURE)
        {
            return Err(AcmeError::Backoff);
        }
        self.issue_and_store(host).await
    }

    /// Valid now; if it is due for renewal, start one in the background.
    fn usable(self: &Arc<Self>, host: &str) -> bool {
        let Some(c) = self.entry(host) else {
            return false;
        };
        let now = unix_now();
        if c.not_after <= now {
            return false;
        }
        if c.not_after - now < RENEW_BEFORE_SECS && lock(&self.renewing).insert(host.to_owned()) {
            let (acme, host) = (self.clone(), host.to_owned());
            tokio::spawn(async move {
                let host_lock = lock(&acme.locks).entry(host.clone()).or_default().clone();
                let _guard = host_lock.lock().await;
                if let Err(e) = acme.issue_and_store(&host).await {
                    tracing::warn!(host, error = %e, "certificate renewal failed; will retry");
                }
                lock(&acme.renewing).remove(&host);
            });
        }
        true
    }

    async fn issue_and_store(&self, host: &str) -> Result<(), AcmeError> {
        let result = match tokio::time::timeout(ISSUE_TIMEOUT, self.issue(host)).await {
            Ok(r) => r,
            Err(_) => Err(AcmeError::Timeout),
        };
        let (chain_pem, key_pem) = match result {
            Ok(pems) => pems,
            Err(e) => {
                lock(&self.failed).insert(host.to_owned(), Instant::now());
                return Err(e);
            }
        };
        let cached = cached_from_pem(&chain_pem, &key_pem).ok_or(AcmeError::BadCertificate)?;
        let path = self.cert_path(host);
        write_private(&path, format!("{key_pem}{chain_pem}").as_bytes())
            .map_err(|source| AcmeError::Write { path, source })?;
        tracing::info!(
            host,
            not_after = cached.not_after,
            "ACME certificate issued"
        );
        lock(&self.failed).remove(host);
        self.certs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(host.to_owned(), cached);
        Ok(())
    }

    /// One order for `host`: http-01 validation, finalization with a fresh key. Returns (chain, key) PEM.
    async fn issue(&self, host: &str) -> Result<(String, String), AcmeError> {
        let account = self.account().await?;
        let ids = [Identifier::Dns(host.to_owned())];
        let mut order = account.new_order(&NewOrder::new(&ids)).await?;
        let mut tokens = Vec::new();
        let result = async {
            let mut auths = order.authorizations();
            while let Some(authz) = auths.next().await {
                let mut authz = authz?;
                match authz.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => {
                        return Err(AcmeError::Status(format!(
                            "authorization for {host} is {other:?}"
                        )))
                    }
                }
                let mut ch = authz
                    .challenge(ChallengeType::Http01)
                    .ok_or(AcmeError::NoHttp01)?;
                let key_auth = ch.key_authorization().as_str().to_owned();
                self.challenges
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(ch.token.clone(), key_auth);
                tokens.push(ch.token.clone());
                ch.set_ready().await?;
            }
            let retry = RetryPolicy::new().timeout(ISSUE_TIMEOUT);
            let status = order.poll_ready(&retry).await?;
            if status != OrderStatus::Ready {
                return Err(AcmeError::Status(format!("order for {host} is {status:?}")));
            }
            let key_pem = order.finalize().await?;
            let chain_pem = order.poll_certificate(&retry).await?;
            Ok((chain_pem, key_pem))
        }
        .await;
        let mut challenges = self
            .challenges
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for t in &tokens {
            challenges.remove(t);
        }
        result
    }

    /// The account: restored from the cache, or registered (and cached) at the first issuance.
    async fn account(&self) -> Result<&Account, AcmeError> {
        self.account
            .get_or_try_init(|| async {
                let digest = crate::gate::sha256_hex(self.cfg.directory_url.as_bytes());
                let path = self
                    .cfg
                    .cache_dir
                    .join(format!("account-{}.json", &digest[..16]));
                let builder = || match &self.cfg.ca_root {
                    Some(root) => Account::builder_with_root(root),
                    None => Account::builder(),
                };
                if let Ok(bytes) = std::fs::read(&path) {
                    if let Ok(creds) = serde_json::from_slice::<AccountCredentials>(&bytes) {
                        return Ok(builder()?.from_credentials(creds).await?);
                    }
                }
                let contact: Vec<String> = self
                    .cfg
                    .contact
                    .iter()
                    .map(|c| {
                        if c.starts_with("mailto:") {
                            c.clone()
                        } else {
                            format!("mailto:{c}")
                        }
                    })
                    .collect();
                let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
                let new = NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let (account, creds) = builder()?
                    .create(&new, self.cfg.directory_url.clone(), None)
                    .await?;
                let json = serde_json::to_vec(&creds).map_err(|e| AcmeError::Write {
                    path: path.clone(),
                    source: std::io::Error::other(e),
                })?;
                write_private(&path, &json).map_err(|source| AcmeError::Write { path, source })?;
                Ok(account)
            })
            .await
    }

    fn cert_path(&self, host: &str) -> PathBuf {
        self.cfg.cache_dir.join(format!("{host}.pem"))
    }

    fn load_disk(&self, host: &str) -> Option<Cached> {
        let pem = std::fs::read_to_string(self.cert_path(host)).ok()?;
        cached_from_pem(&pem, &pem)
    }
}

fn cached_from_pem(chain_pem: &str, key_pem: &str) -> Option<Cached> {
    let key = certified_key_from_pem(chain_pem, key_pem)?;
    let not_after = not_after(key.cert.first()?.as_ref())?;
    Some(Cached {
        key: Arc::new(key),
        not_after,
    })
}

/// Write `data` to `path` atomically (temp file + rename), readable by the owner only.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Hostnames we request certificates for (and use as cache file names): plain DNS names only.
pub(crate) fn acme_eligible(host: &str) -> bool {
    host.len() <= 253
        && host.contains('.')
        && !host.starts_with(['.', '-'])
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && !host
            .split('.')
            .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
}
