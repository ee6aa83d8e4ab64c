//! Self-tests of the integration-test fixtures (tests/support): they must be right before they can judge
//! wayback. Pure parts run everywhere; the pool, residue and live-PostgreSQL parts need root.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use wayback_testsupport::*;

#[test]
fn unique_names_are_distinct_valid_instance_names() {
    let names: BTreeSet<String> = (0..50).map(|_| unique("wbtpg")).collect();
    assert_eq!(names.len(), 50);
    for n in &names {
        assert!(wayback_core::InstanceName::new(n).is_ok(), "{n}");
        assert!(n.len() <= 32, "{n}");
    }
}

#[test]
fn mentions_matches_whole_names_only() {
    assert!(mentions("/run/netns/wb-wbt1x1", "wb-wbt1x1"));
    assert!(mentions("iifname \"wb-wbt1x1\" accept", "wbt1x1"));
    assert!(mentions("wb-wbt1x1-peer", "wbt1x1"));
    assert!(!mentions("/run/netns/wb-wbt1x10", "wb-wbt1x1"));
    assert!(!mentions("xwbt1x1", "wbt1x1"));
    assert!(mentions("a wbt1x10 b wbt1x1", "wbt1x1"));
}

#[test]
fn nft_parser_finds_instance_rules_in_wayback_table_only() {
    let ruleset = "\
table inet filter {
\tchain input {
\t\tiifname \"wb-wbt9x1\" drop
\t}
}
table inet wayback {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tiifname \"wb-wbt9x1\" ct state established,related accept
\t\tiifname \"wb-wbt9x10\" drop
\t}
\tchain inst-wbt9x1 {
\t}
}
";
    let left = nft_leftovers(ruleset, "wbt9x1", &["wb-wbt9x1".to_string()]);
    assert_eq!(left.len(), 2, "{left:#?}");
    assert!(left[0].contains("established"), "{left:#?}");
    assert!(left[1].contains("chain inst-wbt9x1"), "{left:#?}");
    assert!(nft_leftovers(ruleset, "wbt9x2", &["wb-wbt9x2".to_string()]).is_empty());
}

#[test]
fn tree_checksum_sees_content_mode_owner_and_links() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("t");
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::write(root.join("a/b/f"), b"hello").unwrap();
    fs::write(root.join("g"), b"x").unwrap();
    symlink("a/b/f", root.join("l")).unwrap();
    let m0 = tree_manifest(&root);
    let c0 = tree_checksum(&root);
    assert_eq!(c0, tree_checksum(&root), "deterministic");
    assert_eq!(m0.len(), 6, "{m0:#?}");

    fs::write(root.join("a/b/f"), b"hellO").unwrap(); // same size, other content
    let c1 = tree_checksum(&root);
    assert_ne!(c0, c1);
    let diff = manifest_diff(&m0, &tree_manifest(&root));
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert!(diff[0].contains("a/b/f"), "{diff:?}");

    fs::set_permissions(root.join("g"), fs::Permissions::from_mode(0o600)).unwrap();
    let c2 = tree_checksum(&root);
    assert_ne!(c1, c2);

    fs::remove_file(root.join("l")).unwrap();
    symlink("g", root.join("l")).unwrap();
    let c3 = tree_checksum(&root);
    assert_ne!(c2, c3);

    fs::create_dir(root.join("empty")).unwrap();
    assert_ne!(c3, tree_checksum(&root));
}

fn serve_once(response: &'static [u8]) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        let req = String::from_utf8_lossy(&req).into_owned();
        assert!(req.starts_with("GET /p HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("\r\nHost: h.wbt.test\r\n"), "{req}");
        s.write_all(response).unwrap();
    });
    addr
}

#[test]
fn http_get_parses_length_chunked_and_close_delimited_bodies() {
    let a = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(
        HttpGet::get(a, "h.wbt.test", "/p").unwrap(),
        (200, "hello".into())
    );

    let a = serve_once(
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nnot \r\n5\r\nfound\r\n0\r\nT: 1\r\n\r\n",
    );
    assert_eq!(
        HttpGet::get(a, "h.wbt.test", "/p").unwrap(),
        (404, "not found".into())
    );

    let a = serve_once(b"HTTP/1.0 502 Bad Gateway\r\nServer: x\r\n\r\nbye");
    assert_eq!(
        HttpGet::get(a, "h.wbt.test", "/p").unwrap(),
        (502, "bye".into())
    );

    let port = free_port();
    let dead = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(HttpGet::get(dead, "h", "/").is_err());
}

#[test]
fn wayback_runner_writes_a_config_the_library_accepts() {
    let wb = Wayback::new();
    let text = fs::read_to_string(wb.config_path()).unwrap();
    let cfg = wayback_core::Config::parse(&text, wb.config_path())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(cfg.state_dir, wb.state_dir());
    assert_eq!(cfg.runtime_dir, wb.runtime_dir());
    assert_eq!(cfg.proxy.listen, wb.proxy_addr());
    assert_eq!(cfg.address_pool.to_string(), wb.address_pool());
    assert_eq!(cfg.address_pool.prefix_len(), 24);
    let other = Wayback::new();
    assert_ne!(other.address_pool(), wb.address_pool());
}

#[test]
fn pool_snapshots_are_readonly_and_pool_cleans_up() {
    if !require_root("pool_snapshots_are_readonly_and_pool_cleans_up") {
        return;
    }
    let pool = BtrfsPool::new();
    let id = pool.id.clone();
    let image = pool.image.clone();
    let mount = pool.mount().to_path_buf();
    assert!(image.file_name().unwrap().to_string_lossy().contains("wbt"));
    assert_eq!(
        loop_devices_with(&id).len(),
        1,
        "{:?}",
        loop_devices_with(&id)
    );

    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("var/www/html")).unwrap();
    fs::write(live.join("var/www/html/index.html"), "hi\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    assert!(is_readonly_subvolume(&snap));
    assert!(!is_readonly_subvolume(&live));
    assert!(is_subvolume(&snap));
    assert!(!is_subvolume(&live.join("var")));
    assert!(
        !is_readonly_subvolume(&live.join("var")),
        "a plain directory is not a read-only subvolume"
    );
    let before = tree_checksum(&snap);
    assert_eq!(
        before,
        tree_checksum(&live),
        "snapshot equals its source at first"
    );
    fs::write(live.join("var/www/html/index.html"), "changed\n").unwrap();
    assert_eq!(before, tree_checksum(&snap));
    assert_ne!(before, tree_checksum(&live));
    let mut subs = pool.subvolumes();
    subs.sort();
    assert_eq!(subs, vec!["live".to_string(), "snaps/s1".to_string()]);
    assert_eq!(
        pool.own_subvolumes(),
        vec!["live".to_string(), "snaps/s1".to_string()]
    );

    drop(pool);
    assert!(
        loop_devices_with(&id).is_empty(),
        "{:?}",
        loop_devices_with(&id)
    );
    assert!(!image.exists());
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mi.contains(mount.to_str().unwrap()), "pool still mounted");
}

#[test]
fn residue_checker_finds_each_kind_of_leftover() {
    if !require_root("residue_checker_finds_each_kind_of_leftover") {
        return;
    }
    let pool = BtrfsPool::new();
    pool.subvolume_create("live");
    pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::new();
    // A long name, so the veth name is shortened.
    let name = unique("wbtresiduecheck");
    let residue = Residue::new(&name).pool(&pool).wayback(&wb);
    residue.assert_none();
    let netns = residue.netns();
    let host_if = wayback_core::InstanceName::new(&name).unwrap().host_if();
    assert!(host_if.len() <= 15);

    // Make one of each; the guard removes them (our own objects and our own child only) even on panic.
    struct Fakes {
        netns: String,
        host_if: String,
        child: Option<std::process::Child>,
        clone: std::path::PathBuf,
    }
    impl Drop for Fakes {
        fn drop(&mut self) {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            if self.clone.exists() {
                cmd(
                    "btrfs",
                    &["subvolume", "delete", self.clone.to_str().unwrap()],
                );
            }
            cmd("ip", &["link", "del", &self.host_if]);
            cmd("ip", &["netns", "del", &self.netns]);
        }
    }
    let clone = pool.clone_path(&name);
    let mut fakes = Fakes {
        netns: netns.clone(),
        host_if: host_if.clone(),
        child: None,
        clone: clone.clone(),
    };
    cmd_ok("ip", &["netns", "add", &netns]);
    let peer = unique("wbtp");
    cmd_ok(
        "ip",
        &[
            "link", "add", &host_if, "type", "veth", "peer", "name", &peer,
        ],
    );
    fakes.child = Some(
        Command::new("bash")
            .args(["-c", "read -t 60 x", &format!("--machine={netns}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    fs::create_dir_all(pool.path(".wayback")).unwrap();
    cmd_ok(
        "btrfs",
        &[
            "subvolume",
            "snapshot",
            pool.path("snaps/s1").to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let inst = wb.state_dir().join("instances").join(&name);
    fs::create_dir_all(&inst).unwrap();
    fs::write(inst.join("journal.json"), "{}").unwrap();
    let routes = wb.runtime_dir().join("routes");
    fs::create_dir_all(&routes).unwrap();
    fs::write(
        routes.join("h.wbt.test.json"),
        format!("{{\"instance\":\"{name}\"}}"),
    )
    .unwrap();

    let left = residue.leftovers();
    let has = |what: &str| left.iter().any(|l| l.starts_with(what));
    let report = left.join("\n");
    for what in [
        "mount: ",
        "netns file: ",
        "netns: ",
        "link: ",
        "process ",
        "clone path exists",
        "subvolume: .wayback/",
        "state/runtime file",
        "runtime file (route?)",
    ] {
        assert!(has(what), "missing {what:?} in:\n{report}");
    }
    // Another instance's name that merely starts with ours is not ours.
    let other = Residue::new(&format!("{name}9"))
        .pool(&pool)
        .wayback(&wb)
        .leftovers();
    assert!(
        other
            .iter()
            .all(|l| !l.starts_with("process") && !l.starts_with("netns")),
        "{other:#?}"
    );

    drop(fakes);
    fs::remove_dir_all(&inst).unwrap();
    fs::remove_file(routes.join("h.wbt.test.json")).unwrap();
    residue.assert_none();
}

#[test]
fn live_postgres_runs_in_its_own_netns() {
    if !require_root("live_postgres_runs_in_its_own_netns") {
        return;
    }
    let pool = BtrfsPool::new();
    pool.subvolume_create("live");
    let live = LivePostgres::start(&pool, "live");
    let netns = live.netns.clone();
    assert!(Path::new("/run/netns").join(&netns).exists());
    live.psql(
        "CREATE TABLE t (id int primary key, v text); INSERT INTO t VALUES (1, 'one'), (2, 'two');",
    );
    assert_eq!(live.psql("SELECT id, v FROM t ORDER BY id"), "1|one\n2|two");
    let data = live.data_dir.clone();
    assert!(data.join("PG_VERSION").exists());
    assert!(data.starts_with(pool.path("live/var/lib/postgresql")));
    let conf = fs::read_to_string(data.join("postgresql.conf")).unwrap();
    assert!(
        !conf.contains(pool.dir().to_str().unwrap()),
        "config must not name host-only paths"
    );
    assert!(data.join("postmaster.pid").exists());

    // A snapshot taken now carries the live cluster.
    let snap = pool.snapshot_ro("live", "snaps/s1");
    assert!(snap
        .join(data.strip_prefix(pool.path("live")).unwrap())
        .join("PG_VERSION")
        .exists());

    drop(live);
    assert!(
        !data.join("postmaster.pid").exists(),
        "server still running"
    );
    assert!(!Path::new("/run/netns").join(&netns).exists());
    // Give the pool a moment: nothing may hold it any more.
    thread::sleep(Duration::from_millis(100));
}
