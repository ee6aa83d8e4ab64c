//! Redis (Debian's redis-server.service) brought back from a whole-root snapshot with `--unit` alone, and
//! `--unit redis-server` refused on a snapshot that does not hold Redis's state.

use std::fs;
use std::path::Path;

use crate::live::*;
use crate::*;
use wayback_testsupport::*;

const REDIS_CONF: &str = "/etc/redis/redis.conf";

/// The live redis-server as its unit starts it, on the live root's /var/lib/redis and /var/log/redis.
fn live_redis(pool: &BtrfsPool, live: &Path, scratch: &Path) -> LiveServer {
    let server = LiveServer::start(LiveSpec {
        what: "redis-server",
        binds: vec![
            (live.join("var/lib/redis"), "/var/lib/redis"),
            (live.join("var/log/redis"), "/var/log/redis"),
        ],
        run_dirs: &[("/run/redis", "redis:redis", "2755")],
        keep: pool.dir(),
        // ExecStart=, User=, Group=, UMask= of Debian's redis-server.service.
        argv: [
            "sh",
            "-c",
            "umask 007; exec setpriv --reuid=redis --regid=redis --init-groups -- \
             /usr/bin/redis-server /etc/redis/redis.conf --supervised systemd --daemonize no",
        ]
        .map(String::from)
        .to_vec(),
        output: scratch.join("redis.out"),
    });
    eventually(
        "the live redis-server does not answer PING",
        &server,
        || stdout(&server.client(&["redis-cli", "-p", "6379", "PING"])).trim() == "PONG",
    );
    server
}

/// `redis-cli` against the live server; its output, trimmed.
fn live_cli(live: &LiveServer, args: &[&str]) -> String {
    let mut argv = vec!["redis-cli", "-p", "6379"];
    argv.extend_from_slice(args);
    let out = live.client(&argv);
    assert!(out.status.success(), "{}", show(&out));
    stdout(&out).trim().to_string()
}

/// `redis-cli` against the instance through its published port.
fn instance_cli(port: u16, args: &[&str]) -> String {
    let p = port.to_string();
    let mut argv = vec!["-h", "127.0.0.1", "-p", &p];
    argv.extend_from_slice(args);
    stdout(&cmd("redis-cli", &argv)).trim().to_string()
}

pub fn serves_the_snapshots_keys() {
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    make_dir(&live.join("var/lib/redis"), "redis:redis", 0o750);
    make_dir(&live.join("var/log/redis"), "redis:adm", 0o2750);
    // A whole root has the service's config too: the same as the host's here.
    make_dir(&live.join("etc"), "root:root", 0o755);
    cmd_ok("cp", &["-a", "/etc/redis", path_str(&live.join("etc"))]);
    let scratch = tempfile::Builder::new()
        .prefix(&format!("{}-redis-", unique("wbt")))
        .tempdir()
        .unwrap();

    let mut server = live_redis(&pool, &live, scratch.path());
    assert_eq!(
        live_cli(&server, &["SET", "wbt:key", "before the snapshot"]),
        "OK"
    );
    assert_eq!(
        live_cli(&server, &["SET", "wbt:gone", "deleted live since"]),
        "OK"
    );
    assert_eq!(live_cli(&server, &["SAVE"]), "OK");
    assert!(
        live.join("var/lib/redis/dump.rdb").is_file(),
        "SAVE wrote no dump.rdb into the live root's /var/lib/redis\n{}",
        server.output()
    );
    let snap = pool.snapshot_ro("live", "snaps/1");
    let snap_s = path_str(&snap).to_string();
    let snap_before = tree_manifest(&snap);
    assert_eq!(live_cli(&server, &["SET", "wbt:key", "changed live"]), "OK");
    assert_eq!(live_cli(&server, &["DEL", "wbt:gone"]), "1");
    assert_eq!(live_cli(&server, &["SAVE"]), "OK");

    let wb = Wayback::new();
    let port = free_port();
    let publish = format!("{port}:6379");
    let args = ["--unit", "redis-server", "--publish", publish.as_str()];

    // The plan: the inferred bind and why, nothing else to know.
    let mut dry = vec![snap_s.as_str()];
    dry.extend_from_slice(&args);
    let (plan, notes) = dry_run(&wb, &pool, &dry);
    let dir_line = line_of(REDIS_CONF, "dir /var/lib/redis");
    let port_line = line_of(REDIS_CONF, "port 6379");
    for part in [
        "instance redis-server-1 (profile redis-server, ".to_string(),
        format!(
            "    bind     /var/lib/redis -> /var/lib/redis (rw, from the clone)\n             why: \
             ReadWritePaths=-/var/lib/redis of redis-server.service; dir /var/lib/redis in {REDIS_CONF}:{dir_line}\n"
        ),
        "    config   /etc/redis the same as the host's (ReadWriteDirectories=-/etc/redis of \
         redis-server.service (the service writes there))\n"
            .to_string(),
        format!(
            "    config   {REDIS_CONF} the same as the host's (named on ExecStart= of redis-server.service)\n"
        ),
        "  ready      tcp port 6379 answers\n".to_string(),
        format!("  publish    127.0.0.1:{port} -> port 6379\n"),
    ] {
        assert_has(&plan, &part, "the dry run");
    }
    assert!(
        !plan.contains("bind     /var/log/redis -> /var/log/redis (rw, from the clone)"),
        "logs are never bound from the snapshot:\n{plan}"
    );
    assert_has(
        &notes,
        &format!(
            "Type=notify: no sd_notify socket in the instance: readiness is TCP port 6379 accepting a \
             connection (port 6379 in {REDIS_CONF}:{port_line})"
        ),
        "the dry run's notes",
    );

    // The instance serves the snapshot's keys while the live server has today's.
    let name = unique("wbtredis");
    let mut up_args = vec![snap_s.as_str(), "--name", name.as_str()];
    up_args.extend_from_slice(&args);
    let mut up = wb.up_background(&up_args);
    eprintln!("redis-server: ready after {:?}", up.ready_after);
    assert_eq!(
        up.ready["publish"],
        serde_json::json!([format!("127.0.0.1:{port}->6379")]),
        "{}",
        up.ready
    );
    assert_eq!(
        instance_cli(port, &["GET", "wbt:key"]),
        "before the snapshot",
        "{}",
        up.describe()
    );
    assert_eq!(
        instance_cli(port, &["GET", "wbt:gone"]),
        "deleted live since"
    );
    assert_eq!(live_cli(&server, &["GET", "wbt:key"]), "changed live");
    assert_eq!(live_cli(&server, &["EXISTS", "wbt:gone"]), "0");
    // Redis's own log goes to the instance's directory, and `wayback logs` shows it.
    let logs = wb.run_ok(&["logs", &name]);
    assert_has(
        &logs,
        "==> /var/log/redis/redis-server.log <==",
        "wayback logs",
    );
    assert_has(&logs, "Done loading RDB, keys loaded: 2,", "wayback logs");
    assert_has(&logs, "Ready to accept connections", "wayback logs");

    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    server.stop();
    let left = server.leftovers();
    assert!(left.is_empty(), "the live server left: {left:#?}");
    let diff = manifest_diff(&snap_before, &tree_manifest(&snap));
    assert!(
        diff.is_empty(),
        "the snapshot changed:\n{}",
        diff.join("\n")
    );
    drop(wb);
    assert_pool_gone(pool);
}

/// `--unit redis-server` on a root snapshot holding other apps' state, none of Redis's.
pub fn refused_without_its_state() {
    // A root snapshot with other apps' state, none of Redis's.
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    make_dir(&live.join("var/lib/mosquitto"), "mosquitto:root", 0o755);
    make_dir(&live.join("srv/wiki"), "root:root", 0o755);
    let snap = pool.snapshot_ro("live", "snaps/1");
    let snap_s = path_str(&snap).to_string();
    let wb = Wayback::new();
    let name = unique("wbtempty");
    let port = free_port().to_string() + ":6379";
    let base = [
        snap_s.as_str(),
        "--name",
        name.as_str(),
        "--unit",
        "redis-server",
        "--publish",
        port.as_str(),
    ];

    let dir_line = line_of(REDIS_CONF, "dir /var/lib/redis");
    let out = wb.run(&[&["up"][..], &base].concat());
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "wayback: error: nothing of the snapshot {snap_s} would be bound; candidates looked for: /var/lib/redis \
         (ReadWritePaths=-/var/lib/redis of redis-server.service; dir /var/lib/redis in {REDIS_CONF}:{dir_line}); \
         the snapshot has /var/lib/mosquitto, /srv/wiki; give --bind PATH for the service's state, or \
         --allow-empty to run it on empty state\n"
    );
    assert!(
        err.ends_with(&expected),
        "expected the refusal\n  {expected}\n{}",
        show(&out)
    );
    assert!(out.stdout.is_empty(), "{}", show(&out));
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    assert!(
        fs::read_dir(wb.state_dir().join("instances")).map_or(true, |mut d| d.next().is_none()),
        "the refused `up` registered an instance"
    );

    // --allow-empty runs it anyway, and the plan says what is missing; an explicit --bind counts.
    let (plan, _) = dry_run(&wb, &pool, &[&base[..], &["--allow-empty"]].concat());
    assert_has(
        &plan,
        &format!(
            "    not in the snapshot: /var/lib/redis (ReadWritePaths=-/var/lib/redis of redis-server.service; \
             dir /var/lib/redis in {REDIS_CONF}:{dir_line})\n"
        ),
        "the dry run with --allow-empty",
    );
    let (plan, _) = dry_run(&wb, &pool, &[&base[..], &["--bind", "/srv/wiki"]].concat());
    assert_has(
        &plan,
        "    bind     /srv/wiki -> /srv/wiki (rw, from the clone)\n",
        "the dry run with --bind",
    );
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    drop(wb);
    assert_pool_gone(pool);
}
