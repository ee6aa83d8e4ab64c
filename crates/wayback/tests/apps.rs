//! `up --unit` on real Debian services with nothing else known (issue 12, tier 1): the host's own
//! `redis-server.service` and `mosquitto.service` and their Debian configuration bring the service back from
//! a btrfs snapshot, with no `--bind`, no profile and no knowledge of where the apps keep their state.
//!
//! # The layout
//!
//! A loop-backed btrfs pool holds `live`, a writable subvolume standing for the live system's root `/` (a
//! server whose root filesystem is a btrfs subvolume), and `snaps/1`, a read-only snapshot of it: the
//! service's state is at the same path in the snapshot as on the live system (`snaps/1/var/lib/redis` is
//! `/var/lib/redis` of that moment), as in any whole-root snapshot (snapper, btrbk, by hand). Only the
//! service's directories are populated.
//!
//! # The live servers
//!
//! systemd is not PID 1 here, so each live server is started by hand as its unit would (the unit's
//! `ExecStart=`, its user, its `UMask=`), by [`LiveServer`]: `unshare --mount --net --propagation private`
//! gives it a mount namespace of its own, in which the live root's state and log directories are bound over
//! the host's (`live/var/lib/redis` over /var/lib/redis: the host's real /var/lib/redis and /var/log/redis
//! are never touched) and a tmpfs is mounted over /run (its PID file directory), and a network namespace of
//! its own, where it listens on its standard port without clashing with anything; the test talks to it with
//! `nsenter --net`. Both namespaces end with the server, which the test stops by its PID (our child). The
//! namespace first detaches its copies of other programs' mounts (network namespace files, other tests'
//! pools under the temp dir) so as not to keep them alive while it runs; the host's mounts are not affected.
//!
//! # Mosquitto and the host's /etc
//!
//! Mosquitto keeps its password file in /etc/mosquitto, and tests must not edit the host's /etc. The
//! mosquitto test therefore re-executes itself (filtered to that one test) under `unshare --mount
//! --propagation private`, as `nixos_layout.rs` does, and that inner run binds the live root's
//! `etc/mosquitto` (Debian's mosquitto.conf, plus `conf.d/local.conf` with a listener, `password_file` and
//! `allow_anonymous false`, plus the password file made by `mosquitto_passwd`) over /etc/mosquitto: in
//! that namespace /etc/mosquitto *is* the live root's, as on a server whose root is the live subvolume. The
//! live broker and `wayback up` both run there (wayback builds its container from the caller's namespace,
//! so the instance sees that /etc). The old password then comes from the snapshot's `etc/mosquitto/passwd`
//! through configuration drift: the plan lists it as differing from the host's, `--bind-config` uses it.
//! The outer run checks from the host's namespace that nothing of the inner run is left (instances, loop
//! device, the live broker's namespaces) and that the host's /etc/mosquitto is unchanged.
//!
//! Needs root (skips with a message otherwise; fails under CI=true), redis-server, mosquitto,
//! mosquitto-clients, util-linux's `unshare`/`nsenter`/`setpriv` (scripts/packages.sh). Only loopback traffic
//! and namespaces the test made; names start with `wbt`.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use support::*;

// ---------------------------------------------------------------------------------------------------------
// Live servers in namespaces of their own
// ---------------------------------------------------------------------------------------------------------

/// Detach this mount namespace's copies of network namespace files and of mounts under the temp dir `$1`
/// (other tests' pools) except those under `$2` (this test's pool; empty: none): a private namespace would
/// otherwise keep them alive. Only ever run in a private mount namespace; lazy unmounts there do not reach
/// the host's.
const RELEASE_FOREIGN_MOUNTS: &str = r#"
tmp="$1"; keep="$2"
awk -v tmp="$tmp/" -v keep="$keep" '{
    n = index($0, " - "); split(substr($0, n + 3), t, " ")
    if (t[1] == "nsfs" || (index($5, tmp) == 1 && (keep == "" || index($5, keep) != 1))) print $5
}' /proc/self/mountinfo | sort -r | while read -r p; do umount -l "$p" 2>/dev/null || true; done
"#;

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The mount or network namespace of `pid` (`mnt:[4026531841]`).
fn ns_of(pid: u32, kind: &str) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Processes in namespace `ns` (as [`ns_of`] names it) of kind `kind`.
fn ns_holders(kind: &str, ns: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if pid.bytes().all(|b| b.is_ascii_digit())
            && fs::read_link(e.path().join("ns").join(kind))
                .is_ok_and(|l| l.to_string_lossy() == ns)
        {
            let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            out.push(format!("process {pid} in {ns}: {}", cmdline.trim()));
        }
    }
    out
}

/// What a live server needs in its namespace.
struct LiveSpec<'a> {
    /// For messages.
    what: &'a str,
    /// (source, destination) bind mounts, e.g. the live root's state directory over the host's.
    binds: Vec<(PathBuf, &'a str)>,
    /// Directories made in the namespace's fresh /run: (path, owner, mode).
    run_dirs: &'a [(&'a str, &'a str, &'a str)],
    /// Mounts under the temp dir the server needs (the pool): kept, the others are detached.
    keep: &'a Path,
    /// The command, as the unit runs it.
    argv: Vec<String>,
    /// Where its output goes.
    output: PathBuf,
}

/// A live server started by the test in a mount and network namespace of its own; stopped by its PID (our
/// child) when dropped.
struct LiveServer {
    what: String,
    child: Child,
    /// Its mount and network namespaces, to check that they end with it.
    mnt_ns: String,
    net_ns: String,
    output: PathBuf,
}

impl LiveServer {
    fn start(spec: LiveSpec) -> LiveServer {
        let mut script = String::from("set -e\nrelease() {");
        script.push_str(RELEASE_FOREIGN_MOUNTS);
        script.push_str("}\n");
        let tmp = std::env::temp_dir();
        script.push_str(&format!(
            "release {} {}\nip link set lo up\n",
            sh_quote(path_str(&tmp)),
            sh_quote(path_str(spec.keep))
        ));
        for (src, dest) in &spec.binds {
            script.push_str(&format!(
                "mount --bind {} {}\n",
                sh_quote(path_str(src)),
                sh_quote(dest)
            ));
        }
        script.push_str("mount -t tmpfs -o mode=0755 wbt-run /run\n");
        for (dir, owner, mode) in spec.run_dirs {
            script.push_str(&format!(
                "mkdir -m {mode} {d}\nchown {owner} {d}\n",
                d = sh_quote(dir)
            ));
        }
        let argv: Vec<String> = spec.argv.iter().map(|a| sh_quote(a)).collect();
        script.push_str(&format!("exec {}\n", argv.join(" ")));
        let out = fs::File::create(&spec.output).expect("live server output file");
        // unshare and the shell exec: the child's PID is the server's.
        let child = Command::new("unshare")
            .args(["--mount", "--net", "--propagation", "private", "--"])
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the live {}: {e}", spec.what));
        let pid = child.id();
        let mut live = LiveServer {
            what: spec.what.to_string(),
            child,
            mnt_ns: String::new(),
            net_ns: String::new(),
            output: spec.output,
        };
        let (my_mnt, my_net) = (
            ns_of(std::process::id(), "mnt").unwrap(),
            ns_of(std::process::id(), "net").unwrap(),
        );
        let entered = wait_for(Duration::from_secs(10), || {
            let (m, n) = (ns_of(pid, "mnt")?, ns_of(pid, "net")?);
            (m != my_mnt && n != my_net).then_some((m, n))
        });
        let (m, n) = entered.unwrap_or_else(|| {
            panic!(
                "the live {} did not enter namespaces of its own\n{}",
                live.what,
                live.output()
            )
        });
        live.mnt_ns = m;
        live.net_ns = n;
        live
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far.
    fn output(&self) -> String {
        fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Run `argv` in the server's network namespace (a client talking to it on 127.0.0.1).
    fn client(&self, argv: &[&str]) -> Output {
        let pid = self.pid().to_string();
        let mut c = Command::new("nsenter");
        c.args(["--target", &pid, "--net", "--"]).args(argv);
        output_timeout(&mut c, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{} against the live {}: {e}", argv[0], self.what))
    }

    /// Send `sig` to the server (our child, by PID).
    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig)
            .unwrap_or_else(|e| panic!("signal {sig} to the live {}: {e}", self.what));
    }

    /// SIGTERM by PID, wait (SIGKILL after 30 s); then its namespaces must be gone.
    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let ended = wait_for(Duration::from_secs(30), || {
                self.child.try_wait().ok().flatten()
            });
            if ended.is_none() {
                eprintln!(
                    "cleanup: the live {} ignored SIGTERM for 30 s; SIGKILL",
                    self.what
                );
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }

    /// What of it is still there: its process, anything in its namespaces.
    fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        if Path::new(&format!("/proc/{}", self.pid())).exists() {
            left.push(format!("live {} process {}", self.what, self.pid()));
        }
        left.extend(ns_holders("mnt", &self.mnt_ns));
        left.extend(ns_holders("net", &self.net_ns));
        left
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Poll `f` (a client call) every 50 ms for at most 30 s until it returns true; panic with `what`.
#[track_caller]
fn eventually(what: &str, live: &LiveServer, mut f: impl FnMut() -> bool) {
    if wait_for(Duration::from_secs(30), || f().then_some(())).is_none() {
        panic!(
            "{what} (waited 30 s)\n--- live {} output ---\n{}",
            live.what,
            live.output()
        );
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `mkdir -p` and set owner and mode (`chown` by name: the host's users, as the package made them).
fn make_dir(p: &Path, owner: &str, mode: u32) {
    fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir -p {}: {e}", p.display()));
    cmd_ok("chown", &[owner, path_str(p)]);
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// The 1-based number of the first line of `file` (the host's) whose words start with `words`.
fn line_of(file: &str, words: &str) -> usize {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file}: {e}"));
    text.lines()
        .position(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .starts_with(words)
        })
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{file} has no line `{words}`"))
}

/// The plan as `--dry-run` prints it; nothing may be created.
#[track_caller]
fn dry_run(wb: &Wayback, pool: &BtrfsPool, args: &[&str]) -> (String, String) {
    let mut full = vec!["up"];
    full.extend_from_slice(args);
    full.push("--dry-run");
    let out = wb.run(&full);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        pool.subvolumes().len(),
        pool.own_subvolumes().len(),
        "a dry run created a subvolume: {:?}",
        pool.subvolumes()
    );
    assert!(
        fs::read_dir(wb.state_dir().join("instances")).map_or(true, |mut d| d.next().is_none()),
        "a dry run registered an instance"
    );
    (
        stdout(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn assert_has(text: &str, part: &str, what: &str) {
    assert!(
        text.contains(part),
        "{what}: expected\n  {part}\nin\n{text}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------------------

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

#[test]
fn redis_server_from_its_unit_serves_the_snapshots_keys() {
    if !require_root("redis_server_from_its_unit_serves_the_snapshots_keys") {
        return;
    }
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

/// Drop the pool and check that its loop device is detached.
#[track_caller]
fn assert_pool_gone(pool: BtrfsPool) {
    let id = pool.id.clone();
    drop(pool);
    let left = loop_devices_with(&id);
    assert!(
        left.is_empty(),
        "the pool's loop device is still attached: {left:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Nothing to bind
// ---------------------------------------------------------------------------------------------------------

#[test]
fn unit_without_its_state_in_the_snapshot_is_refused_naming_the_candidates() {
    if !require_root("unit_without_its_state_in_the_snapshot_is_refused_naming_the_candidates") {
        return;
    }
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

// ---------------------------------------------------------------------------------------------------------
// Mosquitto
// ---------------------------------------------------------------------------------------------------------

const MOSQUITTO_TEST: &str = "mosquitto_serves_the_old_retained_message_and_password";
const INNER_ENV: &str = "WBT_APPS_MOSQUITTO_INNER";
const MARK_INSTANCE: &str = "WBTAPPS-INSTANCE ";
const MARK_POOL: &str = "WBTAPPS-POOL ";
const MARK_NS: &str = "WBTAPPS-LIVE-NS ";
const MARK_DONE: &str = "WBTAPPS-INNER-DONE";

#[test]
fn mosquitto_serves_the_old_retained_message_and_password() {
    if !require_root(MOSQUITTO_TEST) {
        return;
    }
    if std::env::var_os(INNER_ENV).is_some() {
        mosquitto::inner();
    } else {
        mosquitto::outer();
    }
}

mod mosquitto {
    use super::*;

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
        let _etc = EtcBind("/etc/mosquitto".into());

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
            &format!(
                "readiness is TCP port 1883 accepting a connection (listener 1883 in {local}:1)"
            ),
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
            eprintln!(
                "{how}: old retained message served, {which} accepted; removed without residue"
            );
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
        drop(_etc);
        drop(pool);
        println!("{MARK_DONE}");
    }
}
