//! The test's own `wayback serve` (stopped by PID on drop) and throwaway TLS certificates.

#![allow(dead_code, unused_imports)]

use super::*;

/// A `wayback serve` the test started: stopped with SIGTERM (ours, by PID) when dropped, also on panic.
pub struct Daemon(pub Child);

impl std::ops::Deref for Daemon {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = self.0.wait();
        }
    }
}

/// Start `wayback serve` for `wb` (with `WAYBACK_FAULT_POINT` when given), its stderr appended to
/// `<tmp>/serve.err`, and wait for its socket.
pub fn start_daemon(wb: &Wayback, fault_point: Option<u32>) -> Daemon {
    let mut c = wb.command(&["serve"]);
    if let Some(k) = fault_point {
        c.env("WAYBACK_FAULT_POINT", k.to_string());
    }
    spawn_daemon(c, wb)
}

/// Start the daemon command `c` (any wayback binary's `serve` for `wb`'s config), its stderr appended to
/// `<tmp>/serve.err`, and wait for its socket; stopped (SIGTERM, by PID) when the guard drops.
pub fn spawn_daemon(mut c: Command, wb: &Wayback) -> Daemon {
    // A killed daemon leaves its socket file: wait for the new one, not that.
    let sock = wb.runtime_dir().join("wayback.sock");
    let _ = fs::remove_file(&sock);
    let err = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(wb.tmp().join("serve.err"))
        .unwrap();
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    let daemon = Daemon(child);
    wait_for(Duration::from_secs(30), || sock.exists().then_some(())).expect("daemon socket");
    daemon
}

/// A throwaway CA (`ca.pem`, `ca.key`) and a certificate for `names` signed by it (`<stem>.pem`,
/// `<stem>.key`) in `dir`, made with rcgen. `names` are subjectAltName entries, comma-separated
/// (`DNS:x`, `IP:y`).
pub fn make_certificate(dir: &Path, stem: &str, cn: &str, names: &str) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        SanType,
    };
    let ca_params = || {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "wbt test CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    };
    let ca_key = match fs::read_to_string(dir.join("ca.key")) {
        Ok(pem) => KeyPair::from_pem(&pem).unwrap(),
        Err(_) => {
            let key = KeyPair::generate().unwrap();
            let cert = ca_params().self_signed(&key).unwrap();
            fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
            fs::write(dir.join("ca.key"), key.serialize_pem()).unwrap();
            key
        }
    };
    let issuer = Issuer::new(ca_params(), ca_key);
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    for n in names.split(',').map(str::trim) {
        params.subject_alt_names.push(match n.split_once(':') {
            Some(("DNS", d)) => SanType::DnsName(d.try_into().unwrap()),
            Some(("IP", ip)) => SanType::IpAddress(ip.parse().unwrap()),
            _ => panic!("make_certificate: bad subjectAltName {n:?} (DNS:x or IP:y)"),
        });
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    fs::write(dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
    fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
}
