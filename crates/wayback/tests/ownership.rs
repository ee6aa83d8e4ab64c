//! Users and ownership: a snapshot whose PostgreSQL files belong to another uid than this host's `postgres`
//! (it came from another machine: its own /etc/passwd says postgres is 4242) is refused with a message
//! naming the path, the owner and the user; with `--chown` the clone's ids are changed (the snapshot's are
//! not) and the old rows are served.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use wayback_testsupport::*;

#[test]
fn foreign_uids_are_refused_then_served_with_chown() {
    if !require_root("foreign_uids_are_refused_then_served_with_chown") {
        return;
    }
    let pool = BtrfsPool::new();
    pool.subvolume_create("live");
    let mut live = LivePostgres::start(&pool, "live");
    live.psql(
        "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('from the other machine');",
    );
    live.stop();
    // The "other machine": same files, postgres is uid/gid 4242 there.
    pool.snapshot_rw("live", "foreign");
    let foreign = pool.path("foreign");
    cmd_ok(
        "chown",
        &[
            "-R",
            "4242:4242",
            path_str(&foreign.join("var/lib/postgresql")),
        ],
    );
    fs::create_dir_all(foreign.join("etc")).unwrap();
    fs::write(
        foreign.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\npostgres:x:4242:4242::/var/lib/postgresql:/bin/bash\n",
    )
    .unwrap();
    fs::write(foreign.join("etc/group"), "root:x:0:\npostgres:x:4242:\n").unwrap();
    let snap = pool.snapshot_ro("foreign", "snaps/s1");
    let before = tree_manifest(&snap);

    let wb = Wayback::new();
    let name = unique("wbtown");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:5432");
    let out = wb.run(&[
        "up",
        path_str(&snap),
        "--name",
        &name,
        "--profile",
        "postgresql",
        "--publish",
        &publish,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "/var/lib/postgresql is owner postgres (4242) in the snapshot, but postgres is"
        ),
        "{err}"
    );
    assert!(err.contains("--chown"), "{err}");
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();

    let up = wb.up_background(&[
        path_str(&snap),
        "--name",
        &name,
        "--profile",
        "postgresql",
        "--publish",
        &publish,
        "--chown",
    ]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let rows = wait_for(Duration::from_secs(20), || {
        psql_at(addr, "SELECT body FROM notes").ok()
    })
    .unwrap_or_else(|| panic!("no answer through the publish\n{}", up.stderr()));
    assert_eq!(rows.trim(), "from the other machine");
    drop(up);
    assert_eq!(tree_manifest(&snap), before, "the snapshot changed");
    assert!(is_readonly_subvolume(Path::new(path_str(&snap))));
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
