//! Acceptance test: a live PostgreSQL cluster on a btrfs subvolume, a read-only snapshot of it taken while the
//! server runs, rows deleted live afterwards; `wayback up` of the snapshot serves the old rows on a published
//! port while the live server keeps serving the new state; `wayback down` leaves no trace and the snapshot
//! stays read-only and byte-identical.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use wayback_testsupport::*;

const SCHEMA: &str =
    "CREATE TABLE invoices (id int PRIMARY KEY, customer text NOT NULL, amount numeric NOT NULL);
INSERT INTO invoices VALUES (1, 'ada', 120.50), (2, 'grace', 99.00), (3, 'linus', 7.25);";
const QUERY: &str = "SELECT id, customer, amount FROM invoices ORDER BY id";
const ALL_ROWS: &str = "1|ada|120.50\n2|grace|99.00\n3|linus|7.25";
const AFTER_DELETE: &str = "1|ada|120.50\n3|linus|7.25";

#[test]
fn postgres_snapshot_serves_old_rows_and_leaves_no_trace() {
    if !require_root("postgres_snapshot_serves_old_rows_and_leaves_no_trace") {
        return;
    }
    let pool = BtrfsPool::new();
    pool.subvolume_create("live");
    let live = LivePostgres::start(&pool, "live");
    live.psql(SCHEMA);
    assert_eq!(live.psql(QUERY), ALL_ROWS);

    // Snapshot while the server runs (as a backup tool would), then "the user deletes the invoice".
    let snap = pool.snapshot_ro("live", "snaps/s1");
    assert!(
        is_readonly_subvolume(&snap),
        "the source snapshot must be read-only to begin with"
    );
    let manifest_before = tree_manifest(&snap);
    let checksum_before = checksum_of(&manifest_before);
    live.psql("DELETE FROM invoices WHERE id = 2");
    assert_eq!(live.psql(QUERY), AFTER_DELETE);

    let wb = Wayback::new();
    let name = unique("wbtpg");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:5432");
    let snap_s = snap.to_str().unwrap();
    let t0 = Instant::now();
    let mut up = wb.up_background(&[
        snap_s,
        "--name",
        &name,
        "--profile",
        "postgresql",
        "--publish",
        &publish,
    ]);
    eprintln!("ready after {:?}: {}", t0.elapsed(), up.ready);

    assert_eq!(up.ready["name"], name.as_str(), "ready line: {}", up.ready);
    assert_eq!(up.ready["state"], "running", "ready line: {}", up.ready);
    assert!(
        up.ready.get("url").is_some(),
        "ready line has no \"url\": {}",
        up.ready
    );
    let published = up.ready["publish"].as_array().cloned().unwrap_or_default();
    assert!(
        published
            .iter()
            .any(|p| p.to_string().contains(&port.to_string())),
        "ready line does not list the publish of port {port}: {}",
        up.ready
    );

    // The clone is a writable snapshot at the documented place while the instance runs.
    let clone = pool.clone_path(&name);
    assert!(
        is_subvolume(&clone),
        "no clone subvolume at {}",
        clone.display()
    );
    assert!(
        !is_readonly_subvolume(&clone),
        "clone {} is read-only",
        clone.display()
    );

    // The instance serves the old rows, the live server does not.
    // "ready" means a client can query right away. If it cannot, that is recorded as a failure, and the test
    // goes on (retrying for a while) so one run reports everything else too.
    let mut problems: Vec<String> = Vec::new();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let old = match psql_at(addr, QUERY) {
        Ok(rows) => rows,
        Err(e) => {
            problems.push(format!(
                "the first query right after the ready line failed (ready is announced too early):\n{e}"
            ));
            let retried = wait_for(Duration::from_secs(30), || psql_at(addr, QUERY).ok());
            retried.unwrap_or_else(|| {
                panic!(
                    "psql to the published port failed for 30 s\n{e}\n{}",
                    up.describe()
                )
            })
        }
    };
    assert_eq!(old, ALL_ROWS, "the instance must serve the snapshot's rows");
    assert_eq!(
        live.psql(QUERY),
        AFTER_DELETE,
        "the live server must be untouched"
    );
    assert_eq!(live.psql("SELECT count(*) FROM invoices WHERE id = 2"), "0");

    // Writes in the instance land in the clone only.
    psql_at(
        addr,
        "INSERT INTO invoices VALUES (4, 'restored-copy', 1.00)",
    )
    .unwrap();
    assert_eq!(psql_at(addr, "SELECT count(*) FROM invoices").unwrap(), "4");
    assert_eq!(live.psql("SELECT count(*) FROM invoices").as_str(), "2");

    let out = wb.run(&["down", &name]);
    assert!(
        out.status.success(),
        "`wayback down {name}` failed\n{}",
        show(&out)
    );
    let status = up.wait_exit(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "the foreground `up` must exit 0 after `down` (got {status:?})\n{}",
        up.describe()
    );
    assert!(
        psql_at(addr, "SELECT 1").is_err(),
        "published port still answers after down"
    );

    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    assert!(
        is_readonly_subvolume(&snap),
        "the source snapshot is no longer read-only"
    );
    let manifest_after = tree_manifest(&snap);
    let diff = manifest_diff(&manifest_before, &manifest_after);
    assert!(
        diff.is_empty(),
        "the source snapshot changed:\n{}",
        diff.join("\n")
    );
    assert_eq!(checksum_before, checksum_of(&manifest_after));
    assert_eq!(live.psql(QUERY), AFTER_DELETE);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
