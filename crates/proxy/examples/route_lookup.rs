//! Routing cost with many routes vs one (issue 18): times the proxy's per-request host lookup — a server's
//! [`RouteCache`] in front of a [`RouteTable`], as `serve_http` does it, and the table alone — with 1 route
//! and with N routes, in alternating batches so that load on a shared machine hits both alike.
//!
//!     cargo run --release -p wayback-proxy --example route_lookup [N] [ROUNDS]    # defaults: 200, 21
//!
//! Prints ns per lookup (median over the rounds) for each case and the ratio N routes / 1 route.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use wayback_proxy::{Backend, Resolve, RouteCache, RouteTable, TcpDial};

const LOOKUPS: usize = 200_000;

/// A case: its name, one lookup (true when found), and the hosts it cycles through.
type Case<'a> = (&'a str, &'a dyn Fn(&str) -> bool, &'a [String]);

fn table(routes: usize) -> (RouteTable, Vec<String>) {
    let t = RouteTable::default();
    let dial = Arc::new(TcpDial(([127, 0, 0, 1], 9).into()));
    let hosts: Vec<String> = (0..routes)
        .map(|i| format!("instance-{i:03}.wayback.example.org"))
        .collect();
    for (i, h) in hosts.iter().enumerate() {
        t.insert(h, Backend::new(format!("i{i}"), dial.clone()));
    }
    (t, hosts)
}

/// ns per lookup over `LOOKUPS` lookups cycling through `hosts`.
fn time(lookup: &dyn Fn(&str) -> bool, hosts: &[String]) -> f64 {
    let start = Instant::now();
    let mut found = 0usize;
    for i in 0..LOOKUPS {
        found += usize::from(lookup(black_box(&hosts[i % hosts.len()])));
    }
    assert_eq!(found, LOOKUPS);
    start.elapsed().as_nanos() as f64 / LOOKUPS as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(200, |a| a.parse().expect("N"));
    let rounds: usize = args.next().map_or(21, |a| a.parse().expect("ROUNDS"));
    let (one, one_hosts) = table(1);
    let (many, many_hosts) = table(n);
    let (c1, cn) = (RouteCache::default(), RouteCache::default());
    // Every request of a benchmark asks for one host; with N routes, each lookup asks for another one.
    let cases: [Case<'_>; 4] = [
        (
            "cache, 1 route",
            &|h| c1.resolve(&one, h).is_some(),
            &one_hosts,
        ),
        (
            "cache, N routes",
            &|h| cn.resolve(&many, h).is_some(),
            &many_hosts,
        ),
        ("table, 1 route", &|h| one.resolve(h).is_some(), &one_hosts),
        (
            "table, N routes",
            &|h| many.resolve(h).is_some(),
            &many_hosts,
        ),
    ];
    let mut times = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (i, (_, f, hosts)) in cases.iter().enumerate() {
            times[i].push(time(*f, hosts));
        }
    }
    let medians: Vec<f64> = times.into_iter().map(median).collect();
    println!("routing lookup, N = {n}, median of {rounds} rounds of {LOOKUPS} lookups:");
    for (i, (name, _, _)) in cases.iter().enumerate() {
        println!("  {name:<16} {:7.1} ns", medians[i]);
    }
    println!(
        "  N routes / 1 route: cache {:.3}x, table {:.3}x",
        medians[1] / medians[0],
        medians[3] / medians[2]
    );
}
