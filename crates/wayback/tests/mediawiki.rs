//! Acceptance test (issue 6, first "must show"): a PHP + MariaDB app with login and a pinned hostname —
//! MediaWiki from Debian's package, `$wgServer = "http://wiki.live.test"` — live on this host with all its
//! state on btrfs. A page and a user are created, the state is snapshotted, then the page is deleted and the
//! user's password changed live. `wayback profile from-units` reads the host's real mariadb / php-fpm /
//! nginx unit files (used unedited); `wayback up` of the snapshot with `--unit` only — no `--bind`, no
//! profile: the state paths are inferred — and `--original-host auto` (which finds `http://wiki.live.test`:
//! nginx serves the wiki only as that `server_name`) then serves on a new hostname, through wayback's proxy:
//!
//! - the old page;
//! - only links and redirects to the new hostname (pages, redirects, the login's redirect and cookies,
//!   the API's JSON, RSD and OpenSearch XML, ResourceLoader's JavaScript with the site config): nothing
//!   names the live host, and every absolute URL of the new hostname carries the proxy's port;
//! - a login with the old password (and none with the new one);
//!
//! while the live site still lacks the page and refuses the old password. (That the app sees its usual
//! Host shows in the wiki being served at all: nginx serves it only for `server_name wiki.live.test`.) Nothing in the app's
//! configuration is edited for the instance: /etc/mediawiki/LocalSettings.php and the nginx site are
//! byte-identical from the install to the end. `down` leaves no trace, the snapshot stays read-only and
//! byte-identical, and the host's /etc/nginx, /etc/mediawiki, /var/lib/mysql and /var/lib/mediawiki are as
//! they were before the test (manifests).
//!
//! How the live site runs (its own mount + network namespace, state bind-mounted from the pool) is described
//! in support_mediawiki/mod.rs. Needs root and the Debian packages mediawiki, php-fpm, php-mysql,
//! mariadb-server, nginx-light, curl.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use wayback_testsupport::mediawiki::*;
use wayback_testsupport::*;

const PAGE: &str = "WaybackTest";
const MARKER: &str = "wbt-marker-5f3a9c";
const ALICE: &str = "Alice";
/// Alice's password in the snapshot.
const P1: &str = "Old-Secret-4711-wbt";
/// Alice's password on the live site after the snapshot.
const P2: &str = "New-Secret-0815-wbt";
const WRONG_PASSWORD: &str = "Incorrect username or password";

/// The content of the host paths the test must leave as they were: tree manifest (types, modes, owners,
/// sizes, contents) plus modification times, so that a file rewritten with the same bytes shows too.
fn host_manifest(root: &str) -> BTreeMap<String, String> {
    let p = Path::new(root);
    if fs::symlink_metadata(p).is_err() {
        return BTreeMap::from([(".".to_string(), "absent".to_string())]);
    }
    let mut m = tree_manifest(p);
    for (rel, v) in &mut m {
        let path = if rel == "." {
            p.to_path_buf()
        } else {
            p.join(rel)
        };
        if let Ok(md) = fs::symlink_metadata(&path) {
            if !md.is_dir() {
                use std::os::unix::fs::MetadataExt;
                v.push_str(&format!(" mtime={}.{:09}", md.mtime(), md.mtime_nsec()));
            }
        }
    }
    m
}

/// Checks on one response that came through wayback's proxy: nothing in it names the live host, every
/// redirect goes to the instance's origin `base`, and every absolute URL on the instance's hostname carries
/// the proxy's port. Returns how many URLs of `base` it contains (to show that rewriting happened).
fn audit(r: &Resp, base: &str, problems: &mut Vec<String>) -> usize {
    let pub_host = base.trim_start_matches("http://");
    let host_only = pub_host.split(':').next().unwrap();
    let port_suffix = &pub_host[host_only.len()..]; // ":PORT"
    let text = format!("{}\n{}", r.raw_headers, r.body);
    let lower = text.to_ascii_lowercase();
    if let Some(i) = lower.find(LIVE_HOST) {
        let s = i.saturating_sub(120);
        let e = (i + 120).min(text.len());
        problems.push(format!(
            "{} (status {}) still names the live host {LIVE_HOST}: …{}…",
            r.url,
            r.status,
            text.get(s..e).unwrap_or("?")
        ));
    }
    for h in ["location", "content-location", "refresh"] {
        for (_, v) in r.headers.iter().filter(|(n, _)| n == h) {
            let url = v.split_once("url=").map_or(v.as_str(), |(_, u)| u);
            if url.contains("://") && !(url == base || url.starts_with(&format!("{base}/"))) {
                problems.push(format!(
                    "{} (status {}): {h}: {v} does not point at {base}",
                    r.url, r.status
                ));
            }
        }
    }
    for (_, v) in r.headers.iter().filter(|(n, _)| n == "set-cookie") {
        if let Some(d) = v
            .split(';')
            .map(str::trim)
            .find(|a| a.to_ascii_lowercase().starts_with("domain="))
        {
            if !d[7..]
                .trim_start_matches('.')
                .eq_ignore_ascii_case(host_only)
            {
                problems.push(format!(
                    "{}: cookie for another domain than {host_only}: {v}",
                    r.url
                ));
            }
        }
    }
    // Absolute and protocol-relative URLs of the instance's hostname (plain, JSON-escaped, URL-encoded)
    // must name the proxy's port: without it a browser goes to port 80, where nothing of wayback listens.
    let mut urls = 0;
    for prefix in ["//", "\\/\\/", "%2F%2F", "%2f%2f"] {
        let needle = format!("{prefix}{host_only}");
        let mut at = 0;
        while let Some(i) = text[at..].find(&needle) {
            let end = at + i + needle.len();
            let next = &text[end..];
            let next_is_name = next
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !next_is_name {
                if next.starts_with(port_suffix) {
                    urls += 1;
                } else {
                    problems.push(format!(
                        "{}: a URL on {host_only} without the proxy's port {port_suffix}: …{}…",
                        r.url,
                        text.get(at + i..(end + 60).min(text.len())).unwrap_or("?")
                    ));
                }
            }
            at = end;
        }
    }
    urls
}

/// A child of ours that is killed (by PID) when dropped.
struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Did this post to Special:UserLogin log the user in? (MediaWiki answers a good login with a redirect, a
/// bad one with the form and an error.)
fn login_succeeded(answer: &Resp) -> bool {
    answer.status == 302 && !answer.body.contains(WRONG_PASSWORD)
}

#[test]
fn mediawiki_from_host_units_with_original_host_auto_serves_old_page_and_old_login() {
    if !require_root(
        "mediawiki_from_host_units_with_original_host_auto_serves_old_page_and_old_login",
    ) {
        return;
    }
    require_packages();
    let t_start = Instant::now();
    let _lock = HostLock::take();
    let php = php_version();
    let fpm_unit = format!("php{php}-fpm");
    let watched = [
        "/etc/nginx",
        "/etc/mediawiki",
        "/var/lib/mysql",
        "/var/lib/mediawiki",
    ];
    let host_before: Vec<_> = watched.iter().map(|p| host_manifest(p)).collect();
    let mut problems: Vec<String> = Vec::new();

    // ---- The live site, as an admin set it up: host config, state on btrfs. ---------------------------
    let pool = BtrfsPool::new();
    pool.subvolume_create("live");
    let mut site = HostFile::claim(&format!(
        "/etc/nginx/sites-enabled/{}-mediawiki",
        unique("wbt")
    ));
    fs::write(site.path(), nginx_site(&php)).unwrap();
    let mut settings = HostFile::claim(LOCAL_SETTINGS);
    let mut live = LiveMediaWiki::start(&pool, "live");
    let settings_installed = fs::read(LOCAL_SETTINGS).unwrap();
    let site_installed = fs::read(site.path()).unwrap();
    eprintln!("live site up after {:?}", t_start.elapsed());

    live.maintenance("createAndPromote.php", &[ALICE, P1], None);
    let text = format!("The old text of {PAGE}: {MARKER}.\n");
    live.maintenance(
        "edit.php",
        &["--user", WIKI_ADMIN, "--summary", "wayback test", PAGE],
        Some(&text),
    );
    let live_web = Browser::new(LIVE_HOST, 80, Some(live.ns_pid()));
    let r = live_web.get(&format!("/index.php/{PAGE}"));
    assert!(
        r.status == 200 && r.body.contains(MARKER),
        "the live site does not show the new page\n{}",
        r.describe()
    );
    let (_, r) = live_web.login(ALICE, P1);
    assert!(
        login_succeeded(&r),
        "Alice cannot log in on the live site with her password\n{}",
        r.describe()
    );

    // ---- Snapshot (of the running site, as a backup tool takes it), then the live changes. -------------
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let snap_manifest = tree_manifest(&snap);
    live.maintenance(
        "deleteBatch.php",
        &["-u", WIKI_ADMIN, "-r", "deleted after the snapshot"],
        Some(&format!("{PAGE}\n")),
    );
    live.maintenance(
        "changePassword.php",
        &[&format!("--user={ALICE}"), &format!("--password={P2}")],
        None,
    );
    let check_live = |when: &str| {
        let web = Browser::new(LIVE_HOST, 80, Some(live.ns_pid()));
        let r = web.get(&format!("/index.php/{PAGE}"));
        assert!(
            r.status == 404 && !r.body.contains(MARKER),
            "{when}: the live site must no longer have {PAGE}\n{}",
            r.describe()
        );
        let (_, r) = web.login(ALICE, P1);
        assert!(
            r.status == 200 && r.body.contains(WRONG_PASSWORD),
            "{when}: the live site must refuse Alice's old password\n{}",
            r.describe()
        );
        web.clear_cookies();
        let (_, r) = web.login(ALICE, P2);
        assert!(
            login_succeeded(&r),
            "{when}: the live site must accept Alice's new password\n{}",
            r.describe()
        );
    };
    check_live("after the live changes");

    // ---- The profile, from the host's unit files. -------------------------------------------------------
    let wb = Wayback::new();
    let profile = wb.run_ok(&[
        "profile",
        "from-units",
        "mariadb",
        &fpm_unit,
        "nginx",
        "--port",
        "80",
    ]);
    for p in ["mariadb", fpm_unit.as_str(), "nginx"] {
        assert!(
            profile.contains(&format!("name = \"{p}\"")),
            "the generated profile has no process {p}:\n{profile}"
        );
    }

    // ---- wayback up, on a new hostname, masquerading as the live one. -----------------------------------
    let name = unique("wbtmw");
    let host = "wiki-old.wbt.test";
    let port = wb.proxy_addr().port();
    let t_up = Instant::now();
    // Zero knowledge: the units only. Their state (MariaDB's datadir, the site's root in nginx's config) is
    // found and bound by wayback, and the wiki's pinned hostname is found too.
    let dry = wb.run_ok(&[
        "up",
        snap.to_str().unwrap(),
        "--unit",
        "mariadb",
        "--unit",
        &fpm_unit,
        "--unit",
        "nginx",
        "--port",
        "80",
        "--original-host",
        "auto",
        "--host",
        host,
        "--dry-run",
    ]);
    for bound in [
        "bind     /var/lib/mysql -> /var/lib/mysql",
        "bind     /var/lib/mediawiki -> /var/lib/mediawiki",
    ] {
        assert!(dry.contains(bound), "{bound} inferred:\n{dry}");
    }
    let mut up = wb.up_background(&[
        snap.to_str().unwrap(),
        "--name",
        &name,
        "--unit",
        "mariadb",
        "--unit",
        &fpm_unit,
        "--unit",
        "nginx",
        "--port",
        "80",
        "--original-host",
        "auto",
        "--host",
        host,
    ]);
    eprintln!("instance ready after {:?}: {}", t_up.elapsed(), up.ready);
    // The original host was found: asked by the instance's hostname, nginx answers with its default site,
    // and the wiki only as its server_name.
    let found = format!(
        "--original-host auto: the app is served only as http://{LIVE_HOST} (nginx server_name {LIVE_HOST}"
    );
    assert!(up.stderr().contains(&found), "{}", up.describe());
    let status = wb.run_ok(&["status", &name]);
    assert!(
        status.contains(&format!("masquerade the app sees http://{LIVE_HOST}")),
        "{status}"
    );
    let old = Browser::new(host, port, None);
    let base = old.base.clone();
    assert_eq!(
        up.url().as_deref().map(|u| u.trim_end_matches('/')),
        Some(base.as_str()),
        "ready line: {}",
        up.ready
    );
    let instance_logs = |up: &mut UpHandle| {
        let out = wb.run(&["logs", &name]);
        format!(
            "--- wayback logs {name} ---\n{}\n{}\n--- generated profile ---\n{profile}",
            tail(&String::from_utf8_lossy(&out.stdout), 60),
            up.describe()
        )
    };

    // The old page. "Ready" means it can be served right away; if not, that is recorded and the test goes on.
    let page_path = format!("/index.php/{PAGE}");
    let mut r = old.get(&page_path);
    if r.status != 200 {
        problems.push(format!(
            "the first request right after the ready line failed (ready announced too early?)\n{}",
            r.describe()
        ));
        let deadline = Instant::now() + Duration::from_secs(30);
        while r.status != 200 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            r = old.get(&page_path);
        }
    }
    assert!(
        r.status == 200 && r.body.contains(MARKER),
        "the instance does not serve the snapshot's {PAGE}\n{}\n{}",
        r.describe(),
        instance_logs(&mut up)
    );
    let n = audit(&r, &base, &mut problems);
    if n == 0 {
        problems.push(format!(
            "{page_path}: no absolute link to {base} at all (MediaWiki writes some from $wgServer, e.g. \
             \"Retrieved from\"): were they rewritten?"
        ));
    }
    let r = old.get(&format!("/index.php?title={PAGE}"));
    assert!(
        r.status == 200 && r.body.contains(MARKER),
        "{}",
        r.describe()
    );
    audit(&r, &base, &mut problems);

    // Redirects: / -> the main page, on the new hostname.
    let r = old.get("/");
    assert_eq!(r.status, 301, "{}", r.describe());
    audit(&r, &base, &mut problems);
    let loc = r.header("location").unwrap_or_default().to_string();
    assert!(
        loc.starts_with(&format!("{base}/")),
        "GET / redirects to {loc:?}, not to {base}/…\n{}",
        r.describe()
    );
    let r = old.get(&loc);
    assert_eq!(r.status, 200, "{}", r.describe());
    audit(&r, &base, &mut problems);

    // Other places MediaWiki writes its URL into: the API (JSON), RSD and OpenSearch (XML), and
    // ResourceLoader's mediawiki.base module (JavaScript with the site's config, wgServer among it).
    for path in [
        "/api.php?action=query&meta=siteinfo&format=json",
        "/api.php?action=rsd",
        "/opensearch_desc.php",
        "/load.php?lang=en&modules=mediawiki.base&skin=vector",
    ] {
        let r = old.get(path);
        if r.status != 200 {
            problems.push(format!("{path}: status {}\n{}", r.status, r.describe()));
            continue;
        }
        if audit(&r, &base, &mut problems) == 0 {
            problems.push(format!(
                "{path}: expected MediaWiki's own URL ({base}) in it, found none\n{}",
                r.describe()
            ));
        }
    }

    // Login: the new password is not in the snapshot; the old one is.
    let (form, r) = old.login(ALICE, P2);
    audit(&form, &base, &mut problems);
    audit(&r, &base, &mut problems);
    assert!(
        r.status == 200 && r.body.contains(WRONG_PASSWORD),
        "the instance must refuse the password set after the snapshot\n{}",
        r.describe()
    );
    old.clear_cookies();
    let (form, r) = old.login(ALICE, P1);
    audit(&form, &base, &mut problems);
    audit(&r, &base, &mut problems);
    assert!(
        login_succeeded(&r),
        "login with the snapshot's password failed on the instance\n{}\n{}",
        r.describe(),
        instance_logs(&mut up)
    );
    let loc = r.header("location").unwrap_or_default().to_string();
    assert!(
        loc.starts_with(&format!("{base}/")),
        "the login redirects to {loc:?}, not to {base}/…\n{}",
        r.describe()
    );
    assert!(
        r.headers
            .iter()
            .any(|(n, v)| n == "set-cookie" && v.starts_with(&format!("wbtwikiUserName={ALICE}"))),
        "the login set no user cookie\n{}",
        r.describe()
    );
    let r = old.get(&loc);
    audit(&r, &base, &mut problems);
    assert!(
        r.status == 200 && r.body.contains(&format!("\"wgUserName\":\"{ALICE}\"")),
        "after the login redirect the wiki does not know Alice\n{}",
        r.describe()
    );
    let r = old.get(&page_path);
    audit(&r, &base, &mut problems);
    assert!(
        r.status == 200
            && r.body.contains(MARKER)
            && r.body.contains(&format!("\"wgUserName\":\"{ALICE}\"")),
        "logged in, the old page is not shown as Alice's\n{}",
        r.describe()
    );

    // The live site is unchanged, and so is the app's configuration.
    check_live("with the instance running");
    assert!(
        fs::read(LOCAL_SETTINGS).unwrap() == settings_installed,
        "LocalSettings.php was changed"
    );
    assert!(
        fs::read(site.path()).unwrap() == site_installed,
        "the nginx site was changed"
    );

    // ---- down. ----------------------------------------------------------------------------------------
    let logs_file = wb.tmp().join("instance.log");
    let mut follow = KillOnDrop(
        wb.command(&["logs", "-f", &name])
            .stdin(Stdio::null())
            .stdout(Stdio::from(fs::File::create(&logs_file).unwrap()))
            .stderr(Stdio::null())
            .spawn()
            .expect("wayback logs -f"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let t_down = Instant::now();
    let out = wb.run(&["down", &name]);
    let down_took = t_down.elapsed();
    assert!(out.status.success(), "wayback down failed\n{}", show(&out));
    let status = up.wait_exit(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "`up` must exit 0 after `down` (got {status:?})\n{}",
        up.describe()
    );
    std::thread::sleep(Duration::from_millis(300));
    follow.stop();
    let stop_log = fs::read_to_string(&logs_file).unwrap_or_default();
    let stop_lines: Vec<&str> = stop_log
        .lines()
        .filter(|l| l.starts_with("wayback-init:"))
        .collect();
    eprintln!(
        "down took {down_took:?}; init's stop log:\n{}",
        stop_lines.join("\n")
    );
    if down_took > Duration::from_secs(15) || stop_log.contains("did not stop in") {
        // Seen with Debian 12's nginx.service (Type=forking): the wrapper forwards SIGTERM to the master
        // it supervises through /run/nginx.pid and polls `kill -0 "$main"`; the master exits, but it was
        // re-parented to wayback-init, which reaps only the process it is stopping (init.rs, stop_all),
        // so the master stays a zombie, `kill -0` keeps succeeding, and the wrapper is SIGKILLed after
        // the grace period.
        problems.push(format!(
            "`wayback down` took {down_took:.1?}: a process of the generated profile was still running at \
             the end of wayback-init's stop grace period and was killed. The instance's log:\n  {}",
            stop_lines.join("\n  ")
        ));
    }
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    assert!(
        is_readonly_subvolume(&snap),
        "the snapshot is no longer read-only"
    );
    let diff = manifest_diff(&snap_manifest, &tree_manifest(&snap));
    assert!(
        diff.is_empty(),
        "the snapshot changed:\n{}",
        diff.join("\n")
    );

    // ---- The host as before. --------------------------------------------------------------------------
    check_live("after down");
    live.stop();
    drop(live);
    settings.restore();
    site.restore();
    drop(pool);
    for (root, before) in watched.iter().zip(&host_before) {
        let diff = manifest_diff(before, &host_manifest(root));
        assert!(
            diff.is_empty(),
            "the host's {root} is not as it was before the test:\n{}",
            diff.join("\n")
        );
    }
    eprintln!("test took {:?}", t_start.elapsed());
    assert!(
        problems.is_empty(),
        "{} problem(s):\n- {}",
        problems.len(),
        problems.join("\n- ")
    );
}
