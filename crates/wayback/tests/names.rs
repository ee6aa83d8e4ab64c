//! Instance names cannot escape wayback's directories. `down`, `extend`, `status`, `logs` and the daemon's
//! socket protocol refuse path-like names ('', '.', '..', '../x', 'a/b', '../../canary', 300 bytes) as
//! bad input (exit 2 / a bad-input error reply) before any file is touched: canary trees next to and inside
//! the state dir hash the same before and after, and a running instance still answers and is still
//! `running`. Stray entries in the instances directory (a directory with an invalid name, a symlink named
//! like an instance pointing outside, a directory without wayback's marker) are never touched by `ls`,
//! `gc`, `down --all`, `down NAME` or a daemon start. A `down` whose journal names another instance's route
//! file leaves that file in place and says so.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wayback_testsupport::*;

const SERVER: &str = "exec python3 -m http.server 8000 --bind 127.0.0.1 --directory /srv/www";

fn bad_names() -> Vec<String> {
    let mut v: Vec<String> = ["", ".", "..", "../x", "a/b", "../../canary"]
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    v.push("a".repeat(300));
    v
}

/// A snapshot with a static site, a wayback config, one running instance serving it, and two canary trees:
/// `<tmp>/canary` (next to the state dir) and `<state>/x` (inside the instances dir's parent, where `../x`
/// would point).
struct Fixture {
    up: Option<UpHandle>,
    name: String,
    wb: Wayback,
    pool: BtrfsPool,
    canaries: Vec<PathBuf>,
}

impl Fixture {
    fn new() -> Fixture {
        let pool = BtrfsPool::new();
        let live = pool.subvolume_create("live");
        fs::create_dir_all(live.join("srv/www")).unwrap();
        fs::write(live.join("srv/www/index.html"), "still here\n").unwrap();
        pool.snapshot_ro("live", "snaps/s1");
        let wb = Wayback::new();
        let name = unique("wbtnm");
        let mut f = Fixture {
            up: None,
            name,
            wb,
            pool,
            canaries: Vec::new(),
        };
        f.make_canaries();
        f
    }

    fn up_args(&self) -> Vec<String> {
        [
            self.pool.path("snaps/s1").to_str().unwrap(),
            "--name",
            &self.name,
            "--bind",
            "/srv",
            "--exec",
            SERVER,
            "--port",
            "8000",
        ]
        .iter()
        .map(std::string::ToString::to_string)
        .collect()
    }

    /// The instance in a foreground `up`.
    fn start(&mut self) {
        let args = self.up_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.up = Some(self.wb.up_background(&args));
    }

    /// The instance handed to the daemon.
    fn start_detached(&mut self) {
        let mut args = vec!["up".to_string()];
        args.extend(self.up_args());
        args.push("--detach".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.wb.run_ok(&args);
    }

    fn make_canaries(&mut self) {
        let next_to = self.wb.tmp().join("canary");
        let inside = self.wb.state_dir().join("x");
        for c in [&next_to, &inside] {
            fs::create_dir_all(c.join("sub")).unwrap();
            fs::write(c.join("file"), "canary\n").unwrap();
            fs::write(c.join("sub/deeper"), "canary 2\n").unwrap();
            std::os::unix::fs::symlink("../file", c.join("sub/link")).unwrap();
        }
        self.canaries = vec![next_to, inside];
    }

    fn checksums(&self) -> Vec<String> {
        let mut sums: Vec<String> = self.canaries.iter().map(|c| tree_checksum(c)).collect();
        // Nothing appears or disappears in the instances directory either.
        sums.push(format!(
            "{:?}",
            entries(&self.wb.state_dir().join("instances"))
        ));
        sums
    }

    /// The instance still answers through the proxy and `status` says it runs.
    #[track_caller]
    fn assert_running(&self) {
        let host = format!("{}.wbt.test", self.name);
        let (code, body) =
            HttpGet::get_retry(self.wb.proxy_addr(), &host, "/", Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("GET {host}: {e}"));
        assert_eq!((code, body.as_str()), (200, "still here\n"));
        let s: serde_json::Value =
            serde_json::from_str(&self.wb.run_ok(&["status", &self.name, "--json"])).unwrap();
        assert_eq!(s["state"], "running", "{s}");
    }

    /// `wayback <args>` with each bad name in place of NAME: exit 2, the name rule in the message, and
    /// nothing touched.
    #[track_caller]
    fn refuse_each(&self, args: &[&str]) {
        let before = self.checksums();
        for bad in bad_names() {
            let full: Vec<&str> = args
                .iter()
                .map(|a| if *a == "NAME" { bad.as_str() } else { a })
                .collect();
            let out = self.wb.run(&full);
            assert_eq!(
                out.status.code(),
                Some(2),
                "`wayback {full:?}` must be bad input\n{}",
                show(&out)
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("invalid instance name") && err.contains("1-32 characters"),
                "`wayback {full:?}` does not say what a name is\n{}",
                show(&out)
            );
            assert_eq!(
                self.checksums(),
                before,
                "`wayback {full:?}` touched a file"
            );
        }
        self.assert_running();
    }

    fn finish(mut self) {
        if let Some(up) = self.up.as_mut() {
            assert!(
                up.terminate(Duration::from_secs(60))
                    .is_some_and(|s| s.success()),
                "{}",
                up.describe()
            );
        }
        self.up = None;
        Residue::new(&self.name)
            .pool(&self.pool)
            .wayback(&self.wb)
            .assert_none();
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn down_refuses_path_like_names() {
    if !require_root("down_refuses_path_like_names") {
        return;
    }
    let mut f = Fixture::new();
    f.start();
    f.refuse_each(&["down", "NAME"]);
    // Also next to a valid name: nothing is stopped when one name is bad.
    let name = f.name.clone();
    f.refuse_each(&["down", &name, "NAME"]);
    f.finish();
}

#[test]
fn extend_refuses_path_like_names() {
    if !require_root("extend_refuses_path_like_names") {
        return;
    }
    let mut f = Fixture::new();
    f.start();
    f.refuse_each(&["extend", "NAME", "1h"]);
    f.finish();
}

#[test]
fn status_refuses_path_like_names() {
    if !require_root("status_refuses_path_like_names") {
        return;
    }
    let mut f = Fixture::new();
    f.start();
    f.refuse_each(&["status", "NAME"]);
    f.refuse_each(&["status", "NAME", "--json"]);
    f.finish();
}

#[test]
fn logs_refuses_path_like_names() {
    if !require_root("logs_refuses_path_like_names") {
        return;
    }
    let mut f = Fixture::new();
    f.start();
    f.refuse_each(&["logs", "NAME"]);
    f.refuse_each(&["logs", "-f", "NAME"]);
    f.finish();
}

/// One request line to the daemon's socket; its final reply.
fn ask_daemon(wb: &Wayback, request: &serde_json::Value) -> serde_json::Value {
    let sock = wb.runtime_dir().join("wayback.sock");
    let mut s = UnixStream::connect(&sock).unwrap_or_else(|e| panic!("{}: {e}", sock.display()));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    writeln!(s, "{request}").unwrap();
    let mut last = String::new();
    for line in BufReader::new(s).lines() {
        let line = line.unwrap_or_else(|e| panic!("reading the reply to {request}: {e}"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["reply"] != "progress" {
            return v;
        }
        last = line;
    }
    panic!("the daemon closed the connection without a final reply to {request} (last: {last})");
}

#[test]
fn daemon_socket_refuses_path_like_names() {
    if !require_root("daemon_socket_refuses_path_like_names") {
        return;
    }
    let mut f = Fixture::new();
    let mut daemon = start_daemon(&f.wb, None);
    f.start_detached();
    f.assert_running();
    let before = f.checksums();
    for bad in bad_names() {
        let req = serde_json::json!({"op": "down", "name": bad});
        let reply = ask_daemon(&f.wb, &req);
        assert_eq!(reply["reply"], "error", "{req} -> {reply}");
        assert_eq!(reply["bad_input"], true, "{req} -> {reply}");
        assert!(
            reply["message"]
                .as_str()
                .is_some_and(|m| m.contains("invalid instance name")),
            "{req} -> {reply}"
        );
        assert_eq!(f.checksums(), before, "{req} touched a file");
    }
    // The daemon still answers, and still hosts the instance.
    assert_eq!(
        ask_daemon(&f.wb, &serde_json::json!({"op": "ping"}))["reply"],
        "pong"
    );
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon exited on a bad request"
    );
    f.assert_running();
    f.wb.run_ok(&["down", &f.name]);
    drop(daemon);
    f.finish();
}

#[test]
fn stray_entries_in_the_state_dir_are_never_touched() {
    if !require_root("stray_entries_in_the_state_dir_are_never_touched") {
        return;
    }
    let wb = Wayback::new();
    let instances = wb.state_dir().join("instances");
    fs::create_dir_all(&instances).unwrap();
    let runtime_routes = wb.runtime_dir().join("routes");
    fs::create_dir_all(&runtime_routes).unwrap();

    // Outside: a directory that looks like an instance (marker, journal naming a file of its own and a route
    // file), reached through a symlink in the instances directory that is named like an instance.
    let outside = wb.tmp().join("outside");
    fs::create_dir_all(outside.join("data")).unwrap();
    fs::write(outside.join("data/precious"), "do not remove\n").unwrap();
    let linked = unique("wbtlink");
    fs::write(outside.join(".wayback-instance"), format!("{linked}\n")).unwrap();
    let victim_route = runtime_routes.join(format!("{linked}.wbt.test.json"));
    fs::write(
        &victim_route,
        format!(
            r#"{{"host":"{linked}.wbt.test","instance":"{linked}","netns_path":"/run/netns/wb-{linked}","port":80}}"#
        ),
    )
    .unwrap();
    fs::write(
        outside.join("journal.jsonl"),
        format!(
            "{}\n",
            serde_json::json!({"seq": 0, "resource": {"kind": "route", "file": victim_route, "host": format!("{linked}.wbt.test")}})
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, instances.join(&linked)).unwrap();
    // Inside: a directory with an invalid name, and one with a valid name but no marker, each with content.
    for stray in ["Not_An-Instance", "unmarked"] {
        fs::create_dir_all(instances.join(stray).join("sub")).unwrap();
        fs::write(instances.join(stray).join("sub/f"), "stray\n").unwrap();
        fs::write(instances.join(stray).join("journal.jsonl"), "").unwrap();
    }

    let snapshot = || {
        (
            tree_manifest(&outside),
            tree_manifest(&instances),
            tree_manifest(&runtime_routes),
        )
    };
    let before = snapshot();
    let check = |what: &str| {
        let after = snapshot();
        assert!(
            after == before,
            "{what} touched a stray entry:\n{:?}\n{:?}\n{:?}",
            manifest_diff(&before.0, &after.0),
            manifest_diff(&before.1, &after.1),
            manifest_diff(&before.2, &after.2)
        );
    };

    let out = wb.run(&["ls"]);
    assert!(out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for stray in ["Not_An-Instance", "unmarked", linked.as_str()] {
        assert!(
            err.contains(stray) && err.contains("never removes it"),
            "ls does not report {stray}\n{}",
            show(&out)
        );
    }
    let ls: serde_json::Value = serde_json::from_str(&wb.run_ok(&["ls", "--json"])).unwrap();
    assert_eq!(ls, serde_json::json!([]), "strays are not instances");
    check("ls");

    for args in [&["gc"][..], &["gc", "--json"], &["down", "--all"]] {
        let out = wb.run(args);
        assert!(out.status.success(), "{}", show(&out));
        check(&args.join(" "));
    }
    for name in [linked.as_str(), "unmarked"] {
        let out = wb.run(&["down", name]);
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("leaves it alone"),
            "{}",
            show(&out)
        );
        check(&format!("down {name}"));
    }
    let out = wb.run(&["down", "Not_An-Instance"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    check("down Not_An-Instance");

    // A daemon start (recovery reads every instance directory).
    let daemon = start_daemon(&wb, None);
    let log = wb.tmp().join("serve.err");
    wait_for(Duration::from_secs(30), || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("daemon ready")
            .then_some(())
    })
    .expect("daemon ready");
    drop(daemon);
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains(&linked) && text.contains("never removes it"),
        "{text}"
    );
    check("a daemon start");
    assert!(outside.join("data/precious").exists());
    // The Wayback runner's cleanup must not follow the symlink either: remove it ourselves.
    fs::remove_file(instances.join(&linked)).unwrap();
}

#[test]
fn down_leaves_another_instances_route_file() {
    if !require_root("down_leaves_another_instances_route_file") {
        return;
    }
    let mut a = Fixture::new();
    a.start();
    let wb = a.wb.clone();
    let b_name = unique("wbtnm");
    let mut b = wb.up_background(&[
        a.pool.path("snaps/s1").to_str().unwrap(),
        "--name",
        &b_name,
        "--bind",
        "/srv",
        "--exec",
        SERVER,
        "--port",
        "8000",
    ]);
    // B's journal is made to name A's route file (a corrupted or crafted journal).
    let a_route = wb
        .runtime_dir()
        .join(format!("routes/{}.wbt.test.json", a.name));
    assert!(a_route.exists(), "{}", a_route.display());
    let a_route_before = fs::read(&a_route).unwrap();
    let journal = wb
        .state_dir()
        .join("instances")
        .join(&b_name)
        .join("journal.jsonl");
    let mut j = fs::OpenOptions::new().append(true).open(&journal).unwrap();
    writeln!(
        j,
        "{}",
        serde_json::json!({"seq": 1000, "resource": {"kind": "route", "file": a_route, "host": format!("{}.wbt.test", a.name)}})
    )
    .unwrap();
    drop(j);

    wb.run_ok(&["down", &b_name]);
    assert!(
        b.wait_exit(Duration::from_secs(30)).is_some(),
        "{}",
        b.describe()
    );
    let said = b.stderr();
    assert!(
        said.contains(&format!("left route file {}", a_route.display()))
            && said.contains(&format!("belongs to instance \"{}\"", a.name)),
        "B's teardown does not report the route file it left\n{said}"
    );
    assert_eq!(
        fs::read(&a_route).unwrap(),
        a_route_before,
        "A's route file"
    );
    a.assert_running();
    // The pool holds A's clone until A goes: B's clone is checked by its path here, the pool after A.
    Residue::new(&b_name).wayback(&wb).assert_none();
    assert!(!a.pool.clone_path(&b_name).exists());
    drop(b);
    a.finish();
}
