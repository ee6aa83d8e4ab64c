//! The console's listener: `wayback serve` refuses (exit 2, naming the fix) a console on a non-loopback
//! address without TLS, and serves HTTPS with `tls_cert`/`tls_key` — the login page over TLS (checked
//! against the test CA), a session cookie marked `Secure`, and the same refusal of requests without a
//! session.

use std::fs;
use std::process::Command;

use wayback_testsupport::*;

/// `curl` with the test CA; returns (status, headers).
fn curl(ca: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--max-time",
            "10",
            "--cacert",
            ca,
        ])
        .args(args)
        .output()
        .expect("curl");
    let headers = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, headers)
}

#[test]
fn console_needs_tls_beyond_loopback_and_serves_https() {
    if !require_root("console_needs_tls_beyond_loopback_and_serves_https") {
        return;
    }
    // Beyond loopback without a certificate: refused before anything is served.
    let port = free_port();
    let wb = Wayback::with_extra_config(&format!("[console]\nlisten = \"0.0.0.0:{port}\"\n"));
    let out = wb.run_timeout(&["serve"], std::time::Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(show(&out).contains("tls_cert"), "{}", show(&out));
    assert!(!wb.runtime_dir().join("wayback.sock").exists());

    // With a certificate: HTTPS, on loopback here (the machine's other addresses are not ours to use).
    let certs = tempfile::Builder::new()
        .prefix("wbtc-certs-")
        .tempdir()
        .unwrap();
    make_certificate(certs.path(), "console", "localhost", "DNS:localhost");
    let (cert, key) = (
        certs.path().join("console.pem"),
        certs.path().join("console.key"),
    );
    let port = free_port();
    let wb = Wayback::with_extra_config(&format!(
        "[console]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    let _daemon = start_daemon(&wb, None);
    let ca = certs.path().join("ca.pem");
    let ca = ca.to_str().unwrap();
    let base = format!("https://localhost:{port}");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let (status, _) = curl(ca, &["--resolve", &resolve, &format!("{base}/login")]);
    assert_eq!(status, 200, "the login page over TLS");
    let (status, _) = curl(
        ca,
        &["--resolve", &resolve, &format!("{base}/api/instances")],
    );
    assert_eq!(status, 401, "no session");
    let token = wb.run_ok(&["console", "token"]).trim().to_string();
    let (status, headers) = curl(
        ca,
        &[
            "--resolve",
            &resolve,
            "-d",
            &format!("token={token}"),
            &format!("{base}/login"),
        ],
    );
    assert_eq!(status, 303, "{headers}");
    let cookie = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no session cookie: {headers}"));
    for attr in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    // Plain HTTP on the TLS port gets no page.
    let (status, _) = curl(ca, &[&format!("http://127.0.0.1:{port}/login")]);
    assert_eq!(status, 0, "plain HTTP must not be answered");
    assert!(fs::metadata(wb.state_dir().join("console/tokens.json")).is_ok());
}

/// Behind an authenticating reverse proxy: its user header is a login only on connections from
/// `trusted_proxies` (here 127.0.0.2, a loopback source address of the test's own); from anywhere else the
/// header is ignored (401), and a POST still needs the session's CSRF token.
#[test]
fn console_trusts_a_proxy_header_only_from_trusted_addresses() {
    if !require_root("console_trusts_a_proxy_header_only_from_trusted_addresses") {
        return;
    }
    let port = free_port();
    let wb = Wayback::with_extra_config(&format!(
        "[console]\nlisten = \"127.0.0.1:{port}\"\ntrusted_proxy_header = \"X-Remote-User\"\n\
         trusted_proxies = [\"127.0.0.2/32\"]\n"
    ));
    let _daemon = start_daemon(&wb, None);
    let url = format!("http://127.0.0.1:{port}/api/instances");
    assert_eq!(
        curl_status(&["-H", "X-Remote-User: alice", &url]),
        401,
        "from an untrusted address"
    );
    assert_eq!(
        curl_status(&["--interface", "127.0.0.2", &url]),
        401,
        "no header"
    );
    let jar = wb.tmp().join("jar");
    let jar = jar.to_str().unwrap();
    assert_eq!(
        curl_status(&[
            "--interface",
            "127.0.0.2",
            "-c",
            jar,
            "-H",
            "X-Remote-User: alice",
            &url
        ]),
        200,
        "the trusted proxy's user"
    );
    assert_eq!(
        curl_status(&[
            "--interface",
            "127.0.0.2",
            "-b",
            jar,
            "-X",
            "POST",
            &format!("http://127.0.0.1:{port}/api/up")
        ]),
        403,
        "a POST without the CSRF token"
    );
}
