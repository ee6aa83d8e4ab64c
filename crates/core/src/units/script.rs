//! The shell wrapper a unit becomes when one argv cannot express it: `ExecStartPre=`/`ExecStartPost=`,
//! `Type=forking` (supervising the `PIDFile=` process), `Type=oneshot`, `UMask=`, or commands that run as
//! different users. wayback's init ends the instance when a process exits, so every wrapper stays in the
//! foreground for the unit's lifetime: it `exec`s the main command when nothing follows it, forwards the stop
//! signal to the main process otherwise, and marks the unit started with a file the next process waits for.

use std::path::PathBuf;

use crate::plan::shell_words;

/// Where wrappers mark a unit as started (created by init, mode 1777).
pub(crate) const MARKER_DIR: &str = "/run/wayback-units";

/// One command of the wrapper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cmd {
    pub argv: Vec<String>,
    /// `-` prefix: failure ignored.
    pub ignore_failure: bool,
    /// Runs with full privileges (`+`, `!`) although `User=` is set.
    pub as_root: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MainKind {
    /// simple, exec, notify, dbus, idle: the start command is the service.
    Foreground,
    /// The start command daemonizes; the daemon's PID is read from the file, if any.
    Forking { pid_file: Option<PathBuf> },
    /// The start commands run to completion.
    Oneshot,
}

#[derive(Debug, Clone)]
pub(crate) struct Script {
    pub unit: String,
    pub kind: MainKind,
    pub pre: Vec<Cmd>,
    pub start: Vec<Cmd>,
    pub post: Vec<Cmd>,
    pub umask: Option<String>,
    /// The wrapper runs as root; commands that are not `as_root` switch to this user (and group, else the
    /// user's primary group) with setpriv(1).
    pub drop_to: Option<(String, Option<String>)>,
    /// Signal name without "SIG", forwarded to the main process.
    pub stop_signal: String,
    /// A unix socket to wait for before `ExecStartPost=` (from the unit's .socket).
    pub wait_for_socket: Option<PathBuf>,
    /// File written once the unit counts as started.
    pub marker: Option<PathBuf>,
}

/// Quote one word for sh.
pub(crate) fn quote(s: &str) -> String {
    shell_words(&[s.to_string()])
}

/// Finds setpriv (and, through `$tools`, id) on the host's usual paths plus the unit's own PATH.
const TOOLS_PATH_LINE: &str = "tools=\"$PATH:/run/current-system/sw/bin:/usr/bin:/bin:/usr/sbin:/sbin\"\nsetpriv=$(PATH=\"$tools\" command -v setpriv) || { echo 'wayback: setpriv (util-linux) not found' >&2; exit 1; }\n";

impl Script {
    fn words(&self, c: &Cmd) -> String {
        let mut out = String::new();
        if let (Some((user, group)), false) = (&self.drop_to, c.as_root) {
            let gid = group.as_deref().map_or("\"$gid\"".to_string(), quote);
            out = format!(
                "\"$setpriv\" --reuid={} --regid={gid} --init-groups -- ",
                quote(user)
            );
        }
        out.push_str(&shell_words(&c.argv));
        out
    }

    /// Run `c`; on failure (unless ignored) run `on_fail`.
    fn step(&self, out: &mut String, c: &Cmd, on_fail: &str) {
        let tail = if c.ignore_failure { ":" } else { on_fail };
        out.push_str(&format!("{} || {tail}\n", self.words(c)));
    }

    fn mark(&self, out: &mut String) {
        if let Some(m) = &self.marker {
            out.push_str(&format!(": > {}\n", quote(&m.display().to_string())));
        }
    }

    pub(crate) fn render(&self) -> String {
        let sig = &self.stop_signal;
        let mut s = String::new();
        let kind = match &self.kind {
            MainKind::Foreground => "the start command is the service",
            MainKind::Forking { pid_file: Some(_) } => {
                "Type=forking: the daemon is supervised through its PID file"
            }
            MainKind::Forking { pid_file: None } => {
                "Type=forking without PIDFile=: the daemon is not supervised"
            }
            MainKind::Oneshot => "Type=oneshot: runs once, then idles",
        };
        s.push_str(&format!("# wayback: {} ({kind})\n", self.unit));
        if let Some(m) = &self.umask {
            s.push_str(&format!("umask {m}\n"));
        }
        if self.drop_to.is_some() {
            // util-linux's setpriv and coreutils' id, wherever the host keeps them: a unit's own PATH may
            // not include them (NixOS units list only their own store paths).
            s.push_str(TOOLS_PATH_LINE);
        }
        if matches!(&self.drop_to, Some((_, None))) {
            let user = &self
                .drop_to
                .as_ref()
                .map(|d| d.0.clone())
                .unwrap_or_default();
            s.push_str(&format!(
                "gid=$(PATH=\"$tools\" id -g {}) || exit\n",
                quote(user)
            ));
        }
        for c in &self.pre {
            self.step(&mut s, c, "exit");
        }
        let fail =
            "{ st=$?; kill -s ".to_string() + sig + " \"$main\" 2>/dev/null; exit \"$st\"; }";
        match &self.kind {
            MainKind::Foreground => {
                let main = self.start.last().expect("a foreground unit has ExecStart");
                if self.post.is_empty() && self.marker.is_none() {
                    s.push_str(&format!("exec {}\n", self.words(main)));
                    return s;
                }
                s.push_str(&format!("{} &\nmain=$!\n", self.words(main)));
                s.push_str(&format!(
                    "trap 'kill -s {sig} \"$main\" 2>/dev/null' {sig}\n"
                ));
                if let Some(sock) = &self.wait_for_socket {
                    s.push_str(&format!(
                        "n=0\nuntil [ -S {} ]; do\n  kill -0 \"$main\" 2>/dev/null || {{ wait \"$main\"; exit; }}\n  n=$((n+1)); [ \"$n\" -lt 1200 ] || break\n  sleep 0.1\ndone\n",
                        quote(&sock.display().to_string())
                    ));
                }
                for c in &self.post {
                    self.step(&mut s, c, &fail);
                }
                self.mark(&mut s);
                s.push_str(
                    "while :; do wait \"$main\"; st=$?; kill -0 \"$main\" 2>/dev/null || exit \"$st\"; done\n",
                );
            }
            MainKind::Forking { pid_file } => {
                for c in &self.start {
                    self.step(&mut s, c, "exit");
                }
                match pid_file {
                    Some(p) => {
                        let msg = quote(&format!(
                            "wayback: {}: no PID in {} after the start command returned",
                            self.unit,
                            p.display()
                        ));
                        let p = quote(&p.display().to_string());
                        s.push_str(&format!(
                            "n=0\nuntil [ -s {p} ]; do\n  n=$((n+1))\n  [ \"$n\" -le 100 ] || {{ echo {msg} >&2; exit 1; }}\n  sleep 0.1\ndone\nmain=$(cat {p})\n"
                        ));
                        s.push_str(&format!(
                            "trap 'kill -s {sig} \"$main\" 2>/dev/null' {sig}\n"
                        ));
                        for c in &self.post {
                            self.step(&mut s, c, &fail);
                        }
                        self.mark(&mut s);
                        s.push_str("while kill -0 \"$main\" 2>/dev/null; do sleep 1; done\n");
                    }
                    None => {
                        for c in &self.post {
                            self.step(&mut s, c, "exit");
                        }
                        self.mark(&mut s);
                        s.push_str("exec sleep infinity\n");
                    }
                }
            }
            MainKind::Oneshot => {
                for c in self.start.iter().chain(&self.post) {
                    self.step(&mut s, c, "exit");
                }
                self.mark(&mut s);
                s.push_str("exec sleep infinity\n");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(argv: &[&str]) -> Cmd {
        Cmd {
            argv: argv.iter().map(std::string::ToString::to_string).collect(),
            ignore_failure: false,
            as_root: false,
        }
    }

    fn script(kind: MainKind) -> Script {
        Script {
            unit: "x.service".into(),
            kind,
            pre: vec![cmd(&["/bin/check", "a b"])],
            start: vec![cmd(&["/bin/x"])],
            post: vec![],
            umask: None,
            drop_to: None,
            stop_signal: "TERM".into(),
            wait_for_socket: None,
            marker: None,
        }
    }

    #[test]
    fn foreground_execs_the_main_command() {
        let s = script(MainKind::Foreground).render();
        assert!(
            s.ends_with("/bin/check 'a b' || exit\nexec /bin/x\n"),
            "{s}"
        );
    }

    #[test]
    fn post_and_users() {
        let mut sc = script(MainKind::Foreground);
        sc.post = vec![Cmd {
            as_root: true,
            ignore_failure: true,
            ..cmd(&["/bin/post"])
        }];
        sc.drop_to = Some(("mysql".into(), None));
        sc.wait_for_socket = Some("/run/x.sock".into());
        sc.marker = Some("/run/wayback-units/x.service.started".into());
        let s = sc.render();
        assert!(
            s.contains("gid=$(PATH=\"$tools\" id -g mysql) || exit\n"),
            "{s}"
        );
        assert!(
            s.contains("\"$setpriv\" --reuid=mysql --regid=\"$gid\" --init-groups -- /bin/x &\n")
        );
        assert!(
            s.contains("setpriv=$(PATH=\"$tools\" command -v setpriv)"),
            "{s}"
        );
        assert!(s.contains("until [ -S /run/x.sock ]"));
        assert!(s.contains("\n/bin/post || :\n: > /run/wayback-units/x.service.started\n"));
    }

    #[test]
    fn forking_and_oneshot() {
        let s = script(MainKind::Forking {
            pid_file: Some("/run/x.pid".into()),
        })
        .render();
        assert!(
            s.contains("main=$(cat /run/x.pid)\ntrap 'kill -s TERM \"$main\" 2>/dev/null' TERM\n"),
            "{s}"
        );
        assert!(s.ends_with("while kill -0 \"$main\" 2>/dev/null; do sleep 1; done\n"));
        let s = script(MainKind::Oneshot).render();
        assert!(s.ends_with("/bin/x || exit\nexec sleep infinity\n"), "{s}");
    }
}
