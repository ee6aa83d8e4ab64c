//! Quarantine, end to end: from inside a running instance's network namespace, connections to a listener on
//! the host's veth address, to another instance, and to a third namespace standing for the outside world
//! all fail (0 succeed); a DNS query fails within 1 s; meanwhile requests through the proxy and a
//! `--publish` port succeed. With `--allow-egress` to the host listener, exactly that connection succeeds.
//! After `down`, and after SIGKILL of `up` + `gc`, `nft list ruleset` holds nothing of the instance.

use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use wayback_testsupport::*;

/// Run `python3 -c CODE` inside a network namespace; returns stdout (trimmed).
fn in_netns(netns: &str, code: &str) -> String {
    let out = Command::new("nsenter")
        .args([&format!("--net=/run/netns/{netns}"), "python3", "-c", code])
        .output()
        .expect("nsenter");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Try a TCP connection from inside `netns` to `addr`: "ok" or the error kind.
fn tcp_from(netns: &str, addr: SocketAddr) -> String {
    in_netns(
        netns,
        &format!(
            "import socket\ns=socket.socket(socket.AF_INET)\ns.settimeout(3)\ntry:\n  s.connect(('{}',{}))\n  print('ok')\nexcept Exception as e:\n  print(type(e).__name__)",
            addr.ip(),
            addr.port()
        ),
    )
}

fn status_of(wb: &Wayback, name: &str) -> serde_json::Value {
    serde_json::from_str(&wb.run_ok(&["status", name, "--json"])).unwrap()
}

/// The host side of an instance's /30: the address before the instance's.
fn host_side(instance_addr: &str) -> std::net::Ipv4Addr {
    let a: std::net::Ipv4Addr = instance_addr.parse().unwrap();
    std::net::Ipv4Addr::from(u32::from(a) - 1)
}

/// A namespace standing for the outside world, linked to the host by its own veth pair.
struct Outside {
    ns: String,
    host_if: String,
}
impl Outside {
    fn new(ns: &str, host_addr: &str, addr: &str) -> Outside {
        let host_if = format!("{}h", &ns[..ns.len().min(13)]);
        for args in [
            vec!["netns", "add", ns],
            vec![
                "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ],
            vec!["addr", "add", host_addr, "dev", &host_if],
            vec!["link", "set", &host_if, "up"],
            vec!["-n", ns, "addr", "add", addr, "dev", "eth0"],
            vec!["-n", ns, "link", "set", "eth0", "up"],
            vec!["-n", ns, "link", "set", "lo", "up"],
        ] {
            cmd_ok("ip", &args);
        }
        Outside {
            ns: ns.into(),
            host_if,
        }
    }
}
impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

#[test]
fn instance_cannot_open_connections_but_is_reachable() {
    if !require_root("instance_cannot_open_connections_but_is_reachable") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("var/www/html")).unwrap();
    fs::write(live.join("var/www/html/index.html"), "quarantined\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let snap = snap.to_str().unwrap();
    let wb = Wayback::new();
    let (a, b) = (unique("wbtqa"), unique("wbtqb"));
    let publish = format!("127.0.0.1:{}:80", free_port());
    let up_a = wb.up_background(&[
        snap,
        "--name",
        &a,
        "--profile",
        "nginx-static",
        "--publish",
        &publish,
    ]);
    let up_b = wb.up_background(&[snap, "--name", &b, "--profile", "nginx-static"]);
    let (sa, sb) = (status_of(&wb, &a), status_of(&wb, &b));
    let a_addr = sa["address"].as_str().unwrap().to_string();
    let b_addr = sb["address"].as_str().unwrap().to_string();
    let a_host = host_side(&a_addr);

    // Listeners the instance must not reach: TCP and DNS (UDP 53) on the host's veth address.
    let listener = TcpListener::bind((a_host, 0)).unwrap();
    let host_port = listener.local_addr().unwrap().port();
    let dns = UdpSocket::bind((a_host, 53)).unwrap();
    // The outside world: a namespace of our own, routed from inside the instance via the host.
    let n = std::process::id() % 200 + 20;
    let outside = Outside::new(
        &format!("wbtout{n}"),
        &format!("10.214.252.{}/31", 2 * (n % 100)),
        &format!("10.214.252.{}/31", 2 * (n % 100) + 1),
    );
    let outside_addr = format!("10.214.252.{}", 2 * (n % 100) + 1);
    let _ = in_netns(
        &outside.ns,
        "import socket,time\ns=socket.socket();s.bind(('0.0.0.0',8080));s.listen();time.sleep(0)",
    );
    cmd_ok(
        "ip",
        &[
            "-n",
            &format!("wb-{a}"),
            "route",
            "add",
            &format!("{outside_addr}/32"),
            "via",
            &a_host.to_string(),
        ],
    );

    let attempts = [
        ("host veth address", SocketAddr::from((a_host, host_port))),
        ("another instance", format!("{b_addr}:80").parse().unwrap()),
        (
            "the outside world",
            format!("{outside_addr}:8080").parse().unwrap(),
        ),
    ];
    let mut succeeded = 0;
    for (what, addr) in attempts {
        let r = tcp_from(&format!("wb-{a}"), addr);
        eprintln!("from inside {a} to {what} ({addr}): {r}");
        if r == "ok" {
            succeeded += 1;
        }
    }
    assert_eq!(succeeded, 0, "the quarantined instance opened connections");

    // DNS: a query to the host's veth address fails fast, and nothing arrives.
    let t = Instant::now();
    let dns_result = in_netns(
        &format!("wb-{a}"),
        &format!("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(5)\ns.connect(('{a_host}',53))\ntry:\n  s.send(b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x07example\\x03org\\x00\\x00\\x01\\x00\\x01')\n  s.recv(512)\n  print('answered')\nexcept Exception as e:\n  print(type(e).__name__)"),
    );
    let dns_time = t.elapsed();
    eprintln!("DNS query from inside: {dns_result} after {dns_time:?}");
    assert_ne!(dns_result, "answered");
    assert!(dns_time < Duration::from_secs(1), "DNS took {dns_time:?}");
    dns.set_nonblocking(true).unwrap();
    assert!(
        dns.recv_from(&mut [0u8; 512]).is_err(),
        "the DNS query reached the host"
    );

    // Inbound still works: the proxy and the publish port.
    let (code, body) = HttpGet::get_retry(
        wb.proxy_addr(),
        &format!("{a}.wbt.test"),
        "/",
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!((code, body.trim()), (200, "quarantined"));
    let published: SocketAddr = publish.rsplit_once(':').unwrap().0.parse().unwrap();
    let (code, _) = HttpGet::get_retry(published, "x", "/", Duration::from_secs(10)).unwrap();
    assert_eq!(code, 200);

    // After down: nothing of the instance in the ruleset.
    drop(up_a);
    let ruleset = cmd_ok("nft", &["list", "ruleset"]);
    let left = nft_leftovers(&ruleset, &a, &[format!("wb-{a}")]);
    assert!(left.is_empty(), "nft rules left after down: {left:?}");

    // --allow-egress: exactly the named hole. The plan (dry run) tells which host address the instance will
    // see; listeners on all addresses cover it once the veth exists.
    drop(listener);
    let d = unique("wbtqd");
    let plan: serde_json::Value = serde_json::from_str(&wb.run_ok(&[
        "up",
        snap,
        "--name",
        &d,
        "--profile",
        "nginx-static",
        "--dry-run",
        "--json",
    ]))
    .unwrap();
    let d_host = plan["block"]["host"].as_str().unwrap().to_string();
    let open = TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let closed = TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let (open_port, closed_port) = (
        open.local_addr().unwrap().port(),
        closed.local_addr().unwrap().port(),
    );
    let hole = format!("{d_host}:{open_port}");
    let up_d = wb.up_background(&[
        snap,
        "--name",
        &d,
        "--profile",
        "nginx-static",
        "--allow-egress",
        &hole,
    ]);
    let through = tcp_from(
        &format!("wb-{d}"),
        format!("{d_host}:{open_port}").parse().unwrap(),
    );
    let other = tcp_from(
        &format!("wb-{d}"),
        format!("{d_host}:{closed_port}").parse().unwrap(),
    );
    assert_eq!(
        (through.as_str(), other.as_str()),
        ("ok", "ConnectionRefusedError"),
        "exactly the hole is open"
    );

    // SIGKILL of `up`, then gc: the ruleset is clean too.
    let mut up_d = up_d;
    up_d.kill_hard();
    wb.run_ok(&["gc"]);
    let ruleset = cmd_ok("nft", &["list", "ruleset"]);
    assert!(
        nft_leftovers(&ruleset, &d, &[format!("wb-{d}")]).is_empty(),
        "nft rules left after kill -9 + gc"
    );
    drop(up_d);
    drop(up_b);
    drop(outside);
    for name in [&a, &b, &d] {
        Residue::new(name).pool(&pool).wayback(&wb).assert_none();
    }
}
