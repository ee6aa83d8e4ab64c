//! Test PKI (a CA and leaf certificates made with rcgen) and a `curl` runner for the TLS tests.

use std::path::Path;
use std::process::Stdio;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use wayback_proxy::CertificateFiles;

/// A self-signed CA that signs leaf certificates.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate for `names` (DNS names or IP addresses): (certificate PEM, key PEM).
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(std::string::ToString::to_string).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Write the CA as `dir/ca.pem` and return its path.
    pub fn write(&self, dir: &Path) -> std::path::PathBuf {
        let p = dir.join("ca.pem");
        std::fs::write(&p, self.pem()).unwrap();
        p
    }

    /// Write a leaf for `names` as `dir/STEM.crt` + `dir/STEM.key`.
    pub fn write_leaf(&self, dir: &Path, stem: &str, names: &[&str]) -> CertificateFiles {
        let (cert, key) = self.leaf(names);
        let files = CertificateFiles {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }
}

/// Is `tool` on PATH?
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Run curl with `args` (plus `-sS -i --max-time 60`); returns (HTTP status, response head and body), or
/// status 0 and curl's error when the transfer failed.
pub async fn curl(args: &[&str]) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-i", "--max-time", "60", "--noproxy", "*"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run curl");
    if !out.status.success() {
        return (0, String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}
