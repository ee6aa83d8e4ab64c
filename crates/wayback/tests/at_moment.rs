//! State spread over several subvolumes (issue "matched set of snapshots"): app data on the live root
//! subvolume, a nested PostgreSQL subvolume, and secrets on a second btrfs filesystem mounted into the live
//! tree — each with its own snapper-style snapshots at slightly different times. `up --at MOMENT` picks, for
//! every bind path, the snapshot of the subvolume holding it at or before MOMENT: the old state of all three
//! is served (a real PostgreSQL on the database subvolume), the dry run lists the three snapshots and their
//! skew, a large skew warns and `--strict-consistency` refuses, a moment before every snapshot names the
//! subvolume and its oldest snapshot, and `down` leaves nothing on either filesystem.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use wayback_testsupport::*;

/// A snapper-style snapshot `ROOT/.snapshots/N/snapshot` of `src` with an info.xml dated `date` (UTC).
fn snapper(pool: &BtrfsPool, src: &str, root: &str, n: u32, date: &str) {
    pool.snapshot_ro(src, &format!("{root}/.snapshots/{n}/snapshot"));
    fs::write(
        pool.path(&format!("{root}/.snapshots/{n}/info.xml")),
        format!("<?xml version=\"1.0\"?>\n<snapshot>\n  <type>single</type>\n  <num>{n}</num>\n  <date>{date}</date>\n  <description>wbt</description>\n</snapshot>\n"),
    )
    .unwrap();
}

/// Bind-mount `src` at `dst` (the second filesystem inside the live tree); unmounted on drop.
struct Bind(std::path::PathBuf);
impl Drop for Bind {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).output();
    }
}

#[test]
fn up_at_a_moment_assembles_matching_snapshots_of_three_subvolumes() {
    if !require_root("up_at_a_moment_assembles_matching_snapshots_of_three_subvolumes") {
        return;
    }
    let a = BtrfsPool::new();
    let b = BtrfsPool::new();
    let live = a.subvolume_create("live");
    fs::create_dir_all(live.join("srv/app")).unwrap();
    fs::create_dir_all(live.join("var/lib")).unwrap();
    a.subvolume_create("live/var/lib/postgresql");
    let secrets = b.subvolume_create("secrets");
    fs::create_dir_all(live.join("srv/secrets")).unwrap();
    cmd_ok(
        "mount",
        &[
            "--bind",
            secrets.to_str().unwrap(),
            live.join("srv/secrets").to_str().unwrap(),
        ],
    );
    let _mounted = Bind(live.join("srv/secrets"));

    fs::write(live.join("srv/app/data.txt"), "old data\n").unwrap();
    fs::write(secrets.join("key.txt"), "old secret\n").unwrap();
    let mut pg = LivePostgres::start(&a, "live");
    pg.psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('old row');");

    // The moment: 10:00 (data), 10:00:30 (database), 10:01 (secrets); secrets also had an 08:00 snapshot.
    snapper(&b, "secrets", "snaps-secrets", 1, "2026-11-14 08:00:00");
    snapper(&a, "live", "snaps-live", 1, "2026-11-14 10:00:00");
    snapper(
        &a,
        "live/var/lib/postgresql",
        "snaps-pg",
        1,
        "2026-11-14 10:00:30",
    );
    snapper(&b, "secrets", "snaps-secrets", 2, "2026-11-14 10:01:00");
    // Later, live changes, and the next snapshots record them.
    fs::write(live.join("srv/app/data.txt"), "new data\n").unwrap();
    fs::write(secrets.join("key.txt"), "new secret\n").unwrap();
    pg.psql("DELETE FROM t; INSERT INTO t VALUES ('new row');");
    snapper(&a, "live", "snaps-live", 2, "2026-11-14 11:00:00");
    snapper(
        &a,
        "live/var/lib/postgresql",
        "snaps-pg",
        2,
        "2026-11-14 11:00:00",
    );
    snapper(&b, "secrets", "snaps-secrets", 3, "2026-11-14 11:00:00");
    pg.stop();

    let roots = format!(
        "snapshot_roots = [\"{}\", \"{}\", \"{}\"]",
        a.path("snaps-live").display(),
        a.path("snaps-pg").display(),
        b.path("snaps-secrets").display()
    );
    let wb = Wayback::with_extra_config(&roots);
    let live_s = live.to_str().unwrap();
    let name = unique("wbtat");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:5432");
    let base = [
        "up",
        live_s,
        "--name",
        &name,
        "--profile",
        "postgresql",
        "--bind",
        "/srv/app",
        "--bind",
        "/srv/secrets",
        "--publish",
        &publish,
    ];
    let with = |extra: &[&'static str]| -> Vec<String> {
        base.iter()
            .copied()
            .chain(extra.iter().copied())
            .map(String::from)
            .collect()
    };
    let run = |args: Vec<String>| wb.run(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // The dry run lists the three snapshots and their skew.
    let out = run(with(&["--at", "2026-11-14T10:05", "--dry-run"]));
    assert!(out.status.success(), "{}", show(&out));
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    for snap in [
        "snaps-live/.snapshots/1/snapshot",
        "snaps-pg/.snapshots/1/snapshot",
        "snaps-secrets/.snapshots/2/snapshot",
    ] {
        assert!(plan.contains(snap), "plan lacks {snap}:\n{plan}");
    }
    assert!(plan.contains("skew       1m"), "{plan}");

    // A large skew warns; --strict-consistency refuses.
    let out = run(with(&["--at", "2026-11-14T10:00:45", "--dry-run"]));
    assert!(out.status.success(), "{}", show(&out));
    assert!(show(&out).contains("2h"), "skew warning: {}", show(&out));
    let out = run(with(&[
        "--at",
        "2026-11-14T10:00:45",
        "--dry-run",
        "--strict-consistency",
    ]));
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(show(&out).contains("max_skew"), "{}", show(&out));

    // Before every snapshot: the error names the subvolume and its oldest snapshot.
    let out = run(with(&["--at", "2026-11-14T07:00", "--dry-run"]));
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        show(&out).contains("has no snapshot at or before") && show(&out).contains("its oldest is"),
        "{}",
        show(&out)
    );

    // The real thing: old state from all three subvolumes.
    let mut args = with(&["--at", "2026-11-14T10:05"]);
    args.remove(0);
    let up = wb.up_background(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let rows = wait_for(Duration::from_secs(20), || {
        psql_at(addr, "SELECT v FROM t").ok()
    })
    .expect("database answers");
    assert_eq!(rows.trim(), "old row");
    let status: serde_json::Value =
        serde_json::from_str(&wb.run_ok(&["status", &name, "--json"])).unwrap();
    let _ = status;
    let plan: serde_json::Value = serde_json::from_slice(
        &fs::read(
            wb.state_dir()
                .join("instances")
                .join(&name)
                .join("plan.json"),
        )
        .unwrap(),
    )
    .unwrap();
    // Where a bind's data is on the host: its clone's root joined with the path resolved inside it.
    let bind_src = |dest: &str| {
        let b = plan["container"]["binds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["dest"] == dest)
            .unwrap()
            .clone();
        let root = b["clone"]["root"].as_str().unwrap().to_string();
        let resolved = b["clone"]["resolved"]
            .as_str()
            .unwrap()
            .trim_start_matches('/')
            .to_string();
        Path::new(&root).join(resolved).display().to_string()
    };
    assert_eq!(
        fs::read_to_string(Path::new(&bind_src("/srv/app")).join("data.txt")).unwrap(),
        "old data\n"
    );
    assert_eq!(
        fs::read_to_string(Path::new(&bind_src("/srv/secrets")).join("key.txt")).unwrap(),
        "old secret\n"
    );
    assert!(
        bind_src("/srv/secrets").starts_with(b.mount().to_str().unwrap()),
        "the secrets clone is on the second filesystem"
    );
    drop(up);
    Residue::new(&name).pool(&a).wayback(&wb).assert_none();
    let own = b.own_subvolumes();
    let left: Vec<String> = b
        .subvolumes()
        .into_iter()
        .filter(|s| !own.contains(s))
        .collect();
    assert!(
        left.is_empty(),
        "subvolumes left on the second filesystem: {left:?}"
    );
    assert!(
        !b.mount().join(".wayback").exists(),
        "clone directory left on the second filesystem"
    );
}
