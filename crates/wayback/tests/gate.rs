//! The access gate and TLS, end to end through `wayback up`: a one-time share link works once (then 403)
//! and its cookie carries later requests; wrong basic auth gets 401, the right one 200; a client outside
//! `--allow` gets 403; no refused request reaches the service (its own request log shows only the
//! accepted ones). TLS from certificate files: HTTPS with the wildcard certificate, HTTP redirects to it.

use std::fs;
use std::process::Command;

use wayback_testsupport::*;

/// `curl` against the proxy with the instance's hostname resolved to loopback; returns (status, stdout).
fn curl(url: &str, extra: &[&str]) -> (u16, String) {
    let host = url
        .split("://")
        .nth(1)
        .unwrap()
        .split(['/', ':'])
        .next()
        .unwrap()
        .to_string();
    let port = url
        .split("://")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"])
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// How many client requests reached the service (python's http.server prints one line per request): all
/// it logged but the first, wayback's own check of the front page at start (from inside the instance,
/// before the route exists: docs/masquerade.md).
fn served(wb: &Wayback, name: &str) -> usize {
    let gets = wb
        .run_ok(&["logs", name])
        .lines()
        .filter(|l| l.contains("\"GET "))
        .count();
    gets.checked_sub(1)
        .expect("the service logged no request at all, not even the host check's GET / at start")
}

fn site(pool: &BtrfsPool) -> String {
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/www")).unwrap();
    fs::write(live.join("srv/www/index.html"), "guarded\n").unwrap();
    pool.snapshot_ro("live", "snaps/s1")
        .to_str()
        .unwrap()
        .to_string()
}

const SERVER: &str = "exec python3 -m http.server 8000 --bind 127.0.0.1 --directory /srv/www";

#[test]
fn share_link_basic_auth_and_allow_guard_the_instance() {
    if !require_root("share_link_basic_auth_and_allow_guard_the_instance") {
        return;
    }
    let pool = BtrfsPool::new();
    let snap = site(&pool);
    let wb = Wayback::new();

    // One-time link.
    let name = unique("wbtshare");
    let up = wb.up_background(&[
        &snap, "--name", &name, "--bind", "/srv", "--exec", SERVER, "--port", "8000", "--share",
    ]);
    let link = up.ready["share_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no share_url: {}", up.ready))
        .to_string();
    let url = up.url().unwrap();
    let jar = wb.tmp().join("cookies");
    let jar = jar.to_str().unwrap();
    assert_eq!(curl(&url, &[]).0, 403, "no link, no cookie");
    let (code, body) = curl(&link, &["-L", "-c", jar, "-b", jar]);
    assert_eq!(
        (code, body.as_str()),
        (200, "guarded\n"),
        "first use of the link"
    );
    assert_eq!(
        curl(&url, &["-b", jar]).0,
        200,
        "the cookie carries later requests"
    );
    assert_eq!(curl(&link, &[]).0, 403, "second use of the link");
    assert_eq!(
        served(&wb, &name),
        2,
        "only the two accepted requests reached the service"
    );
    drop(up);

    // Basic auth.
    let name = unique("wbtbasic");
    let pw = wb.tmp().join("pw");
    fs::write(&pw, "s3cret\n").unwrap();
    let up = wb.up_background(&[
        &snap,
        "--name",
        &name,
        "--bind",
        "/srv",
        "--exec",
        SERVER,
        "--port",
        "8000",
        "--basic-auth",
        "alice",
        "--basic-auth-file",
        pw.to_str().unwrap(),
    ]);
    let url = up.url().unwrap();
    assert_eq!(curl(&url, &[]).0, 401);
    assert_eq!(curl(&url, &["-u", "alice:wrong"]).0, 401);
    assert_eq!(curl(&url, &["-u", "alice:s3cret"]).0, 200);
    assert_eq!(served(&wb, &name), 1);
    drop(up);

    // --allow: the client (127.0.0.1) is outside 127.0.0.2/32.
    let name = unique("wbtallow");
    let up = wb.up_background(&[
        &snap,
        "--name",
        &name,
        "--bind",
        "/srv",
        "--exec",
        SERVER,
        "--port",
        "8000",
        "--allow",
        "127.0.0.2/32",
    ]);
    let url = up.url().unwrap();
    assert_eq!(curl(&url, &[]).0, 403);
    assert_eq!(
        curl(&url, &["--interface", "127.0.0.2"]).0,
        200,
        "a client inside the network passes"
    );
    assert_eq!(served(&wb, &name), 1);
    drop(up);
}

#[test]
fn https_with_certificate_files_and_redirect() {
    if !require_root("https_with_certificate_files_and_redirect") {
        return;
    }
    let pool = BtrfsPool::new();
    let snap = site(&pool);
    // A CA and a wildcard certificate for *.wbt.test, made with rcgen.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_certificate(d, "site", "*.wbt.test", "DNS:*.wbt.test");
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let https_port = free_port();
    let wb = Wayback::with_proxy_extra(&format!(
        "https_listen = \"127.0.0.1:{https_port}\"\ncertificates = [{{ cert = \"{}\", key = \"{}\" }}]",
        p("site.pem"),
        p("site.key")
    ));
    let name = unique("wbttls");
    let up = wb.up_background(&[
        &snap, "--name", &name, "--bind", "/srv", "--exec", SERVER, "--port", "8000",
    ]);
    let url = up.url().unwrap();
    assert!(
        url.starts_with("https://") && url.contains(&https_port.to_string()),
        "{url}"
    );
    let (code, body) = curl(&url, &["--cacert", &p("ca.pem")]);
    assert_eq!((code, body.as_str()), (200, "guarded\n"));
    let plain = format!("http://{name}.wbt.test:{}/", wb.proxy_addr().port());
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .args([
            "--resolve",
            &format!("{name}.wbt.test:{}:127.0.0.1", wb.proxy_addr().port()),
        ])
        .arg(&plain)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("308 https://"),
        "plain HTTP redirects to HTTPS: {text}"
    );
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
