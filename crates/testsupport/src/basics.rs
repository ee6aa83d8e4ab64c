//! Basics: the root check, unique names, running commands with timeouts.

#![allow(dead_code, unused_imports)]

use super::*;

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

pub fn next_counter() -> u32 {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Render a command for messages.
pub fn describe(program: &str, args: &[&str]) -> String {
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
pub fn cmd_quiet(program: &str, args: &[&str]) -> bool {
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
pub fn drain<R: Read + Send + 'static>(
    mut r: R,
    buf: Arc<Mutex<Vec<u8>>>,
) -> thread::JoinHandle<()> {
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

pub fn mkdir_p(p: &Path) {
    fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir -p {}: {e}", p.display()));
}

pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", p.display()));
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}
