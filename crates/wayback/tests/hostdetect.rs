//! Pinned hostnames detected (issue 12, item 4), end to end with a hostname-pinned app (the Python app of
//! tests/masquerade.rs, plus a variant that only links to its live hostname):
//!
//! - `up` without `--original-host` on an app whose front page redirects to its live hostname refuses
//!   (exit 2, nothing left) and names the host and the flags to use;
//! - `--original-host auto` finds it: the instance serves the page, links rewritten to the instance, and
//!   `status` shows what was found;
//! - `--no-host-check` starts it anyway (and the redirect to the live site is what the user gets);
//! - an app that only links to its live hostname starts with a warning naming it;
//! - the dry run of `auto` says the original host is detected after start;
//! - through the daemon (`up --detach`), the refusal and the found host reach the client.

use std::fs;
use std::process::Command;

use wayback_testsupport::*;

/// `app.py redirect`: every Host but its own is redirected to the live site (as tests/masquerade.rs).
/// `app.py links`: answers any Host, but its canonical link and login form name the live site.
const APP: &str = r#"
import http.server, sys
LIVE = "live.example.org"
MODE = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = self.headers.get("Host", "")
        if MODE == "redirect" and host != LIVE:
            self.send_response(302)
            self.send_header("Location", "https://" + LIVE + "/")
            self.end_headers()
            return
        body = ('<html><head><link rel="canonical" href="https://' + LIVE + '/">'
                '<script src="https://cdn.jsdelivr.net/npm/x.js"></script></head><body>'
                '<a href="https://' + LIVE + '/home">home</a>'
                '<form action="https://' + LIVE + '/login" method="post"></form>'
                '<a href="https://www.mediawiki.org/">powered by</a></body></html>').encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", 8000), H).serve_forever()
"#;

fn curl(url_host: &str, port: u16, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10", "--resolve"])
        .arg(format!("{url_host}:{port}:127.0.0.1"))
        .arg(format!("http://{url_host}:{port}{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn args<'a>(snap: &'a str, name: &'a str, mode: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        snap, "--name", name, "--bind", "/srv/app", "--exec", mode, "--port", "8000",
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn pinned_hostnames_are_refused_detected_or_warned_about() {
    if !require_root("pinned_hostnames_are_refused_detected_or_warned_about") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/app")).unwrap();
    fs::write(live.join("srv/app/app.py"), APP).unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let snap = snap.to_str().unwrap();
    let wb = Wayback::new();
    let name = unique("wbthd");
    let host = format!("{name}.wbt.test");
    let port = wb.proxy_addr().port();
    let redirect = "exec python3 /srv/app/app.py redirect";
    let links = "exec python3 /srv/app/app.py links";

    // The plan says when the original host is found.
    let mut dry = vec!["up"];
    dry.extend(args(
        snap,
        &name,
        redirect,
        &["--original-host", "auto", "--dry-run"],
    ));
    let plan = wb.run_ok(&dry);
    assert!(
        plan.contains("original host: detected after start"),
        "{plan}"
    );
    let mut both = vec!["up"];
    both.extend(args(
        snap,
        &name,
        redirect,
        &["--original-host", "auto", "--no-host-check"],
    ));
    let out = wb.run(&both);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));

    // 1. No --original-host: refused, rolled back, and told what to run.
    let mut up = vec!["up"];
    up.extend(args(snap, &name, redirect, &[]));
    let out = wb.run(&up);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("ready"),
        "{}",
        show(&out)
    );
    for needle in [
        "redirects to https://live.example.org (Location of GET /)",
        "users of this instance would land on the live site",
        "--original-host https://live.example.org",
        "--original-host auto",
        "--no-host-check",
    ] {
        assert!(err.contains(needle), "missing {needle:?}\n{}", show(&out));
    }
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();

    // 2. --original-host auto: found, masqueraded, and shown by status.
    let h = wb.up_background(&args(snap, &name, redirect, &["--original-host", "auto"]));
    let page = curl(&host, port, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}\n{}", h.stderr());
    assert!(
        page.contains(&format!("href=\"http://{host}:{port}/home\"")),
        "links point at the instance: {page}"
    );
    assert!(!page.contains("live.example.org"), "{page}");
    assert!(
        h.stderr()
            .contains("--original-host auto: the app redirects to https://live.example.org (Location of GET /): its own origin"),
        "{}",
        h.stderr()
    );
    let status = wb.run_ok(&["status", &name]);
    assert!(
        status.contains("masquerade the app sees https://live.example.org")
            && status.contains(
                "host check the app redirects to https://live.example.org (Location of GET /): used as the masquerade"
            ),
        "{status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&wb.run_ok(&["status", &name, "--json"])).unwrap();
    assert_eq!(json["masquerade"], "https://live.example.org", "{json}");
    assert_eq!(
        json["host_check"]["detected"], "https://live.example.org",
        "{json}"
    );
    drop(h);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();

    // 3. --no-host-check: started as asked; the user gets the live site's redirect.
    let h = wb.up_background(&args(snap, &name, redirect, &["--no-host-check"]));
    let r = curl(&host, port, "/");
    assert!(
        r.to_ascii_lowercase()
            .contains("location: https://live.example.org/"),
        "{r}"
    );
    assert!(!h.stderr().contains("warning"), "{}", h.stderr());
    drop(h);

    // 4. Links and forms only: started, with a warning naming the host and the flag.
    let mut h = wb.up_background(&args(snap, &name, links, &[]));
    let err = h.stderr();
    assert!(
        err.contains("wayback: warning: the app sends its forms to https://live.example.org (<form action> in GET /, and 2 more)")
            && err.contains("`--original-host https://live.example.org` (or `--original-host auto`)"),
        "{}",
        h.describe()
    );
    assert!(
        !err.contains("jsdelivr") && !err.contains("mediawiki.org"),
        "{err}"
    );
    drop(h);

    // ... and with auto, its links are the instance's.
    let h = wb.up_background(&args(snap, &name, links, &["--original-host", "auto"]));
    let page = curl(&host, port, "/");
    assert!(
        page.contains(&format!("action=\"http://{host}:{port}/login\""))
            && page.contains("https://www.mediawiki.org/"),
        "{page}\n{}",
        h.stderr()
    );
    drop(h);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();

    // 5. The same through the daemon (`up --detach`): the refusal and the found host reach the client.
    let daemon = start_daemon(&wb, None);
    let mut up = vec!["up"];
    up.extend(args(snap, &name, redirect, &["--detach"]));
    let out = wb.run(&up);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--original-host https://live.example.org"),
        "{}",
        show(&out)
    );
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    let mut up = vec!["up"];
    up.extend(args(
        snap,
        &name,
        redirect,
        &["--detach", "--original-host", "auto"],
    ));
    let out = wb.run(&up);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--original-host auto: the app redirects to https://live.example.org"),
        "{}",
        show(&out)
    );
    let page = curl(&host, port, "/");
    assert!(
        page.contains(&format!("href=\"http://{host}:{port}/home\"")),
        "{page}"
    );
    wb.run_ok(&["down", &name]);
    drop(daemon);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
