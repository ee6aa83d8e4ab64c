//! Hostname masquerade end to end: an app pinned to its live hostname (it redirects every other Host to the
//! live site, and writes absolute links and cookies for it) is served unchanged on the instance's hostname
//! with `--original-host`: the app sees its usual Host, and links, redirects and cookie domains point at
//! the instance.

use std::fs;
use std::process::Command;

use wayback_testsupport::*;

const APP: &str = r#"
import http.server
LIVE = "live.example.org"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = self.headers.get("Host", "")
        if host != LIVE:
            self.send_response(302)
            self.send_header("Location", "https://" + LIVE + "/")
            self.end_headers()
            return
        if self.path == "/login":
            self.send_response(302)
            self.send_header("Location", "https://" + LIVE + "/home")
            self.send_header("Set-Cookie", "sid=1; Domain=" + LIVE + "; Path=/; Secure; HttpOnly")
            self.end_headers()
            return
        body = ('<a href="https://' + LIVE + '/home">home</a>').encode()
        self.send_response(200)
        self.send_header("X-Seen-Host", host.replace(".", "_"))
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", 8000), H).serve_forever()
"#;

fn curl_head(url_host: &str, port: u16, path: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-i",
            "--max-time",
            "10",
            "--resolve",
            &format!("{url_host}:{port}:127.0.0.1"),
        ])
        .arg(format!("http://{url_host}:{port}{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_hostname_pinned_app_runs_unchanged_on_the_new_hostname() {
    if !require_root("a_hostname_pinned_app_runs_unchanged_on_the_new_hostname") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/app")).unwrap();
    fs::write(live.join("srv/app/app.py"), APP).unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::new();
    let name = unique("wbtmasq");
    let host = format!("{name}.wbt.test");
    let port = wb.proxy_addr().port();

    // Without masquerade the app sends the browser back to the live site (which `up` refuses unless told
    // to skip its check: tests/hostdetect.rs).
    let up = wb.up_background(&[
        snap.to_str().unwrap(),
        "--name",
        &name,
        "--bind",
        "/srv/app",
        "--exec",
        "exec python3 /srv/app/app.py",
        "--port",
        "8000",
        "--no-host-check",
    ]);
    let r = curl_head(&host, port, "/");
    assert!(
        r.to_ascii_lowercase()
            .contains("location: https://live.example.org/"),
        "{r}"
    );
    drop(up);

    let up = wb.up_background(&[
        snap.to_str().unwrap(),
        "--name",
        &name,
        "--bind",
        "/srv/app",
        "--exec",
        "exec python3 /srv/app/app.py",
        "--port",
        "8000",
        "--original-host",
        "live.example.org",
    ]);
    let page = curl_head(&host, port, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains(&format!("href=\"http://{host}:{port}/home\"")),
        "links point at the instance: {page}"
    );
    assert!(
        page.to_ascii_lowercase()
            .contains("x-seen-host: live_example_org"),
        "the app saw its usual hostname: {page}"
    );
    let login = curl_head(&host, port, "/login");
    assert!(
        login
            .to_ascii_lowercase()
            .contains(&format!("location: http://{host}:{port}/home")),
        "{login}"
    );
    let cookie = login
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie"))
        .unwrap_or_default();
    assert!(
        cookie.contains(&format!("Domain={host}")) && !cookie.contains("Secure"),
        "{cookie}"
    );
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
