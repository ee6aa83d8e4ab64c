//! The web console in a real browser: Debian's headless Chromium driven through chromedriver (WebDriver on
//! loopback) from Rust with fantoccini. Logs in with a token from `wayback console token`; sees the test
//! pool's snapshots on the timeline; finds a file deleted live and its runs and versions; resurrects a
//! snapshot with a share link (plan shown before the confirm button) and opens the instance through the
//! proxy; extends it; resets it to the older snapshot and sees the older content; takes it down; zero
//! residue. Requests without a session, or with a wrong CSRF token, are refused. Screenshots of each
//! page go to docs/console/ (referenced from docs/console.md).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use wayback_testsupport::*;

mod fixture;
use fixture::*;

/// The API with a session (curl): a download of one version; bad input answered 400 with the CLI's own
/// message for the same arguments.
fn api_checks(wb: &Wayback, console: &str, jar: &str, live: &std::path::Path) {
    let report = live.join("notes/report.txt");
    let (status, body) = curl_body(&[
        "-b",
        jar,
        &format!("{console}/api/show?path={}&from=@1", report.display()),
    ]);
    assert_eq!((status, body.as_str()), (200, "quarterly report, draft\n"));
    let (_, page) = curl_body(&["-b", jar, &format!("{console}/")]);
    let csrf = page
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf meta")
        .to_string();
    let (status, body) = curl_body(&[
        "-b",
        jar,
        "-H",
        &format!("X-CSRF-Token: {csrf}"),
        "-d",
        "{\"snapshot\": \"/nonexistent/snapshot\", \"profile\": \"nginx-static\"}",
        &format!("{console}/api/plan"),
    ]);
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["bad_input"], true, "{body}");
    let message = v["error"].as_str().unwrap();
    let cli = wb.run(&[
        "up",
        "/nonexistent/snapshot",
        "--profile",
        "nginx-static",
        "--dry-run",
    ]);
    assert_eq!(cli.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(
        stderr.contains(message),
        "the console's message {message:?} is the CLI's: {stderr}"
    );
}

#[test]
fn console_in_a_browser() {
    if !require_root("console_in_a_browser") {
        return;
    }
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} missing: run scripts/install-deps.sh (Debian's chromium and chromium-driver)"
        );
    }
    let pool = BtrfsPool::new();
    let (snaps, live) = site(&pool);
    let wb = Wayback::with_console(&format!("snapshot_roots = [\"{}\"]", live.display()));
    verify_history(&wb, &snaps);
    let _daemon = start_daemon(&wb, None);
    let console = format!("http://{}", wb.console_addr());

    // Refused: no session; a session with a wrong CSRF token.
    assert_eq!(curl_status(&[&format!("{console}/api/instances")]), 401);
    assert_eq!(
        curl_status(&["-X", "POST", &format!("{console}/api/instances/x/down")]),
        401
    );
    let jar = wb.tmp().join("jar");
    let jar = jar.to_str().unwrap();
    let token = wb.run_ok(&["console", "token"]).trim().to_string();
    let login = curl_status(&[
        "-c",
        jar,
        "-d",
        &format!("token={token}"),
        &format!("{console}/login"),
    ]);
    assert_eq!(login, 303, "curl login");
    assert_eq!(
        curl_status(&["-b", jar, &format!("{console}/api/instances")]),
        200
    );
    let forged = curl_status(&[
        "-b",
        jar,
        "-X",
        "POST",
        "-H",
        "X-CSRF-Token: wrong",
        "-d",
        "{\"by\":\"1h\"}",
        &format!("{console}/api/instances/x/extend"),
    ]);
    assert_eq!(forged, 403, "a POST with a wrong CSRF token");
    let no_csrf = curl_status(&["-b", jar, "-X", "POST", &format!("{console}/api/up")]);
    assert_eq!(no_csrf, 403, "a POST without a CSRF token");
    // The same token does not log in twice.
    assert_eq!(
        curl_status(&["-d", &format!("token={token}"), &format!("{console}/login")]),
        401
    );
    api_checks(&wb, &console, jar, &live);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = free_port();
    // Declared before the driver, so it is removed after chromedriver (and its browser) stopped, also on
    // a panic.
    let profile = tempfile::Builder::new()
        .prefix("wbtc-chromium-")
        .tempdir()
        .unwrap();
    let driver = Driver(
        Command::new("/usr/bin/chromedriver")
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver"),
    );
    let name = unique("wbtccon");
    rt.block_on(async {
        let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--host-resolver-rules=MAP *.wbt.test 127.0.0.1",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }))
        .unwrap();
        let start = Instant::now();
        let c = loop {
            let mut b = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            b.capabilities(caps.clone());
            match b.connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(c) => break c,
                Err(e) if start.elapsed() > Duration::from_secs(30) => panic!("chromedriver: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        browse(&c, &wb, &console, &name, &snaps, &live).await;
        c.close().await.unwrap();
    });
    drop(driver);

    let dir = wb.state_dir().join("instances").join(&name);
    wait_for(Duration::from_secs(60), || (!dir.exists()).then_some(())).expect("instance removed");
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    for s in &snaps {
        assert!(is_readonly_subvolume(std::path::Path::new(s)));
    }
}

async fn browse(
    c: &Client,
    wb: &Wayback,
    console: &str,
    name: &str,
    snaps: &[String],
    live: &std::path::Path,
) {
    // Log in.
    c.goto(&format!("{console}/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    let token = wb.run_ok(&["console", "token"]).trim().to_string();
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(&token)
        .await
        .unwrap();
    shot(c, "login").await;
    c.find(Locator::Css("#login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "main", "No instances").await;

    // The snapshot timeline: both snapshots, on the track and in the table.
    c.goto(&format!("{console}/snapshots")).await.unwrap();
    let main = wait_text(c, "main", "resurrect").await;
    assert_eq!(
        c.find_all(Locator::Css(".track .dot")).await.unwrap().len(),
        3,
        "{main}"
    );
    assert!(main.contains("snapper"), "{main}");
    assert!(main.contains("after the redesign"), "{main}");
    assert!(main.contains("site passed"), "{main}");
    assert!(
        main.contains("site failed") && main.contains("answered 502"),
        "{main}"
    );
    assert_eq!(
        c.find_all(Locator::Css(".dot.passed")).await.unwrap().len(),
        1
    );
    assert_eq!(
        c.find_all(Locator::Css(".dot.failed")).await.unwrap().len(),
        1
    );
    shot(c, "snapshots").await;
    // Zoomed to the newest month: the September snapshot leaves the track and the table.
    c.find(Locator::Css("[data-zoom='2592000']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let visible = c
        .find_all(Locator::Css(".dot:not([hidden])"))
        .await
        .unwrap()
        .len();
    assert_eq!(visible, 2, "a month before the newest snapshot holds two");
    shot(c, "snapshots-month").await;

    // File history of a file deleted live.
    let report = live.join("notes/report.txt");
    c.goto(&format!("{console}/history?path={}", report.display()))
        .await
        .unwrap();
    let summary = wait_text(c, "#history-summary", "versions").await;
    assert!(summary.contains("2 versions in 3 snapshots"), "{summary}");
    assert!(summary.contains("live: absent"), "{summary}");
    let rows = c
        .find_all(Locator::Css("#history-versions tr.version"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    c.find(Locator::Css(
        "#history-versions tr.version:last-child .diff-live",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_text(c, "#history-diff", "quarterly report, final").await;
    shot(c, "history").await;
    // A glob relative to the snapshot root: which snapshots hold what matches (`wayback find`).
    c.goto(&format!("{console}/history?path=notes/*.txt"))
        .await
        .unwrap();
    let found = wait_text(c, "#find-result", "report.txt").await;
    assert!(found.contains("#1") && found.contains("#3"), "{found}");
    shot(c, "history-glob").await;

    // Resurrect the newer snapshot with a share link: plan first, then confirm, then progress.
    c.goto(&format!("{console}/resurrect?snapshot={}", snaps[2]))
        .await
        .unwrap();
    c.find(Locator::Css("#profile"))
        .await
        .unwrap()
        .send_keys("nginx-static")
        .await
        .unwrap();
    c.find(Locator::Css("#name"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    c.find(Locator::Css("#plan-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let plan = wait_text(c, "#plan pre", "clone").await;
    assert!(plan.contains(name), "{plan}");
    assert!(
        !wb.state_dir().join("instances").join(name).exists(),
        "nothing made before confirm"
    );
    scroll_to(c, "#plan").await;
    shot(c, "resurrect-plan").await;
    c.find(Locator::Css("#confirm"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "#ready", "ready").await;
    let share = value(c, "#share-link").await;
    assert!(share.contains("wayback-token="), "{share}");
    let url = c
        .find(Locator::Css("#instance-url"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    scroll_to(c, "#progress").await;
    shot(c, "resurrect-done").await;

    // The share link opens the instance through the proxy (and leaves its cookie).
    c.goto(&share).await.unwrap();
    wait_text(c, "body", "version two").await;
    shot(c, "instance-via-share-link").await;

    // Instances: URL, share link, time left; extend.
    c.goto(&format!("{console}/")).await.unwrap();
    let card = format!("#instance-{name}");
    wait_text(c, &card, &url).await;
    assert_eq!(value(c, &format!("{card} input.share")).await, share);
    c.find(Locator::Css(&format!("{card} [data-action='extend']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, &format!("{card} .result"), "now expires in").await;
    c.find(Locator::Css(&format!("{card} details.log summary")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    shot(c, "instances").await;

    // Reset to the older snapshot: the same URL and cookie show the older content.
    c.find(Locator::Css(&format!("{card} .reset-to")))
        .await
        .unwrap()
        .send_keys("@1")
        .await
        .unwrap();
    c.find(Locator::Css(&format!("{card} [data-action='reset']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, &format!("{card} .result"), "now runs on").await;
    shot(c, "instances-reset").await;
    // A query of its own: the browser may answer the bare URL from its cache (nginx's Last-Modified).
    c.goto(&format!("{url}?after-reset")).await.unwrap();
    wait_text(c, "body", "version one").await;
    shot(c, "instance-after-reset").await;

    // Down: the card goes.
    c.goto(&format!("{console}/")).await.unwrap();
    c.find(Locator::Css(&format!("{card} [data-action='down']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let start = Instant::now();
    while c.find(Locator::Css(&card)).await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the card of {name} stayed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
