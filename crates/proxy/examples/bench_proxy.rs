//! The proxy as bench/proxy.sh runs it: `serve_http` with one route to a fixed backend address.
//!
//!     bench_proxy LISTEN BACKEND HOST [off|basic USER:PASSWORD|share] [multi] [WORKERS]
//!
//! With `share`, prints the one-time token on stdout (the script exchanges it for the cookie, as a browser
//! would). By default the proxy runs as wayback runs it: WORKERS (default: one per core) single-threaded
//! runtimes, each serving its own `SO_REUSEPORT` listener on LISTEN (`bind_listeners`, `run_per_core`);
//! with `multi`, one multi-threaded tokio runtime with WORKERS threads serves one listener (the model before
//! issue 18, for comparison). Stops on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use wayback_proxy::{
    bind_listeners, run_per_core, serve_http, tokio_listener, worker_count, Backend, BasicAuth,
    ConnectionLimit, Gate, GateConfig, MemoryGateStore, ProxyConfig, RouteTable, ShareLink,
    TcpDial, DEFAULT_MAX_CONNECTIONS,
};

fn usage() -> ! {
    eprintln!(
        "usage: bench_proxy LISTEN BACKEND HOST [off|basic USER:PASSWORD|share] [multi] [WORKERS]"
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
    let mut threads = worker_count();
    let mut multi = false;
    while let Some(a) = rest.next() {
        match a.as_str() {
            "off" | "per-core" => {}
            "multi" => multi = true,
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
    // One connection count for all workers; the load generator is one client, so no per-client cap.
    let cfg = ProxyConfig {
        connections: ConnectionLimit::new(DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS),
        ..ProxyConfig::default()
    };
    let listeners = bind_listeners(listen, 4096, if multi { 1 } else { threads }).expect("bind");
    let serve = move |_, l| {
        let (routes, mut stop, cfg) = (routes.clone(), stop_rx.clone(), cfg.clone());
        async move {
            let shutdown = async move {
                let _ = stop.wait_for(|v| *v).await;
            };
            serve_http(tokio_listener(l)?, routes, cfg, shutdown).await
        }
    };
    let mut rt = if multi {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let rt = rt.enable_all().build().expect("tokio runtime");
    if let Some(t) = token {
        println!("{t}");
    }
    rt.block_on(async move {
        let served = async move {
            if multi {
                let l = listeners.into_iter().next().expect("one listener");
                serve(0, l).await
            } else {
                run_per_core(listeners, serve).await
            }
        };
        let mut term = signal(SignalKind::terminate()).expect("signal");
        let mut int = signal(SignalKind::interrupt()).expect("signal");
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = stop_tx.send(true);
        };
        let (r, ()) = tokio::join!(served, stop);
        r.expect("serve");
    });
}
