//! Shared fixture for the privileged integration tests: unique `wbtn…` names, a test-owned namespace
//! directory, cleanup on drop (also after a panic) and a residue check.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use ipnet::Ipv4Net;
use nix::mount::{umount2, MntFlags};
use wayback_net::{netns, veth};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Owns everything one test creates; `teardown` (or drop) removes it all.
pub struct Fixture {
    /// Unique per fixture, e.g. "wbtn4711c3-"; every link/netns name starts with it.
    pub prefix: String,
    serial: u32,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    netns: Vec<PathBuf>,
    links: Vec<String>,
}

impl Fixture {
    /// `None` (after saying why) when not running as root.
    pub fn new(test: &str) -> Option<Self> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping {test}: needs root (network namespaces, veth, mounts)");
            return None;
        }
        let serial = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("wbtn{}c{}-", std::process::id() % 100_000, serial);
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir()
            .expect("tempdir");
        // The netns directory does not exist yet: netns::create must make it.
        let dir_path = dir.path().join("netns");
        Some(Fixture {
            prefix,
            serial,
            dir: Some(dir),
            dir_path,
            netns: Vec::new(),
            links: Vec::new(),
        })
    }

    /// The test-owned namespace directory (used instead of /run/netns).
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// A unique name (at most 15 bytes for short tags).
    pub fn name(&self, tag: &str) -> String {
        let name = format!("{}{tag}", self.prefix);
        assert!(name.len() <= 15, "test name too long: {name}");
        name
    }

    /// Create a namespace `<dir>/<prefix><tag>` and remember it for cleanup.
    pub fn netns(&mut self, tag: &str) -> PathBuf {
        let path = self.dir().join(self.name(tag));
        self.netns.push(path.clone());
        netns::create(self.dir(), &self.name(tag)).expect("netns::create")
    }

    /// Remember a host link for cleanup.
    pub fn track_link(&mut self, name: &str) {
        self.links.push(name.to_string());
    }

    /// A 10.213.x.y/30 block that nothing on the host routes; returns (host .1, peer .2).
    pub async fn free_block(&self) -> (Ipv4Addr, Ipv4Addr) {
        let taken = veth::host_ipv4_prefixes().await.expect("host prefixes");
        let start = (std::process::id() % 1024) * 16 + self.serial;
        for i in 0..16384u32 {
            let base = u32::from(Ipv4Addr::new(10, 213, 0, 0)) + ((start + i) % 16384) * 4;
            let block = Ipv4Net::new(Ipv4Addr::from(base), 30).unwrap();
            let clash = taken
                .iter()
                .any(|t| t.contains(&block.network()) || block.contains(&t.network()));
            if !clash {
                return (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
            }
        }
        panic!("no free /30 in 10.213.0.0/16");
    }

    /// Remove everything, then report anything left behind (empty = clean).
    pub fn teardown(&mut self) -> Vec<String> {
        for link in self.links.drain(..) {
            let _ = Command::new("ip").args(["link", "del", &link]).output();
        }
        for ns in self.netns.drain(..) {
            let _ = netns::delete(&ns);
        }
        // netns::create made the directory a (shared) bind mount of itself, like /run/netns.
        let _ = umount2(&self.dir_path, MntFlags::MNT_DETACH);
        let mut residue = residue(&self.prefix, &self.dir_path);
        if let Some(dir) = self.dir.take() {
            if let Err(e) = dir.close() {
                residue.push(format!("tempdir not removable: {e}"));
            }
        }
        residue
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

/// Host links whose name contains `prefix`, files and mounts under `dir`.
pub fn residue(prefix: &str, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let links = run("ip", &["-o", "link"]);
    out.extend(
        links
            .lines()
            .filter(|l| l.contains(prefix))
            .map(|l| format!("link: {l}")),
    );
    let dir_s = dir.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    out.extend(
        mounts
            .lines()
            .filter(|l| l.contains(&dir_s))
            .map(|l| format!("mount: {l}")),
    );
    if let Ok(entries) = std::fs::read_dir(dir) {
        out.extend(entries.map(|e| format!("file: {:?}", e.unwrap().path())));
    }
    out
}

/// Run a command, panic unless it succeeds, return stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `ip ARGS` inside the namespace at `ns` (nsenter, no `ip netns` needed).
pub fn ip_in(ns: &Path, args: &[&str]) -> String {
    let net = format!("--net={}", ns.display());
    let mut all = vec![net.as_str(), "ip"];
    all.extend_from_slice(args);
    run("nsenter", &all)
}

/// A std listener bound inside the namespace (by a throwaway thread that setns-es), as a tokio listener.
pub fn listen_in(ns: &Path, addr: SocketAddr) -> tokio::net::TcpListener {
    let ns = ns.to_path_buf();
    let std_listener = std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        std::net::TcpListener::bind(addr).unwrap()
    })
    .join()
    .unwrap();
    std_listener.set_nonblocking(true).unwrap();
    tokio::net::TcpListener::from_std(std_listener).unwrap()
}

/// Echo every connection accepted on `listener` (task aborted by the caller).
pub fn spawn_echo(listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    })
}

/// Write `msg`, read it back.
pub async fn echo_roundtrip(s: &mut tokio::net::TcpStream, msg: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(msg).await.unwrap();
    let mut buf = vec![0; msg.len()];
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("echo timed out")
        .unwrap();
    assert_eq!(buf, msg);
}

/// Number of live threads of this process with the given name.
pub fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim_end() == name)
        .count()
}
