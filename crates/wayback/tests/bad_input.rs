//! Bad input: every case exits 2, names the offending thing in its message, and creates nothing (no instance
//! state, no netns, no link, no clone, no process). `--dry-run` creates nothing either and shows the plan.
//! The cases that change one argument of a valid `up` are rows of one table ([`rows`]); the cases that need
//! their own setup (another filesystem, a running instance, a config file) are tests of their own.

use std::fs;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use wayback_testsupport::*;

/// A pool with a valid read-only snapshot (with /var/www/html, so `--profile nginx-static` is valid) and a
/// wayback config; each case changes one argument of an otherwise valid `up`.
///
/// Fields drop in order: wayback's safety net (`down --all`) runs before the pool goes.
struct Fixture {
    wb: Wayback,
    pool: BtrfsPool,
    snap: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let pool = BtrfsPool::new();
        let live = pool.subvolume_create("live");
        fs::create_dir_all(live.join("var/www/html")).unwrap();
        fs::write(live.join("var/www/html/index.html"), "hi\n").unwrap();
        let snap = pool.snapshot_ro("live", "snaps/s1");
        // A plain directory on the btrfs filesystem (not a subvolume).
        fs::create_dir_all(pool.path("plain/var/www/html")).unwrap();
        Fixture {
            wb: Wayback::new(),
            pool,
            snap,
        }
    }

    fn snap(&self) -> &str {
        self.snap.to_str().unwrap()
    }

    /// `up` must not stay in the foreground on bad input: 60 s is plenty.
    fn up(&self, args: &[&str]) -> Output {
        let mut full = vec!["up"];
        full.extend_from_slice(args);
        self.wb.run_timeout(&full, Duration::from_secs(60))
    }

    /// Run `up ARGS` and say what is wrong with the outcome, if anything: it must exit 2, its message must
    /// contain every one of `needles`, it must print no ready line, and nothing may be created for `name`.
    fn check_bad(&self, name: &str, args: &[&str], needles: &[&str]) -> Result<(), String> {
        let out = self.up(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut wrong = Vec::new();
        if out.status.code() != Some(2) {
            wrong.push("must exit 2 (bad input)".to_string());
        }
        for n in needles {
            if !stderr.contains(n) {
                wrong.push(format!("the message does not name {n:?}"));
            }
        }
        if stdout.contains("ready") {
            wrong.push(format!("bad input printed a ready line: {stdout}"));
        }
        wrong.extend(self.created(name));
        if wrong.is_empty() {
            return Ok(());
        }
        Err(format!(
            "`up {}`:\n  {}\n{}",
            args.join(" "),
            wrong.join("\n  "),
            show(&out)
        ))
    }

    /// [`Fixture::check_bad`], panicking with what is wrong.
    #[track_caller]
    fn expect_bad(&self, name: &str, args: &[&str], needles: &[&str]) {
        if let Err(e) = self.check_bad(name, args, needles) {
            panic!("{e}");
        }
    }

    #[track_caller]
    fn assert_nothing_created(&self, name: &str) {
        let created = self.created(name);
        assert!(created.is_empty(), "{}", created.join("\n"));
    }

    /// What exists that bad input must not have made: instance state, clones, and any trace of `name`.
    fn created(&self, name: &str) -> Vec<String> {
        let mut found = Vec::new();
        let instances = self.wb.state_dir().join("instances");
        let entries = entry_names(&instances);
        if !entries.is_empty() {
            found.push(format!(
                "bad input created instance state: {entries:?} in {}",
                instances.display()
            ));
        }
        let clones = entry_names(&self.pool.path(".wayback"));
        if !clones.is_empty() {
            found.push(format!("bad input created clones: {clones:?}"));
        }
        let left = Residue::new(name)
            .pool(&self.pool)
            .wayback(&self.wb)
            .leftovers();
        if !left.is_empty() {
            found.push(format!(
                "instance {name} left {} trace(s) behind:\n  {}",
                left.len(),
                left.join("\n  ")
            ));
        }
        found
    }
}

fn fixture(test: &str) -> Option<Fixture> {
    require_root(test).then(Fixture::new)
}

#[test]
fn baseline_dry_run_creates_nothing_and_shows_the_plan() {
    let Some(f) = fixture("baseline_dry_run_creates_nothing_and_shows_the_plan") else {
        return;
    };
    let name = unique("wbtbad");
    let out = f.up(&[
        f.snap(),
        "--name",
        &name,
        "--profile",
        "nginx-static",
        "--dry-run",
    ]);
    assert!(
        out.status.success(),
        "dry run of a valid request failed\n{}",
        show(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let clone = f.pool.clone_path(&name);
    assert!(
        text.contains(clone.to_str().unwrap()),
        "dry run does not show the clone path {}\n{}",
        clone.display(),
        show(&out)
    );
    assert!(
        text.contains(&format!("wb-{name}")),
        "dry run does not show the netns wb-{name}\n{}",
        show(&out)
    );
    f.assert_nothing_created(&name);

    let out = f.up(&[
        f.snap(),
        "--name",
        &name,
        "--profile",
        "nginx-static",
        "--dry-run",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "dry run --json failed\n{}",
        show(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "--dry-run --json is not one JSON value ({e})\n{}",
            show(&out)
        )
    });
    let flat = v.to_string();
    assert!(
        flat.contains(clone.to_str().unwrap()),
        "JSON plan does not name the clone: {flat}"
    );
    assert!(
        flat.contains(&format!("wb-{name}")),
        "JSON plan does not name the netns: {flat}"
    );
    f.assert_nothing_created(&name);
}

/// One bad `up`: its arguments with the snapshot first (`--name NAME` goes after it), and the words its
/// message must hold.
struct Row {
    label: String,
    /// The instance name; a unique one unless the row is about the name.
    name: Option<&'static str>,
    args: Vec<String>,
    has: Vec<String>,
}

fn row(label: &str, args: &[&str], has: &[&str]) -> Row {
    Row {
        label: label.into(),
        name: None,
        args: args.iter().map(ToString::to_string).collect(),
        has: has.iter().map(ToString::to_string).collect(),
    }
}

impl Row {
    fn named(mut self, name: &'static str) -> Row {
        self.name = Some(name);
        self
    }
}

/// The cases that change one argument of an otherwise valid `up` on the fixture.
fn rows(f: &Fixture) -> Vec<Row> {
    let snap = f.snap();
    let missing = f.pool.path("snaps/wbt-does-not-exist");
    let missing = path_str(&missing);
    let plain = f.pool.path("plain");
    let plain = path_str(&plain);
    let with_profile = |label: &str, extra: &[&str], has: &[&str]| {
        let mut args = vec![snap, "--profile", "nginx-static"];
        args.extend_from_slice(extra);
        row(label, &args, has)
    };
    let mut v = vec![
        row(
            "missing snapshot path",
            &[missing, "--profile", "nginx-static"],
            &[missing],
        ),
        row(
            "a directory on btrfs, not a subvolume",
            &[plain, "--profile", "nginx-static"],
            &[plain],
        ),
        with_profile("invalid instance name", &[], &["Bad_Name"]).named("Bad_Name"),
        with_profile("invalid hostname", &["--host", "bad_host!"], &["bad_host!"]),
        with_profile("invalid --ttl", &["--ttl", "5x"], &["5x"]),
        row(
            "unknown profile",
            &[snap, "--profile", "wbtnosuchprofile"],
            &["wbtnosuchprofile"],
        ),
        with_profile(
            "--bind path absent in the snapshot",
            &["--bind", "/var/lib/nothing"],
            &["/var/lib/nothing"],
        ),
        // A profile's own bind missing in the snapshot is bad input too (this snapshot has no
        // /var/lib/postgresql).
        row(
            "a profile's bind absent in the snapshot",
            &[snap, "--profile", "postgresql"],
            &["/var/lib/postgresql"],
        ),
    ];
    for port in ["0", "70000", "http"] {
        v.push(row(
            &format!("--port {port}"),
            &[snap, "--exec", "exec sleep 1000", "--port", port],
            &["--port", port],
        ));
    }
    for p in ["abc", "15432:0", "99999:5432", "1.2.3.4.5:80:80"] {
        v.push(with_profile(
            &format!("--publish {p}"),
            &["--publish", p],
            &[p],
        ));
    }
    v
}

/// Every row of [`rows`] on one fixture. Failures are collected, so one run reports every wrong row; the
/// checks for instance state and clones look at the whole fixture, so a row that leaves something behind
/// is the first of the rows that report it.
#[test]
fn bad_arguments() {
    let Some(f) = fixture("bad_arguments") else {
        return;
    };
    let table = rows(&f);
    let mut failures = Vec::new();
    for (i, r) in table.iter().enumerate() {
        let name = r.name.map_or_else(|| unique("wbtbad"), str::to_string);
        let mut args: Vec<&str> = r.args.iter().map(String::as_str).collect();
        args.splice(1..1, ["--name", name.as_str()]);
        let has: Vec<&str> = r.has.iter().map(String::as_str).collect();
        if let Err(e) = f.check_bad(&name, &args, &has) {
            failures.push(format!("row {} ({}): {e}", i + 1, r.label));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows are wrong:\n\n{}",
        failures.len(),
        table.len(),
        failures.join("\n\n")
    );
}

#[test]
fn directory_on_a_non_btrfs_filesystem() {
    let Some(f) = fixture("directory_on_a_non_btrfs_filesystem") else {
        return;
    };
    let name = unique("wbtbad");
    let dir = tempfile::Builder::new()
        .prefix("wbtnotbtrfs")
        .tempdir()
        .unwrap();
    fs::create_dir_all(dir.path().join("var/www/html")).unwrap();
    let fstype = cmd_ok("stat", &["-f", "-c", "%T", dir.path().to_str().unwrap()]);
    assert_ne!(
        fstype.trim(),
        "btrfs",
        "this case needs a temp dir that is not on btrfs"
    );
    let d = dir.path().to_str().unwrap();
    f.expect_bad(
        &name,
        &[d, "--name", &name, "--profile", "nginx-static"],
        &[d],
    );
}

#[test]
fn name_taken_by_a_running_instance() {
    let Some(f) = fixture("name_taken_by_a_running_instance") else {
        return;
    };
    let name = unique("wbtbad");
    let mut first = f.wb.up_background(&[
        f.snap(),
        "--name",
        &name,
        "--exec",
        "exec sleep 1000",
        "--allow-empty",
    ]);
    let out = f.up(&[
        f.snap(),
        "--name",
        &name,
        "--exec",
        "exec sleep 1000",
        "--allow-empty",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "second up of a taken name must exit 2\n{}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&name),
        "message does not name {name}\n{}",
        show(&out)
    );
    // The first instance is untouched.
    assert!(
        first.wait_exit(Duration::from_millis(200)).is_none(),
        "the first up exited\n{}",
        first.describe()
    );
    let ls = f.wb.run_ok(&["ls", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str(&ls).unwrap_or_else(|e| panic!("ls --json ({e}): {ls}"));
    let mine: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["name"] == name.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{ls}");
    assert_eq!(mine[0]["state"], "running", "{ls}");
    assert!(f.pool.clone_path(&name).exists());

    let out = f.wb.run(&["down", &name]);
    assert!(out.status.success(), "down failed\n{}", show(&out));
    let st = first.wait_exit(Duration::from_secs(60));
    assert!(
        st.is_some_and(|s| s.success()),
        "first up exited {st:?}\n{}",
        first.describe()
    );
    drop(first);
    f.assert_nothing_created(&name);
}

#[test]
fn bad_config_file_is_bad_input() {
    let Some(f) = fixture("bad_config_file_is_bad_input") else {
        return;
    };
    let name = unique("wbtbad");
    let cfg = f.wb.tmp().join("typo.toml");
    fs::write(&cfg, "stat_dir = \"/tmp/wbt-typo\"\n").unwrap();
    let out = std::process::Command::new(wayback_bin())
        .arg("--config")
        .arg(&cfg)
        .args([
            "up",
            f.snap(),
            "--name",
            &name,
            "--profile",
            "nginx-static",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "unknown config key must be bad input\n{}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stat_dir"),
        "{}",
        show(&out)
    );
    f.assert_nothing_created(&name);
}
