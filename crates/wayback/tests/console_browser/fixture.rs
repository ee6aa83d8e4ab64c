//! Helpers of the console's browser test: chromedriver, screenshots, waiting for text, curl, and the
//! fixture (a snapper series of a small site, verify runs in the history).

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use wayback_testsupport::*;

/// chromedriver, stopped by PID when dropped.
pub struct Driver(pub Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

pub fn screenshots_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/console")
}

pub async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    fs::create_dir_all(screenshots_dir()).unwrap();
    fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
}

/// Wait until the element matching `css` has text containing `needle`; returns its text.
pub async fn wait_text(c: &Client, css: &str, needle: &str) -> String {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(120) {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            last = e.text().await.unwrap_or_default();
            if last.contains(needle) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{css} never showed {needle:?}; last text: {last:?}");
}

pub async fn scroll_to(c: &Client, css: &str) {
    c.execute(
        "document.querySelector(arguments[0]).scrollIntoView()",
        vec![serde_json::json!(css)],
    )
    .await
    .expect("scroll");
}

pub async fn value(c: &Client, css: &str) -> String {
    let e = c.find(Locator::Css(css)).await.expect(css);
    e.prop("value").await.unwrap().unwrap_or_default()
}

/// `curl` against the console; returns (status, body).
pub fn curl_body(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A snapper series of the site: #1 (2026-09-01) "version one" with the report's draft, #2 (2026-11-20)
/// and #3 (2026-12-04 08:00) "version two" with its final text; live has since lost the report. Returns
/// the snapshots' paths, oldest first, and the live subvolume.
pub fn site(pool: &BtrfsPool) -> (Vec<String>, PathBuf) {
    let live = pool.subvolume_create("live");
    pool.subvolume_create("live/.snapshots");
    fs::create_dir_all(live.join("var/www/html")).unwrap();
    fs::create_dir_all(live.join("notes")).unwrap();
    let index = live.join("var/www/html/index.html");
    let report = live.join("notes/report.txt");
    let steps = [
        (
            "version one",
            "quarterly report, draft",
            "2026-09-01 09:00:00",
            "before the redesign",
        ),
        (
            "version two",
            "quarterly report, final",
            "2026-11-20 10:00:00",
            "after the redesign",
        ),
        (
            "version two",
            "quarterly report, final",
            "2026-12-04 08:00:00",
            "nightly",
        ),
    ];
    let mut snaps = Vec::new();
    for (i, (page, text, date, what)) in steps.iter().enumerate() {
        let n = i + 1;
        // Written only when it changes: a rewrite with the same text is a new version too (new mtime).
        if fs::read_to_string(&index).ok().as_deref() != Some(&format!("<h1>{page}</h1>\n")) {
            fs::write(&index, format!("<h1>{page}</h1>\n")).unwrap();
        }
        if fs::read_to_string(&report).ok().as_deref() != Some(&format!("{text}\n")) {
            fs::write(&report, format!("{text}\n")).unwrap();
        }
        let snap = pool.snapshot_ro("live", &format!("live/.snapshots/{n}/snapshot"));
        fs::write(
            snap.parent().unwrap().join("info.xml"),
            format!("<?xml version=\"1.0\"?>\n<snapshot>\n  <type>single</type>\n  <num>{n}</num>\n  <date>{date}</date>\n  <description>{what}</description>\n</snapshot>\n"),
        )
        .unwrap();
        snaps.push(snap.to_str().unwrap().to_string());
    }
    fs::remove_file(&report).unwrap();
    (snaps, live)
}

/// Verify runs in the history (as `wayback verify` records them): #1 passed, #2 failed.
pub fn verify_history(wb: &Wayback, snaps: &[String]) {
    use wayback_core::verify::{Outcome, RunReport, SnapshotRef};
    let cfg = wayback_core::Config::load(Some(wb.config_path())).unwrap();
    let history = wayback_engine::verify::history::History::open(&cfg).unwrap();
    for (i, (result, reason)) in [
        (Outcome::Passed, None),
        (Outcome::Failed, Some("http / answered 502")),
    ]
    .into_iter()
    .enumerate()
    {
        let snapshot = SnapshotRef {
            id: i as u64 + 1,
            path: snaps[i].clone(),
            date: 0,
            uuid: None,
            series: "site".into(),
        };
        let id = history
            .begin("site", &snapshot, 1_796_371_200, |id| {
                format!("verify-site-{id}")
            })
            .unwrap();
        history
            .finish(&RunReport {
                id,
                job: "site".into(),
                snapshot,
                instance: format!("verify-site-{id}"),
                started: 1_796_371_200,
                duration_ms: 1200,
                result,
                reason: reason.map(String::from),
                checks: Vec::new(),
                version: "test".into(),
            })
            .unwrap();
    }
}
