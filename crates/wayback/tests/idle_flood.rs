//! 20,000 idle TCP connections against the built-in proxy of a foreground `wayback up` (issue 13).
//!
//! The instance is nginx-static behind the proxy, configured with `max_connections = 19000`: close to the
//! process's 20,000-file limit, so `up` must lower it to its file budget (with a warning naming both numbers).
//! Four child processes (this test binary run again with `WBT_FLOOD` set, only the `flood_client` entry), each
//! from its own loopback address, open 5,000 connections each and send nothing. Then:
//! - the instance keeps running (`status` says running, its nspawn process is there, `up` has not exited);
//! - a client with a keep-alive connection opened before the flood is still answered (latency printed, not
//!   asserted);
//! - the connections beyond the cap got `503` or were closed, exactly the cap's worth is held, and no client
//!   address holds more than `max_connections_per_client`;
//! - the held connections are closed by the header timeout, after which new connections are served again;
//! - `down` leaves no trace.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use wayback_testsupport::*;

const FLOOD_ENV: &str = "WBT_FLOOD";
const CHILDREN: u8 = 4;
const PER_CHILD: usize = 5_000;
const MAX_CONNECTIONS: usize = 19_000;
const PER_CLIENT: usize = 4_000;
/// Short enough to watch the flood being closed, long enough to check everything while it is held.
const HEADER_TIMEOUT_S: u64 = 60;
/// How long a flood child waits, at most, for the proxy to have answered every connection.
const SETTLE_MAX: Duration = Duration::from_secs(30);
/// How long a flood child waits, at most, for the proxy to close its connections.
const CHILD_DEADLINE: Duration = Duration::from_secs(HEADER_TIMEOUT_S + 120);

// ---------------------------------------------------------------------------------------------------------
// The flood child
// ---------------------------------------------------------------------------------------------------------

/// One flood client: `WBT_FLOOD=TARGET,SOURCE_IP,COUNT`. Opens COUNT connections from SOURCE_IP without
/// sending a byte, reports what the proxy did with them (`FLOOD report …`), then waits until the proxy has
/// closed all of them (`FLOOD done …`) or its deadline passes. Does nothing in a normal test run.
#[test]
fn flood_client() {
    let Ok(spec) = std::env::var(FLOOD_ENV) else {
        return;
    };
    let mut parts = spec.split(',');
    let target: SocketAddr = parts.next().unwrap().parse().unwrap();
    let source: IpAddr = parts.next().unwrap().parse().unwrap();
    let count: usize = parts.next().unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(flood(target, source, count));
}

async fn flood(target: SocketAddr, source: IpAddr, count: usize) {
    use futures::stream::{self, StreamExt};
    let started = Instant::now();
    let results: Vec<std::io::Result<tokio::net::TcpStream>> = stream::iter(0..count)
        .map(|_| async move {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(SocketAddr::new(source, 0))?;
            keepalive(&sock)?;
            tokio::time::timeout(Duration::from_secs(10), sock.connect(target))
                .await
                .map_err(|_| std::io::Error::other("connect timed out"))?
        })
        .buffer_unordered(200)
        .collect()
        .await;
    let connected_after = started.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    let mut open: Vec<tokio::net::TcpStream> = results.into_iter().flatten().collect();
    // A connection counts as connected before the proxy has accepted it (the kernel completes the
    // handshake): wait until the proxy has answered (or not) every one, i.e. until nothing changes for 3 s.
    let (mut refused, mut closed) = (0, 0);
    let mut last_change = Instant::now();
    let settle = Instant::now();
    while last_change.elapsed() < Duration::from_secs(3) && settle.elapsed() < SETTLE_MAX {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let before = open.len();
        open.retain(|s| match peek(s) {
            Peek::Open => true,
            Peek::Refused => {
                refused += 1;
                false
            }
            Peek::Closed => {
                closed += 1;
                false
            }
        });
        if open.len() != before {
            last_change = Instant::now();
        }
    }
    println!(
        "FLOOD report source={source} opened={} failed={failed} refused={refused} closed={closed} open={} \
         connected_ms={} settled_ms={}",
        count - failed,
        open.len(),
        connected_after.as_millis(),
        settle.elapsed().as_millis()
    );
    let held = open.len();
    let report = Instant::now();
    while !open.is_empty() && started.elapsed() < CHILD_DEADLINE {
        tokio::time::sleep(Duration::from_millis(250)).await;
        open.retain(|s| matches!(peek(s), Peek::Open));
    }
    println!(
        "FLOOD done source={source} held={held} still_open={} closed_after_ms={}",
        open.len(),
        report.elapsed().as_millis()
    );
}

/// TCP keep-alive probes (no payload: the proxy still reads nothing). They matter for connections the
/// kernel completed on our side while the proxy's accept queue was full: if the server side forgot one, the
/// probe gets a reset and the connection counts as closed instead of open forever.
fn keepalive(sock: &tokio::net::TcpSocket) -> std::io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    sock.set_keepalive(true)?;
    setsockopt(sock, sockopt::TcpKeepIdle, &5)?;
    setsockopt(sock, sockopt::TcpKeepInterval, &2)?;
    setsockopt(sock, sockopt::TcpKeepCount, &3)?;
    Ok(())
}

enum Peek {
    Open,
    Refused,
    Closed,
}

/// What the proxy did with an idle connection so far (reads without waiting).
fn peek(s: &tokio::net::TcpStream) -> Peek {
    let mut buf = [0u8; 256];
    match s.try_read(&mut buf) {
        Ok(0) => Peek::Closed,
        Ok(n) if buf[..n].starts_with(b"HTTP/1.1 503 ") => Peek::Refused,
        Ok(_) => Peek::Closed,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Peek::Open,
        Err(_) => Peek::Closed,
    }
}

// ---------------------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------------------

/// Flood children, killed (ours, by PID through `Child`) if the test ends before they do.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// One `FLOOD …` line, as key=value pairs.
struct Line(Vec<(String, String)>);

impl Line {
    fn parse(line: &str) -> Line {
        Line(
            line.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
    fn num(&self, key: &str) -> usize {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {:?}", self.0))
    }
}

/// Spawn the flood children; their `FLOOD` lines arrive on the returned channel as (kind, line).
fn spawn_flood(target: SocketAddr) -> (Children, mpsc::Receiver<(String, Line)>) {
    let (tx, rx) = mpsc::channel();
    let mut children = Vec::new();
    for i in 0..CHILDREN {
        let source = format!("127.0.0.{}", 11 + i);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "flood_client", "--nocapture", "--test-threads=1"])
            .env(FLOOD_ENV, format!("{target},{source},{PER_CHILD}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a flood child");
        let out = BufReader::new(child.stdout.take().unwrap());
        let tx = tx.clone();
        thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                // libtest may print "test flood_client ... " before it on the same line.
                if let Some(rest) = line.split("FLOOD ").nth(1) {
                    let kind = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send((kind, Line::parse(rest)));
                }
            }
        });
        children.push(child);
    }
    (Children(children), rx)
}

/// `n` lines of `kind` from the children, within `timeout`.
fn collect(
    rx: &mpsc::Receiver<(String, Line)>,
    kind: &str,
    n: usize,
    timeout: Duration,
) -> Vec<Line> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((k, line)) if k == kind => got.push(line),
            Ok(_) => {}
            Err(e) => panic!(
                "{} of {n} `FLOOD {kind}` lines after {timeout:?}: {e}",
                got.len()
            ),
        }
    }
    got
}

/// A keep-alive client that sends `GET /` every 2 s on one connection until stopped; returns the latency
/// of every answered request, or the first error.
fn keep_alive_client(
    proxy: SocketAddr,
    host: String,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<Result<Vec<Duration>, String>> {
    thread::spawn(move || {
        let s = TcpStream::connect_timeout(&proxy, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        // One write per request and no Nagle delay: the latency measured is the proxy's, not the client's.
        s.set_nodelay(true).unwrap();
        let request =
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wbt-keepalive\r\n\r\n");
        let mut r = BufReader::new(s);
        let mut latencies = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let t = Instant::now();
            r.get_mut()
                .write_all(request.as_bytes())
                .map_err(|e| format!("request {}: write: {e}", latencies.len() + 1))?;
            let status = read_response(&mut r)
                .map_err(|e| format!("request {}: {e}", latencies.len() + 1))?;
            if status != 200 {
                return Err(format!("request {}: status {status}", latencies.len() + 1));
            }
            latencies.push(t.elapsed());
            for _ in 0..20 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(latencies)
    })
}

/// Read one response with a Content-Length body; returns its status.
fn read_response(r: &mut BufReader<TcpStream>) -> Result<u16, String> {
    let mut line = String::new();
    r.read_line(&mut line)
        .map_err(|e| format!("status line: {e}"))?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).map_err(|e| format!("header: {e}"))? == 0 {
            return Err("closed in the head".into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().map_err(|_| format!("bad length {v:?}"))?;
            }
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(|e| format!("body: {e}"))?;
    Ok(status)
}

/// What a brand-new connection gets: the start of the answer to a GET (empty when closed without one).
fn fresh_connection(proxy: SocketAddr, host: &str) -> String {
    let Ok(mut s) = TcpStream::connect_timeout(&proxy, Duration::from_secs(10)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Established connections on the proxy's side of `proxy`, by client address (`ss`): what the proxy holds.
/// The client's own view can count connections the kernel completed but the proxy never accepted.
fn held_by_proxy(proxy: SocketAddr) -> std::collections::BTreeMap<IpAddr, usize> {
    // By address and port: a client socket bound to 127.0.0.11 may have the proxy's port number as its own.
    let out = cmd_ok(
        "ss",
        &["-Htn", "state", "established", "src", &proxy.to_string()],
    );
    let mut by_client = std::collections::BTreeMap::new();
    for line in out.lines() {
        // Recv-Q Send-Q Local:Port Peer:Port
        let peer = line.split_whitespace().nth(3).unwrap_or_default();
        if let Ok(peer) = peer.parse::<SocketAddr>() {
            *by_client.entry(peer.ip()).or_insert(0) += 1;
        }
    }
    by_client
}

/// The cap `up` announced it uses, from its warning.
fn effective_cap(stderr: &str) -> Option<usize> {
    let at = stderr.find("using max_connections = ")? + "using max_connections = ".len();
    stderr[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn twenty_thousand_idle_connections_do_not_take_the_instance_down() {
    if !require_root("twenty_thousand_idle_connections_do_not_take_the_instance_down") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    let html = live.join("var/www/html");
    fs::create_dir_all(&html).unwrap();
    fs::write(html.join("index.html"), "<h1>still here</h1>\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");

    // Loopback is trusted by default (the host's own reverse proxy): the flood comes from loopback
    // addresses here, so trust nobody, as for clients from the network.
    let wb = Wayback::with_proxy_extra(&format!(
        "max_connections = {MAX_CONNECTIONS}\nmax_connections_per_client = {PER_CLIENT}\n\
         header_timeout = \"{HEADER_TIMEOUT_S}s\"\nidle_timeout = \"{HEADER_TIMEOUT_S}s\"\n\
         trusted_proxies = []\n"
    ));
    let name = unique("wbtflood");
    let host = format!("{name}.wbt.test");
    let proxy = wb.proxy_addr();
    let open_files = wayback_proxy::open_files_limit().unwrap();
    let budget = wayback_proxy::FdBudget::new(open_files);
    assert!(
        budget.max_connections < MAX_CONNECTIONS,
        "this test needs an open-file limit ({open_files}) that cannot hold {MAX_CONNECTIONS} connections"
    );

    {
        let mut up = wb.up_background(&[
            snap.to_str().unwrap(),
            "--name",
            &name,
            "--profile",
            "nginx-static",
            "--host",
            &host,
        ]);
        let (status, _) = HttpGet::get_retry(proxy, &host, "/", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("GET via proxy {proxy}: {e}\n{}", up.describe()));
        assert_eq!(status, 200);

        // The configured cap did not fit: one warning, naming both numbers.
        let stderr = up.stderr();
        let cap = effective_cap(&stderr)
            .unwrap_or_else(|| panic!("no max_connections warning from up:\n{stderr}"));
        println!(
            "up: {}",
            stderr
                .lines()
                .find(|l| l.contains("max_connections"))
                .unwrap()
        );
        assert_eq!(cap, budget.max_connections, "{stderr}");
        assert!(
            stderr.contains(&format!("max_connections = {MAX_CONNECTIONS}"))
                && stderr.contains(&format!("open-file limit of {open_files}")),
            "{stderr}"
        );
        assert_eq!(stderr.matches("does not fit").count(), 1, "{stderr}");

        // A client that was there before the flood.
        let stop = Arc::new(AtomicBool::new(false));
        let regular = keep_alive_client(proxy, host.clone(), stop.clone());
        thread::sleep(Duration::from_millis(500));

        let flood_started = Instant::now();
        let (children, lines) = spawn_flood(proxy);
        let reports = collect(&lines, "report", CHILDREN.into(), Duration::from_secs(90));
        let mut refused = 0;
        for r in &reports {
            let (opened, failed) = (r.num("opened"), r.num("failed"));
            let (r503, closed, open) = (r.num("refused"), r.num("closed"), r.num("open"));
            println!(
                "flood child: opened {opened}, failed {failed}, open (its view) {open}, 503 {r503}, closed \
                 without answer {closed}; connecting took {} ms, settling {} ms",
                r.num("connected_ms"),
                r.num("settled_ms")
            );
            assert_eq!(opened + failed, PER_CHILD);
            assert_eq!(open + r503 + closed, opened);
            refused += r503;
        }
        let held = held_by_proxy(proxy);
        let counted_after = flood_started.elapsed();
        let total: usize = held.values().sum();
        println!(
            "{} connections: the proxy holds {total} (cap {cap}) {held:?}; {refused} got 503",
            usize::from(CHILDREN) * PER_CHILD
        );
        assert!(
            counted_after < Duration::from_secs(HEADER_TIMEOUT_S),
            "the flood took {counted_after:?} to set up: connections may have timed out before the count"
        );
        assert_eq!(total, cap, "the proxy holds exactly its cap: {held:?}");
        for (client, n) in &held {
            assert!(*n <= PER_CLIENT, "{client} holds {n} > {PER_CLIENT}");
        }
        assert_eq!(
            held.get(&IpAddr::from([127, 0, 0, 1])),
            Some(&1),
            "the regular client"
        );
        assert!(refused > 0, "no connection beyond the cap got a 503");

        // While the flood is held: the instance runs, its container too, and `up` is still there.
        assert!(
            up.wait_exit(Duration::ZERO).is_none(),
            "up exited under the flood\n{}",
            up.describe()
        );
        let st: serde_json::Value =
            serde_json::from_str(&wb.run_ok(&["status", &name, "--json"])).unwrap();
        assert_eq!(st["state"], "running", "{st}");
        let procs = processes_with_machine(&format!("wb-{name}"));
        assert!(
            procs.iter().any(|p| p.contains("systemd-nspawn")),
            "no nspawn process for the instance: {procs:?}"
        );
        // A brand-new connection now finds the cap full.
        let fresh = fresh_connection(proxy, &host);
        println!(
            "a new connection during the flood got: {:?}",
            fresh.lines().next().unwrap_or("(closed)")
        );
        assert!(
            fresh.is_empty() || fresh.starts_with("HTTP/1.1 503"),
            "{fresh}"
        );
        assert!(
            flood_started.elapsed() < Duration::from_secs(HEADER_TIMEOUT_S),
            "the checks ended {:?} after the flood began: its connections may have timed out meanwhile",
            flood_started.elapsed()
        );

        // The header timeout closes the flood; then new connections are served again.
        let done = collect(&lines, "done", CHILDREN.into(), CHILD_DEADLINE);
        for d in &done {
            println!(
                "flood child: {} held connections closed by the proxy after {} ms",
                d.num("held"),
                d.num("closed_after_ms")
            );
            assert_eq!(d.num("still_open"), 0, "connections never closed");
        }
        drop(children);
        let (status, body) =
            HttpGet::get_retry(proxy, &host, "/", Duration::from_secs(10)).unwrap();
        assert_eq!((status, body.as_str()), (200, "<h1>still here</h1>\n"));

        stop.store(true, Ordering::SeqCst);
        let latencies = regular
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("the regular client failed during the flood: {e}"));
        let max = latencies.iter().max().copied().unwrap_or_default();
        println!(
            "regular client: {} requests during the flood, all 200; latency max {max:?}, all {latencies:?}",
            latencies.len()
        );
        assert!(latencies.len() >= 3, "{latencies:?}");

        assert!(up.wait_exit(Duration::ZERO).is_none(), "{}", up.describe());
        let out = wb.run(&["down", &name]);
        assert!(out.status.success(), "`down {name}` failed\n{}", show(&out));
        let status = up.wait_exit(Duration::from_secs(60));
        assert!(
            status.is_some_and(|s| s.success()),
            "up must exit 0 after down (got {status:?})\n{}",
            up.describe()
        );
    }
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
