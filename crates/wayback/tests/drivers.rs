//! The host-proxy drivers against the real nginx and Caddy from Debian, each started by the test on
//! loopback ports with its own config under a temp dir (never the system's; only processes the test started
//! are stopped, by PID). A tiny HTTP backend in the test stands for the upstream (wayback's built-in proxy
//! or an instance's veth address): it answers with the Host and X-Forwarded-* it got, and echoes bytes
//! after a WebSocket-style upgrade.
//!
//! nginx: publish serves the hostname; a vhost nginx rejects (a hostname another site has, a missing
//! certificate) returns nginx's message, leaves the include directory byte-identical and nginx not reloaded
//! (its error log records no reconfiguration, its workers are the same processes); unpublish restores the
//! include directory exactly; a file without wayback's header is never touched. Caddy: the route is added
//! first in the server with its `@id`, served, replaced on re-publish, removed, and Caddy's config is then
//! exactly as before.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use tempfile::TempDir;
use wayback_engine::drivers::{
    self, unpublish, CaddyConfig, Driver, DriverHandle, DriverRoute, NginxConfig, TlsFiles,
};
use wayback_testsupport::*;

const WAIT: Duration = Duration::from_secs(10);

/// Whether `tool` is installed; if not: skip with the reason, or under CI fail when Debian offers it.
fn require_tool(test: &str, tool: &str, package: &str) -> bool {
    if Command::new("sh")
        .args([
            "-c",
            &format!("command -v {tool} || test -x /usr/sbin/{tool}"),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return true;
    }
    let policy = Command::new("apt-cache")
        .args(["policy", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let available = policy.contains("Candidate:") && !policy.contains("Candidate: (none)");
    if available && std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{test}: {tool} is not installed but Debian has it: add {package} to scripts/packages.sh");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIP: {test}: {tool} is not installed (Debian package {package}{})",
        if available {
            ""
        } else {
            " is not available here"
        }
    );
    false
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The upstream: answers `backend NAME host=H proto=P xff=X`; after `Upgrade: websocket`, echoes bytes.
fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            thread::spawn(move || serve_one(name, s));
        }
    });
    addr
}

fn serve_one(name: &str, s: TcpStream) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut head = BTreeMap::new();
    let mut line = String::new();
    while r.read_line(&mut line).is_ok_and(|n| n > 0) && !line.trim().is_empty() {
        if let Some((k, v)) = line.split_once(':') {
            head.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        line.clear();
    }
    let h = |k: &str| head.get(k).cloned().unwrap_or_default();
    let mut w = s;
    if h("upgrade").eq_ignore_ascii_case("websocket")
        && h("connection").to_lowercase().contains("upgrade")
    {
        let _ = w.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = r.read(&mut buf) {
            let _ = w.write_all(&buf[..n]);
        }
        return;
    }
    let body = format!(
        "backend {name} host={} proto={} xff={}\n",
        h("host"),
        h("x-forwarded-proto"),
        h("x-forwarded-for")
    );
    let _ = write!(
        w,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// GET until `pred` holds for the body (reloads take effect a moment after the command returns).
fn get_until(addr: SocketAddr, host: &str, pred: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    let ok = wait_for(WAIT, || {
        last = match HttpGet::get(addr, host, "/") {
            Ok((status, body)) => format!("{status} {body}"),
            Err(e) => format!("error {e}"),
        };
        pred(&last).then_some(())
    });
    assert!(
        ok.is_some(),
        "GET http://{host}/ via {addr}: last answer {last:?}"
    );
    last
}

/// Through the proxy: upgrade to "websocket", then bytes go both ways.
fn websocket_echo(addr: SocketAddr, host: &str) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(
        line.contains(" 101 "),
        "no upgrade through the proxy: {line:?}"
    );
    while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
    s.write_all(b"ping-through-proxy").unwrap();
    let mut buf = [0u8; 18];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping-through-proxy");
}

fn route(instance: &str, host: &str, upstream: SocketAddr) -> DriverRoute {
    DriverRoute {
        instance: instance.into(),
        host: host.into(),
        upstream,
        tls: None,
    }
}

fn stop(child: &mut Child, what: &str) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    if wait_for(WAIT, || child.try_wait().ok().flatten()).is_none() {
        eprintln!("cleanup: {what} (PID {pid}) ignored SIGTERM; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }
}

// -----------------------------------------------------------------------------------------------------
// nginx
// -----------------------------------------------------------------------------------------------------

/// An nginx master started by the test (`daemon off`, so it is our child), with one foreign site.
struct Nginx {
    dir: TempDir,
    child: Child,
    port: u16,
    tls_port: u16,
}

impl Nginx {
    fn start() -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        // Workers run as nobody and must reach the foreign site's files.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path().display().to_string();
        let (port, tls_port) = (free_port(), free_port());
        fs::create_dir_all(dir.path().join("sites")).unwrap();
        fs::create_dir_all(dir.path().join("www")).unwrap();
        fs::write(dir.path().join("www/index.html"), "foreign site\n").unwrap();
        fs::write(
            dir.path().join("sites/foreign.conf"),
            format!("# The admin's own site.\nserver {{\n    listen 127.0.0.1:{port} default_server;\n    server_name foreign.test;\n    root {d}/www;\n}}\n"),
        )
        .unwrap();
        fs::write(
            dir.path().join("nginx.conf"),
            format!(
                "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nlock_file {d}/nginx.lock;\nerror_log {d}/error.log notice;\n\
                 events {{ worker_connections 128; }}\n\
                 http {{\n    access_log {d}/access.log;\n    client_body_temp_path {d}/tmp-body;\n    proxy_temp_path {d}/tmp-proxy;\n\
                 fastcgi_temp_path {d}/tmp-fastcgi;\n    uwsgi_temp_path {d}/tmp-uwsgi;\n    scgi_temp_path {d}/tmp-scgi;\n\
                 include {d}/sites/*.conf;\n}}\n"
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .args(["-p", &d, "-c", &format!("{d}/nginx.conf")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("start nginx");
        let mut n = Nginx {
            dir,
            child,
            port,
            tls_port,
        };
        if wait_for(WAIT, || n.foreign_ok().then_some(())).is_none() {
            let log = fs::read_to_string(n.dir.path().join("stderr.log")).unwrap_or_default();
            stop(&mut n.child, "nginx");
            panic!("the test's nginx did not serve its foreign site:\n{log}");
        }
        n
    }

    fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    fn include_dir(&self) -> PathBuf {
        self.dir.path().join("sites")
    }

    fn config(&self) -> NginxConfig {
        NginxConfig {
            include_dir: Some(self.include_dir()),
            prefix: Some(self.dir.path().into()),
            conf: Some(self.dir.path().join("nginx.conf")),
            http_listen: vec![format!("127.0.0.1:{}", self.port)],
            https_listen: vec![format!("127.0.0.1:{}", self.tls_port)],
            ..NginxConfig::default()
        }
    }

    fn foreign_ok(&self) -> bool {
        HttpGet::get(self.addr(), "foreign.test", "/")
            .is_ok_and(|(s, b)| s == 200 && b == "foreign site\n")
    }

    /// How often the master re-read its config (it logs each SIGHUP at notice level).
    fn reloads(&self) -> usize {
        fs::read_to_string(self.dir.path().join("error.log"))
            .unwrap_or_default()
            .matches("reconfiguring")
            .count()
    }

    /// The master's children: a reload replaces them.
    fn workers(&self) -> Vec<i32> {
        let master = self.child.id() as i32;
        let mut pids: Vec<i32> = fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
                after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) == Some(master)
            })
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Every file of the include directory with its bytes.
    fn include_contents(&self) -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(self.include_dir())
            .unwrap()
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    }

    /// A failed publish must leave everything as it was.
    fn assert_untouched(
        &self,
        before: &BTreeMap<String, Vec<u8>>,
        reloads: usize,
        workers: &[i32],
    ) {
        thread::sleep(Duration::from_millis(300));
        assert_eq!(
            &self.include_contents(),
            before,
            "include directory changed"
        );
        assert_eq!(self.reloads(), reloads, "nginx was reloaded");
        assert_eq!(self.workers(), workers, "nginx's workers changed");
        assert!(self.foreign_ok(), "nginx no longer serves the foreign site");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop(&mut self.child, "nginx");
    }
}

#[test]
fn nginx_publish_serve_unpublish() {
    if !require_root("nginx_publish_serve_unpublish")
        || !require_tool("nginx driver", "nginx", "nginx-light")
    {
        return;
    }
    let nginx = Nginx::start();
    let cfg = nginx.config();
    let driver = Driver::Nginx(&cfg);
    let before = nginx.include_contents();
    let reloads = nginx.reloads();
    let r = route("app-1", "app.test", backend("app"));

    let planned = driver.handle(&r).unwrap();
    let h = driver.publish(&r).unwrap();
    assert_eq!(
        h, planned,
        "publish must create exactly what handle() announced"
    );
    let DriverHandle::Nginx(nh) = &h else {
        panic!("{h:?}")
    };
    assert_eq!(nh.file, nginx.include_dir().join("wayback-app-1.conf"));
    let text = fs::read_to_string(&nh.file).unwrap();
    assert!(
        text.starts_with("# Written by wayback for instance app-1. "),
        "{text}"
    );
    assert!(nginx.reloads() > reloads, "publish did not reload nginx");

    // publish returns once nginx's new workers serve the new config: no retrying needed.
    let (status, got) = HttpGet::get(nginx.addr(), "app.test", "/").unwrap();
    assert!(
        status == 200
            && got.contains("backend app")
            && got.contains("host=app.test")
            && got.contains("proto=http")
            && got.contains("xff=127.0.0.1"),
        "{got}"
    );
    websocket_echo(nginx.addr(), "app.test");
    assert!(nginx.foreign_ok());
    let mut with_ours = before.clone();
    with_ours.insert("wayback-app-1.conf".into(), text.into_bytes());
    assert_eq!(
        nginx.include_contents(),
        with_ours,
        "publish wrote more than its file"
    );

    let reloads = nginx.reloads();
    unpublish(&h).unwrap();
    assert_eq!(
        nginx.include_contents(),
        before,
        "include directory not as before"
    );
    assert!(nginx.reloads() > reloads, "unpublish did not reload nginx");
    let (_, got) = HttpGet::get(nginx.addr(), "app.test", "/").unwrap();
    assert_eq!(got, "foreign site\n", "the default server answers again");
    assert!(nginx.foreign_ok());
    let reloads = nginx.reloads();
    unpublish(&h).expect("unpublish of a removed vhost is success");
    assert_eq!(nginx.reloads(), reloads, "nothing to remove, so no reload");
}

#[test]
fn nginx_rejected_vhost_leaves_nginx_unchanged() {
    if !require_root("nginx_rejected_vhost_leaves_nginx_unchanged")
        || !require_tool("nginx driver", "nginx", "nginx-light")
    {
        return;
    }
    let nginx = Nginx::start();
    let cfg = nginx.config();
    let driver = Driver::Nginx(&cfg);
    let before = nginx.include_contents();
    let (reloads, workers) = (nginx.reloads(), nginx.workers());
    let up = backend("rejected");

    // A hostname another site already has: nginx would ignore ours (it warns), so it is refused.
    let e = driver
        .publish(&route("taken", "foreign.test", up))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("conflicting server name \"foreign.test\""),
        "not nginx's message: {e}"
    );
    assert!(
        e.contains("wayback-taken.conf") && e.contains("did not reload"),
        "{e}"
    );
    nginx.assert_untouched(&before, reloads, &workers);

    // A certificate nginx cannot load: `nginx -t` fails.
    let mut r = route("badcert", "badcert.test", up);
    r.tls = Some(TlsFiles {
        cert: nginx.dir.path().join("missing.pem"),
        key: nginx.dir.path().join("missing.key"),
    });
    let e = driver.publish(&r).unwrap_err().to_string();
    assert!(
        e.contains("cannot load certificate") && e.contains("missing.pem"),
        "not nginx's message: {e}"
    );
    nginx.assert_untouched(&before, reloads, &workers);

    // nginx cannot even be run: the file goes again too.
    let missing = NginxConfig {
        binary: nginx.dir.path().join("no-such-nginx"),
        ..cfg.clone()
    };
    let e = Driver::Nginx(&missing)
        .publish(&route("nobin", "nobin.test", up))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot run") && e.contains("no-such-nginx"),
        "{e}"
    );
    nginx.assert_untouched(&before, reloads, &workers);

    // What nginx would read as more directives is refused before anything is written.
    let e = driver
        .publish(&route("inject", "a.test;b", up))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("invalid hostname") && e.contains("inject"),
        "{e}"
    );
    let e = driver
        .publish(&route("../x", "x.test", up))
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid instance name"), "{e}");
    nginx.assert_untouched(&before, reloads, &workers);
}

#[test]
fn nginx_tls_with_certificate_files() {
    if !require_root("nginx_tls_with_certificate_files")
        || !require_tool("nginx driver", "nginx", "nginx-light")
    {
        return;
    }
    let nginx = Nginx::start();
    let (cert, key) = (
        nginx.dir.path().join("cert.pem"),
        nginx.dir.path().join("key.pem"),
    );
    make_certificate(nginx.dir.path(), "wildcard", "*.wb.test", "DNS:*.wb.test");
    fs::rename(nginx.dir.path().join("wildcard.pem"), &cert).unwrap();
    fs::rename(nginx.dir.path().join("wildcard.key"), &key).unwrap();
    let cfg = NginxConfig {
        tls: Some(TlsFiles {
            cert: cert.clone(),
            key,
        }),
        ..nginx.config()
    };
    let h = Driver::Nginx(&cfg)
        .publish(&route("secure", "secure.wb.test", backend("secure")))
        .unwrap();
    let curl = |args: &[&str]| {
        let resolve = |p: u16| format!("secure.wb.test:{p}:127.0.0.1");
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert", path_str(&cert)])
            .args([
                "--resolve",
                &resolve(nginx.tls_port),
                "--resolve",
                &resolve(nginx.port),
            ])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let url = format!("https://secure.wb.test:{}/page", nginx.tls_port);
    let ok = wait_for(WAIT, || {
        curl(&[&url]).contains("backend secure").then_some(())
    });
    assert!(ok.is_some(), "HTTPS not served: {}", curl(&["-v", &url]));
    assert!(curl(&[&url]).contains("proto=https"));
    let redirect = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        &format!("http://secure.wb.test:{}/page?q=1", nginx.port),
    ]);
    assert_eq!(
        redirect,
        format!("301 https://secure.wb.test:{}/page?q=1", nginx.tls_port)
    );
    unpublish(&h).unwrap();
    assert!(!nginx.include_dir().join("wayback-secure.conf").exists());
}

#[test]
fn nginx_never_touches_foreign_files() {
    if !require_root("nginx_never_touches_foreign_files")
        || !require_tool("nginx driver", "nginx", "nginx-light")
    {
        return;
    }
    let nginx = Nginx::start();
    let cfg = nginx.config();
    let driver = Driver::Nginx(&cfg);
    let up = backend("mine");
    // The admin's own file with wayback's file name but without its header (or another instance's header).
    for (i, text) in [
        "server { listen 127.0.0.1:1; server_name mine-by-hand.test; }\n",
        "# Written by wayback for instance mine-2. Do not edit; wayback removes it.\n",
    ]
    .iter()
    .enumerate()
    {
        let file = nginx.include_dir().join("wayback-mine.conf");
        fs::write(&file, text).unwrap();
        let before = nginx.include_contents();
        let (reloads, workers) = (nginx.reloads(), nginx.workers());
        let e = driver
            .publish(&route("mine", "mine.test", up))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&file.display().to_string()) && e.contains("never edits or deletes"),
            "{i}: {e}"
        );
        let h = drivers::nginx::handle(&cfg, &route("mine", "mine.test", up)).unwrap();
        let e = unpublish(&DriverHandle::Nginx(h)).unwrap_err().to_string();
        assert!(e.contains(&file.display().to_string()), "{i}: {e}");
        nginx.assert_untouched(&before, reloads, &workers);
        fs::remove_file(&file).unwrap();
    }
    // A leftover of wayback's own for the same instance is replaced (still one file, the new one).
    let file = nginx.include_dir().join("wayback-mine.conf");
    fs::write(
        &file,
        "# Written by wayback for instance mine. Do not edit; wayback removes it.\n# stale\n",
    )
    .unwrap();
    let h = driver.publish(&route("mine", "mine.test", up)).unwrap();
    assert!(!fs::read_to_string(&file).unwrap().contains("# stale"));
    get_until(nginx.addr(), "mine.test", |b| b.contains("backend mine"));
    unpublish(&h).unwrap();
    assert!(!file.exists());
    // A rejected re-publish puts wayback's previous file back, byte for byte.
    let h = driver.publish(&route("mine", "mine.test", up)).unwrap();
    let mine = fs::read(&file).unwrap();
    let e = driver
        .publish(&route("mine", "foreign.test", up))
        .unwrap_err()
        .to_string();
    assert!(e.contains("conflicting server name"), "{e}");
    assert_eq!(fs::read(&file).unwrap(), mine);
    unpublish(&h).unwrap();
}

#[test]
fn nginx_default_include_dir() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    for sub in ["conf.d", "sites-enabled"] {
        fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let cfg = NginxConfig {
        conf: Some(conf.clone()),
        ..NginxConfig::default()
    };
    let r = route("x", "x.test", loopback(8080));
    let dir_of = |text: &str| {
        fs::write(&conf, text).unwrap();
        drivers::nginx::handle(&cfg, &r).map(|h| h.file.parent().unwrap().to_path_buf())
    };
    let p = |s: &str| dir.path().join(s);
    assert_eq!(
        dir_of("http {\n include conf.d/*.conf;\n include sites-enabled/*;\n}\n").unwrap(),
        p("conf.d")
    );
    let debian = format!(
        "http {{\n  #include {0}/conf.d/*.conf;\n  include {0}/sites-enabled/*;\n}}\n",
        dir.path().display()
    );
    assert_eq!(dir_of(&debian).unwrap(), p("sites-enabled"));
    let e = dir_of("http { include conf.d/*.site; }\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("set include_dir") && e.contains(path_str(&conf)),
        "{e}"
    );
}

// -----------------------------------------------------------------------------------------------------
// Caddy
// -----------------------------------------------------------------------------------------------------

/// `caddy run` started by the test: admin API (loopback TCP, or a unix socket) and one HTTP server
/// (automatic HTTPS off) on loopback.
struct Caddy {
    dir: TempDir,
    child: Child,
    admin: SocketAddr,
    /// As `[proxy.caddy] admin` writes it.
    admin_config: String,
    port: u16,
}

impl Caddy {
    fn start() -> Caddy {
        Caddy::start_with(false)
    }

    fn start_with(unix_admin: bool) -> Caddy {
        let dir = tempfile::tempdir().unwrap();
        let (admin, port) = (loopback(free_port()), free_port());
        let admin_config = if unix_admin {
            format!("unix/{}", dir.path().join("admin.sock").display())
        } else {
            format!("http://{admin}")
        };
        let listen = admin_config
            .strip_prefix("http://")
            .unwrap_or(&admin_config);
        let mut config = serde_json::json!({
            "admin": {"listen": listen, "config": {"persist": false}},
            "apps": {"http": {"servers": {"test": {
                "listen": [format!("127.0.0.1:{port}")],
                "automatic_https": {"disable": true},
                "routes": [{"match": [{"host": ["foreign.test"]}],
                            "handle": [{"handler": "static_response", "body": "foreign site\n"}]}]
            }}}}
        });
        if unix_admin {
            // A server without routes (nor a `routes` key) at all.
            config["apps"]["http"]["servers"]["test"]
                .as_object_mut()
                .unwrap()
                .remove("routes");
        }
        let file = dir.path().join("caddy.json");
        fs::write(&file, config.to_string()).unwrap();
        let child = Command::new("caddy")
            .args(["run", "--config", path_str(&file)])
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("caddy.log")).unwrap())
            .spawn()
            .expect("start caddy");
        let mut c = Caddy {
            dir,
            child,
            admin,
            admin_config,
            port,
        };
        let up = wait_for(WAIT, || {
            HttpGet::get(loopback(c.port), "foreign.test", "/")
                .is_ok_and(|(_, b)| unix_admin || b == "foreign site\n")
                .then_some(())
        });
        if up.is_none() {
            let log = fs::read_to_string(c.dir.path().join("caddy.log")).unwrap_or_default();
            stop(&mut c.child, "caddy");
            panic!("the test's caddy did not start:\n{log}");
        }
        c
    }

    fn config(&self) -> CaddyConfig {
        CaddyConfig {
            admin: self.admin_config.clone(),
            ..CaddyConfig::default()
        }
    }

    /// Caddy's whole running config.
    fn running(&self) -> serde_json::Value {
        let (status, body) = HttpGet::get(self.admin, &self.admin.to_string(), "/config/").unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        stop(&mut self.child, "caddy");
    }
}

#[test]
fn caddy_publish_serve_unpublish() {
    if !require_root("caddy_publish_serve_unpublish")
        || !require_tool("caddy driver", "caddy", "caddy")
    {
        return;
    }
    let caddy = Caddy::start();
    let cfg = caddy.config();
    let driver = Driver::Caddy(&cfg);
    let initial = caddy.running();
    let addr = loopback(caddy.port);
    let r = route("app-1", "app.test", backend("app"));

    let planned = driver.handle(&r).unwrap();
    let h = driver.publish(&r).unwrap();
    assert_eq!(h, planned);
    let DriverHandle::Caddy(ch) = &h else {
        panic!("{h:?}")
    };
    assert_eq!(ch.id, "wayback-app-1");
    let routes = caddy.running()["apps"]["http"]["servers"]["test"]["routes"].clone();
    assert_eq!(
        routes[0]["@id"], "wayback-app-1",
        "wayback's route must come first: {routes}"
    );
    assert_eq!(
        routes[0]["handle"][0]["upstreams"][0]["dial"],
        r.upstream.to_string()
    );

    let got = get_until(addr, "app.test", |b| b.contains("backend app"));
    assert!(
        got.contains("host=app.test") && got.contains("proto=http") && got.contains("127.0.0.1"),
        "{got}"
    );
    websocket_echo(addr, "app.test");
    get_until(addr, "foreign.test", |b| b.contains("foreign site"));

    // Publishing again (e.g. after a crash) replaces the route instead of adding a second one.
    driver.publish(&r).unwrap();
    let routes = caddy.running()["apps"]["http"]["servers"]["test"]["routes"].clone();
    let ours = routes
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["@id"] == "wayback-app-1")
        .count();
    assert_eq!((ours, routes.as_array().unwrap().len()), (1, 2), "{routes}");

    unpublish(&h).unwrap();
    assert_eq!(caddy.running(), initial, "Caddy's config is not as before");
    get_until(addr, "app.test", |b| !b.contains("backend app"));
    get_until(addr, "foreign.test", |b| b.contains("foreign site"));
    unpublish(&h).expect("unpublish of a removed route is success");
    assert_eq!(caddy.running(), initial);
}

#[test]
fn caddy_errors_name_the_problem() {
    if !require_root("caddy_errors_name_the_problem")
        || !require_tool("caddy driver", "caddy", "caddy")
    {
        return;
    }
    let caddy = Caddy::start();
    let initial = caddy.running();
    let r = route("err", "err.test", backend("err"));
    let cfg = CaddyConfig {
        server: Some("srv9".into()),
        ..caddy.config()
    };
    let e = Driver::Caddy(&cfg).publish(&r).unwrap_err().to_string();
    assert!(e.contains("\"srv9\"") && e.contains("it has: test"), "{e}");
    assert_eq!(caddy.running(), initial);

    // Nothing listens there: the error names the address, the route and what to check.
    let gone = CaddyConfig {
        admin: format!("http://127.0.0.1:{}", free_port()),
        ..CaddyConfig::default()
    };
    let e = Driver::Caddy(&gone).publish(&r).unwrap_err().to_string();
    assert!(
        e.contains(&gone.admin) && e.contains("is caddy running"),
        "{e}"
    );
    let h = Driver::Caddy(&gone).handle(&r).unwrap();
    let e = unpublish(&h).unwrap_err().to_string();
    assert!(e.contains(&gone.admin) && e.contains("wayback-err"), "{e}");

    let bad = CaddyConfig {
        admin: "https://localhost:2019".into(),
        ..CaddyConfig::default()
    };
    let e = Driver::Caddy(&bad).handle(&r).unwrap_err().to_string();
    assert!(
        e.contains("https://localhost:2019") && e.contains("[proxy.caddy]"),
        "{e}"
    );
}

#[test]
fn caddy_admin_on_a_unix_socket() {
    if !require_root("caddy_admin_on_a_unix_socket")
        || !require_tool("caddy driver", "caddy", "caddy")
    {
        return;
    }
    let caddy = Caddy::start_with(true);
    let cfg = caddy.config();
    assert!(cfg.admin.starts_with("unix//"), "{}", cfg.admin);
    let addr = loopback(caddy.port);
    let r = route("sock", "sock.test", backend("sock"));
    // The server has no `routes` key, then (after unpublish) an empty one: both take the route.
    for _ in 0..2 {
        let h = Driver::Caddy(&cfg).publish(&r).unwrap();
        get_until(addr, "sock.test", |b| b.contains("backend sock"));
        unpublish(&h).unwrap();
        get_until(addr, "sock.test", |b| !b.contains("backend sock"));
        unpublish(&h).unwrap();
    }
}

// -----------------------------------------------------------------------------------------------------
// Pre-flight: is a hostname already on the host's proxy?
// -----------------------------------------------------------------------------------------------------

fn hostname(s: &str) -> wayback_core::names::Hostname {
    wayback_core::names::Hostname::new(s).unwrap()
}

#[test]
fn nginx_host_in_use_sees_wayback_and_foreign_vhosts() {
    if !require_root("nginx_host_in_use_sees_wayback_and_foreign_vhosts")
        || !require_tool("nginx driver", "nginx", "nginx-light")
    {
        return;
    }
    let nginx = Nginx::start();
    let cfg = nginx.config();
    let driver = Driver::Nginx(&cfg);
    let before = nginx.include_contents();
    let (reloads, workers) = (nginx.reloads(), nginx.workers());
    let foreign = driver
        .host_in_use(&hostname("Foreign.TEST."))
        .unwrap()
        .expect("the admin's own site has foreign.test");
    assert_eq!(foreign.instance, None);
    assert!(foreign.place.ends_with("foreign.conf"), "{foreign}");
    assert_eq!(driver.host_in_use(&hostname("app.test")).unwrap(), None);
    nginx.assert_untouched(&before, reloads, &workers);
    let h = driver
        .publish(&route("app-1", "app.test", backend("hiu")))
        .unwrap();
    let ours = driver.host_in_use(&hostname("APP.test")).unwrap().unwrap();
    assert_eq!(ours.instance.as_deref(), Some("app-1"), "{ours}");
    unpublish(&h).unwrap();
    assert_eq!(driver.host_in_use(&hostname("app.test")).unwrap(), None);
    assert_eq!(nginx.include_contents(), before);
}

#[test]
fn caddy_host_in_use_sees_wayback_and_foreign_routes() {
    if !require_root("caddy_host_in_use_sees_wayback_and_foreign_routes")
        || !require_tool("caddy driver", "caddy", "caddy")
    {
        return;
    }
    let caddy = Caddy::start();
    let cfg = caddy.config();
    let driver = Driver::Caddy(&cfg);
    let foreign = driver
        .host_in_use(&hostname("FOREIGN.test"))
        .unwrap()
        .expect("the admin's own route has foreign.test");
    assert_eq!(foreign.instance, None);
    assert_eq!(foreign.place, "Caddy route #0 on server test");
    assert_eq!(driver.host_in_use(&hostname("app.test")).unwrap(), None);
    let h = driver
        .publish(&route("app-1", "app.test", backend("hiu")))
        .unwrap();
    let initial = caddy.running();
    let ours = driver.host_in_use(&hostname("app.test.")).unwrap().unwrap();
    assert_eq!(ours.instance.as_deref(), Some("app-1"));
    assert_eq!(ours.place, "Caddy route wayback-app-1 on server test");
    assert_eq!(caddy.running(), initial, "the check changed Caddy's config");
    unpublish(&h).unwrap();
    assert_eq!(driver.host_in_use(&hostname("app.test")).unwrap(), None);
    // No Caddy at the admin address: an error naming it, not "free".
    let gone = CaddyConfig {
        admin: format!("http://127.0.0.1:{}", free_port()),
        ..CaddyConfig::default()
    };
    let e = Driver::Caddy(&gone)
        .host_in_use(&hostname("app.test"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot reach Caddy's admin API"), "{e}");
}
