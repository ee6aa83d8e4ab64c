//! `wayback verify` (issue 14), on real PostgreSQL and MariaDB from Debian and loop btrfs pools:
//!
//! - a PostgreSQL job (`tcp` and `sql` checks) passes on good snapshots; `--since-last` over six snapshots,
//!   the fourth with a relation file removed before it was taken, reports exactly the fourth, with the
//!   check's name and the server's own error, and exits 1; history, metrics file, JUnit and the failure
//!   hook reflect every run;
//! - a snapshot whose pg_control was truncated fails at the start with the server's words; a check that
//!   times out fails as such; a `verify` killed with SIGKILL leaves only what `gc` removes; after each of
//!   these nothing is left (mounts, subvolumes, netns, links, nft, processes, cgroups, state files);
//! - an `http` job on a PHP + MariaDB app (MediaWiki) sees content only the old state has;
//! - bad jobs are exit 2 naming the key and file, never a value; a corrupt, locked or newer history
//!   database is exit 1 naming the file and the next step;
//! - packaging/wayback-verify.{service,timer} pass `systemd-analyze verify`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use wayback_testsupport::*;

const SCHEMA: &str = "CREATE TABLE invoices (id int PRIMARY KEY, customer text NOT NULL);
INSERT INTO invoices VALUES (1, 'ada'), (2, 'grace'), (3, 'linus');";

/// A PostgreSQL job on the plain snapshots in `<pool>/snaps`, with `extra` checks appended.
fn pg_job(pool: &BtrfsPool, extra: &str) -> String {
    format!(
        r#"description = "invoices"
root = "{}"
timeout = "3m"
[run]
profile = "postgresql"
[[check]]
name = "port"
tcp = 5432
[[check]]
name = "invoices"
sql = "SELECT count(*) FROM invoices"
client = "psql"
min = 3
{extra}"#,
        pool.path("snaps").display()
    )
}

/// Write a job file named `<name>.toml` in `dir`.
fn write_job(dir: &Path, name: &str, text: &str) -> PathBuf {
    let f = dir.join(format!("{name}.toml"));
    fs::write(&f, text).unwrap();
    f
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", show(out)))
}

/// Every run's instance left nothing behind.
#[track_caller]
fn assert_no_residue(report: &Value, pool: &BtrfsPool, wb: &Wayback) {
    for r in report["runs"].as_array().unwrap() {
        Residue::new(r["instance"].as_str().unwrap())
            .pool(pool)
            .wayback(wb)
            .assert_none();
    }
}

/// A writable copy of `src_rel`, changed by `damage(data_dir_in_copy)`, snapshotted read-only as
/// `dst_rel`; the copy is removed again.
fn damaged_snapshot(
    pool: &BtrfsPool,
    live: &LivePostgres,
    src_rel: &str,
    dst_rel: &str,
    damage: impl Fn(&Path),
) -> PathBuf {
    let work = format!("work-{}", dst_rel.replace('/', "-"));
    let copy = pool.snapshot_rw(src_rel, &work);
    let rel = live.data_dir.strip_prefix(pool.path(src_rel)).unwrap();
    damage(&copy.join(rel));
    let snap = pool.snapshot_ro(&work, dst_rel);
    cmd_ok("btrfs", &["subvolume", "delete", path_str(&copy)]);
    snap
}

#[test]
fn postgres_since_last_reports_exactly_the_damaged_snapshot() {
    if !require_root("postgres_since_last_reports_exactly_the_damaged_snapshot") {
        return;
    }
    let pool = BtrfsPool::new();
    pool.subvolume_create("live");
    let live = LivePostgres::start(&pool, "live");
    live.psql(SCHEMA);
    let relation = live.psql("SELECT pg_relation_filepath('invoices')");
    // Six snapshots of the running server (each after a checkpoint, as a backup hook would do); the
    // fourth taken of a copy whose invoices table lost its file.
    for i in 1..=6 {
        live.psql(&format!(
            "INSERT INTO invoices VALUES ({}, 'customer {i}')",
            100 + i
        ));
        live.psql("CHECKPOINT");
        if i == 4 {
            damaged_snapshot(&pool, &live, "live", "snaps/s4", |data| {
                fs::remove_file(data.join(&relation)).unwrap();
            });
        } else {
            pool.snapshot_ro("live", &format!("snaps/s{i}"));
        }
    }

    let out_dir = tempfile::Builder::new()
        .prefix("wbtverify")
        .tempdir()
        .unwrap();
    let metrics = out_dir.path().join("verify.prom");
    let hook_out = out_dir.path().join("hook.json");
    let wb = Wayback::with_extra_config(&format!(
        "[verify]\nparallel = 2\nmetrics_file = \"{}\"\non_failure = [\"/bin/sh\", \"-c\", \"cat > {}\"]\n",
        metrics.display(),
        hook_out.display()
    ));
    let name = unique("wbtpg");
    let job = write_job(wb.tmp(), &name, &pg_job(&pool, ""));
    let job_s = job.to_str().unwrap();

    // A good snapshot passes.
    let out = wb.run(&["verify", "--job", job_s, "--snapshot", "@1", "--json"]);
    assert!(out.status.success(), "{}", show(&out));
    let first = json(&out);
    assert_eq!(first["runs"][0]["result"], "passed", "{first:#}");
    assert_eq!(first["runs"][0]["snapshot"]["id"], 1);
    assert!(!hook_out.exists(), "the hook ran though nothing failed");
    assert_no_residue(&first, &pool, &wb);

    // --dry-run lists what --since-last would verify, and runs nothing.
    let plan = wb.run_ok(&["verify", "--job", job_s, "--since-last", "--dry-run"]);
    let listed: Vec<&str> = plan
        .lines()
        .filter(|l| l.starts_with(name.as_str()))
        .map(|l| l.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    assert_eq!(listed, ["#2", "#3", "#4", "#5", "#6"], "{plan}");
    assert!(
        plan.contains("wayback up ") && plan.contains("--profile=postgresql"),
        "{plan}"
    );

    // Every snapshot since: exactly #4 fails, naming the check and the server's error.
    let junit = out_dir.path().join("junit.xml");
    let out = wb.run(&[
        "verify",
        "--job",
        job_s,
        "--since-last",
        "--json",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let since = json(&out);
    let runs = since["runs"].as_array().unwrap();
    let ids: Vec<u64> = runs
        .iter()
        .map(|r| r["snapshot"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 3, 4, 5, 6], "{since:#}");
    let failed: Vec<&Value> = runs.iter().filter(|r| r["result"] != "passed").collect();
    assert_eq!(failed.len(), 1, "{since:#}");
    assert_eq!(failed[0]["snapshot"]["id"], 4);
    let reason = failed[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("invoices (sql):") && reason.contains("could not open file"),
        "the reason names neither the check nor the server's error: {reason}"
    );
    assert_no_residue(&since, &pool, &wb);

    // The human form says the same.
    let out = wb.run(&["verify", "--job", job_s, "--snapshot", "@4"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL")
            && text.contains("invoices (sql)")
            && text.contains("could not open file"),
        "{text}"
    );

    // Nothing new: the newest snapshot was verified.
    let out = wb.run(&["verify", "--job", job_s]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to verify"));

    check_records(&wb, &name, &metrics, &hook_out, &junit);
}

/// History, metrics, hook and JUnit after the runs of the test above (7 runs: #1, #2-#6, #4 again).
fn check_records(wb: &Wayback, job: &str, metrics: &Path, hook: &Path, junit: &Path) {
    let out = wb.run(&["verify", "history", job, "--json"]);
    assert!(out.status.success(), "{}", show(&out));
    let runs = json(&out);
    let runs = runs.as_array().unwrap();
    let got: Vec<(u64, &str)> = runs
        .iter()
        .rev()
        .map(|r| {
            (
                r["snapshot"]["id"].as_u64().unwrap(),
                r["result"].as_str().unwrap(),
            )
        })
        .collect();
    let want = [
        (1, "passed"),
        (2, "passed"),
        (3, "passed"),
        (4, "failed"),
        (5, "passed"),
        (6, "passed"),
        (4, "failed"),
    ];
    assert_eq!(got, want, "history: {runs:#?}");
    for r in runs {
        assert_eq!(r["job"], job);
        assert_eq!(r["version"], env!("CARGO_PKG_VERSION"));
        let checks: Vec<&str> = r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(checks, ["start", "port", "invoices"], "{r:#}");
        assert!(r["duration_ms"].as_u64().unwrap() > 0);
    }
    let bad = &runs[0]["checks"][2];
    assert_eq!(bad["result"], "failed");
    assert!(bad["reason"]
        .as_str()
        .unwrap()
        .contains("could not open file"));
    let table = wb.run_ok(&["verify", "history", job]);
    assert!(
        table.contains("failed") && table.contains("invoices (sql)"),
        "{table}"
    );

    let prom = fs::read_to_string(metrics).expect("the metrics file");
    for line in [
        format!("wayback_verify_last_result{{job=\"{job}\"}} 0"),
        format!("wayback_verify_runs_total{{job=\"{job}\",result=\"passed\"}} 5"),
        format!("wayback_verify_runs_total{{job=\"{job}\",result=\"failed\"}} 2"),
    ] {
        assert!(
            prom.lines().any(|l| l == line),
            "no line {line:?} in\n{prom}"
        );
    }
    for name in [
        "wayback_verify_last_success_timestamp_seconds",
        "wayback_verify_last_verified_snapshot_age_seconds",
        "wayback_verify_last_duration_seconds",
    ] {
        assert!(
            prom.contains(&format!("{name}{{job=\"{job}\"}} ")),
            "{prom}"
        );
    }

    let hooked: Value =
        serde_json::from_str(&fs::read_to_string(hook).expect("the hook ran")).unwrap();
    assert_eq!(hooked["passed"], false);
    assert_eq!(hooked["runs"][0]["snapshot"]["id"], 4, "{hooked:#}");

    let xml = fs::read_to_string(junit).unwrap();
    assert_eq!(xml.matches("<testsuite ").count(), 5, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert!(xml.contains("could not open file"), "{xml}");
}

#[test]
fn failed_timed_out_and_killed_runs_leave_nothing() {
    if !require_root("failed_timed_out_and_killed_runs_leave_nothing") {
        return;
    }
    let pool = BtrfsPool::new();
    pool.subvolume_create("live");
    let live = LivePostgres::start(&pool, "live");
    live.psql(SCHEMA);
    live.psql("CHECKPOINT");
    pool.snapshot_ro("live", "snaps/s1");
    damaged_snapshot(&pool, &live, "live", "snaps/s2", |data| {
        fs::write(data.join("global/pg_control"), b"").unwrap();
    });
    let wb = Wayback::new();

    // A start that fails: the server's own words, and no trace.
    let name = unique("wbtpgc");
    let job = write_job(wb.tmp(), &name, &pg_job(&pool, ""));
    let out = wb.run(&[
        "verify",
        "--job",
        job.to_str().unwrap(),
        "--snapshot",
        "@2",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let r = json(&out);
    let reason = r["runs"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("start (start):") && reason.contains("pg_control"),
        "{reason}"
    );
    assert_eq!(r["runs"][0]["checks"][1]["result"], "skipped");
    assert_no_residue(&r, &pool, &wb);

    // A check that times out.
    let name = unique("wbtpgt");
    let slow = "[[check]]\nname = \"slow\"\ncommand = \"sleep 60\"\ntimeout = \"2s\"\n";
    let job = write_job(wb.tmp(), &name, &pg_job(&pool, slow));
    let out = wb.run(&[
        "verify",
        "--job",
        job.to_str().unwrap(),
        "--snapshot",
        "@1",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let r = json(&out);
    let reason = r["runs"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("slow (command): timed out after 2s"),
        "{reason}"
    );
    assert_eq!(r["runs"][0]["checks"][2]["result"], "passed", "{r:#}");
    assert_no_residue(&r, &pool, &wb);

    // SIGTERM to `verify` in the middle of a check: it tears its instance down itself.
    let hang = "[[check]]\nname = \"hang\"\ncommand = \"sleep 300\"\ntimeout = \"10m\"\n";
    let name = unique("wbtpgs");
    let job = write_job(wb.tmp(), &name, &pg_job(&pool, hang));
    let mut child = hanging_verify(&wb, &job, &name);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "verify after SIGTERM: {status:?}");
    let history = json(&wb.run(&["verify", "history", &name, "--json"]));
    assert_eq!(history[0]["result"], "interrupted", "{history:#}");
    assert_eq!(history[0]["checks"][3]["result"], "skipped", "{history:#}");
    Residue::new(history[0]["instance"].as_str().unwrap())
        .pool(&pool)
        .wayback(&wb)
        .assert_none();

    // `verify` killed with SIGKILL in the middle of a check: `gc` removes what it left.
    let name = unique("wbtpgk");
    let job = write_job(wb.tmp(), &name, &pg_job(&pool, hang));
    let mut child = hanging_verify(&wb, &job, &name);
    let _ = child.kill();
    let _ = child.wait();
    let history = json(&wb.run(&["verify", "history", &name, "--json"]));
    assert_eq!(history[0]["result"], "interrupted", "{history:#}");
    let killed = history[0]["instance"].as_str().unwrap().to_string();
    assert!(
        !Residue::new(&killed)
            .pool(&pool)
            .wayback(&wb)
            .leftovers()
            .is_empty(),
        "a killed verify should leave its instance for gc"
    );
    let out = wb.run(&["gc"]);
    assert!(out.status.success(), "{}", show(&out));
    // The `wayback exec` of the killed check ends once gc has removed its container.
    let residue = Residue::new(&killed).pool(&pool).wayback(&wb);
    wait_for(Duration::from_secs(10), || {
        residue.leftovers().is_empty().then_some(())
    });
    residue.assert_none();
}

/// `verify` of a job whose last check hangs, once that check runs.
fn hanging_verify(wb: &Wayback, job: &Path, name: &str) -> std::process::Child {
    let mut child = wb
        .command(&["verify", "--job", job.to_str().unwrap(), "--snapshot", "@1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let instance = format!("verify-{name}-");
    let running = wait_for(Duration::from_secs(90), || {
        fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let cmdline = fs::read(e.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (text.contains(&instance) && text.contains("sleep 300")).then_some(())
        })
    });
    if running.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the hanging check of {name} never started");
    }
    child
}

#[test]
fn http_job_on_php_mariadb_app_sees_what_only_the_old_state_has() {
    use wayback_testsupport::mediawiki::*;
    if !require_root("http_job_on_php_mariadb_app_sees_what_only_the_old_state_has") {
        return;
    }
    require_packages();
    let _lock = HostLock::take();
    let php = php_version();
    let pool = BtrfsPool::new();
    pool.subvolume_create("live");
    let mut site = HostFile::claim(&format!(
        "/etc/nginx/sites-enabled/{}-mediawiki",
        unique("wbt")
    ));
    fs::write(site.path(), nginx_site(&php)).unwrap();
    let mut settings = HostFile::claim(LOCAL_SETTINGS);
    let mut live = LiveMediaWiki::start(&pool, "live");
    let page = "WaybackVerify";
    let marker = "wbt-verify-marker-71c2";
    live.maintenance(
        "edit.php",
        &["--user", WIKI_ADMIN, "--summary", "verify test", page],
        Some(&format!("Only the old state has {marker}.\n")),
    );
    pool.snapshot_ro("live", "snaps/s1");
    live.maintenance(
        "deleteBatch.php",
        &["-u", WIKI_ADMIN, "-r", "deleted after the snapshot"],
        Some(&format!("{page}\n")),
    );
    let now = Browser::new(LIVE_HOST, 80, Some(live.ns_pid())).get(&format!("/index.php/{page}"));
    assert!(
        !now.body.contains(marker),
        "the live site still has the page"
    );

    let wb = Wayback::new();
    let profile = wb.run_ok(&[
        "profile",
        "from-units",
        "mariadb",
        &format!("php{php}-fpm"),
        "nginx",
        "--port",
        "80",
    ]);
    let profile_file = wb.tmp().join("wiki-profile.toml");
    fs::write(&profile_file, profile).unwrap();
    let name = unique("wbtwiki");
    let text = format!(
        r#"root = "{}"
timeout = "5m"
[run]
profile = "{}"
bind = ["/var/lib/mysql", "/var/lib/mediawiki"]
port = 80
original_host = "{LIVE_HOST}"
[[check]]
name = "old page"
http = "/index.php/{page}"
contains = "{marker}"
[[check]]
name = "database"
sql = "SELECT count(*) FROM wbtwiki.page WHERE page_title = '{page}'"
client = "mariadb"
equals = "1"
"#,
        pool.path("snaps").display(),
        profile_file.display()
    );
    let job = write_job(wb.tmp(), &name, &text);
    let out = wb.run_timeout(
        &["verify", "--job", job.to_str().unwrap(), "--json"],
        Duration::from_secs(300),
    );
    let report = json(&out);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(report["runs"][0]["result"], "passed", "{report:#}");
    assert_no_residue(&report, &pool, &wb);
    assert!(
        fs::read_dir(wb.runtime_dir().join("routes")).map_or(true, |mut d| d.next().is_none()),
        "a verify run published a route"
    );
    live.stop();
    settings.restore();
    site.restore();
}

#[test]
fn bad_jobs_are_exit_2_naming_the_key_and_file() {
    let wb = Wayback::new();
    let secret = "s3cr3t-wbt-value";
    let cases = [
        (
            format!("root = \"/nowhere\"\n[run]\nprofile = \"postgresql\"\npublish = [\"{secret}\"]\n"),
            "publish",
        ),
        (
            format!("root = \"/nowhere\"\n[run]\nprofile = \"postgresql\"\n[[check]]\ntcp = \"{secret}\"\n"),
            "check[1].tcp",
        ),
        (
            "root = \"/nowhere\"\n[run]\nprofile = \"postgresql\"\nunit = [\"x\"]\n".to_string(),
            "run.unit",
        ),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let job = write_job(wb.tmp(), &format!("bad{i}"), text);
        let out = wb.run(&["verify", "--job", job.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        assert!(err.contains(&format!("`{key}`")), "{key} not named: {err}");
        assert!(err.contains(job.to_str().unwrap()), "{err}");
        assert!(!err.contains(secret), "a value was echoed: {err}");
    }
    let out = wb.run(&["verify", "nosuchjob"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let out = wb.run(&["verify"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

#[test]
fn a_corrupt_locked_or_newer_history_is_a_clear_error() {
    let wb = Wayback::new();
    let db = wb.state_dir().join("verify/history.sqlite");
    let out = wb.run(&["verify", "history", "--json"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(json(&out), serde_json::json!([]));

    // Locked by another writer.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let out = wb.run(&["verify", "history"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        err.contains("locked") && err.contains(db.to_str().unwrap()),
        "{err}"
    );
    conn.execute_batch("ROLLBACK").unwrap();

    // Written by a newer wayback: refused, left as it is.
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let out = wb.run(&["verify", "history"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        err.contains("newer") && err.contains(db.to_str().unwrap()),
        "{err}"
    );

    // Corrupt.
    fs::write(&db, vec![0x5a; 8192]).unwrap();
    let out = wb.run(&["verify", "history"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        err.contains("corrupt") && err.contains(&format!("mv {}", db.display())),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn timer_and_service_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::Builder::new()
        .prefix("wbtunits")
        .tempdir()
        .unwrap();
    // systemd-analyze checks that ExecStart's program exists: point it at the binary under test.
    for f in ["wayback-verify.service", "wayback-verify.timer"] {
        let text = fs::read_to_string(root.join("packaging").join(f)).unwrap();
        fs::write(
            dir.path().join(f),
            text.replace("/usr/bin/wayback", wayback_bin()),
        )
        .unwrap();
    }
    let service = dir.path().join("wayback-verify.service");
    let timer = dir.path().join("wayback-verify.timer");
    let out = cmd(
        "systemd-analyze",
        &["verify", "--man=no", path_str(&service), path_str(&timer)],
    );
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        show(&out)
    );
    let text = fs::read_to_string(&service).unwrap();
    assert!(text.contains("verify --all --since-last"), "{text}");
}
