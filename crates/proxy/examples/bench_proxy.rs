//! The proxy as bench/proxy.sh runs it: `serve_http` with one route to a fixed backend address.
//!
//!     bench_proxy LISTEN BACKEND HOST [off|basic USER:PASSWORD|share] [per-core] [WORKER_THREADS]
//!
//! With `share`, prints the one-time token on stdout (the script exchanges it for the cookie, as a browser
//! would). By default one multi-threaded tokio runtime serves the listener; with `per-core`, WORKER_THREADS
//! single-threaded runtimes each serve their own `SO_REUSEPORT` listener on LISTEN (the kernel spreads the
//! connections), sharing the routes. Stops on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpSocket;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use wayback_proxy::{
    serve_http, Backend, BasicAuth, ConnectionLimit, Gate, GateConfig, MemoryGateStore,
    ProxyConfig, RouteTable, ShareLink, TcpDial, DEFAULT_MAX_CONNECTIONS,
};

fn usage() -> ! {
    eprintln!(
        "usage: bench_proxy LISTEN BACKEND HOST [off|basic USER:PASSWORD|share] [WORKER_THREADS]"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        usage();
    }
    let listen: SocketAddr = args[0].parse().unwrap_or_else(|_| usage());
    let backend: SocketAddr = args[1].parse().unwrap_or_else(|_| usage());
    let host = args[2].clone();
    let mut rest = args[3..].iter();
    let mut gate = GateConfig::default();
    let mut token = None;
    let mut threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut per_core = false;
    while let Some(a) = rest.next() {
        match a.as_str() {
            "off" => {}
            "per-core" => per_core = true,
            "basic" => {
                let cred = rest.next().unwrap_or_else(|| usage());
                let (user, pw) = cred.split_once(':').unwrap_or_else(|| usage());
                gate.basic_auth = Some(BasicAuth::new(user, pw).expect("hash password"));
            }
            "share" => {
                let (link, t) =
                    ShareLink::generate(Duration::from_secs(3600), Duration::from_secs(86_400))
                        .expect("random");
                gate.share = Some(link);
                token = Some(t);
            }
            n => threads = n.parse::<usize>().unwrap_or_else(|_| usage()),
        }
    }
    let dial = Arc::new(TcpDial(backend));
    let b = if gate.is_open() {
        Backend::new("bench", dial)
    } else {
        let g = Gate::new(gate, Arc::new(MemoryGateStore::default())).expect("gate");
        Backend::with_gate("bench", dial, g)
    };
    let routes = Arc::new(RouteTable::default());
    routes.insert(&host, b);
    let (stop_tx, stop_rx) = watch::channel(false);
    // One connection count for all runtimes; the load generator is one client, so no per-client cap.
    let cfg = ProxyConfig {
        connections: ConnectionLimit::new(DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS),
        ..ProxyConfig::default()
    };

    let runtimes = if per_core { threads } else { 1 };
    let mut workers = Vec::new();
    for _ in 0..runtimes {
        let rt = if per_core {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(threads);
            b
        }
        .enable_all()
        .build()
        .expect("tokio runtime");
        let (routes, mut stop, cfg) = (routes.clone(), stop_rx.clone(), cfg.clone());
        let listener = {
            let _guard = rt.enter();
            let sock = TcpSocket::new_v4().expect("socket");
            sock.set_reuseport(true).expect("SO_REUSEPORT");
            sock.bind(listen).expect("bind");
            sock.listen(1024).expect("listen")
        };
        workers.push(std::thread::spawn(move || {
            rt.block_on(async move {
                let shutdown = async move {
                    let _ = stop.wait_for(|v| *v).await;
                };
                serve_http(listener, routes, cfg, shutdown)
                    .await
                    .expect("serve");
            });
        }));
    }
    if let Some(t) = token {
        println!("{t}");
    }
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    signals.block_on(async {
        let mut term = signal(SignalKind::terminate()).expect("signal");
        let mut int = signal(SignalKind::interrupt()).expect("signal");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    });
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.join();
    }
}
