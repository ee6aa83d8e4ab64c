//! Fixtures for the MediaWiki acceptance test (tests/mediawiki.rs): a live MediaWiki + MariaDB + php-fpm +
//! nginx site set up the way an admin sets it up on Debian, with its state on a btrfs pool, and a tiny
//! "browser" (curl with a cookie jar) that talks to it.
//!
//! # Where the live site runs
//!
//! The live site uses the host's real software and configuration (/usr, /etc: Debian's MariaDB config,
//! php-fpm's default pool, an nginx site file in /etc/nginx/sites-enabled, /etc/mediawiki/LocalSettings.php)
//! because the instance will see exactly that. Its *state* must be on btrfs and must not touch the host's
//! own directories, so the live servers run in a mount and network namespace of their own
//! ([`LiveMediaWiki`]), made by `unshare --mount --net --propagation private` around a holder process:
//!
//! - `<pool>/live/var/lib/mysql` and `<pool>/live/var/lib/mediawiki` (one subvolume, so one snapshot holds
//!   both consistently) are bind-mounted over /var/lib/mysql and /var/lib/mediawiki: the host's own
//!   directories are hidden, never written;
//! - fresh tmpfs on /run, /var/log, /var/lib/nginx and /tmp, so pid files, sockets and logs do not land on
//!   the host either;
//! - everything mounted under /tmp and /run before that is lazily unmounted in the copy first: this host's
//!   root mount is private, so the copy would otherwise pin other tests' btrfs pools and network namespaces
//!   for as long as the live site runs;
//! - its own network namespace with only `lo`: port 80 and 3306 clash with nothing, and nothing but this
//!   test reaches it (curl through `nsenter --net`).
//!
//! mariadbd, php-fpm and nginx are started in the namespaces by this test (with `nsenter`, not systemd),
//! as its own children, and stopped by PID. The namespaces vanish with the last of them.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{cmd_ok, output_timeout, path_str, show, wait_for, BtrfsPool, CURL_STATUS_ARGS};

/// The live site's hostname ($wgServer = http://LIVE_HOST).
pub const LIVE_HOST: &str = "wiki.live.test";
pub const MEDIAWIKI: &str = "/usr/share/mediawiki";
pub const LOCAL_SETTINGS: &str = "/etc/mediawiki/LocalSettings.php";
pub const WIKI_ADMIN: &str = "WbtAdmin";
const WIKI_ADMIN_PASS: &str = "Admin-Secret-4711-wbt";
const DB_NAME: &str = "wbtwiki";
const DB_USER: &str = "wbtwikiuser";
const DB_PASS: &str = "wbt-db-secret-1";

/// The PHP version whose php-fpm is installed ("8.2" on Debian 12): `/usr/sbin/php-fpm<v>`.
pub fn php_version() -> String {
    let mut v: Vec<String> = fs::read_dir("/usr/sbin")
        .expect("read /usr/sbin")
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("php-fpm"))
                .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
                .map(str::to_string)
        })
        .collect();
    v.sort();
    v.pop()
        .expect("php-fpm is not installed (no /usr/sbin/php-fpm<version>): apt-get install php-fpm")
}

/// Panic with a hint when a package the test needs is missing.
pub fn require_packages() {
    for (path, pkg) in [
        ("/usr/sbin/mariadbd", "mariadb-server"),
        ("/usr/bin/mariadb-install-db", "mariadb-server"),
        ("/usr/sbin/nginx", "nginx-light"),
        ("/usr/share/mediawiki/maintenance/install.php", "mediawiki"),
        ("/var/lib/mediawiki", "mediawiki"),
        ("/usr/bin/curl", "curl"),
        ("/usr/bin/nsenter", "util-linux"),
        ("/usr/bin/setpriv", "util-linux"),
    ] {
        assert!(
            Path::new(path).exists(),
            "{path} missing: install the Debian package {pkg} (apt-get install -y mediawiki php-fpm \
             php-mysql mariadb-server nginx-light curl)"
        );
    }
    let v = php_version();
    let mysql_ext = format!("/etc/php/{v}/mods-available/mysqli.ini");
    assert!(
        Path::new(&mysql_ext).exists(),
        "{mysql_ext} missing: install php-mysql"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Exclusive use of the host-global paths
// ---------------------------------------------------------------------------------------------------------

/// An exclusive lock for the host-global things this test uses (/etc/mediawiki/LocalSettings.php, the
/// server name wiki.live.test in the host's nginx config): two runs of the test wait for each other.
pub struct HostLock(#[allow(dead_code)] nix::fcntl::Flock<fs::File>);

impl HostLock {
    pub fn take() -> HostLock {
        let path = "/run/lock/wbt-mediawiki.lock";
        let _ = fs::create_dir_all("/run/lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
        let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .unwrap_or_else(|(_, e)| panic!("flock {path}: {e}"));
        HostLock(lock)
    }
}

/// A file the test puts into the host's /etc, removed again (and whatever was there before restored) by
/// [`HostFile::restore`] or on drop.
pub struct HostFile {
    path: PathBuf,
    before: Option<(Vec<u8>, u32, u32, u32)>,
    done: bool,
}

impl HostFile {
    /// Take note of `path` (and move away what is there) so that it can be created by the test.
    pub fn claim(path: &str) -> HostFile {
        let p = PathBuf::from(path);
        let before = match fs::symlink_metadata(&p) {
            Ok(md) => {
                assert!(
                    md.is_file(),
                    "{path} exists and is not a regular file: not touching it"
                );
                let bytes = fs::read(&p).unwrap_or_else(|e| panic!("read {path}: {e}"));
                fs::remove_file(&p).unwrap_or_else(|e| panic!("remove {path}: {e}"));
                eprintln!("note: {path} existed; moved aside, restored at the end");
                Some((bytes, md.mode() & 0o7777, md.uid(), md.gid()))
            }
            Err(_) => None,
        };
        HostFile {
            path: p,
            before,
            done: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Put back what was there before the test (or nothing).
    pub fn restore(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("cleanup: remove {}: {e}", self.path.display());
            }
        }
        if let Some((bytes, mode, uid, gid)) = &self.before {
            let res = fs::write(&self.path, bytes)
                .and_then(|()| fs::set_permissions(&self.path, fs::Permissions::from_mode(*mode)))
                .and_then(|()| std::os::unix::fs::chown(&self.path, Some(*uid), Some(*gid)));
            if let Err(e) = res {
                eprintln!("cleanup: restore {}: {e}", self.path.display());
            }
        }
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        self.restore();
    }
}

// ---------------------------------------------------------------------------------------------------------
// The live site
// ---------------------------------------------------------------------------------------------------------

/// nginx site for the live wiki, as an admin writes it for Debian's mediawiki package (document root
/// /var/lib/mediawiki, PHP through php-fpm's default pool).
pub fn nginx_site(php: &str) -> String {
    format!(
        "# wayback test (crates/wayback/tests/mediawiki.rs): MediaWiki from Debian's package on {LIVE_HOST}.\n\
         # Removed again by the test.\n\
         server {{\n\
         \tlisten 80;\n\
         \tlisten [::]:80;\n\
         \tserver_name {LIVE_HOST};\n\
         \troot /var/lib/mediawiki;\n\
         \tindex index.php;\n\
         \tclient_max_body_size 8m;\n\
         \n\
         \tlocation ~ ^/(cache|images/deleted|config|maintenance|includes|vendor|mw-config)/ {{\n\
         \t\tdeny all;\n\
         \t}}\n\
         \tlocation ~ \\.php(/|$) {{\n\
         \t\tinclude snippets/fastcgi-php.conf;\n\
         \t\tfastcgi_pass unix:/run/php/php{php}-fpm.sock;\n\
         \t}}\n\
         \tlocation / {{\n\
         \t\ttry_files $uri $uri/ =404;\n\
         \t}}\n\
         }}\n"
    )
}

/// The holder: makes the mounts of the live site's mount namespace, then sleeps (its PID names the
/// namespaces for `nsenter`). $1 = the pool's var/lib/mysql, $2 = its var/lib/mediawiki.
const HOLDER: &str = r#"set -eu
ip link set lo up
mount --bind "$1" /var/lib/mysql
mount --bind "$2" /var/lib/mediawiki
# The host's root mount is private: do not pin other tests' pools, clones and netns files in this copy.
findmnt -rn -o TARGET | grep -E '^/(tmp|run)/' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || :; done
mount -t tmpfs -o mode=0755 wbt-live-run /run
mkdir -m 0755 /run/mysqld /run/php /run/lock
chown mysql:root /run/mysqld
chown www-data:www-data /run/php
mount -t tmpfs -o mode=0755 wbt-live-log /var/log
mkdir /var/log/nginx /var/log/mysql
mount -t tmpfs -o mode=0755 wbt-live-nginx /var/lib/nginx
mount -t tmpfs -o mode=1777 wbt-live-tmp /tmp
echo ready
exec sleep infinity
"#;

/// A live MediaWiki (MariaDB + php-fpm + nginx) whose state is `<pool>/<subvol>/var/lib/{mysql,mediawiki}`,
/// running in namespaces of its own (see the module docs). Drop stops it (the daemons by PID, newest
/// first), which also ends the namespaces.
pub struct LiveMediaWiki {
    pub php: String,
    holder: Option<Child>,
    /// (name, child): mariadb, php-fpm, nginx in start order.
    daemons: Vec<(String, Child)>,
    logs: TempDir,
}

impl LiveMediaWiki {
    /// Set up the state directories in the subvolume `subvol_rel` (which must exist), start the servers,
    /// install the wiki with `$wgServer = "http://wiki.live.test"` into /etc/mediawiki/LocalSettings.php
    /// (claimed by the caller), and wait until it answers.
    pub fn start(pool: &BtrfsPool, subvol_rel: &str) -> LiveMediaWiki {
        let php = php_version();
        let root = pool.path(subvol_rel);
        let mysql = root.join("var/lib/mysql");
        fs::create_dir_all(&mysql).unwrap();
        cmd_ok("chown", &["mysql:mysql", path_str(&mysql)]);
        fs::set_permissions(&mysql, fs::Permissions::from_mode(0o755)).unwrap();
        // The package's /var/lib/mediawiki (symlinks into /usr/share/mediawiki and /etc/mediawiki, plus the
        // writable images/ and cache/), as it is on a server whose /var/lib is on btrfs.
        cmd_ok(
            "cp",
            &["-a", "/var/lib/mediawiki", path_str(&root.join("var/lib"))],
        );

        let logs = tempfile::Builder::new()
            .prefix(&format!("wbt{}-mwlive-", std::process::id()))
            .tempdir()
            .expect("tempdir for the live site's logs");
        let mut holder = Command::new("unshare")
            .args(["--mount", "--net", "--propagation", "private", "--"])
            .args(["/bin/sh", "-c", HOLDER, "wbt-live-holder"])
            .arg(&mysql)
            .arg(root.join("var/lib/mediawiki"))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                fs::File::create(logs.path().join("holder.log")).unwrap(),
            ))
            .spawn()
            .expect("spawn unshare");
        let mut line = String::new();
        let _ = BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line);
        let mut live = LiveMediaWiki {
            php,
            holder: Some(holder),
            daemons: Vec::new(),
            logs,
        };
        assert_eq!(
            line.trim(),
            "ready",
            "the live site's namespaces could not be set up\n{}",
            live.log("holder")
        );

        // MariaDB: a fresh data directory, the server as systemd would run it (User=mysql, Debian's config).
        let out = live.in_ns(
            &[
                "mariadb-install-db",
                "--user=mysql",
                "--datadir=/var/lib/mysql",
                "--skip-test-db",
            ],
            None,
        );
        assert!(out.0, "mariadb-install-db failed\n{}", out.1);
        live.spawn(
            "mariadb",
            &[
                "setpriv",
                "--reuid=mysql",
                "--regid=mysql",
                "--init-groups",
                "--",
                "/usr/sbin/mariadbd",
            ],
        );
        let up = wait_for(Duration::from_secs(60), || {
            live.assert_daemons_alive();
            live.in_ns(&["mariadb", "-N", "-e", "SELECT 1"], None)
                .0
                .then_some(())
        });
        assert!(
            up.is_some(),
            "the live MariaDB did not answer in 60 s\n{}",
            live.log("mariadb")
        );

        // MediaWiki's own installer, as the admin ran it (root: MariaDB's root account is unix_socket).
        let server = format!("--server=http://{LIVE_HOST}");
        let out = live.in_ns(
            &[
                "php",
                &format!("{MEDIAWIKI}/maintenance/install.php"),
                "--dbtype=mysql",
                "--dbserver=localhost",
                &format!("--dbname={DB_NAME}"),
                &format!("--dbuser={DB_USER}"),
                &format!("--dbpass={DB_PASS}"),
                "--installdbuser=root",
                &server,
                "--scriptpath=",
                "--confpath=/etc/mediawiki",
                "--lang=en",
                &format!("--pass={WIKI_ADMIN_PASS}"),
                "Wayback Test Wiki",
                WIKI_ADMIN,
            ],
            None,
        );
        assert!(out.0, "MediaWiki's install.php failed\n{}", out.1);
        let settings =
            fs::read_to_string(LOCAL_SETTINGS).expect("install.php wrote no LocalSettings.php");
        assert!(
            settings.contains(&format!("$wgServer = \"http://{LIVE_HOST}\";")),
            "LocalSettings.php does not pin $wgServer to http://{LIVE_HOST}:\n{settings}"
        );

        let fpm_conf = format!("/etc/php/{}/fpm/php-fpm.conf", live.php);
        live.spawn(
            "php-fpm",
            &[
                &format!("/usr/sbin/php-fpm{}", live.php),
                "--nodaemonize",
                "--fpm-config",
                &fpm_conf,
            ],
        );
        live.spawn("nginx", &["/usr/sbin/nginx", "-g", "daemon off;"]);
        let up = wait_for(Duration::from_secs(60), || {
            live.assert_daemons_alive();
            let host = format!("Host: {LIVE_HOST}");
            let mut args = vec!["curl"];
            args.extend(CURL_STATUS_ARGS);
            args.extend(["-H", &host, "http://127.0.0.1/index.php?title=Main_Page"]);
            let out = live.in_net(&args);
            (out.1.trim() == "200").then_some(())
        });
        assert!(
            up.is_some(),
            "the live wiki did not serve its main page in 60 s\n{}",
            live.all_logs()
        );
        live
    }

    /// The holder's PID (names the namespaces).
    pub fn ns_pid(&self) -> u32 {
        self.holder.as_ref().expect("holder").id()
    }

    fn nsenter(&self, mount: bool) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("--target").arg(self.ns_pid().to_string());
        if mount {
            c.arg("--mount");
        }
        c.arg("--net").arg("--").current_dir("/");
        c
    }

    /// Run `argv` in the live site's mount and network namespaces (as root); (success, output).
    pub fn in_ns(&self, argv: &[&str], stdin: Option<&str>) -> (bool, String) {
        let mut c = self.nsenter(true);
        c.args(argv);
        run_with_stdin(c, stdin)
    }

    /// Run `argv` in the live site's network namespace only (host filesystem view: curl's cookie jar).
    pub fn in_net(&self, argv: &[&str]) -> (bool, String) {
        let mut c = self.nsenter(false);
        c.args(argv);
        let out = output_timeout(&mut c, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{argv:?} in the live netns: {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// A MediaWiki maintenance script, run as the admin does (as www-data, in the live namespaces).
    #[track_caller]
    pub fn maintenance(&self, script: &str, args: &[&str], stdin: Option<&str>) -> String {
        let path = format!("{MEDIAWIKI}/maintenance/{script}");
        let mut argv = vec![
            "setpriv",
            "--reuid=www-data",
            "--regid=www-data",
            "--init-groups",
            "--",
            "php",
            &path,
        ];
        argv.extend_from_slice(args);
        let (ok, out) = self.in_ns(&argv, stdin);
        assert!(ok, "maintenance/{script} {args:?} failed\n{out}");
        out
    }

    fn spawn(&mut self, name: &str, argv: &[&str]) {
        let log = fs::File::create(self.logs.path().join(format!("{name}.log"))).unwrap();
        let mut c = self.nsenter(true);
        c.args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} in the live namespaces: {e}"));
        self.daemons.push((name.to_string(), child));
    }

    #[track_caller]
    fn assert_daemons_alive(&mut self) {
        let mut dead = Vec::new();
        for (name, c) in &mut self.daemons {
            if let Ok(Some(st)) = c.try_wait() {
                dead.push(format!("{name} exited: {st}"));
            }
        }
        assert!(
            dead.is_empty(),
            "live site: {}\n{}",
            dead.join(", "),
            self.all_logs()
        );
    }

    /// The output of one of the live site's processes (holder, mariadb, php-fpm, nginx).
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.logs.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    pub fn all_logs(&self) -> String {
        ["holder", "mariadb", "php-fpm", "nginx"]
            .iter()
            .map(|n| format!("--- live {n} ---\n{}", tail(&self.log(n), 40)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stop the servers (newest first: SIGTERM, SIGKILL after 30 s), then the holder.
    pub fn stop(&mut self) {
        while let Some((name, mut c)) = self.daemons.pop() {
            stop_child(&name, &mut c, Duration::from_secs(30));
        }
        if let Some(mut h) = self.holder.take() {
            stop_child("holder", &mut h, Duration::from_secs(5));
        }
    }
}

impl Drop for LiveMediaWiki {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGTERM our child `c`, wait up to `grace`, then SIGKILL it. Never signals anything else.
fn stop_child(name: &str, c: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = c.try_wait() {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(c.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    loop {
        match c.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() >= deadline => {
                eprintln!("cleanup: live {name} did not stop in {grace:?}; killing it (our child)");
                let _ = c.kill();
                let _ = c.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn run_with_stdin(mut c: Command, stdin: Option<&str>) -> (bool, String) {
    let desc = format!("{c:?}");
    let mut child = c
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    if let Some(text) = stdin {
        let mut w = child.stdin.take().unwrap();
        w.write_all(text.as_bytes()).unwrap();
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(180)) {
        Ok(Ok(out)) => (out.status.success(), show(&out)),
        Ok(Err(e)) => panic!("wait {desc}: {e}"),
        Err(_) => {
            // Our own child, by PID.
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("{desc} did not finish in 180 s (killed)");
        }
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------------------
// A browser: curl with a cookie jar
// ---------------------------------------------------------------------------------------------------------

/// One HTTP response as the browser got it (body decompressed by curl).
pub struct Resp {
    pub url: String,
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub raw_headers: String,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// URL, status, headers and the end of the body (at most 3000 bytes), for messages.
    pub fn describe(&self) -> String {
        let mut cut = self.body.len().saturating_sub(3000);
        while !self.body.is_char_boundary(cut) {
            cut += 1;
        }
        format!(
            "{} -> {}\n{}\n{}{}",
            self.url,
            self.status,
            self.raw_headers.trim_end(),
            if cut > 0 { "…" } else { "" },
            &self.body[cut..]
        )
    }
}

/// curl as a browser on `base` (`http://host[:port]`), reaching it at 127.0.0.1 (`--resolve`), optionally
/// from inside the live site's network namespace, with its own cookie jar. It never follows redirects by
/// itself: the caller sees every Location.
pub struct Browser {
    pub base: String,
    resolve: String,
    netns_pid: Option<u32>,
    dir: TempDir,
    n: std::cell::Cell<u32>,
}

impl Browser {
    pub fn new(host: &str, port: u16, netns_pid: Option<u32>) -> Browser {
        let base = if port == 80 {
            format!("http://{host}")
        } else {
            format!("http://{host}:{port}")
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("wbt{}-browser-", std::process::id()))
            .tempdir()
            .unwrap();
        Browser {
            base,
            resolve: format!("{host}:{port}:127.0.0.1"),
            netns_pid,
            dir,
            n: std::cell::Cell::new(0),
        }
    }

    /// Forget all cookies (a new browser session).
    pub fn clear_cookies(&self) {
        let _ = fs::remove_file(self.dir.path().join("jar"));
    }

    /// GET `path_or_url` (a path on `base`, or an absolute URL that must be on `base`).
    pub fn get(&self, path_or_url: &str) -> Resp {
        self.request(path_or_url, None, None)
    }

    /// POST a form as a browser submits it from `referer` (with Origin and Referer).
    pub fn post(&self, path_or_url: &str, form: &[(&str, &str)], referer: &str) -> Resp {
        self.request(path_or_url, Some(form), Some(referer))
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with('/') {
            format!("{}{path_or_url}", self.base)
        } else {
            assert!(
                path_or_url.starts_with(&format!("{}/", self.base)),
                "the browser on {} was sent to another site: {path_or_url}",
                self.base
            );
            path_or_url.to_string()
        }
    }

    fn request(
        &self,
        path_or_url: &str,
        form: Option<&[(&str, &str)]>,
        referer: Option<&str>,
    ) -> Resp {
        let url = self.url(path_or_url);
        let n = self.n.get();
        self.n.set(n + 1);
        let hdr = self.dir.path().join(format!("{n}.headers"));
        let body = self.dir.path().join(format!("{n}.body"));
        let jar = self.dir.path().join("jar");
        let mut c = match self.netns_pid {
            Some(pid) => {
                let mut c = Command::new("nsenter");
                c.args(["--target", &pid.to_string(), "--net", "--", "curl"]);
                c
            }
            None => Command::new("curl"),
        };
        c.args(["-sS", "--compressed", "--max-time", "30"])
            .args(["--resolve", &self.resolve])
            .arg("-b")
            .arg(&jar)
            .arg("-c")
            .arg(&jar)
            .arg("-D")
            .arg(&hdr)
            .arg("-o")
            .arg(&body)
            .args(["-w", "%{http_code}"]);
        if let Some(form) = form {
            c.args(["-H", &format!("Origin: {}", self.base)]);
            if let Some(r) = referer {
                c.args(["-e", &self.url(r)]);
            }
            for (k, v) in form {
                c.arg("--data-urlencode").arg(format!("{k}={v}"));
            }
        }
        c.arg(&url);
        let out = output_timeout(&mut c, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("curl {url}: {e}"));
        let raw_headers = fs::read_to_string(&hdr).unwrap_or_default();
        let body = fs::read(&body).unwrap_or_default();
        let status: u16 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(
            out.status.success() && status != 0,
            "curl {url} failed\n{}\n{raw_headers}",
            show(&out)
        );
        let headers = raw_headers
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Resp {
            url,
            status,
            headers,
            raw_headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// Log in through Special:UserLogin as a browser does: fetch the form (session cookie, login token),
    /// post it back. Returns the form page and the answer to the post.
    pub fn login(&self, user: &str, password: &str) -> (Resp, Resp) {
        let form_path = "/index.php?title=Special:UserLogin";
        let page = self.get(form_path);
        assert_eq!(page.status, 200, "login form\n{}", page.describe());
        let form = html_form(&page.body, "userlogin")
            .unwrap_or_else(|| panic!("no login form on the page\n{}", page.describe()));
        let mut fields: Vec<(&str, &str)> = form
            .inputs
            .iter()
            .filter(|(n, _)| n != "wpName" && n != "wpPassword" && n != "wpRemember")
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert!(
            fields.iter().any(|(n, _)| *n == "wpLoginToken"),
            "no wpLoginToken in the login form: {:?}\n{}",
            form.inputs,
            page.describe()
        );
        fields.push(("wpName", user));
        fields.push(("wpPassword", password));
        let action = if form.action.is_empty() {
            form_path.to_string()
        } else {
            form.action.clone()
        };
        let answer = self.post(&action, &fields, form_path);
        (page, answer)
    }
}

/// A form's action and its inputs (name, value), in document order.
#[derive(Debug)]
pub struct Form {
    pub action: String,
    pub inputs: Vec<(String, String)>,
}

/// The `<form name="NAME">` of `html` (crude but sufficient for MediaWiki's generated markup).
pub fn html_form(html: &str, name: &str) -> Option<Form> {
    let mut at = 0;
    while let Some(i) = html[at..].find("<form") {
        let start = at + i;
        let tag_end = start + html[start..].find('>')?;
        let tag = &html[start..tag_end];
        let end = tag_end
            + html[tag_end..]
                .find("</form>")
                .unwrap_or(html.len() - tag_end);
        if attr(tag, "name").as_deref() == Some(name) {
            let inner = &html[tag_end..end];
            let mut inputs = Vec::new();
            let mut j = 0;
            while let Some(k) = inner[j..].find("<input") {
                let s = j + k;
                let e = s + inner[s..].find('>').unwrap_or(inner.len() - s);
                let t = &inner[s..e];
                if let Some(n) = attr(t, "name") {
                    inputs.push((n, attr(t, "value").unwrap_or_default()));
                }
                j = e;
            }
            return Some(Form {
                action: attr(tag, "action").unwrap_or_default(),
                inputs,
            });
        }
        at = tag_end;
    }
    None
}

/// The value of attribute `name` in an HTML tag, entity-decoded.
fn attr(tag: &str, name: &str) -> Option<String> {
    let mut at = 0;
    let pat = format!("{name}=\"");
    while let Some(i) = tag[at..].find(&pat) {
        let s = at + i;
        let before_ok = s == 0 || tag.as_bytes()[s - 1].is_ascii_whitespace();
        let vs = s + pat.len();
        let ve = vs + tag[vs..].find('"')?;
        if before_ok {
            return Some(unescape(&tag[vs..ve]));
        }
        at = ve;
    }
    None
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#039;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
