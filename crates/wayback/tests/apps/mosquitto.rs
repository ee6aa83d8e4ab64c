//! Mosquitto (Debian's mosquitto.service) with a password file in /etc/mosquitto: the old retained message
//! and, through configuration drift and `--bind-config`, the old password. Runs in a private mount namespace
//! (the test re-executes itself there) so that /etc/mosquitto can be the live root's without editing the
//! host's /etc.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::live::*;
use crate::*;
use wayback_testsupport::*;

pub const MOSQUITTO_TEST: &str = "mosquitto_serves_the_old_retained_message_and_password";
pub const INNER_ENV: &str = "WBT_APPS_MOSQUITTO_INNER";
const MARK_INSTANCE: &str = "WBTAPPS-INSTANCE ";
const MARK_POOL: &str = "WBTAPPS-POOL ";
const MARK_NS: &str = "WBTAPPS-LIVE-NS ";
const MARK_DONE: &str = "WBTAPPS-INNER-DONE";

const CONF: &str = "/etc/mosquitto/mosquitto.conf";
const USER: &str = "wbtuser";
const OLD_PASS: &str = "old-pass-before-the-snapshot";
const NEW_PASS: &str = "new-pass-changed-live";
const TOPIC: &str = "wbt/state";
const OLD_MSG: &str = "retained before the snapshot";
const NEW_MSG: &str = "retained after the snapshot";
const LOCAL_CONF: &str =
    "listener 1883\npassword_file /etc/mosquitto/passwd\nallow_anonymous false\n";
const REFUSED: &str = "Connection error: Connection Refused: not authorised.";

/// In the host's mount namespace: run the inner run in a private one, then check the host.
pub fn outer() {
    let etc_before = tree_manifest(Path::new("/etc/mosquitto"));
    let exe = std::env::current_exe().expect("the test binary");
    let my_ns = ns_of(std::process::id(), "mnt").unwrap();
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "--"])
        .arg(&exe)
        .args([MOSQUITTO_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER_ENV, &my_ns);
    let result = output_timeout(&mut c, Duration::from_secs(600));
    let (ok, text) = match &result {
        Ok(out) => (
            out.status.success(),
            format!("{}\n{}", stdout(out), String::from_utf8_lossy(&out.stderr)),
        ),
        Err(e) => (false, e.clone()),
    };
    eprintln!("--- inner run (private mount namespace) ---\n{text}\n--- end of inner run ---");
    let marked = |mark: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(mark).map(|s| s.trim().to_string()))
            .collect()
    };
    let mut left = Vec::new();
    for name in marked(MARK_INSTANCE) {
        left.extend(Residue::new(&name).leftovers());
    }
    for id in marked(MARK_POOL) {
        left.extend(
            loop_devices_with(&id)
                .into_iter()
                .map(|l| format!("loop device: {l}")),
        );
    }
    for ns in marked(MARK_NS) {
        let kind = ns.split(':').next().unwrap_or("mnt").to_string();
        left.extend(ns_holders(&kind, &ns));
    }
    let etc_after = tree_manifest(Path::new("/etc/mosquitto"));
    let diff = manifest_diff(&etc_before, &etc_after);
    if !diff.is_empty() {
        left.push(format!("the host's /etc/mosquitto changed: {diff:?}"));
    }
    assert!(ok, "the inner run failed (its output is above)");
    assert!(
        text.contains(MARK_DONE),
        "the inner run did not run the scenario to its end (its output is above)"
    );
    assert!(
        !marked(MARK_NS).is_empty() && !marked(MARK_INSTANCE).is_empty(),
        "the inner run named no instance or live namespace"
    );
    assert!(
        left.is_empty(),
        "left behind on the host:\n  {}",
        left.join("\n  ")
    );
}

/// Refuse unless this process has a private mount namespace of its own (not the outer run's).
fn assert_private_mount_namespace() {
    let mine = ns_of(std::process::id(), "mnt").unwrap();
    let outer = std::env::var(INNER_ENV).unwrap_or_default();
    assert!(
        outer.starts_with("mnt:") && outer != mine,
        "{INNER_ENV}={outer:?} and this process is in {mine}: not a private mount namespace; refusing to \
         mount over /etc/mosquitto"
    );
    if let Some(init) = ns_of(1, "mnt") {
        assert_ne!(
            mine, init,
            "this process shares PID 1's mount namespace; refusing"
        );
    }
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let shared: Vec<&str> = mi.lines().filter(|l| l.contains(" shared:")).collect();
    assert!(
        shared.is_empty(),
        "mounts in this namespace would propagate to others; refusing:\n{}",
        shared.join("\n")
    );
}

/// The live root's etc/mosquitto bound over /etc/mosquitto (in the private namespace only).
struct EtcBind(PathBuf);

impl Drop for EtcBind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// `mosquitto_sub` for the retained message on `port` of 127.0.0.1: stdout and stderr.
fn subscribe(prefix: &[&str], port: u16, pass: &str) -> (String, String) {
    let p = port.to_string();
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.extend([
        "mosquitto_sub",
        "-h",
        "127.0.0.1",
        "-p",
        &p,
        "-u",
        USER,
        "-P",
        pass,
        "-t",
        TOPIC,
        "-C",
        "1",
        "-W",
        "10",
    ]);
    let out = output_timeout(
        Command::new(argv[0]).args(&argv[1..]),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (
        stdout(&out).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

fn in_live(live: &LiveServer) -> Vec<String> {
    vec![
        "nsenter".into(),
        "--target".into(),
        live.pid().to_string(),
        "--net".into(),
        "--".into(),
    ]
}

fn publish_live(live: &LiveServer, msg: &str, pass: &str) -> Output {
    live.client(&[
        "mosquitto_pub",
        "-h",
        "127.0.0.1",
        "-p",
        "1883",
        "-u",
        USER,
        "-P",
        pass,
        "-t",
        TOPIC,
        "-m",
        msg,
        "-r",
        "-q",
        "1",
    ])
}

pub fn inner() {
    assert_private_mount_namespace();
    cmd_ok(
        "sh",
        &[
            "-c",
            RELEASE_FOREIGN_MOUNTS,
            "release",
            path_str(&std::env::temp_dir()),
            "",
        ],
    );
    let pool = BtrfsPool::new();
    println!("{MARK_POOL}{}", pool.id);
    let live = pool.subvolume_create("live");
    let etc = live.join("etc/mosquitto");
    make_dir(&etc.join("conf.d"), "root:root", 0o755);
    cmd_ok("cp", &["-p", CONF, path_str(&etc)]);
    fs::write(etc.join("conf.d/local.conf"), LOCAL_CONF).unwrap();
    cmd_ok(
        "mosquitto_passwd",
        &["-c", "-b", path_str(&etc.join("passwd")), USER, OLD_PASS],
    );
    make_dir(&live.join("var/lib/mosquitto"), "mosquitto:root", 0o755);
    make_dir(&live.join("var/log/mosquitto"), "mosquitto:root", 0o755);
    let scratch = tempfile::Builder::new()
        .prefix(&format!("{}-mosquitto-", unique("wbt")))
        .tempdir()
        .unwrap();
    cmd_ok("mount", &["--bind", path_str(&etc), "/etc/mosquitto"]);
    let etc_bind = EtcBind("/etc/mosquitto".into());

    // Debian's unit: ExecStartPre= makes /run/mosquitto, ExecStart= runs the broker as root (it drops
    // to the mosquitto user itself).
    let mut server = LiveServer::start(LiveSpec {
        what: "mosquitto",
        binds: vec![
            (live.join("var/lib/mosquitto"), "/var/lib/mosquitto"),
            (live.join("var/log/mosquitto"), "/var/log/mosquitto"),
        ],
        run_dirs: &[("/run/mosquitto", "mosquitto", "740")],
        keep: pool.dir(),
        argv: ["/usr/sbin/mosquitto", "-c", CONF]
            .map(String::from)
            .to_vec(),
        output: scratch.path().join("mosquitto.out"),
    });
    println!("{MARK_NS}{}", server.mnt_ns);
    println!("{MARK_NS}{}", server.net_ns);
    eventually(
        "the live broker does not take the retained message",
        &server,
        || publish_live(&server, OLD_MSG, OLD_PASS).status.success(),
    );
    // SIGUSR1: mosquitto writes its persistence database now (as an admin's pre-snapshot hook would).
    let db = live.join("var/lib/mosquitto/mosquitto.db");
    server.signal(nix::sys::signal::Signal::SIGUSR1);
    eventually("SIGUSR1 wrote no mosquitto.db", &server, || db.is_file());
    let snap = pool.snapshot_ro("live", "snaps/1");
    let snap_s = path_str(&snap).to_string();
    let snap_before = tree_manifest(&snap);

    // Live, after the snapshot: another retained message, another password.
    let out = publish_live(&server, NEW_MSG, OLD_PASS);
    assert!(out.status.success(), "{}", show(&out));
    cmd_ok(
        "mosquitto_passwd",
        &["-b", path_str(&etc.join("passwd")), USER, NEW_PASS],
    );
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let live_ns = in_live(&server);
    let live_ns: Vec<&str> = live_ns.iter().map(String::as_str).collect();
    eventually(
        "the live broker still takes the old password",
        &server,
        || subscribe(&live_ns, 1883, OLD_PASS).1 == REFUSED,
    );
    assert_eq!(subscribe(&live_ns, 1883, NEW_PASS).0, NEW_MSG);

    let wb = Wayback::new();
    let port = free_port();
    let publish = format!("{port}:1883");
    let base = [
        snap_s.as_str(),
        "--unit",
        "mosquitto",
        "--publish",
        publish.as_str(),
    ];
    let persist_line = line_of(CONF, "persistence_location /var/lib/mosquitto/");
    let include_line = line_of(CONF, "include_dir /etc/mosquitto/conf.d");
    let local = "/etc/mosquitto/conf.d/local.conf";

    // The plan names the inferred bind and why, and the password file that differs.
    let (plan, notes) = dry_run(&wb, &pool, &base);
    for part in [
        "instance mosquitto-1 (profile mosquitto, ".to_string(),
        format!(
            "    bind     /var/lib/mosquitto -> /var/lib/mosquitto (rw, from the clone)\n             why: \
             persistence_location /var/lib/mosquitto/ in {CONF}:{persist_line}\n"
        ),
        format!(
            "    config   /etc/mosquitto/passwd differs from the host's: the host's is used (--bind-config uses \
             the snapshot's) (password_file in {local}:2)\n"
        ),
        format!(
            "    config   {CONF} the same as the host's (named on ExecStart= of mosquitto.service)\n"
        ),
        format!("    config   {local} the same as the host's (include_dir in {CONF}:{include_line})\n"),
        "  ready      tcp port 1883 answers\n".to_string(),
        format!("  publish    127.0.0.1:{port} -> port 1883\n"),
    ] {
        assert_has(&plan, &part, "the dry run");
    }
    assert_has(
        &notes,
        &format!("readiness is TCP port 1883 accepting a connection (listener 1883 in {local}:1)"),
        "the dry run's notes",
    );
    let (plan, _) = dry_run(&wb, &pool, &[&base[..], &["--bind-config"]].concat());
    for part in [
        format!(
            "    bind     /etc/mosquitto/passwd -> /etc/mosquitto/passwd (ro, from the clone)\n             \
             why: the snapshot's copy (--bind-config); password_file in {local}:2\n"
        ),
        "    config   /etc/mosquitto/passwd differs from the host's: the snapshot's copy is used \
         (--bind-config) (password_file in /etc/mosquitto/conf.d/local.conf:2)\n"
            .to_string(),
    ] {
        assert_has(&plan, &part, "the dry run with --bind-config");
    }
    assert!(
        !plan.contains(&format!("bind     {CONF} ->"))
            && !plan.contains(&format!("bind     {local} ->")),
        "only the files that differ are bound:\n{plan}"
    );

    // Without --bind-config: the old retained message, but the host's (today's) password file.
    let runs = [
        (
            "without --bind-config",
            vec![],
            NEW_PASS,
            OLD_PASS,
            "the new password",
        ),
        (
            "with --bind-config",
            vec!["--bind-config"],
            OLD_PASS,
            NEW_PASS,
            "the old password",
        ),
    ];
    for (how, extra, accepted, refused, which) in runs {
        let name = unique("wbtmosq");
        println!("{MARK_INSTANCE}{name}");
        let args = [&base[..], &["--name", name.as_str()], &extra[..]].concat();
        let mut up = wb.up_background(&args);
        eprintln!("mosquitto {how}: ready after {:?}", up.ready_after);
        let (msg, err) = subscribe(&[], port, accepted);
        assert_eq!(
            (msg.as_str(), err.as_str()),
            (OLD_MSG, ""),
            "{how}\n{}",
            up.describe()
        );
        assert_eq!(
            subscribe(&[], port, refused),
            (String::new(), REFUSED.to_string()),
            "{how}"
        );
        // The live broker is untouched.
        assert_eq!(subscribe(&live_ns, 1883, NEW_PASS).0, NEW_MSG, "{how}");
        drop(up);
        Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
        eprintln!("{how}: old retained message served, {which} accepted; removed without residue");
    }

    server.stop();
    let left = server.leftovers();
    assert!(left.is_empty(), "the live broker left: {left:#?}");
    let diff = manifest_diff(&snap_before, &tree_manifest(&snap));
    assert!(
        diff.is_empty(),
        "the snapshot changed:\n{}",
        diff.join("\n")
    );
    drop(wb);
    drop(server);
    drop(etc_bind);
    drop(pool);
    println!("{MARK_DONE}");
}
