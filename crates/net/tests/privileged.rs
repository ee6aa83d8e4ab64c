//! Privileged tests: real namespaces, veth pairs and connections. Skipped (with a message) unless root.
//! Every resource is named `wbtn<pid>c<n>-…`, lives under a test-owned directory where possible, is
//! removed on drop, and each test asserts that nothing is left behind.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{echo_roundtrip, ip_in, listen_in, run, spawn_echo, threads_named, Fixture};
use wayback_net::{netns, veth, NetError, NetnsDialer, VethSpec};

/// Tests that count dialer threads must not overlap.
static DIAL_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[test]
fn netns_create_exists_delete_twice() {
    let Some(mut fx) = Fixture::new("netns_create_exists_delete_twice") else {
        return;
    };
    let sysctl = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
    let host_ports = std::fs::read_to_string(sysctl).unwrap();
    let t0 = Instant::now();
    let ns = fx.netns("n");
    eprintln!("netns::create took {:?}", t0.elapsed());
    assert_eq!(ns, fx.dir().join(fx.name("n")));
    assert!(netns::exists(&ns));
    // lo is up inside, and only lo exists there.
    let links = ip_in(&ns, &["-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo: <LOOPBACK,UP,LOWER_UP>"), "{links}");
    // Any user may bind a low port inside (a service's User= on port 80); the host's setting is unchanged.
    let net = format!("--net={}", ns.display());
    assert_eq!(run("nsenter", &[&net, "cat", sysctl]).trim(), "0");
    let bind80 = r#"socket(S, PF_INET, SOCK_STREAM, 0) or die; bind(S, sockaddr_in(80, inet_aton("127.0.0.1"))) or die "bind: $!"; print "bound""#;
    let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    let mut args = vec![net.as_str(), "setpriv"];
    args.extend(nobody);
    args.extend(["/usr/bin/perl", "-MSocket", "-e", bind80]);
    assert_eq!(run("nsenter", &args).trim(), "bound");
    assert_eq!(std::fs::read_to_string(sysctl).unwrap(), host_ports);
    // A second create of the same name is refused and leaves the first one intact.
    match netns::create(fx.dir(), &fx.name("n")) {
        Err(NetError::Exists { path }) => assert_eq!(path, ns),
        other => panic!("expected Exists, got {other:?}"),
    }
    assert!(netns::exists(&ns));

    netns::delete(&ns).unwrap();
    assert!(!netns::exists(&ns));
    assert!(!ns.exists());
    netns::delete(&ns).unwrap();

    let residue = fx.teardown();
    assert!(residue.is_empty(), "residue: {residue:?}");
}

#[test]
fn netns_parallel_creates_in_a_fresh_dir() {
    let Some(mut fx) = Fixture::new("netns_parallel_creates_in_a_fresh_dir") else {
        return;
    };
    let names: Vec<String> = (0..4).map(|i| fx.name(&format!("p{i}"))).collect();
    let dir = fx.dir().to_path_buf();
    let handles: Vec<_> = names
        .iter()
        .cloned()
        .map(|n| {
            let dir = dir.clone();
            std::thread::spawn(move || netns::create(&dir, &n))
        })
        .collect();
    for (h, n) in handles.into_iter().zip(&names) {
        let path = h.join().unwrap().unwrap();
        assert_eq!(path, dir.join(n));
        assert!(netns::exists(&path));
    }
    // The directory was bind-mounted onto itself exactly once.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir_s = format!(" {} ", dir.display());
    assert_eq!(mounts.lines().filter(|l| l.contains(&dir_s)).count(), 1);
    for n in &names {
        netns::delete(&dir.join(n)).unwrap();
    }
    let residue = fx.teardown();
    assert!(residue.is_empty(), "residue: {residue:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn veth_addresses_dialer_and_teardown() {
    let Some(mut fx) = Fixture::new("veth_addresses_dialer_and_teardown") else {
        return;
    };
    let _serial = DIAL_LOCK.lock().await;
    let dial_threads_before = threads_named("wb-netns-dial");
    let (host_addr, peer_addr) = fx.free_block().await;
    let host_if = fx.name("h");
    fx.track_link(&host_if);

    let t0 = Instant::now();
    let ns = fx.netns("n");
    let spec = VethSpec {
        host_if: host_if.clone(),
        peer_if: "host0".into(),
        host_addr,
        peer_addr,
        prefix_len: 30,
        netns_path: ns.clone(),
    };
    veth::create(&spec).await.unwrap();
    eprintln!("netns::create + veth::create took {:?}", t0.elapsed());

    assert!(veth::exists(&host_if).await.unwrap());
    let host_addrs = run("ip", &["-o", "-4", "addr", "show", "dev", &host_if]);
    assert!(
        host_addrs.contains(&format!("inet {host_addr}/30")),
        "{host_addrs}"
    );
    let host_link = run("ip", &["-o", "link", "show", "dev", &host_if]);
    assert!(host_link.contains(",UP,LOWER_UP>"), "{host_link}");
    let ns_addrs = ip_in(&ns, &["-o", "-4", "addr"]);
    assert!(
        ns_addrs.contains(&format!("host0    inet {peer_addr}/30")),
        "{ns_addrs}"
    );
    assert!(ns_addrs.contains("lo    inet 127.0.0.1/8"), "{ns_addrs}");
    let ns_links = ip_in(&ns, &["-o", "link"]);
    assert!(ns_links.contains("host0@if"), "{ns_links}");
    assert!(ns_links.contains(",UP,LOWER_UP>"), "{ns_links}");
    let ns_routes = ip_in(&ns, &["-4", "route", "show", "table", "all"]);
    assert!(!ns_routes.contains("default"), "{ns_routes}");
    // The block now shows up among the host's prefixes.
    let block = ipnet::Ipv4Net::new(host_addr, 30).unwrap().trunc();
    assert!(veth::host_ipv4_prefixes().await.unwrap().contains(&block));

    // A service bound to the namespace's own loopback, reached through the dialer.
    let lo_listener = listen_in(&ns, "127.0.0.1:0".parse().unwrap());
    let lo_port = lo_listener.local_addr().unwrap().port();
    let lo_echo = spawn_echo(lo_listener);
    let dialer = NetnsDialer::open(&ns).unwrap();
    assert_eq!(dialer.netns_path(), ns.as_path());
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, lo_port));
    let t1 = Instant::now();
    let mut s = dialer.connect(target).await.unwrap();
    let first = t1.elapsed();
    assert!(s.nodelay().unwrap());
    echo_roundtrip(&mut s, b"hello from the host").await;
    let t2 = Instant::now();
    let n = 50;
    for _ in 0..n {
        let clone = dialer.clone();
        let mut s = clone.connect(target).await.unwrap();
        echo_roundtrip(&mut s, b"x").await;
    }
    eprintln!(
        "NetnsDialer::connect: first {first:?}, then {:?} per connect+echo (avg of {n})",
        t2.elapsed() / n
    );
    // Connections from several tasks at once, on the multi-thread runtime.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let d = dialer.clone();
            tokio::spawn(async move {
                let mut s = d.connect(target).await.unwrap();
                echo_roundtrip(&mut s, format!("task {i}").as_bytes()).await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Nothing listens on that port inside: refused, as a plain io error.
    let closed = dialer
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, 1)))
        .await
        .unwrap_err();
    assert_eq!(closed.kind(), std::io::ErrorKind::ConnectionRefused);

    // A service bound to 0.0.0.0 inside, reached from the host over the veth.
    let any_listener = listen_in(&ns, "0.0.0.0:0".parse().unwrap());
    let any_port = any_listener.local_addr().unwrap().port();
    let any_echo = spawn_echo(any_listener);
    let to_peer = SocketAddrV4::new(peer_addr, any_port);
    let mut s2 = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(to_peer),
    )
    .await
    .expect("connect to peer timed out")
    .unwrap();
    echo_roundtrip(&mut s2, b"over the veth").await;
    drop((s, s2));
    lo_echo.abort();
    any_echo.abort();

    // The dialer thread goes away with the last clone.
    assert_eq!(threads_named("wb-netns-dial"), dial_threads_before + 1);
    drop(dialer);
    let deadline = Instant::now() + Duration::from_secs(2);
    while threads_named("wb-netns-dial") > dial_threads_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(threads_named("wb-netns-dial"), dial_threads_before);

    veth::delete(&host_if).await.unwrap();
    assert!(!veth::exists(&host_if).await.unwrap());
    veth::delete(&host_if).await.unwrap();
    netns::delete(&ns).unwrap();
    assert!(!netns::exists(&ns));

    let residue = fx.teardown();
    assert!(residue.is_empty(), "residue: {residue:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn dialer_works_on_a_current_thread_runtime_too() {
    let Some(mut fx) = Fixture::new("dialer_works_on_a_current_thread_runtime_too") else {
        return;
    };
    let ns = fx.netns("n");
    let listener = listen_in(&ns, "127.0.0.1:0".parse().unwrap());
    let target = listener.local_addr().unwrap();
    let echo = spawn_echo(listener);
    let dialer = NetnsDialer::open(&ns).unwrap();
    let mut s = dialer.connect(target).await.unwrap();
    echo_roundtrip(&mut s, b"ping").await;
    // The host's own loopback is a different one: the same port there is (almost surely) closed or
    // something else; the namespace listener must not be reachable without the dialer.
    if let Ok(Ok(mut other)) = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(target),
    )
    .await
    {
        use tokio::io::AsyncWriteExt;
        let _ = other.shutdown().await;
        eprintln!(
            "note: port {} is also open on the host loopback",
            target.port()
        );
    }
    drop(s);
    echo.abort();
    drop(dialer);
    netns::delete(&ns).unwrap();
    let residue = fx.teardown();
    assert!(residue.is_empty(), "residue: {residue:?}");
}

#[tokio::test]
async fn veth_create_failures_leave_nothing_behind() {
    let Some(mut fx) = Fixture::new("veth_create_failures_leave_nothing_behind") else {
        return;
    };
    let (host_addr, peer_addr) = fx.free_block().await;
    let ns = fx.netns("n");
    let host_if = fx.name("h");
    fx.track_link(&host_if);
    let good = VethSpec {
        host_if: host_if.clone(),
        peer_if: "host0".into(),
        host_addr,
        peer_addr,
        prefix_len: 30,
        netns_path: ns.clone(),
    };

    // Fails after the pair exists (the kernel rejects /33 on the host side): host link removed again.
    let bad_prefix = VethSpec {
        prefix_len: 33,
        ..good.clone()
    };
    let err = veth::create(&bad_prefix).await.unwrap_err();
    assert!(matches!(err, NetError::AddrAdd { .. }), "{err:?}");
    assert!(!veth::exists(&host_if).await.unwrap());
    assert!(!ip_in(&ns, &["-o", "link"]).contains("host0"));

    // The peer name is taken inside the namespace: nothing gets created.
    let taken_peer = VethSpec {
        peer_if: "lo".into(),
        ..good.clone()
    };
    let err = veth::create(&taken_peer).await.unwrap_err();
    assert!(matches!(err, NetError::LinkAdd { .. }), "{err:?}");
    assert!(!veth::exists(&host_if).await.unwrap());

    // No such namespace.
    let no_ns = VethSpec {
        netns_path: fx.dir().join(fx.name("x")),
        ..good.clone()
    };
    assert!(matches!(
        veth::create(&no_ns).await.unwrap_err(),
        NetError::Open { .. }
    ));
    // Names the kernel would refuse are refused up front.
    let long = VethSpec {
        host_if: "wbtn-much-too-long-name".into(),
        ..good.clone()
    };
    assert!(matches!(
        veth::create(&long).await.unwrap_err(),
        NetError::InvalidName { .. }
    ));

    // After all that, the good spec still works and the host side's name is still free.
    veth::create(&good).await.unwrap();
    veth::delete(&host_if).await.unwrap();
    netns::delete(&ns).unwrap();
    let residue = fx.teardown();
    assert!(residue.is_empty(), "residue: {residue:?}");
}

#[tokio::test]
async fn missing_things_delete_fine_and_non_veths_are_refused() {
    let Some(mut fx) = Fixture::new("missing_things_delete_fine_and_non_veths_are_refused") else {
        return;
    };
    let missing = fx.name("no");
    assert!(!veth::exists(&missing).await.unwrap());
    veth::delete(&missing).await.unwrap();
    netns::delete(&fx.dir().join(fx.name("no"))).unwrap();
    netns::delete(Path::new("/nonexistent/wbtn/netns")).unwrap();
    assert!(!netns::exists(&fx.dir().join(fx.name("no"))));
    // veth::delete only ever deletes veths.
    match veth::delete("lo").await {
        Err(NetError::NotVeth { name }) => assert_eq!(name, "lo"),
        other => panic!("expected NotVeth, got {other:?}"),
    }
    assert!(veth::exists("lo").await.unwrap());
    let residue = fx.teardown();
    assert!(residue.is_empty(), "residue: {residue:?}");
}

#[tokio::test]
async fn host_prefixes_include_loopback_but_not_the_default_route() {
    let prefixes = veth::host_ipv4_prefixes().await.unwrap();
    assert!(
        prefixes.contains(&"127.0.0.0/8".parse().unwrap()),
        "{prefixes:?}"
    );
    assert!(
        !prefixes.iter().any(|p| p.prefix_len() == 0),
        "{prefixes:?}"
    );
    let mut sorted = prefixes.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, prefixes);
}
