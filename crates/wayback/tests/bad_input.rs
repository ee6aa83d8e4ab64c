//! Bad input: every case exits 2, names the offending thing in its message, and creates nothing (no instance
//! state, no netns, no link, no clone, no process). `--dry-run` creates nothing either and shows the plan.

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

    /// Assert exit 2, a message containing every one of `needles`, and nothing created for `name`.
    #[track_caller]
    fn expect_bad(&self, name: &str, args: &[&str], needles: &[&str]) {
        let out = self.up(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(2),
            "`up {}` must exit 2 (bad input)\n{}",
            args.join(" "),
            show(&out)
        );
        for n in needles {
            assert!(
                stderr.contains(n),
                "the message of `up {}` does not name {n:?}\n{}",
                args.join(" "),
                show(&out)
            );
        }
        assert!(
            !stdout.contains("ready"),
            "bad input printed a ready line: {stdout}"
        );
        self.assert_nothing_created(name);
    }

    #[track_caller]
    fn assert_nothing_created(&self, name: &str) {
        let instances = self.wb.state_dir().join("instances");
        let entries: Vec<String> = fs::read_dir(&instances)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            entries.is_empty(),
            "bad input created instance state: {entries:?} in {}",
            instances.display()
        );
        let clones = self.pool.path(".wayback");
        let clones: Vec<String> = fs::read_dir(&clones)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(clones.is_empty(), "bad input created clones: {clones:?}");
        Residue::new(name)
            .pool(&self.pool)
            .wayback(&self.wb)
            .assert_none();
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

#[test]
fn missing_snapshot_path() {
    let Some(f) = fixture("missing_snapshot_path") else {
        return;
    };
    let name = unique("wbtbad");
    let missing = f.pool.path("snaps/wbt-does-not-exist");
    let m = missing.to_str().unwrap();
    f.expect_bad(
        &name,
        &[m, "--name", &name, "--profile", "nginx-static"],
        &[m],
    );
}

#[test]
fn plain_directory_on_btrfs_is_not_a_subvolume() {
    let Some(f) = fixture("plain_directory_on_btrfs_is_not_a_subvolume") else {
        return;
    };
    let name = unique("wbtbad");
    let plain = f.pool.path("plain");
    let p = plain.to_str().unwrap();
    f.expect_bad(
        &name,
        &[p, "--name", &name, "--profile", "nginx-static"],
        &[p],
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
fn invalid_instance_name() {
    let Some(f) = fixture("invalid_instance_name") else {
        return;
    };
    f.expect_bad(
        "Bad_Name",
        &[f.snap(), "--name", "Bad_Name", "--profile", "nginx-static"],
        &["Bad_Name"],
    );
}

#[test]
fn invalid_hostname() {
    let Some(f) = fixture("invalid_hostname") else {
        return;
    };
    let name = unique("wbtbad");
    f.expect_bad(
        &name,
        &[
            f.snap(),
            "--name",
            &name,
            "--profile",
            "nginx-static",
            "--host",
            "bad_host!",
        ],
        &["bad_host!"],
    );
}

#[test]
fn invalid_ports() {
    let Some(f) = fixture("invalid_ports") else {
        return;
    };
    let name = unique("wbtbad");
    for port in ["0", "70000", "http"] {
        f.expect_bad(
            &name,
            &[
                f.snap(),
                "--name",
                &name,
                "--exec",
                "exec sleep 1000",
                "--port",
                port,
            ],
            &["--port", port],
        );
    }
}

#[test]
fn invalid_ttl() {
    let Some(f) = fixture("invalid_ttl") else {
        return;
    };
    let name = unique("wbtbad");
    f.expect_bad(
        &name,
        &[
            f.snap(),
            "--name",
            &name,
            "--profile",
            "nginx-static",
            "--ttl",
            "5x",
        ],
        &["5x"],
    );
}

#[test]
fn unknown_profile() {
    let Some(f) = fixture("unknown_profile") else {
        return;
    };
    let name = unique("wbtbad");
    f.expect_bad(
        &name,
        &[f.snap(), "--name", &name, "--profile", "wbtnosuchprofile"],
        &["wbtnosuchprofile"],
    );
}

#[test]
fn bind_path_absent_in_snapshot() {
    let Some(f) = fixture("bind_path_absent_in_snapshot") else {
        return;
    };
    let name = unique("wbtbad");
    f.expect_bad(
        &name,
        &[
            f.snap(),
            "--name",
            &name,
            "--profile",
            "nginx-static",
            "--bind",
            "/var/lib/nothing",
        ],
        &["/var/lib/nothing"],
    );
    // A profile's own bind missing in the snapshot is bad input too (this snapshot has no /var/lib/postgresql).
    f.expect_bad(
        &name,
        &[f.snap(), "--name", &name, "--profile", "postgresql"],
        &["/var/lib/postgresql"],
    );
}

#[test]
fn invalid_publish() {
    let Some(f) = fixture("invalid_publish") else {
        return;
    };
    let name = unique("wbtbad");
    for p in ["abc", "15432:0", "99999:5432", "1.2.3.4.5:80:80"] {
        f.expect_bad(
            &name,
            &[
                f.snap(),
                "--name",
                &name,
                "--profile",
                "nginx-static",
                "--publish",
                p,
            ],
            &[p],
        );
    }
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
