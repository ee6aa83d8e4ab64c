//! `Wayback` / `UpHandle`: run the binary under test with a per-test config, in the foreground or not.

#![allow(dead_code, unused_imports)]

use super::*;

struct WaybackInner {
    dir: TempDir,
    config: PathBuf,
    state_dir: PathBuf,
    runtime_dir: PathBuf,
    proxy: SocketAddr,
    console: SocketAddr,
    pool_net: String,
}

impl Drop for WaybackInner {
    /// Safety net: if anything of this config is still registered (a test failed half-way, or `up` was
    /// killed on a timeout), tear it down before the temp dir goes.
    fn drop(&mut self) {
        let has_instances =
            fs::read_dir(self.state_dir.join("instances")).is_ok_and(|mut rd| rd.next().is_some());
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

/// The binary under test: `$WAYBACK_BIN`, or the `wayback` cargo built next to the running test binary
/// (`target/<profile>/deps/TEST` → `target/<profile>/wayback`), as cargo builds a package's binaries before
/// its integration tests.
pub fn wayback_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(b) = std::env::var_os("WAYBACK_BIN") {
            return b.to_string_lossy().into_owned();
        }
        let exe = std::env::current_exe().expect("the test binary's path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps");
        let bin = dir.join("wayback");
        assert!(
            bin.is_file(),
            "{}: no wayback binary (set WAYBACK_BIN)",
            bin.display()
        );
        bin.to_string_lossy().into_owned()
    })
}

impl Wayback {
    pub fn new() -> Wayback {
        Wayback::with_extra_config("")
    }

    /// `extra` is appended to the top-level keys of the generated config.
    pub fn with_extra_config(extra: &str) -> Wayback {
        Wayback::with_configs(extra, "", false)
    }

    /// With a `[console]` section: the daemon's web console on a port of its own ([`Wayback::console_addr`]).
    /// (Not in every config: the previous release, run on these configs by tests/upgrade.rs, has no
    /// `[console]` and refuses unknown sections.)
    pub fn with_console(extra: &str) -> Wayback {
        Wayback::with_configs(extra, "", true)
    }

    /// `extra` goes into the config's `[proxy]` section.
    pub fn with_proxy_extra(extra: &str) -> Wayback {
        Wayback::with_configs("", extra, false)
    }

    fn with_configs(extra: &str, proxy_extra: &str, with_console: bool) -> Wayback {
        let n = next_counter();
        let dir = tempfile::Builder::new()
            .prefix(&format!("wbt{}x{n}-cfg-", std::process::id()))
            .tempdir()
            .expect("tempdir for config");
        let state_dir = dir.path().join("state");
        let runtime_dir = dir.path().join("run");
        let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let console: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let console_section = if with_console {
            format!("[console]\nlisten = \"{console}\"\n")
        } else {
            String::new()
        };
        // A /24 per test: distinct for every counter value within this process (37 is coprime to 254).
        let third = ((u64::from(std::process::id()) + u64::from(n) * 37) % 254) + 1;
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
             [proxy]\nlisten = \"{proxy}\"\n{proxy_extra}\n{console_section}",
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
                console,
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
    /// Where the daemon's web console listens (`[console] listen`).
    pub fn console_addr(&self) -> SocketAddr {
        self.inner.console
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
            args: full.iter().map(std::string::ToString::to_string).collect(),
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

/// `wayback up` arguments built step by step, so a test says what it asks for and nothing else:
/// `wb.up(&snap).name(&n).bind("/srv/www").exec("exec sleep 1000").start()`.
pub struct UpBuilder<'a> {
    wb: &'a Wayback,
    args: Vec<String>,
}

impl Wayback {
    /// Start building `up SNAPSHOT …`.
    pub fn up(&self, snapshot: &Path) -> UpBuilder<'_> {
        UpBuilder {
            wb: self,
            args: vec![snapshot.display().to_string()],
        }
    }
}

impl UpBuilder<'_> {
    /// Any flag with its value(s), e.g. `.arg(["--ttl", "3s"])`.
    pub fn arg<const N: usize>(mut self, a: [&str; N]) -> Self {
        self.args
            .extend(a.iter().map(std::string::ToString::to_string));
        self
    }
    pub fn name(self, n: &str) -> Self {
        self.arg(["--name", n])
    }
    pub fn bind(self, path: &str) -> Self {
        self.arg(["--bind", path])
    }
    pub fn exec(self, cmd: &str) -> Self {
        self.arg(["--exec", cmd])
    }
    pub fn profile(self, p: &str) -> Self {
        self.arg(["--profile", p])
    }
    pub fn host(self, h: &str) -> Self {
        self.arg(["--host", h])
    }
    pub fn port(self, p: u16) -> Self {
        let p = p.to_string();
        self.arg(["--port", &p])
    }
    fn strs(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }
    /// Run it in the background and wait for its ready line.
    pub fn start(self) -> UpHandle {
        self.wb.up_background(&self.strs())
    }
    /// `--dry-run`, which must succeed; its plan.
    pub fn dry_run(self) -> String {
        let mut a = vec!["up"];
        a.extend(self.strs());
        a.push("--dry-run");
        self.wb.run_ok(&a)
    }
    /// Run it to completion (a refusal, say).
    pub fn run(self) -> Output {
        let mut a = vec!["up"];
        a.extend(self.strs());
        self.wb.run(&a)
    }
}
