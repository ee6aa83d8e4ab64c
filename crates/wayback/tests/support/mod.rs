//! Shared fixtures for wayback's privileged integration tests.
//!
//! Every fixture is a guard: it removes what it made in `Drop`, also when the test panics. Everything a test
//! makes is named `wbt` + a unique suffix (`<pid>x<counter>`), so leftovers are easy to attribute and no two
//! tests (or two test binaries) collide. Nothing here kills a process the test did not start itself, and
//! network traffic only goes to loopback or to network namespaces the test made.
//!
//! - [`require_root`]: skip (or, under CI, fail) when not root.
//! - [`BtrfsPool`]: a loop-backed btrfs filesystem in a temp dir.
//! - [`Residue`]: lists every trace an instance could leave behind (mounts, netns, veth, processes, clone
//!   subvolume, state/route files, nftables rules, cgroups).
//! - [`tree_checksum`] / [`tree_manifest`]: "is the source snapshot byte-identical?".
//! - [`Wayback`] / [`UpHandle`]: run the binary under test with a per-test config.
//! - [`LivePostgres`]: a live PostgreSQL cluster on a pool subvolume, in its own network namespace.
//! - [`HttpGet`]: a tiny HTTP/1.1 client over `TcpStream`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------------------
// Basics: root check, unique names, running commands
// ---------------------------------------------------------------------------------------------------------

/// Whether the privileged test `test` can run. When not root it prints `SKIP: <test> needs root` and returns
/// false, except under CI (`CI=true`), where privileged tests must run: then it panics.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{test} needs root, and CI=true: privileged tests must run in CI (run the tests as root)");
    }
    // Straight to the process's stderr: the test harness captures print!/eprint!, and a skip must show.
    let _ = writeln!(std::io::stderr(), "SKIP: {test} needs root");
    false
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `<prefix><pid>x<counter>` (lowercase, digits: a valid instance
/// name when `prefix` is one).
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}{}x{n}", std::process::id())
}

fn next_counter() -> u32 {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Render a command for messages.
fn describe(program: &str, args: &[&str]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$\\!*?;&|<>()".contains(c))
        {
            s.push_str(&format!("'{}'", a.replace('\'', "'\\''")));
        } else {
            s.push_str(a);
        }
    }
    s
}

/// Format an `Output` for an assertion message.
pub fn show(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run a command to completion (no stdin). Panics if it cannot be started.
pub fn cmd(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", describe(program, args)))
}

/// Run a command that must succeed; returns its stdout. Panics with status and stderr otherwise.
pub fn cmd_ok(program: &str, args: &[&str]) -> String {
    let out = cmd(program, args);
    assert!(
        out.status.success(),
        "`{}` failed\n{}",
        describe(program, args),
        show(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a command (best effort, for cleanup): report failures on stderr, never panic.
fn cmd_quiet(program: &str, args: &[&str]) -> bool {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "cleanup: `{}` failed\n{}",
                describe(program, args),
                show(&out)
            );
            false
        }
        Err(e) => {
            eprintln!("cleanup: cannot run `{}`: {e}", describe(program, args));
            false
        }
    }
}

/// Spawn a reader thread that appends everything from `r` to a shared buffer.
fn drain<R: Read + Send + 'static>(mut r: R, buf: Arc<Mutex<Vec<u8>>>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    })
}

/// Run `command` (stdin closed, output captured) for at most `timeout`. On timeout the child (our own, by
/// PID) is killed and `Err` carries what it printed so far.
pub fn output_timeout(command: &mut Command, timeout: Duration) -> Result<Output, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot spawn {command:?}: {e}"))?;
    let out_buf = Arc::new(Mutex::new(Vec::new()));
    let err_buf = Arc::new(Mutex::new(Vec::new()));
    let t_out = drain(child.stdout.take().unwrap(), out_buf.clone());
    let t_err = drain(child.stderr.take().unwrap(), err_buf.clone());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("wait for {command:?}: {e}")),
        }
    };
    match status {
        Some(status) => {
            // Grandchildren may keep the pipes open: give the readers a moment, do not block forever.
            let until = Instant::now() + Duration::from_secs(5);
            while (!t_out.is_finished() || !t_err.is_finished()) && Instant::now() < until {
                thread::sleep(Duration::from_millis(10));
            }
            let stdout = out_buf.lock().unwrap().clone();
            let stderr = err_buf.lock().unwrap().clone();
            Ok(Output {
                status,
                stdout,
                stderr,
            })
        }
        None => {
            let _ = child.kill();
            let _ = child.wait();
            thread::sleep(Duration::from_millis(100));
            Err(format!(
                "{command:?} did not finish within {timeout:?} (killed)\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&out_buf.lock().unwrap()),
                String::from_utf8_lossy(&err_buf.lock().unwrap())
            ))
        }
    }
}

/// Poll `f` every 50 ms until it returns `Some`, or `None` after `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Does `hay` mention `name` as a whole token (not followed by another name character)? `wbt1x1` is not
/// mentioned by `wbt1x10`.
pub fn mentions(hay: &str, name: &str) -> bool {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut start = 0;
    while let Some(i) = hay[start..].find(name) {
        let at = start + i;
        let end = at + name.len();
        let before_ok = hay[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !is_name_char(c));
        let after_ok = hay[end..].chars().next().is_none_or(|c| !is_name_char(c));
        if before_ok && after_ok {
            return true;
        }
        start = at + 1;
    }
    false
}

fn mkdir_p(p: &Path) {
    fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir -p {}: {e}", p.display()));
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", p.display()));
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

// ---------------------------------------------------------------------------------------------------------
// BtrfsPool
// ---------------------------------------------------------------------------------------------------------

/// A btrfs filesystem on a sparse loop file in a temp dir, mounted under that temp dir.
pub struct BtrfsPool {
    dir: TempDir,
    /// `wbt<pid>x<n>`: prefix of the image file name (and of the temp dir).
    pub id: String,
    pub image: PathBuf,
    pub loopdev: String,
    mount: PathBuf,
    mounted: bool,
    own: Mutex<Vec<String>>,
}

impl BtrfsPool {
    /// A 2 GiB (sparse) pool.
    pub fn new() -> BtrfsPool {
        BtrfsPool::with_size(2 << 30)
    }

    pub fn with_size(bytes: u64) -> BtrfsPool {
        let id = format!("wbt{}x{}", std::process::id(), next_counter());
        let dir = tempfile::Builder::new()
            .prefix(&format!("{id}-"))
            .tempdir()
            .expect("tempdir for pool");
        // Services in the pool run as other users (postgres): they must be able to traverse down to it.
        chmod(dir.path(), 0o755);
        let image = dir.path().join(format!("{id}.img"));
        let f = fs::File::create(&image).expect("create image");
        f.set_len(bytes).expect("size image");
        drop(f);
        cmd_ok("mkfs.btrfs", &["-q", path_str(&image)]);
        let loopdev = cmd_ok("losetup", &["--find", "--show", path_str(&image)])
            .trim()
            .to_string();
        let mount = dir.path().join("mnt");
        let mut pool = BtrfsPool {
            dir,
            id,
            image,
            loopdev,
            mount,
            mounted: false,
            own: Mutex::new(Vec::new()),
        };
        mkdir_p(&pool.mount);
        cmd_ok("mount", &[&pool.loopdev, path_str(&pool.mount)]);
        pool.mounted = true;
        chmod(&pool.mount, 0o755);
        pool
    }

    /// The pool's mount point (top of the btrfs filesystem).
    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// The temp dir holding image and mount point.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `<mount>/<rel>`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mount.join(rel)
    }

    /// `btrfs subvolume create <mount>/<rel>` (parents created as plain directories).
    pub fn subvolume_create(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            mkdir_p(parent);
        }
        cmd_ok("btrfs", &["subvolume", "create", path_str(&p)]);
        self.own
            .lock()
            .unwrap()
            .push(rel.trim_matches('/').to_string());
        p
    }

    /// `btrfs subvolume snapshot -r <mount>/<src> <mount>/<dst>`.
    pub fn snapshot_ro(&self, src_rel: &str, dst_rel: &str) -> PathBuf {
        self.snapshot(src_rel, dst_rel, true)
    }

    /// A writable snapshot (`btrfs subvolume snapshot <src> <dst>`).
    pub fn snapshot_rw(&self, src_rel: &str, dst_rel: &str) -> PathBuf {
        self.snapshot(src_rel, dst_rel, false)
    }

    fn snapshot(&self, src_rel: &str, dst_rel: &str, readonly: bool) -> PathBuf {
        let src = self.path(src_rel);
        let dst = self.path(dst_rel);
        if let Some(parent) = dst.parent() {
            mkdir_p(parent);
        }
        let ro: &[&str] = if readonly { &["-r"] } else { &[] };
        let args: Vec<&str> = ["subvolume", "snapshot"]
            .iter()
            .copied()
            .chain(ro.iter().copied())
            .chain([path_str(&src), path_str(&dst)])
            .collect();
        cmd_ok("btrfs", &args);
        self.own
            .lock()
            .unwrap()
            .push(dst_rel.trim_matches('/').to_string());
        dst
    }

    /// Paths (relative to the top of the filesystem) of all subvolumes, from `btrfs subvolume list`.
    pub fn subvolumes(&self) -> Vec<String> {
        let out = cmd_ok("btrfs", &["subvolume", "list", path_str(&self.mount)]);
        out.lines()
            .filter_map(|l| l.split_once(" path ").map(|(_, p)| p.trim().to_string()))
            .collect()
    }

    /// Subvolumes this test made itself.
    pub fn own_subvolumes(&self) -> Vec<String> {
        self.own.lock().unwrap().clone()
    }

    /// Where wayback puts the clone of instance `name` with the default `clone_dir = ".wayback"`.
    pub fn clone_path(&self, name: &str) -> PathBuf {
        self.mount.join(".wayback").join(name)
    }
}

impl Default for BtrfsPool {
    fn default() -> Self {
        BtrfsPool::new()
    }
}

impl Drop for BtrfsPool {
    fn drop(&mut self) {
        if self.mounted && !cmd_quiet("umount", &[path_str(&self.mount)]) {
            eprintln!("cleanup: lazy unmount of {}", self.mount.display());
            cmd_quiet("umount", &["-l", path_str(&self.mount)]);
        }
        cmd_quiet("losetup", &["-d", &self.loopdev]);
        // Detaching is deferred while anything still holds the device (a short-lived mount namespace copy,
        // btrfs closing its devices): wait for it, briefly.
        let backing = Path::new("/sys/block")
            .join(self.loopdev.trim_start_matches("/dev/"))
            .join("loop/backing_file");
        let gone = wait_for(Duration::from_secs(10), || {
            let still = fs::read_to_string(&backing).is_ok_and(|b| b.contains(&self.id));
            (!still).then_some(())
        });
        if gone.is_none() {
            eprintln!(
                "cleanup: {} still attached to {} after 10 s",
                self.loopdev,
                self.image.display()
            );
        }
        // The TempDir removes the image and the mount point directory.
    }
}

/// Loop devices whose backing file name contains `needle` (from `losetup -a`).
pub fn loop_devices_with(needle: &str) -> Vec<String> {
    cmd_ok("losetup", &["-a"])
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// `btrfs property get -ts PATH ro` says `ro=true`.
pub fn is_readonly_subvolume(path: &Path) -> bool {
    let out = cmd("btrfs", &["property", "get", "-ts", path_str(path), "ro"]);
    out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ro=true"
}

/// Whether `path` is a btrfs subvolume (`btrfs subvolume show` succeeds).
pub fn is_subvolume(path: &Path) -> bool {
    cmd("btrfs", &["subvolume", "show", path_str(path)])
        .status
        .success()
}

// ---------------------------------------------------------------------------------------------------------
// Tree checksum
// ---------------------------------------------------------------------------------------------------------

/// FNV-1a 64: stable, dependency-free; good enough to detect changes in test trees.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// One line per entry of the tree under `root` (relative path → "type mode uid gid size content-hash or
/// link target"). Does not follow symlinks; mtimes and atimes are ignored.
pub fn tree_manifest(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, p: &Path, out: &mut BTreeMap<String, String>) {
    let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
    let rel = if rel.is_empty() { ".".to_string() } else { rel };
    let head = format!("{:o} {}:{}", md.mode(), md.uid(), md.gid());
    let ft = md.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(p).unwrap();
        out.insert(rel, format!("link {head} -> {}", target.display()));
    } else if ft.is_dir() {
        out.insert(rel, format!("dir {head}"));
        let mut entries: Vec<PathBuf> = fs::read_dir(p)
            .unwrap_or_else(|e| panic!("readdir {}: {e}", p.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for e in entries {
            walk(root, &e, out);
        }
    } else if ft.is_file() {
        let mut h = Fnv::new();
        let mut f = fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        out.insert(rel, format!("file {head} {} {:016x}", md.size(), h.0));
    } else {
        out.insert(rel, format!("special {head} rdev={}", md.rdev()));
    }
}

/// A deterministic checksum of the tree under `root`: paths, types, modes, owners, sizes, file contents and
/// symlink targets.
pub fn tree_checksum(root: &Path) -> String {
    checksum_of(&tree_manifest(root))
}

pub fn checksum_of(manifest: &BTreeMap<String, String>) -> String {
    let mut h = Fnv::new();
    for (k, v) in manifest {
        h.update(k.as_bytes());
        h.update(b"\0");
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    format!("{:016x}-{}", h.0, manifest.len())
}

/// Human-readable differences between two manifests (empty when equal).
pub fn manifest_diff(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => d.push(format!("removed {k} ({v})")),
            Some(w) if w != v => d.push(format!("changed {k}: {v} => {w}")),
            _ => {}
        }
    }
    for (k, v) in after {
        if !before.contains_key(k) {
            d.push(format!("added {k} ({v})"));
        }
    }
    d
}

// ---------------------------------------------------------------------------------------------------------
// Residue
// ---------------------------------------------------------------------------------------------------------

/// Everything an instance `name` could leave behind. Build with [`Residue::new`], add the pool and the
/// wayback runner, then call [`Residue::leftovers`] (or [`Residue::assert_none`]).
pub struct Residue<'a> {
    name: String,
    pool: Option<&'a BtrfsPool>,
    wayback: Option<&'a Wayback>,
}

impl<'a> Residue<'a> {
    pub fn new(name: &str) -> Residue<'a> {
        Residue {
            name: name.to_string(),
            pool: None,
            wayback: None,
        }
    }

    pub fn pool(mut self, pool: &'a BtrfsPool) -> Self {
        self.pool = Some(pool);
        self
    }

    pub fn wayback(mut self, wb: &'a Wayback) -> Self {
        self.wayback = Some(wb);
        self
    }

    /// `wb-<name>`: netns and machine name.
    pub fn netns(&self) -> String {
        format!("wb-{}", self.name)
    }

    /// Possible host-side veth names: the library's derivation (hash-shortened to 15 bytes) and plain
    /// truncation, in case the binary does not use it.
    pub fn host_if_candidates(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Ok(n) = wayback_core::InstanceName::new(&self.name) {
            v.push(n.host_if());
        }
        let full = format!("wb-{}", self.name);
        let trunc: String = full.chars().take(15).collect();
        if !v.contains(&trunc) {
            v.push(trunc);
        }
        v
    }

    /// Every leftover found, one line each (empty: clean).
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let name = self.name.as_str();
        let netns = self.netns();
        let ifnames = self.host_if_candidates();

        // Mounts: the clone, the netns bind mount, nspawn's propagation dirs, anything naming wb-NAME.
        let clone = self.pool.map(|p| p.clone_path(name));
        if let Ok(mi) = fs::read_to_string("/proc/self/mountinfo") {
            for line in mi.lines() {
                let hit_clone = clone
                    .as_ref()
                    .is_some_and(|c| line.split(' ').any(|f| is_at_or_under(f, path_str(c))));
                if hit_clone || mentions(line, &netns) {
                    left.push(format!("mount: {line}"));
                }
            }
        }

        // Network namespace.
        let ns_path = Path::new("/run/netns").join(&netns);
        if ns_path.exists() {
            left.push(format!("netns file: {}", ns_path.display()));
        }
        let out = cmd("ip", &["netns", "list"]);
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if l.split_whitespace().next() == Some(netns.as_str()) {
                left.push(format!("netns: {l}"));
            }
        }

        // Host-side veth (or any link named after the instance).
        let out = cmd("ip", &["-o", "link", "show"]);
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            // "7: wb-x@if6: <...>"
            let ifname = l
                .split(": ")
                .nth(1)
                .unwrap_or("")
                .split('@')
                .next()
                .unwrap_or("");
            if ifnames.iter().any(|c| c == ifname) || mentions(ifname, &netns) {
                left.push(format!("link: {l}"));
            }
        }

        // Processes: nspawn with --machine=wb-NAME (or `-M wb-NAME` / `--machine wb-NAME`).
        left.extend(processes_with_machine(&netns));

        // Clone subvolume and directory.
        if let Some(pool) = self.pool {
            let c = pool.clone_path(name);
            if fs::symlink_metadata(&c).is_ok() {
                left.push(format!("clone path exists: {}", c.display()));
            }
            let own = pool.own_subvolumes();
            for sv in pool.subvolumes() {
                // The clone_dir itself may be a subvolume wayback keeps; instances' clones may not.
                if !own.contains(&sv) && sv != ".wayback" {
                    left.push(format!("subvolume: {sv}"));
                }
            }
        }

        // State and runtime files naming the instance.
        if let Some(wb) = self.wayback {
            for root in [wb.state_dir(), wb.runtime_dir()] {
                for p in files_under(&root) {
                    let rel = p
                        .strip_prefix(&root)
                        .unwrap_or(&p)
                        .to_string_lossy()
                        .into_owned();
                    // The logs of a failed start are kept on purpose until `gc` (keep_failed_logs).
                    let kept_logs = root == wb.state_dir() && rel.starts_with("failed/");
                    if mentions(&rel, name) && !kept_logs {
                        left.push(format!("state/runtime file: {}", p.display()));
                    } else if root == wb.runtime_dir()
                        && p.is_file()
                        && fs::metadata(&p).is_ok_and(|m| m.len() < (1 << 20))
                        && fs::read_to_string(&p).is_ok_and(|t| mentions(&t, name))
                    {
                        left.push(format!(
                            "runtime file (route?) mentions instance: {}",
                            p.display()
                        ));
                    }
                }
            }
        }

        // nftables: anything of the instance in `table inet wayback`.
        match Command::new("nft")
            .args(["list", "ruleset"])
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => {
                left.extend(nft_leftovers(
                    &String::from_utf8_lossy(&out.stdout),
                    name,
                    &ifnames,
                ));
            }
            Ok(out) => left.push(format!(
                "nft list ruleset failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(_) => eprintln!("note: nft not installed, nftables residue not checked"),
        }

        // cgroups named after the instance (nspawn launchers may get their own).
        for root in ["/sys/fs/cgroup"] {
            for p in dirs_under(Path::new(root), 3) {
                let base = p
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if mentions(&base, name) {
                    left.push(format!("cgroup: {}", p.display()));
                }
            }
        }
        left
    }

    /// Panic with the list of leftovers, if any.
    #[track_caller]
    pub fn assert_none(&self) {
        let left = self.leftovers();
        assert!(
            left.is_empty(),
            "instance {} left {} trace(s) behind:\n  {}",
            self.name,
            left.len(),
            left.join("\n  ")
        );
    }
}

fn is_at_or_under(field: &str, path: &str) -> bool {
    field == path || field.strip_prefix(path).is_some_and(|r| r.starts_with('/'))
}

/// Processes whose command line selects machine `machine` (`--machine=M`, `--machine M`, `-M M`) or
/// otherwise names the instance (`machine` without its `wb-` prefix).
pub fn processes_with_machine(machine: &str) -> Vec<String> {
    let mut left = Vec::new();
    let me = std::process::id().to_string();
    let Ok(rd) = fs::read_dir("/proc") else {
        return left;
    };
    for e in rd.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(raw) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let instance = machine.strip_prefix("wb-").unwrap_or(machine);
        // nspawn by machine name, and anything else still running for the instance (a lingering
        // `up --name NAME`, helper processes).
        let hit = args.iter().enumerate().any(|(i, a)| {
            a == &format!("--machine={machine}")
                || ((a == "--machine" || a == "-M")
                    && args.get(i + 1).is_some_and(|n| n == machine))
                || mentions(a, instance)
        });
        if hit {
            left.push(format!("process {pid}: {}", args.join(" ").trim()));
        }
    }
    left
}

/// The parts of an `nft list ruleset` text that belong to instance `name`: inside any `table … wayback`
/// block, lines naming the instance, its netns/machine name or its host interface.
pub fn nft_leftovers(ruleset: &str, name: &str, ifnames: &[String]) -> Vec<String> {
    let mut left = Vec::new();
    let mut table: Option<String> = None;
    let netns = format!("wb-{name}");
    for line in ruleset.lines() {
        if line.starts_with("table ") {
            let t = line.trim_end_matches('{').trim().to_string();
            table = t
                .split_whitespace()
                .nth(2)
                .filter(|n| *n == "wayback")
                .map(|_| t.clone());
            continue;
        }
        if line == "}" {
            table = None;
            continue;
        }
        if let Some(t) = &table {
            let hit = mentions(line, name)
                || mentions(line, &netns)
                || ifnames.iter().any(|i| mentions(line, i));
            if hit {
                left.push(format!("nft {t}: {}", line.trim()));
            }
        }
    }
    left
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = fs::read_dir(&p) else { continue };
        for e in rd.flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out.sort();
    out
}

fn dirs_under(root: &Path, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if depth == 0 {
        return out;
    }
    let Ok(rd) = fs::read_dir(root) else {
        return out;
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let p = e.path();
            out.extend(dirs_under(&p, depth - 1));
            out.push(p);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Wayback runner
// ---------------------------------------------------------------------------------------------------------

struct WaybackInner {
    dir: TempDir,
    config: PathBuf,
    state_dir: PathBuf,
    runtime_dir: PathBuf,
    proxy: SocketAddr,
    pool_net: String,
}

impl Drop for WaybackInner {
    /// Safety net: if anything of this config is still registered (a test failed half-way, or `up` was
    /// killed on a timeout), tear it down before the temp dir goes.
    fn drop(&mut self) {
        let has_instances = fs::read_dir(self.state_dir.join("instances"))
            .map(|mut rd| rd.next().is_some())
            .unwrap_or(false);
        if !has_instances {
            return;
        }
        for args in [&["down", "--all"][..], &["gc"][..]] {
            let mut c = Command::new(wayback_bin());
            c.arg("--config").arg(&self.config).args(args);
            c.env_remove("WAYBACK_CONFIG");
            match output_timeout(&mut c, Duration::from_secs(120)) {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!(
                    "cleanup: `wayback {}` failed\n{}",
                    args.join(" "),
                    show(&out)
                ),
                Err(e) => eprintln!("cleanup: `wayback {}`: {e}", args.join(" ")),
            }
        }
    }
}

/// Runs the `wayback` binary under test with a config of its own: its own state/runtime dirs in a temp
/// dir, a free loopback port for the proxy, and its own /24 address pool.
#[derive(Clone)]
pub struct Wayback {
    inner: Arc<WaybackInner>,
}

/// The binary under test.
pub fn wayback_bin() -> &'static str {
    env!("CARGO_BIN_EXE_wayback")
}

impl Wayback {
    pub fn new() -> Wayback {
        Wayback::with_extra_config("")
    }

    /// `extra` is appended to the top-level keys of the generated config.
    pub fn with_extra_config(extra: &str) -> Wayback {
        Wayback::with_configs(extra, "")
    }

    /// `extra` goes into the config's `[proxy]` section.
    pub fn with_proxy_extra(extra: &str) -> Wayback {
        Wayback::with_configs("", extra)
    }

    fn with_configs(extra: &str, proxy_extra: &str) -> Wayback {
        let n = next_counter();
        let dir = tempfile::Builder::new()
            .prefix(&format!("wbt{}x{n}-cfg-", std::process::id()))
            .tempdir()
            .expect("tempdir for config");
        let state_dir = dir.path().join("state");
        let runtime_dir = dir.path().join("run");
        let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        // A /24 per test: distinct for every counter value within this process (37 is coprime to 254).
        let third = ((std::process::id() as u64 + u64::from(n) * 37) % 254) + 1;
        let pool_net = format!("10.213.{third}.0/24");
        let config = dir.path().join("config.toml");
        // `extra` may override the default readiness timeout.
        let ready = if extra.contains("ready_timeout") {
            ""
        } else {
            "ready_timeout = \"60s\"\n"
        };
        let text = format!(
            "state_dir = \"{}\"\nruntime_dir = \"{}\"\nbase_domain = \"wbt.test\"\ndefault_ttl = \"30m\"\n\
             address_pool = \"{pool_net}\"\nclone_dir = \".wayback\"\n{ready}{extra}\n\
             [proxy]\nlisten = \"{proxy}\"\n{proxy_extra}\n",
            state_dir.display(),
            runtime_dir.display(),
        );
        fs::write(&config, text).expect("write config");
        Wayback {
            inner: Arc::new(WaybackInner {
                dir,
                config,
                state_dir,
                runtime_dir,
                proxy,
                pool_net,
            }),
        }
    }

    pub fn config_path(&self) -> &Path {
        &self.inner.config
    }
    pub fn state_dir(&self) -> PathBuf {
        self.inner.state_dir.clone()
    }
    pub fn runtime_dir(&self) -> PathBuf {
        self.inner.runtime_dir.clone()
    }
    /// The proxy's listen address from the config.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.inner.proxy
    }
    pub fn address_pool(&self) -> &str {
        &self.inner.pool_net
    }
    /// A scratch directory owned by this runner (removed with it).
    pub fn tmp(&self) -> &Path {
        self.inner.dir.path()
    }

    /// `wayback --config CFG <args>`, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(wayback_bin());
        c.arg("--config").arg(&self.inner.config).args(args);
        c.env_remove("WAYBACK_CONFIG");
        c.current_dir(self.inner.dir.path());
        c
    }

    /// Run `wayback <args>` to completion (at most 120 s; panics on timeout).
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_timeout(args, Duration::from_secs(120))
    }

    pub fn run_timeout(&self, args: &[&str], timeout: Duration) -> Output {
        let out = output_timeout(&mut self.command(args), timeout)
            .unwrap_or_else(|e| panic!("`wayback {}`: {e}", args.join(" ")));
        eprintln!("$ wayback {}\n{}", args.join(" "), show(&out));
        out
    }

    /// Run and require exit 0; returns stdout.
    #[track_caller]
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`wayback {}` failed\n{}",
            args.join(" "),
            show(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Spawn `wayback up <args> --json` and wait (at most 90 s) for its ready JSON line on stdout.
    /// Panics with its output if it exits or times out first.
    pub fn up_background(&self, args: &[&str]) -> UpHandle {
        self.up_background_timeout(args, Duration::from_secs(90))
    }

    pub fn up_background_timeout(&self, args: &[&str], timeout: Duration) -> UpHandle {
        let mut full = vec!["up"];
        full.extend_from_slice(args);
        full.push("--json");
        let started = Instant::now();
        let mut child = self
            .command(&full)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn wayback: {e}"));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        drain(child.stderr.take().unwrap(), stderr.clone());
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let mut handle = UpHandle {
            child: Some(child),
            status: None,
            args: full.iter().map(|s| s.to_string()).collect(),
            ready: serde_json::Value::Null,
            ready_after: Duration::ZERO,
            stdout_lines: rx,
            other_stdout: Vec::new(),
            stderr,
            wb: self.clone(),
        };
        let deadline = started + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match handle
                .stdout_lines
                .recv_timeout(left.max(Duration::from_millis(1)))
            {
                Ok(line) => match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) if v.get("state").and_then(|s| s.as_str()) == Some("running") => {
                        handle.ready = v;
                        handle.ready_after = started.elapsed();
                        return handle;
                    }
                    _ => handle.other_stdout.push(line),
                },
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "`wayback {}` printed no ready JSON line within {timeout:?}\n{}",
                        handle.args.join(" "),
                        handle.describe()
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = handle.wait_exit(Duration::from_secs(10));
                    panic!(
                        "`wayback {}` closed stdout before it was ready (exit: {status:?})\n{}",
                        handle.args.join(" "),
                        handle.describe()
                    );
                }
            }
        }
    }
}

impl Default for Wayback {
    fn default() -> Self {
        Wayback::new()
    }
}

/// A running foreground `wayback up`. Drop: SIGTERM to that child only, wait, then `down --all` and `gc`
/// as a safety net.
pub struct UpHandle {
    child: Option<Child>,
    status: Option<ExitStatus>,
    args: Vec<String>,
    /// The ready JSON object.
    pub ready: serde_json::Value,
    /// Time from spawning `up` to its ready line.
    pub ready_after: Duration,
    stdout_lines: Receiver<String>,
    other_stdout: Vec<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    wb: Wayback,
}

impl UpHandle {
    pub fn name(&self) -> String {
        self.ready["name"].as_str().unwrap_or_default().to_string()
    }

    pub fn url(&self) -> Option<String> {
        self.ready["url"].as_str().map(str::to_string)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything `up` printed on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Stdout lines other than the ready line, so far.
    pub fn stdout(&mut self) -> Vec<String> {
        while let Ok(l) = self.stdout_lines.try_recv() {
            self.other_stdout.push(l);
        }
        self.other_stdout.clone()
    }

    pub fn describe(&mut self) -> String {
        format!(
            "--- stdout (besides the ready line) ---\n{}\n--- stderr ---\n{}",
            self.stdout().join("\n"),
            self.stderr()
        )
    }

    /// Wait for `up` to exit by itself; `None` if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.status {
            return Some(s);
        }
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(s)) => {
                    self.status = Some(s);
                    return Some(s);
                }
                Ok(None) if Instant::now() >= deadline => return None,
                Ok(None) => thread::sleep(Duration::from_millis(25)),
                Err(e) => panic!("wait for wayback up: {e}"),
            }
        }
    }

    /// Send SIGTERM to the `up` process (this child only) and wait for it; `None` on timeout.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(pid) = self.pid() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        self.wait_exit(timeout)
    }
}

impl UpHandle {
    /// Send `sig` to the `up` process (this child only).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        if self.status.is_none() {
            if let Some(pid) = self.pid() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
            }
        }
    }

    /// SIGKILL the `up` process (our child), as a crash would, and reap it. Its instance is left behind.
    pub fn kill_hard(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(c) = self.child.as_mut() {
                let _ = c.kill();
                self.status = c.wait().ok();
            }
        }
        self.status
    }
}

impl Drop for UpHandle {
    fn drop(&mut self) {
        let running = self.status.is_none() && self.child.is_some();
        if running && self.terminate(Duration::from_secs(60)).is_none() {
            eprintln!(
                "cleanup: wayback up did not exit within 60 s of SIGTERM; killing it (our child)"
            );
            if let Some(c) = self.child.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for args in [&["down", "--all"][..], &["gc"][..]] {
            match output_timeout(&mut self.wb.command(args), Duration::from_secs(60)) {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!(
                    "cleanup: `wayback {}` failed\n{}",
                    args.join(" "),
                    show(&out)
                ),
                Err(e) => eprintln!("cleanup: `wayback {}`: {e}", args.join(" ")),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// LivePostgres
// ---------------------------------------------------------------------------------------------------------

/// The newest PostgreSQL version installed under /usr/lib/postgresql (e.g. "15").
pub fn pg_version() -> String {
    let mut versions: Vec<u32> = fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (/usr/lib/postgresql missing)")
        .flatten()
        .filter(|e| e.path().join("bin/postgres").exists())
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    versions.sort();
    versions
        .last()
        .expect("no /usr/lib/postgresql/<v>/bin/postgres")
        .to_string()
}

pub fn pg_bin(tool: &str) -> PathBuf {
    Path::new("/usr/lib/postgresql")
        .join(pg_version())
        .join("bin")
        .join(tool)
}

/// Run `sql` with psql (no psqlrc, unaligned, tuples only) against `host:port` as user postgres, from the
/// host's network namespace. Returns stdout, or Err with psql's stderr.
pub fn psql_at(addr: SocketAddr, sql: &str) -> Result<String, String> {
    let mut c = Command::new(pg_bin("psql"));
    c.args([
        "-X",
        "-A",
        "-t",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        "postgres",
        "-d",
        "postgres",
    ])
    .arg("-h")
    .arg(addr.ip().to_string())
    .arg("-p")
    .arg(addr.port().to_string())
    .arg("-c")
    .arg(sql)
    .env("PGCONNECT_TIMEOUT", "10");
    let out = output_timeout(&mut c, Duration::from_secs(60))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(show(&out))
    }
}

/// A live PostgreSQL server on a pool subvolume, running in a network namespace of its own (so its port
/// 5432 clashes with nothing on the host). Cluster `wbt` of the newest installed version, data directory
/// `<subvolume>/var/lib/postgresql/<v>/wbt`, config inside the data directory (there is no
/// /etc/postgresql/<v>/wbt), listening on 127.0.0.1 with `trust` for 127.0.0.1/32.
pub struct LivePostgres {
    pub netns: String,
    pub version: String,
    pub data_dir: PathBuf,
    tmp: TempDir,
    log: PathBuf,
    sock_dir: PathBuf,
    running: bool,
}

pub const LIVE_CLUSTER: &str = "wbt";

impl LivePostgres {
    /// initdb into `<pool>/<subvol_rel>/var/lib/postgresql/<v>/wbt` (the subvolume must exist) and start it.
    pub fn start(pool: &BtrfsPool, subvol_rel: &str) -> LivePostgres {
        let version = pg_version();
        let etc = Path::new("/etc/postgresql")
            .join(&version)
            .join(LIVE_CLUSTER);
        assert!(
            !etc.exists(),
            "{} exists: the test cluster must use its data directory's own config",
            etc.display()
        );
        let root = pool.path(subvol_rel);
        let pg_root = root.join("var/lib/postgresql");
        let ver_dir = pg_root.join(&version);
        mkdir_p(&ver_dir);
        cmd_ok("chown", &["-R", "postgres:postgres", path_str(&pg_root)]);
        chmod(&pg_root, 0o755);
        let data_dir = ver_dir.join(LIVE_CLUSTER);

        let tmp = tempfile::Builder::new()
            .prefix(&format!("wbt{}x{}-pg-", std::process::id(), next_counter()))
            .tempdir()
            .expect("tempdir for postgres");
        chmod(tmp.path(), 0o755);
        let sock_dir = tmp.path().join("sock");
        mkdir_p(&sock_dir);
        cmd_ok("chown", &["-R", "postgres:postgres", path_str(tmp.path())]);
        let log = tmp.path().join("postgres.log");

        let initdb = pg_bin("initdb");
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&initdb)
            .args([
                "-D",
                path_str(&data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg("--no-sync")
            .current_dir(tmp.path())
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed\n{}", show(&out));

        let conf = data_dir.join("postgresql.conf");
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .expect("open postgresql.conf");
        writeln!(
            f,
            "\n# wayback test cluster\nlisten_addresses = '127.0.0.1'\nport = 5432"
        )
        .unwrap();
        drop(f);
        fs::write(
            data_dir.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
        cmd_ok(
            "chown",
            &[
                "postgres:postgres",
                path_str(&conf),
                path_str(&data_dir.join("pg_hba.conf")),
            ],
        );

        let netns = format!("wbtlive{}x{}", std::process::id(), next_counter());
        cmd_ok("ip", &["netns", "add", &netns]);
        let mut live = LivePostgres {
            netns,
            version,
            data_dir,
            tmp,
            log,
            sock_dir,
            running: false,
        };
        cmd_ok("ip", &["-n", &live.netns, "link", "set", "lo", "up"]);

        // The socket directory goes on the command line, not into postgresql.conf: the snapshot must not
        // carry a path that only exists on the host.
        let opts = format!("-k {}", live.sock_dir.display());
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &live.netns,
            "runuser",
            "-u",
            "postgres",
            "--",
        ])
        .arg(pg_bin("pg_ctl"))
        .args([
            "-D",
            path_str(&live.data_dir),
            "-l",
            path_str(&live.log),
            "-o",
            &opts,
            "-w",
            "-t",
            "60",
            "start",
        ])
        .current_dir(live.tmp.path());
        let res = output_timeout(&mut c, Duration::from_secs(90));
        // pg_ctl may have started the server even if it reported failure: always try to stop it in Drop.
        live.running = true;
        match res {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "pg_ctl start failed\n{}\n--- server log ---\n{}",
                show(&out),
                live.server_log()
            ),
            Err(e) => panic!(
                "pg_ctl start: {e}\n--- server log ---\n{}",
                live.server_log()
            ),
        }
        live
    }

    /// The server's log so far.
    pub fn server_log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Run SQL against the live server (psql inside its netns). Panics on error.
    #[track_caller]
    pub fn psql(&self, sql: &str) -> String {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns])
            .arg(pg_bin("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                "5432",
            ])
            .args(["-U", "postgres", "-d", "postgres", "-c", sql]);
        let out =
            output_timeout(&mut c, Duration::from_secs(60)).unwrap_or_else(|e| panic!("psql: {e}"));
        assert!(
            out.status.success(),
            "psql {sql:?} against the live server failed\n{}",
            show(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stop the server (fast shutdown).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin("pg_ctl"))
            .args([
                "-D",
                path_str(&self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ])
            .current_dir(self.tmp.path())
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("cleanup: pg_ctl stop failed\n{}", show(&o)),
            Err(e) => eprintln!("cleanup: cannot run pg_ctl stop: {e}"),
        }
    }
}

impl Drop for LivePostgres {
    fn drop(&mut self) {
        self.stop();
        cmd_quiet("ip", &["netns", "del", &self.netns]);
    }
}

// ---------------------------------------------------------------------------------------------------------
// HttpGet
// ---------------------------------------------------------------------------------------------------------

/// Status, lower-cased headers, raw body.
pub type RawResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// A minimal HTTP/1.1 client (GET, `Connection: close`, Content-Length / chunked / until-close bodies).
pub struct HttpGet;

impl HttpGet {
    /// `GET path` from `addr` with header `Host: host`. Returns (status, body).
    pub fn get(addr: SocketAddr, host: &str, path: &str) -> std::io::Result<(u16, String)> {
        let (status, _headers, body) = Self::get_full(addr, host, path)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// As [`HttpGet::get`], retrying connection errors until `timeout`.
    pub fn get_retry(
        addr: SocketAddr,
        host: &str,
        path: &str,
        timeout: Duration,
    ) -> std::io::Result<(u16, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            match Self::get(addr, host, path) {
                Ok(r) => return Ok(r),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// (status, lower-cased headers, raw body).
    pub fn get_full(addr: SocketAddr, host: &str, path: &str) -> std::io::Result<RawResponse> {
        use std::io::{Error, ErrorKind};
        let bad = |m: &str| Error::new(ErrorKind::InvalidData, m.to_string());
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wayback-tests\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )?;
        s.flush()?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line)?;
        // "HTTP/1.1 200 OK"
        let mut parts = line.split_whitespace();
        let version = parts.next().ok_or_else(|| bad("empty response"))?;
        if !version.starts_with("HTTP/1.") {
            return Err(bad(&format!("not an HTTP/1 response: {line:?}")));
        }
        let status: u16 = parts
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad(&format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Err(bad("connection closed in headers"));
            }
            let h = h.trim_end_matches(['\r', '\n']);
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            loop {
                let mut size_line = String::new();
                if r.read_line(&mut size_line)? == 0 {
                    return Err(bad("connection closed in chunked body"));
                }
                let size_hex = size_line.trim().split(';').next().unwrap_or("");
                let size =
                    usize::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
                if size == 0 {
                    // Trailers, then the final empty line.
                    loop {
                        let mut t = String::new();
                        if r.read_line(&mut t)? == 0 || t.trim().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let mut chunk = vec![0u8; size];
                r.read_exact(&mut chunk)?;
                body.extend_from_slice(&chunk);
                let mut crlf = [0u8; 2];
                r.read_exact(&mut crlf)?;
            }
        } else if let Some(len) = header("content-length") {
            let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
            body.resize(len, 0);
            r.read_exact(&mut body)?;
        } else {
            r.read_to_end(&mut body)?;
        }
        Ok((status, headers, body))
    }
}

// ---------------------------------------------------------------------------------------------------------
// Daemon and certificates
// ---------------------------------------------------------------------------------------------------------

/// A `wayback serve` the test started: stopped with SIGTERM (ours, by PID) when dropped, also on panic.
pub struct Daemon(pub Child);

impl std::ops::Deref for Daemon {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = self.0.wait();
        }
    }
}

/// Start `wayback serve` for `wb` (with `WAYBACK_FAULT_POINT` when given), its stderr appended to
/// `<tmp>/serve.err`, and wait for its socket.
pub fn start_daemon(wb: &Wayback, fault_point: Option<u32>) -> Daemon {
    // A killed daemon leaves its socket file: wait for the new one, not that.
    let sock = wb.runtime_dir().join("wayback.sock");
    let _ = fs::remove_file(&sock);
    let mut c = wb.command(&["serve"]);
    if let Some(k) = fault_point {
        c.env("WAYBACK_FAULT_POINT", k.to_string());
    }
    let err = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(wb.tmp().join("serve.err"))
        .unwrap();
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    let daemon = Daemon(child);
    wait_for(Duration::from_secs(30), || sock.exists().then_some(())).expect("daemon socket");
    daemon
}

/// A throwaway CA (`ca.pem`, `ca.key`) and a certificate for `names` signed by it (`<stem>.pem`,
/// `<stem>.key`) in `dir`, made with openssl. `names` are subjectAltName entries (`DNS:x`, `IP:y`).
pub fn make_certificate(dir: &Path, stem: &str, cn: &str, names: &str) {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    if !dir.join("ca.pem").exists() {
        let mut a = vec!["req", "-x509"];
        a.extend(ec);
        a.extend(["-days", "2", "-subj", "/CN=wbt test CA"]);
        let (k, o) = (p("ca.key"), p("ca.pem"));
        a.extend(["-keyout", &k, "-out", &o]);
        cmd_ok("openssl", &a);
    }
    let (key, csr, pem, ext) = (
        p(&format!("{stem}.key")),
        p(&format!("{stem}.csr")),
        p(&format!("{stem}.pem")),
        p(&format!("{stem}.ext")),
    );
    let subj = format!("/CN={cn}");
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend(["-subj", &subj, "-keyout", &key, "-out", &csr]);
    cmd_ok("openssl", &a);
    fs::write(&ext, format!("subjectAltName={names}\n")).unwrap();
    let (ca, cakey) = (p("ca.pem"), p("ca.key"));
    cmd_ok(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &cakey,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ],
    );
}
