//! Live servers started by hand as their units would start them (systemd is not PID 1 here), each in a
//! mount and network namespace of its own; stopped by PID; checked to leave no namespace behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use wayback_testsupport::*;

/// Detach this mount namespace's copies of network namespace files and of mounts under the temp dir `$1`
/// (other tests' pools) except those under `$2` (this test's pool; empty: none): a private namespace would
/// otherwise keep them alive. Only ever run in a private mount namespace; lazy unmounts there do not reach
/// the host's.
pub const RELEASE_FOREIGN_MOUNTS: &str = r#"
tmp="$1"; keep="$2"
awk -v tmp="$tmp/" -v keep="$keep" '{
    n = index($0, " - "); split(substr($0, n + 3), t, " ")
    if (t[1] == "nsfs" || (index($5, tmp) == 1 && (keep == "" || index($5, keep) != 1))) print $5
}' /proc/self/mountinfo | sort -r | while read -r p; do umount -l "$p" 2>/dev/null || true; done
"#;

pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The mount or network namespace of `pid` (`mnt:[4026531841]`).
pub fn ns_of(pid: u32, kind: &str) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Processes in namespace `ns` (as [`ns_of`] names it) of kind `kind`.
pub fn ns_holders(kind: &str, ns: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if pid.bytes().all(|b| b.is_ascii_digit())
            && fs::read_link(e.path().join("ns").join(kind))
                .is_ok_and(|l| l.to_string_lossy() == ns)
        {
            let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            out.push(format!("process {pid} in {ns}: {}", cmdline.trim()));
        }
    }
    out
}

/// What a live server needs in its namespace.
pub struct LiveSpec<'a> {
    /// For messages.
    pub what: &'a str,
    /// (source, destination) bind mounts, e.g. the live root's state directory over the host's.
    pub binds: Vec<(PathBuf, &'a str)>,
    /// Directories made in the namespace's fresh /run: (path, owner, mode).
    pub run_dirs: &'a [(&'a str, &'a str, &'a str)],
    /// Mounts under the temp dir the server needs (the pool): kept, the others are detached.
    pub keep: &'a Path,
    /// The command, as the unit runs it.
    pub argv: Vec<String>,
    /// Where its output goes.
    pub output: PathBuf,
}

/// A live server started by the test in a mount and network namespace of its own; stopped by its PID (our
/// child) when dropped.
pub struct LiveServer {
    pub what: String,
    child: Child,
    /// Its mount and network namespaces, to check that they end with it.
    pub mnt_ns: String,
    pub net_ns: String,
    output: PathBuf,
}

impl LiveServer {
    pub fn start(spec: LiveSpec) -> LiveServer {
        let mut script = String::from("set -e\nrelease() {");
        script.push_str(RELEASE_FOREIGN_MOUNTS);
        script.push_str("}\n");
        let tmp = std::env::temp_dir();
        script.push_str(&format!(
            "release {} {}\nip link set lo up\n",
            sh_quote(path_str(&tmp)),
            sh_quote(path_str(spec.keep))
        ));
        for (src, dest) in &spec.binds {
            script.push_str(&format!(
                "mount --bind {} {}\n",
                sh_quote(path_str(src)),
                sh_quote(dest)
            ));
        }
        script.push_str("mount -t tmpfs -o mode=0755 wbt-run /run\n");
        for (dir, owner, mode) in spec.run_dirs {
            script.push_str(&format!(
                "mkdir -m {mode} {d}\nchown {owner} {d}\n",
                d = sh_quote(dir)
            ));
        }
        let argv: Vec<String> = spec.argv.iter().map(|a| sh_quote(a)).collect();
        script.push_str(&format!("exec {}\n", argv.join(" ")));
        let out = fs::File::create(&spec.output).expect("live server output file");
        // unshare and the shell exec: the child's PID is the server's.
        let child = Command::new("unshare")
            .args(["--mount", "--net", "--propagation", "private", "--"])
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the live {}: {e}", spec.what));
        let pid = child.id();
        let mut live = LiveServer {
            what: spec.what.to_string(),
            child,
            mnt_ns: String::new(),
            net_ns: String::new(),
            output: spec.output,
        };
        let (my_mnt, my_net) = (
            ns_of(std::process::id(), "mnt").unwrap(),
            ns_of(std::process::id(), "net").unwrap(),
        );
        let entered = wait_for(Duration::from_secs(10), || {
            let (m, n) = (ns_of(pid, "mnt")?, ns_of(pid, "net")?);
            (m != my_mnt && n != my_net).then_some((m, n))
        });
        let (m, n) = entered.unwrap_or_else(|| {
            panic!(
                "the live {} did not enter namespaces of its own\n{}",
                live.what,
                live.output()
            )
        });
        live.mnt_ns = m;
        live.net_ns = n;
        live
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Run `argv` in the server's network namespace (a client talking to it on 127.0.0.1).
    pub fn client(&self, argv: &[&str]) -> Output {
        let pid = self.pid().to_string();
        let mut c = Command::new("nsenter");
        c.args(["--target", &pid, "--net", "--"]).args(argv);
        output_timeout(&mut c, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{} against the live {}: {e}", argv[0], self.what))
    }

    /// Send `sig` to the server (our child, by PID).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig)
            .unwrap_or_else(|e| panic!("signal {sig} to the live {}: {e}", self.what));
    }

    /// SIGTERM by PID, wait (SIGKILL after 30 s); then its namespaces must be gone.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let ended = wait_for(Duration::from_secs(30), || {
                self.child.try_wait().ok().flatten()
            });
            if ended.is_none() {
                eprintln!(
                    "cleanup: the live {} ignored SIGTERM for 30 s; SIGKILL",
                    self.what
                );
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }

    /// What of it is still there: its process, anything in its namespaces.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        if Path::new(&format!("/proc/{}", self.pid())).exists() {
            left.push(format!("live {} process {}", self.what, self.pid()));
        }
        left.extend(ns_holders("mnt", &self.mnt_ns));
        left.extend(ns_holders("net", &self.net_ns));
        left
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Poll `f` (a client call) every 50 ms for at most 30 s until it returns true; panic with `what`.
#[track_caller]
pub fn eventually(what: &str, live: &LiveServer, mut f: impl FnMut() -> bool) {
    if wait_for(Duration::from_secs(30), || f().then_some(())).is_none() {
        panic!(
            "{what} (waited 30 s)\n--- live {} output ---\n{}",
            live.what,
            live.output()
        );
    }
}
