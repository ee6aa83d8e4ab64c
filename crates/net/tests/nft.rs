//! The nftables quarantine: golden tests of the generated ruleset and of `--allow-egress` parsing (no
//! privileges), and privileged tests that build real instances (netns + veth) and prove from *inside*
//! one what it can and cannot reach. Privileged tests skip with a message unless root (and fail under
//! CI=true when not root). Every name starts with `wbtq<pid>c<n>-`; the tests only ever remove their own
//! instance chains from the shared `table inet wayback-quarantine`, and delete the table only when it holds no
//! instance at all, so wayback instances running on the machine at the same time are left alone.

mod common;

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{ip_in, residue, run};
use ipnet::Ipv4Net;
use nix::sched::{setns, CloneFlags};
use wayback_core::egress::EgressError;
use wayback_net::nft::{self, Egress, NftLayout, Proto, Quarantine};
use wayback_net::{netns, veth, NetError, VethSpec};

// ---------------------------------------------------------------------------------------------------
// Pure tests

fn demo(allow: &[&str]) -> Quarantine {
    Quarantine {
        instance: "demo".into(),
        host_if: "wb-demo".into(),
        allow: allow.iter().map(|a| a.parse().unwrap()).collect(),
    }
}

#[test]
fn ruleset_without_holes() {
    insta::assert_json_snapshot!(nft::ruleset(&demo(&[])));
}

#[test]
fn ruleset_with_tcp_udp_and_ipv6_holes() {
    let q = demo(&["10.213.0.1:8080", "udp:10.213.0.1:53", "[2001:db8::1]:443"]);
    insta::assert_json_snapshot!(nft::ruleset(&q));
}

#[test]
fn egress_parses_the_documented_forms() {
    let cases: [(&str, Proto, &str, u16); 7] = [
        ("10.0.0.5:443", Proto::Tcp, "10.0.0.5", 443),
        ("UDP:10.0.0.5:53", Proto::Udp, "10.0.0.5", 53),
        ("[2001:db8::1]:443", Proto::Tcp, "2001:db8::1", 443),
        ("udp:10.0.0.5:53", Proto::Udp, "10.0.0.5", 53),
        ("tcp:10.0.0.5:22", Proto::Tcp, "10.0.0.5", 22),
        ("udp:[fd00::53]:53", Proto::Udp, "fd00::53", 53),
        // IPv4-mapped IPv6 is the IPv4 address: that is what the packets carry.
        ("[::ffff:10.0.0.7]:80", Proto::Tcp, "10.0.0.7", 80),
    ];
    for (text, proto, addr, port) in cases {
        let e: Egress = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        let want = Egress {
            proto,
            addr: addr.parse().unwrap(),
            port,
        };
        assert_eq!(e, want, "{text}");
        // Display gives the canonical form, which parses back to the same hole.
        assert_eq!(e.to_string().parse::<Egress>().unwrap(), e, "{text}");
    }
    assert_eq!(
        "[2001:db8::1]:443".parse::<Egress>().unwrap().to_string(),
        "tcp:[2001:db8::1]:443"
    );
}

#[test]
fn egress_errors_name_the_input() {
    let cases = [
        ("example.com:443", "IP address literal"),
        ("10.0.0.5", "not an address with a port"),
        ("10.0.0.5:0", "port 0"),
        ("10.0.0.5:65536", "not an address with a port"),
        ("2001:db8::1:443", "not an address with a port"),
        ("sctp:10.0.0.5:9", "tcp: or udp:"),
        ("localhost:80", "not a name"),
        ("dead:beef::1:443", "not an address with a port"),
        ("udp:", "not an address with a port"),
        ("0.0.0.0:80", "unspecified"),
        ("[fe80::1%2]:80", "scoped"),
        ("", "not an address with a port"),
    ];
    for (text, why) in cases {
        let err = text.parse::<Egress>().unwrap_err();
        assert!(
            matches!(err, EgressError { ref input, .. } if input == text),
            "{text:?}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&format!("{text:?}")), "{msg}");
        assert!(msg.contains(why), "{text:?}: {msg}");
    }
}

// ---------------------------------------------------------------------------------------------------
// Privileged fixture

/// Serialises the privileged tests of this file (they look at the whole shared table).
static SERIAL: Mutex<()> = Mutex::new(());
static COUNTER: AtomicU32 = AtomicU32::new(0);

fn privileged(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: CI=true but not root; the nftables tests must run as root in CI");
    }
    eprintln!("skipping {test}: needs root (nftables, network namespaces, veth)");
    false
}

/// One end of the test topology: a namespace with a veth to the host.
struct Node {
    ns: PathBuf,
    host_if: String,
    host: Ipv4Addr,
    peer: Ipv4Addr,
}

impl Node {
    fn block(&self) -> String {
        Ipv4Net::new(self.peer, 30).unwrap().trunc().to_string()
    }
}

/// Owns the namespaces, links and instance chains of one test; removes them on drop.
struct Fixture {
    prefix: String,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    nodes: Vec<(PathBuf, String)>,
    instances: Vec<String>,
    rt: tokio::runtime::Runtime,
}

impl Fixture {
    fn new() -> Fixture {
        let serial = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("wbtq{}c{serial}-", std::process::id() % 100_000);
        let dir = tempfile::Builder::new().prefix(&prefix).tempdir().unwrap();
        let dir_path = dir.path().join("netns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Fixture {
            prefix,
            dir: Some(dir),
            dir_path,
            nodes: Vec::new(),
            instances: Vec::new(),
            rt,
        }
    }

    fn name(&self, tag: &str) -> String {
        let n = format!("{}{tag}", self.prefix);
        assert!(n.len() <= 15, "{n}");
        n
    }

    /// A namespace with `lo` up and a veth `<prefix><tag>` (host) / `host0` (inside) on a free /30.
    fn node(&mut self, tag: &str) -> Node {
        let name = self.name(tag);
        let (host, peer) = self.free_block();
        let ns = netns::create(&self.dir_path, &name).unwrap();
        self.nodes.push((ns.clone(), name.clone()));
        let spec = VethSpec {
            host_if: name.clone(),
            peer_if: "host0".into(),
            host_addr: host,
            peer_addr: peer,
            prefix_len: 30,
            netns_path: ns.clone(),
        };
        self.rt.block_on(veth::create(&spec)).unwrap();
        Node {
            ns,
            host_if: name,
            host,
            peer,
        }
    }

    /// A 10.213.250.0/30-style block (10.213.250.0 – 10.213.255.255) that nothing on the host uses.
    fn free_block(&self) -> (Ipv4Addr, Ipv4Addr) {
        let taken = self.rt.block_on(veth::host_ipv4_prefixes()).unwrap();
        let base = u32::from(Ipv4Addr::new(10, 213, 250, 0));
        let blocks = 6 * 256 / 4;
        let start = std::process::id() % blocks;
        for i in 0..blocks {
            let net = base + ((start + i) % blocks) * 4;
            let block = Ipv4Net::new(Ipv4Addr::from(net), 30).unwrap();
            let clash = (taken.iter())
                .any(|t| t.contains(&block.network()) || block.contains(&t.network()));
            if !clash {
                return (Ipv4Addr::from(net + 1), Ipv4Addr::from(net + 2));
            }
        }
        panic!("no free /30 in 10.213.250.0/23");
    }

    fn quarantine(&mut self, node: &Node, allow: Vec<Egress>) -> Quarantine {
        let q = Quarantine {
            instance: node.host_if.clone(),
            host_if: node.host_if.clone(),
            allow,
        };
        if !self.instances.contains(&q.instance) {
            self.instances.push(q.instance.clone());
        }
        nft::apply(&q).unwrap();
        q
    }

    /// Remove everything; return what is left behind (links, netns, mounts, files, nft lines).
    fn teardown(&mut self) -> Vec<String> {
        let mut left = Vec::new();
        for i in self.instances.drain(..) {
            if let Err(e) = nft::remove(&i, &i, NftLayout::VerdictMap) {
                left.push(format!("nft::remove({i}): {e:#}"));
            }
        }
        for (ns, link) in self.nodes.drain(..) {
            let _ = self.rt.block_on(veth::delete(&link));
            let _ = netns::delete(&ns);
        }
        let _ = nix::mount::umount2(&self.dir_path, nix::mount::MntFlags::MNT_DETACH);
        left.extend(residue(&self.prefix, &self.dir_path));
        left.extend(nft_lines_with(&self.prefix));
        if let Some(dir) = self.dir.take() {
            if let Err(e) = dir.close() {
                left.push(format!("tempdir: {e}"));
            }
        }
        left
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let left = self.teardown();
        if !left.is_empty() {
            eprintln!("fixture {} left residue: {left:?}", self.prefix);
        }
    }
}

/// Lines of `nft list ruleset` that mention `needle`.
fn nft_lines_with(needle: &str) -> Vec<String> {
    (run("nft", &["list", "ruleset"]).lines())
        .filter(|l| l.contains(needle))
        .map(|l| format!("nft: {}", l.trim()))
        .collect()
}

/// Run `f` on a thread that has entered the network namespace at `ns`.
fn in_ns<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(File::open(ns).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

/// A server thread (TCP echo or UDP echo) that stops when dropped.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Echo one message per accepted connection until dropped.
fn tcp_echo(listener: TcpListener) -> Server {
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                    let mut buf = [0u8; 512];
                    if let Ok(n) = s.read(&mut buf) {
                        let _ = s.write_all(&buf[..n]);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Server {
        stop,
        thread: Some(thread),
    }
}

/// Answer every datagram with itself until dropped.
fn udp_echo(sock: UdpSocket) -> Server {
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !flag.load(Ordering::SeqCst) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(&buf[..n], from);
            }
        }
    });
    Server {
        stop,
        thread: Some(thread),
    }
}

/// Connect to `to` and exchange one message.
fn tcp_roundtrip(to: SocketAddr) -> io::Result<()> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"ping")?;
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf)?;
    assert_eq!(&buf, b"ping");
    Ok(())
}

/// A DNS query for `example.invalid. A` (what a resolver would send).
const DNS_QUERY: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\
\x07example\x07invalid\x00\x00\x01\x00\x01";

/// Send a DNS query to `to` over a connected UDP socket, wait up to 3 s for an answer.
fn dns_query(to: SocketAddr) -> io::Result<()> {
    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    s.connect(to)?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.send(DNS_QUERY)?;
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf)?;
    assert_eq!(&buf[..n], DNS_QUERY);
    Ok(())
}

/// Run `attempt` inside `ns`; return its result and how long it took.
fn timed(ns: &Path, attempt: impl FnOnce() -> io::Result<()> + Send) -> (io::Result<()>, Duration) {
    in_ns(ns, || {
        let t = Instant::now();
        (attempt(), t.elapsed())
    })
}

#[track_caller]
fn must_pass(what: &str, (r, took): (io::Result<()>, Duration)) {
    eprintln!("  {what:<50} ok       {took:>10.2?}");
    if let Err(e) = r {
        panic!("{what}: expected to work, failed: {e}");
    }
}

/// Must fail, fast (a reject, not a timeout): returns the error.
#[track_caller]
fn must_fail(what: &str, r: (io::Result<()>, Duration)) -> io::Error {
    must_fail_within(what, r, Duration::from_secs(1))
}

/// Must fail within `limit`: returns the error.
#[track_caller]
fn must_fail_within(
    what: &str,
    (r, took): (io::Result<()>, Duration),
    limit: Duration,
) -> io::Error {
    let e = match r {
        Ok(()) => panic!("{what}: expected to fail, but it worked"),
        Err(e) => e,
    };
    eprintln!(
        "  {what:<50} {:<8} {took:>10.2?}",
        format!("{:?}", e.kind())
    );
    assert!(took < limit, "{what}: took {took:?} ({e})");
    e
}

/// The (non-tentative) fe80:: address of interface `ifname` in the calling thread's namespace.
fn link_local(ifname: &str) -> Ipv6Addr {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = run(
            "ip",
            &["-6", "-o", "addr", "show", "dev", ifname, "scope", "link"],
        );
        let addr = (out.lines())
            .filter(|l| !l.contains("tentative"))
            .find_map(|l| l.split_whitespace().skip_while(|w| *w != "inet6").nth(1))
            .map(|a| a.split('/').next().unwrap().parse().unwrap());
        match addr {
            Some(a) => return a,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            None => panic!("no usable link-local address on {ifname}: {out}"),
        }
    }
}

fn enable_forwarding(ifname: &str) {
    std::fs::write(format!("/proc/sys/net/ipv4/conf/{ifname}/forwarding"), "1").unwrap();
}

/// How many ways the base chains lead to `wb-<instance>`: per base chain, its rules that jump there
/// directly plus, per `vmap @instances` rule in it, the map's elements that do (so 2 for an instance
/// quarantined once on both hooks). Also asserts the base chains hold nothing else.
fn jump_rules(instance: &str) -> usize {
    let target = format!("wb-{instance}");
    let json: serde_json::Value =
        serde_json::from_str(&run("nft", &["-j", "list", "table", "inet", nft::TABLE])).unwrap();
    let objects = json["nftables"].as_array().unwrap();
    let map_hits = (objects.iter())
        .filter(|o| o["map"]["name"] == "instances")
        .flat_map(|o| o["map"]["elem"].as_array().cloned().unwrap_or_default())
        .filter(|e| e[1]["jump"]["target"] == target.as_str())
        .count();
    let mut paths = 0;
    for base in ["quarantine-input", "quarantine-forward"] {
        let rules: Vec<&serde_json::Value> = (objects.iter())
            .filter(|o| o["rule"]["chain"] == base)
            .map(|o| &o["rule"]["expr"])
            .collect();
        assert_eq!(
            rules.len(),
            1,
            "{base} must hold exactly its lookup rule: {rules:?}"
        );
        let expr = &rules[0][0];
        assert_eq!(expr["vmap"]["data"], "@instances", "{base}: {expr}");
        paths += map_hits;
    }
    paths
}

// ---------------------------------------------------------------------------------------------------
// Privileged tests

/// A TCP connect to the host's fe80:: address is refused with ICMPv6 (see `refuse` in the ruleset), and
/// the kernel only acts on that error for the retransmitted SYN, 1 s later: the first error arrives
/// while connect() still holds the socket and is recorded as a soft error.
const LL_LIMIT: Duration = Duration::from_millis(1500);

#[test]
fn quarantined_instance_can_open_nothing_but_its_holes() {
    if !privileged("quarantined_instance_can_open_nothing_but_its_holes") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut fx = Fixture::new();
    // a: the instance under test; b: another instance; o: a namespace standing for the outside world.
    let a = fx.node("a");
    let b = fx.node("b");
    let o = fx.node("o");
    // Routes that make every attempt meaningful (without them the instance gets ENETUNREACH at once),
    // and forwarding on these three test links only (the global ip_forward is left as it is).
    ip_in(
        &a.ns,
        &["route", "add", &b.block(), "via", &a.host.to_string()],
    );
    ip_in(
        &a.ns,
        &["route", "add", &o.block(), "via", &a.host.to_string()],
    );
    ip_in(
        &b.ns,
        &["route", "add", &a.block(), "via", &b.host.to_string()],
    );
    ip_in(
        &o.ns,
        &["route", "add", &a.block(), "via", &o.host.to_string()],
    );
    for n in [&a, &b, &o] {
        enable_forwarding(&n.host_if);
    }

    // Listeners: on the host (veth address, a second port, [::] for fe80::, UDP 53), in b, in o, in a.
    let bind = |ip: IpAddr| TcpListener::bind((ip, 0)).unwrap();
    let (host_v4, host_v4b, host_b) = (
        bind(a.host.into()),
        bind(a.host.into()),
        bind(b.host.into()),
    );
    let v6 = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).unwrap();
    v6.set_only_v6(true).unwrap();
    v6.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())
        .unwrap();
    v6.listen(16).unwrap();
    let host_v6: TcpListener = v6.into();
    let dns = UdpSocket::bind((a.host, 53)).expect("bind UDP port 53 on the host veth address");
    let in_b = in_ns(&b.ns, || bind(b.peer.into()));
    let in_o = in_ns(&o.ns, || bind(o.peer.into()));
    let in_a = in_ns(&a.ns, || bind(a.peer.into()));

    let port = |l: &TcpListener| l.local_addr().unwrap().port();
    let host_ll = link_local(&a.host_if);
    let scope = in_ns(&a.ns, || {
        link_local("host0");
        nix::net::if_::if_nametoindex("host0").unwrap()
    });
    let to_host = SocketAddr::from((a.host, port(&host_v4)));
    let to_host_2 = SocketAddr::from((a.host, port(&host_v4b)));
    let to_host_b = SocketAddr::from((b.host, port(&host_b)));
    let to_host_ll = SocketAddr::V6(SocketAddrV6::new(host_ll, port(&host_v6), 0, scope));
    let to_b = SocketAddr::from((b.peer, port(&in_b)));
    let to_o = SocketAddr::from((o.peer, port(&in_o)));
    let to_a = SocketAddr::from((a.peer, port(&in_a)));
    let to_dns = SocketAddr::from((a.host, 53));
    let servers = [
        tcp_echo(host_v4),
        tcp_echo(host_v4b),
        tcp_echo(host_b),
        tcp_echo(host_v6),
        udp_echo(dns),
        tcp_echo(in_b),
        tcp_echo(in_o),
        tcp_echo(in_a),
    ];

    let host_v4_s = format!("host veth {to_host}");
    let host_2_s = format!("host veth {to_host_2}");
    let host_b_s = format!("host, b's veth {to_host_b}");
    let host_ll_s = format!("host fe80 [{host_ll}%host0]:{}", to_host_ll.port());
    let b_s = format!("instance b {to_b}");
    let o_s = format!("outside {to_o}");
    let dns_s = format!("DNS query to {to_dns}");
    let a_s = format!("host -> instance {to_a}");
    let everything_from_a = |expect_ok: bool| {
        let check_within = |what: &str, r, limit| {
            if expect_ok {
                must_pass(what, r);
            } else {
                must_fail_within(what, r, limit);
            }
        };
        let check = |what: &str, r| check_within(what, r, Duration::from_secs(1));
        check(&host_v4_s, timed(&a.ns, || tcp_roundtrip(to_host)));
        check(&host_2_s, timed(&a.ns, || tcp_roundtrip(to_host_2)));
        check(&host_b_s, timed(&a.ns, || tcp_roundtrip(to_host_b)));
        check_within(
            &host_ll_s,
            timed(&a.ns, || tcp_roundtrip(to_host_ll)),
            LL_LIMIT,
        );
        check(&b_s, timed(&a.ns, || tcp_roundtrip(to_b)));
        check(&o_s, timed(&a.ns, || tcp_roundtrip(to_o)));
        check(&dns_s, timed(&a.ns, || dns_query(to_dns)));
    };
    let from_host = || {
        let t = Instant::now();
        (tcp_roundtrip(to_a), t.elapsed())
    };

    eprintln!("control, no quarantine: everything from inside a works");
    everything_from_a(true);
    must_pass(&a_s, from_host());

    eprintln!("a and b quarantined: nothing from inside a works, the host still reaches a");
    let t = Instant::now();
    fx.quarantine(&a, vec![]);
    let first_apply = t.elapsed();
    fx.quarantine(&b, vec![]);
    eprintln!(
        "  (nft::apply took {first_apply:?}, a second instance {:?})",
        t.elapsed() - first_apply
    );
    everything_from_a(false);
    must_pass(&a_s, from_host());
    must_pass(&a_s, from_host());
    let e = must_fail(&dns_s, timed(&a.ns, || dns_query(to_dns)));
    assert_ne!(
        e.kind(),
        io::ErrorKind::WouldBlock,
        "DNS must be rejected, not dropped"
    );
    assert_eq!(jump_rules(&a.host_if), 2);

    eprintln!("a with holes for {to_host} (tcp) and {to_dns} (udp): exactly those work");
    let holes: Vec<Egress> = vec![
        format!("{to_host}").parse().unwrap(),
        format!("udp:{to_dns}").parse().unwrap(),
    ];
    fx.quarantine(&a, holes);
    assert_eq!(
        jump_rules(&a.host_if),
        2,
        "re-apply must not add jump rules"
    );
    must_pass(&host_v4_s, timed(&a.ns, || tcp_roundtrip(to_host)));
    must_pass(&dns_s, timed(&a.ns, || dns_query(to_dns)));
    must_fail(&host_2_s, timed(&a.ns, || tcp_roundtrip(to_host_2)));
    must_fail(&host_b_s, timed(&a.ns, || tcp_roundtrip(to_host_b)));
    must_fail_within(
        &host_ll_s,
        timed(&a.ns, || tcp_roundtrip(to_host_ll)),
        LL_LIMIT,
    );
    must_fail(&b_s, timed(&a.ns, || tcp_roundtrip(to_b)));
    must_fail(&o_s, timed(&a.ns, || tcp_roundtrip(to_o)));
    must_pass(&a_s, from_host());

    eprintln!("a re-applied without holes: closed again");
    fx.quarantine(&a, vec![]);
    assert_eq!(jump_rules(&a.host_if), 2);
    everything_from_a(false);

    eprintln!("removed: no trace in nftables, and a reaches the host again");
    let t = Instant::now();
    nft::remove(&a.host_if, &a.host_if, NftLayout::VerdictMap).unwrap();
    let first_remove = t.elapsed();
    nft::remove(&b.host_if, &b.host_if, NftLayout::VerdictMap).unwrap();
    eprintln!(
        "  (nft::remove took {first_remove:?}, the last one {:?})",
        t.elapsed() - first_remove
    );
    nft::remove(&a.host_if, &a.host_if, NftLayout::VerdictMap).unwrap();
    assert_eq!(nft_lines_with(&fx.prefix), Vec::<String>::new());
    let left = nft::instances_in_ruleset().unwrap();
    assert!(!left.iter().any(|i| i.starts_with(&fx.prefix)), "{left:?}");
    must_pass(&host_v4_s, timed(&a.ns, || tcp_roundtrip(to_host)));
    table_gone_unless_in_use();

    drop(servers);
    let residue = fx.teardown();
    assert!(residue.is_empty(), "residue: {residue:#?}");
}

/// With no instance chain left (ours are removed), `remove` has deleted the table; `remove_table` is
/// then a no-op. Tolerates wayback instances that other processes run at the same time.
fn table_gone_unless_in_use() {
    if !nft::instances_in_ruleset().unwrap().is_empty() {
        eprintln!("other wayback instances are running; the table stays");
        return;
    }
    let tables = run("nft", &["list", "tables"]);
    let present = (tables.lines())
        .any(|l| ["table inet wayback", "table inet wayback-quarantine"].contains(&l.trim()));
    assert!(
        !present || !nft::instances_in_ruleset().unwrap().is_empty(),
        "the table outlived its last instance"
    );
    nft::remove_table().unwrap();
    nft::remove_table().unwrap();
}

#[test]
fn concurrent_applies_and_removes_never_clobber_each_other() {
    if !privileged("concurrent_applies_and_removes_never_clobber_each_other") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut fx = Fixture::new();
    let names: Vec<String> = (0..4).map(|i| fx.name(&format!("t{i}"))).collect();
    fx.instances.extend(names.iter().cloned());
    let rounds = 12;
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for (i, name) in names.iter().enumerate() {
            s.spawn(move || {
                let hole = format!("10.213.250.{}:80", i + 1).parse().unwrap();
                for round in 0..rounds {
                    let q = Quarantine {
                        instance: name.clone(),
                        host_if: name.clone(),
                        allow: if round % 2 == 0 { vec![] } else { vec![hole] },
                    };
                    nft::apply(&q).unwrap();
                    if round % 3 == 0 {
                        nft::apply(&q).unwrap();
                    }
                    // Whatever the others did meanwhile, ours is there, exactly once.
                    assert!(
                        nft::instances_in_ruleset().unwrap().contains(name),
                        "{name}"
                    );
                    assert_eq!(jump_rules(name), 2, "{name} round {round}");
                    nft::remove(name, name, NftLayout::VerdictMap).unwrap();
                    assert!(!nft::instances_in_ruleset().unwrap().contains(name));
                }
            });
        }
    });
    eprintln!(
        "{} threads x {rounds} rounds of apply/check/remove took {:?}",
        names.len(),
        t0.elapsed()
    );
    assert_eq!(nft_lines_with(&fx.prefix), Vec::<String>::new());
    table_gone_unless_in_use();
    let residue = fx.teardown();
    assert!(residue.is_empty(), "residue: {residue:#?}");
}

#[test]
fn bad_names_are_refused_before_nft_runs() {
    let q = Quarantine {
        instance: "Bad_Name".into(),
        host_if: "wb-x".into(),
        allow: vec![],
    };
    let e = nft::apply(&q).unwrap_err();
    assert!(
        matches!(e, NetError::InvalidName { ref name, .. } if name == "Bad_Name"),
        "{e:?}"
    );
    let q = Quarantine {
        instance: "ok".into(),
        host_if: "wb-*".into(),
        allow: vec![],
    };
    let e = nft::apply(&q).unwrap_err();
    assert!(e.to_string().contains("\"wb-*\""), "{e}");
    let e = nft::remove(&"x".repeat(33), "wb-x", NftLayout::VerdictMap).unwrap_err();
    assert!(matches!(e, NetError::InvalidName { .. }), "{e:?}");
    let e = nft::remove("ok", "wb-*", NftLayout::VerdictMap).unwrap_err();
    assert!(e.to_string().contains("\"wb-*\""), "{e}");
}

/// An instance quarantined by a release before 0.3 (one `iifname … jump` rule per instance in base
/// chains `input` and `forward`, no map) is removed by this one without a trace, and a new instance
/// applied next to it leaves the old instance's rules alone.
#[test]
fn a_quarantine_of_an_earlier_release_is_removed() {
    if !privileged("a_quarantine_of_an_earlier_release_is_removed") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut fx = Fixture::new();
    let (old, new) = (fx.name("old"), fx.name("new"));
    fx.instances.extend([old.clone(), new.clone()]);
    let legacy = format!(
        "add table inet wayback
add chain inet wayback input {{ type filter hook input priority -1; policy accept; }}
add chain inet wayback forward {{ type filter hook forward priority -1; policy accept; }}
add chain inet wayback refuse
add chain inet wayback wb-{old}
add rule inet wayback wb-{old} ct state established,related accept
add rule inet wayback wb-{old} counter goto refuse
add rule inet wayback input iifname \"{old}\" jump wb-{old}
add rule inet wayback forward iifname \"{old}\" jump wb-{old}
"
    );
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(legacy.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let q = Quarantine {
        instance: new.clone(),
        host_if: new.clone(),
        allow: vec![],
    };
    nft::apply(&q).unwrap();
    let old_rules = nft_lines_with(&format!("jump wb-{old}"));
    assert_eq!(old_rules.len(), 2, "{old_rules:?}");
    nft::remove(&old, &old, NftLayout::JumpRules).unwrap();
    let left = nft_lines_with(&old);
    assert!(left.is_empty(), "{left:?}");
    assert!(nft::instances_in_ruleset().unwrap().contains(&new));
    nft::remove(&new, &new, NftLayout::VerdictMap).unwrap();
    assert_eq!(nft_lines_with(&fx.prefix), Vec::<String>::new());
    table_gone_unless_in_use();
    let residue = fx.teardown();
    assert!(residue.is_empty(), "residue: {residue:#?}");
}
