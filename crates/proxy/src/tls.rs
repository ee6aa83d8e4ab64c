//! TLS termination settings: [`TlsConfig`] (certificate + key files, ACME, or both) loaded into [`Tls`], which
//! owns the rustls server configuration and picks a certificate per handshake by SNI: a configured file whose
//! names cover the SNI (a wildcard certificate is the common case), else an ACME certificate for that host,
//! else the first configured file.
//!
//! The accept loops are in `serve.rs`; ACME issuance is in `acme.rs`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::acme::{Acme, AcmeConfig};

/// Where certificates come from.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// Certificate chain + private key files (PEM), in order of preference; the first is the default for
    /// clients that send no SNI or one no certificate covers.
    pub certificates: Vec<CertificateFiles>,
    /// Issue per-hostname certificates on demand, for hosts the resolver knows and no file covers.
    pub acme: Option<AcmeConfig>,
}

/// One certificate chain file and its private key file, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// The leaf certificate first, then intermediates (`fullchain.pem`).
    pub cert: PathBuf,
    /// PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key.
    pub key: PathBuf,
}

/// What is wrong with a [`TlsConfig`].
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate {path}: {source} (is the path right and readable?)")]
    ReadCert { path: PathBuf, source: io::Error },
    #[error("no certificate in {0} (is it PEM, with -----BEGIN CERTIFICATE-----?)")]
    NoCert(PathBuf),
    #[error("cannot read private key {path}: {source} (is the path right and readable?)")]
    ReadKey { path: PathBuf, source: io::Error },
    #[error("no private key in {0} (is it PEM, with -----BEGIN PRIVATE KEY-----, RSA or EC PRIVATE KEY?)")]
    NoKey(PathBuf),
    #[error(
        "unsupported private key in {path}: {source} (RSA, ECDSA P-256/P-384 and Ed25519 work)"
    )]
    BadKey {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("private key {key} does not belong to certificate {cert}: {source}")]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("certificate {0} cannot be parsed as X.509: {1} (is it a certificate, not a CSR?)")]
    BadCert(PathBuf, webpki::Error),
    #[error(
        "TLS is on but has no certificate source: give certificate and key files, or ACME settings"
    )]
    NoSource,
    #[error(
        "cannot create the ACME cache directory {path}: {source} (set a writable cache directory)"
    )]
    AcmeCache { path: PathBuf, source: io::Error },
    #[error("ACME directory URL {0:?} must start with https://")]
    AcmeUrl(String),
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Loaded certificates, the ACME manager, and the rustls configuration every handshake uses.
pub struct Tls {
    resolver: Arc<CertResolver>,
    config: Arc<ServerConfig>,
}

impl Tls {
    /// An acceptor for another listener with the same certificates (the console of `wayback serve`).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }

    /// Load the certificate files (checking that each key matches its certificate) and set up ACME.
    /// Does no network I/O: the ACME account is created at the first issuance.
    pub fn new(cfg: TlsConfig) -> Result<Arc<Tls>, TlsError> {
        if cfg.certificates.is_empty() && cfg.acme.is_none() {
            return Err(TlsError::NoSource);
        }
        let files = cfg
            .certificates
            .iter()
            .map(load_pair)
            .collect::<Result<Vec<_>, _>>()?;
        let acme = cfg.acme.map(Acme::new).transpose()?.map(Arc::new);
        let resolver = Arc::new(CertResolver { files, acme });
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(Tls {
            resolver,
            config: Arc::new(config),
        }))
    }

    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    pub(crate) fn acme(&self) -> Option<&Arc<Acme>> {
        self.resolver.acme.as_ref()
    }

    /// Does a configured certificate file cover `host`?
    pub(crate) fn file_covers(&self, host: &str) -> bool {
        self.resolver.file_for(host).is_some()
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.resolver.files.len())
            .field("acme", &self.resolver.acme.is_some())
            .finish()
    }
}

#[derive(Debug)]
struct CertResolver {
    files: Vec<Arc<CertifiedKey>>,
    acme: Option<Arc<Acme>>,
}

impl CertResolver {
    fn file_for(&self, host: &str) -> Option<&Arc<CertifiedKey>> {
        let name = ServerName::try_from(host).ok()?;
        self.files.iter().find(|ck| {
            ck.end_entity_cert()
                .ok()
                .and_then(|der| webpki::EndEntityCert::try_from(der).ok())
                .is_some_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
        })
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(sni) = hello.server_name() {
            let host = sni.trim_end_matches('.').to_ascii_lowercase();
            if let Some(ck) = self.file_for(&host) {
                return Some(ck.clone());
            }
            if let Some(ck) = self.acme.as_ref().and_then(|a| a.cached(&host)) {
                return Some(ck);
            }
        }
        self.files.first().cloned()
    }
}

fn load_pair(files: &CertificateFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let read_cert = |source| TlsError::ReadCert {
        path: files.cert.clone(),
        source,
    };
    let pem = std::fs::read(&files.cert).map_err(read_cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_cert(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    if chain.is_empty() {
        return Err(TlsError::NoCert(files.cert.clone()));
    }
    webpki::EndEntityCert::try_from(&chain[0])
        .map_err(|e| TlsError::BadCert(files.cert.clone(), e))?;
    let key = read_key(&files.key)?;
    let ck = certified_key(chain, &key, &files.key)?;
    ck.keys_match().map_err(|source| TlsError::KeyMismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    })?;
    Ok(Arc::new(ck))
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let read_key = |source| TlsError::ReadKey {
        path: path.to_owned(),
        source,
    };
    let pem = std::fs::read(path).map_err(read_key)?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(k) => Ok(k),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => Err(TlsError::NoKey(path.to_owned())),
        Err(e) => Err(read_key(io::Error::new(io::ErrorKind::InvalidData, e))),
    }
}

/// Pair a chain with its key (PEM text of both, as ACME returns and caches them).
pub(crate) fn certified_key_from_pem(chain_pem: &str, key_pem: &str) -> Option<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).ok()?;
    let ck = certified_key(chain, &key, Path::new("")).ok()?;
    ck.keys_match().ok()?;
    (!ck.cert.is_empty()).then_some(ck)
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'static>,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let signing = provider::sign::any_supported_type(key).map_err(|source| TlsError::BadKey {
        path: key_path.to_owned(),
        source,
    })?;
    Ok(CertifiedKey::new(chain, signing))
}

/// The certificate's notAfter as Unix seconds (`tbsCertificate.validity`); `None` for what is not an
/// X.509 certificate or expired before 1970.
pub(crate) fn not_after(cert: &[u8]) -> Option<u64> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    u64::try_from(cert.validity().not_after.timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_not_after_of_generated_certificates() {
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 9);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(not_after(cert.der()), Some(1_941_321_600)); // 2031-07-09T00:00:00Z (UTCTime)
        params.not_after = rcgen::date_time_ymd(2051, 1, 2);
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(not_after(cert.der()), Some(2_556_230_400)); // GeneralizedTime after 2049
        assert_eq!(not_after(b"\x30\x03\x02\x01"), None);
    }
}
