//! Out of file descriptors: `accept` fails with `EMFILE`; the proxy neither spins nor exits, and serves
//! again once descriptors are free.
//!
//! The proxy runs in a child process (this test binary run again with `WBT_PROXY_EMFILE_CHILD` set, only the
//! `emfile_child` entry) whose `RLIMIT_NOFILE` is lowered, so the limit affects no other test.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::net::TcpStream;
use wayback_proxy::{serve_http, ConnectionLimit, ProxyConfig, RouteTable};

const CHILD_ENV: &str = "WBT_PROXY_EMFILE_CHILD";
/// The child's open-file limit: room for the runtime and a few dozen connections.
const CHILD_FILES: u64 = 64;
/// Idle connections the parent opens: about twice what the child can accept (and within the backlog).
const CLIENTS: usize = 120;

/// The child: serve `app.test` (routed to the backend named in the environment) with a cap far above what
/// its open-file limit allows, until stdin closes. Does nothing in a normal test run.
#[test]
fn emfile_child() {
    let Ok(backend) = std::env::var(CHILD_ENV) else {
        return;
    };
    let backend: SocketAddr = backend.parse().unwrap();
    let lim = libc::rlimit {
        rlim_cur: CHILD_FILES,
        rlim_max: CHILD_FILES,
    };
    // SAFETY: setrlimit reads one valid `rlimit`; lowering the limit of this child process is its purpose.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let l = listener().await;
        println!("LISTEN {}", l.local_addr().unwrap());
        let routes = Arc::new(RouteTable::default());
        routes.insert(
            "app.test",
            wayback_proxy::Backend::new("app", Arc::new(wayback_proxy::TcpDial(backend))),
        );
        let cfg = ProxyConfig {
            connections: ConnectionLimit::new(100_000, 100_000),
            ..ProxyConfig::default()
        };
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| {
                let _ = std::io::stdin().read_to_end(&mut Vec::new());
            })
            .await;
        };
        serve_http(l, routes, cfg, stdin_closed).await.unwrap();
    });
}

/// Our child, killed (by PID, through `Child`) if the test fails before it exits.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// utime + stime of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_neither_spins_nor_exits() {
    let backend = fixed_backend("hello").await;
    let mut child = ChildGuard(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "emfile_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, backend.addr.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    // Read the child's stdout to its end (libtest fails when it cannot write), picking out the address.
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            // libtest may have printed "test emfile_child ... " before it on the same line.
            if let Some(a) = line.split("LISTEN ").nth(1) {
                let _ = tx.send(a.trim().parse::<SocketAddr>().unwrap());
            }
        }
    });
    let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(LIMIT))
        .await
        .unwrap()
        .expect("the child prints its address");
    let mut stderr = child.0.stderr.take().unwrap();
    let stderr = tokio::task::spawn_blocking(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    // Far more idle connections than the child has descriptors: it runs out while accepting them.
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(within(TcpStream::connect(addr)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (t0, c0) = (Instant::now(), cpu_ticks(pid));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (wall, ticks) = (t0.elapsed(), cpu_ticks(pid) - c0);
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let cpu = Duration::from_millis(ticks * 1000 / hz);
    println!("out of descriptors: the proxy used {cpu:?} of CPU in {wall:?}");
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the proxy exited when it ran out of descriptors"
    );
    // A spinning accept loop would keep a core busy for the whole window; this one pauses (up to 1 s).
    assert!(
        cpu < wall / 2,
        "the accept loop spins: {cpu:?} of CPU in {wall:?}"
    );

    // Descriptors free again: requests are served.
    drop(clients);
    let ok = within(async {
        loop {
            if let Ok(s) = TcpStream::connect(addr).await {
                drop(s);
                let proxy_url = format!("http://{addr}/");
                let req = hyper::Request::get(proxy_url)
                    .header("host", "app.test")
                    .body(full(""))
                    .unwrap();
                if let Ok(resp) = client().request(req).await {
                    if resp.status() == 200 {
                        return true;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(ok);

    drop(child.0.stdin.take());
    let status = within(async {
        loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let log = within(stderr).await.unwrap();
    assert!(status.success(), "child: {status}\n{log}");
    let failures = log.matches("accept failed").count();
    println!("{failures} accept-failure log line(s)");
    assert!(
        failures >= 1,
        "the child never ran out of descriptors:\n{log}"
    );
    assert!(
        failures <= 3,
        "accept failures are not throttled in the log:\n{log}"
    );
}
