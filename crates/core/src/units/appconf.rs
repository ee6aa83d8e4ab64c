//! What a service's own configuration says, for the apps whose data directory, port and configuration
//! files a well-known key names: Redis, Mosquitto, PostgreSQL, MariaDB/MySQL, nginx, php-fpm and Caddy.
//! The app is recognised by the program its `ExecStart=` runs; its config is read from the host (host mode
//! runs the host's config) through the [`UnitSource`], following includes.
//!
//! One small parser per format (submodules). Each format is a line format of a few rules — comments,
//! quotes, an include directive — and only a handful of keys matter; no maintained crate parses these
//! dialects (an INI crate rejects my.cnf's `!include` and valueless keys, nginx's block syntax has no
//! crate beyond full config-manipulation libraries), so a tolerant reader of the subset beats a dependency
//! that fails on real files. Unknown syntax is skipped, never an error: at worst a path is not found.

mod caddy;
mod mosquitto;
mod mysql;
mod nginx;
mod phpfpm;
mod postgres;
mod redis;

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::infer::{ConfigFile, ConfigKind};
use super::search::UnitSource;
use super::state::{classify, Candidate, PathRole};
use super::view::View;
use super::{Report, ReportKind};
use crate::glob::Glob;
use crate::profile::DirSpec;

/// A value and where it was found (`port 6379 in /etc/redis/redis.conf:138`, or the app's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found<T> {
    pub value: T,
    pub reason: String,
}

/// What the app's configuration says.
#[derive(Debug, Default)]
pub(crate) struct AppFacts {
    /// Data and log directories.
    pub candidates: Vec<Candidate>,
    pub configs: Vec<ConfigFile>,
    /// The TCP port it listens on (for readiness).
    pub port: Option<Found<u16>>,
    /// Directories the app needs that nothing else creates (nginx's compiled-in temp directory).
    pub dirs: Vec<(DirSpec, String)>,
    /// Config files that could not be read.
    pub problems: Vec<Report>,
}

/// One `key value…` line of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub line: usize,
    /// The `[section]` or group it is in (empty before any).
    pub section: String,
    pub key: String,
    pub args: Vec<String>,
}

/// `file:line`.
/// `key value…` lines of a config whose comments start with `#` (Redis, Mosquitto): one [`Line`] per
/// line `split` turns into a key and its arguments, numbered from 1.
pub(crate) fn keyword_lines(text: &str, split: impl Fn(&str) -> Option<Vec<String>>) -> Vec<Line> {
    (text.lines().enumerate())
        .filter_map(|(i, raw)| {
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                return None;
            }
            let mut args = split(t).filter(|a| !a.is_empty())?;
            let key = args.remove(0);
            Some(Line {
                line: i + 1,
                section: String::new(),
                key,
                args,
            })
        })
        .collect()
}

pub(crate) fn at(file: &Path, line: usize) -> String {
    format!("{}:{line}", file.display())
}

/// Reading an app's config for one unit: each file once (an include cycle ends there), every file read or
/// named listed among the unit's configuration files.
pub(crate) struct AppCx<'a> {
    pub view: &'a View<'a>,
    src: &'a dyn UnitSource,
    seen: BTreeSet<PathBuf>,
    pub facts: AppFacts,
}

impl<'a> AppCx<'a> {
    fn new(view: &'a View<'a>, src: &'a dyn UnitSource) -> Self {
        AppCx {
            view,
            src,
            seen: BTreeSet::new(),
            facts: AppFacts::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.view.id
    }

    /// Read a config file once, listing it; `None` if already read, missing and `optional`, or unreadable
    /// (reported).
    pub fn read(&mut self, path: &Path, why: impl Into<String>, optional: bool) -> Option<String> {
        if !self.seen.insert(path.to_path_buf()) {
            return None;
        }
        let why = why.into();
        match self.src.read(path) {
            Ok(text) => {
                self.config(path, ConfigKind::File, why);
                Some(text)
            }
            Err(e) if optional && e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                self.config(path, ConfigKind::File, why.clone());
                self.problem(format!(
                    "cannot read {} ({why}): {e}; the data directory and port it may name are not known",
                    path.display()
                ));
                None
            }
        }
    }

    /// Whether a file exists on the host (for files listed only when present).
    pub fn exists(&self, path: &Path) -> bool {
        self.src.canonicalize(path).is_ok()
    }

    /// Where a symlink leads, inside the host tree.
    pub fn resolve(&self, path: &Path) -> Option<PathBuf> {
        self.src.canonicalize(path).ok()
    }

    /// The files matching `pattern` (wildcards only in the last component; names starting with `.` are
    /// skipped, as glob(3) does), sorted. A pattern's directory is listed as a configuration directory.
    pub fn glob(&mut self, pattern: &Path, why: &str) -> Vec<PathBuf> {
        let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
            return Vec::new();
        };
        let name = name.to_string_lossy();
        let Ok(g) = Glob::from_str(&name) else {
            return Vec::new();
        };
        if g.is_literal() {
            return vec![pattern.to_path_buf()];
        }
        if dir.to_string_lossy().contains(['*', '?', '[']) {
            self.problem(format!(
                "{why}: {} has wildcards in a directory name; only the last component is expanded, so its files are not read",
                pattern.display()
            ));
            return Vec::new();
        }
        self.config(dir, ConfigKind::Directory, why.to_string());
        let entries = match self.src.list_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                self.problem(format!("cannot list {} ({why}): {e}", dir.display()));
                return Vec::new();
            }
        };
        entries
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .map(|n| n.to_string_lossy())
                    .is_some_and(|n| !n.starts_with('.') && g.matches(Path::new(&*n)))
            })
            .collect()
    }

    /// A configuration file or directory named (not read), e.g. a password file.
    pub fn config(&mut self, path: &Path, kind: ConfigKind, why: impl Into<String>) {
        if !self.facts.configs.iter().any(|c| c.path == path) {
            self.facts.configs.push(ConfigFile {
                unit: self.view.id.clone(),
                path: path.to_path_buf(),
                kind,
                reason: why.into(),
            });
        }
    }

    /// The app's data directory.
    pub fn data(&mut self, path: &Path, why: String) {
        let c = Candidate::new(&self.view.id, path, false, why);
        self.facts.candidates.extend(c);
    }

    /// A file the app logs to: its directory below /var/log is created in the instance.
    pub fn log_file(&mut self, file: &Path, why: String) {
        let Some(dir) = file.parent() else { return };
        if let Some((PathRole::Logs, _)) = classify(dir) {
            let c = Candidate::new(&self.view.id, dir, true, why);
            self.facts.candidates.extend(c);
        }
    }

    pub fn port(&mut self, value: u16, why: String) {
        self.facts.port = Some(Found { value, reason: why });
    }

    pub fn problem(&mut self, message: String) {
        self.facts.problems.push(Report {
            unit: self.view.id.clone(),
            file: None,
            line: None,
            directive: String::new(),
            value: String::new(),
            kind: ReportKind::Ignored,
            message,
        });
    }

    /// Lines of `path` and the files its include lines name, in the order the app reads them (an included
    /// file's lines right after its include line). `include(cx, file, line)` returns the files a line
    /// includes, with why and whether it may be missing (empty for other lines).
    pub fn flatten(
        &mut self,
        path: &Path,
        why: String,
        optional: bool,
        parse: fn(&str) -> Vec<Line>,
        include: &mut Includer,
    ) -> Vec<(PathBuf, Line)> {
        let mut out = Vec::new();
        self.flatten_into(path, why, optional, 0, parse, include, &mut out);
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn flatten_into(
        &mut self,
        file: &Path,
        why: String,
        optional: bool,
        depth: usize,
        parse: fn(&str) -> Vec<Line>,
        include: &mut Includer,
        out: &mut Vec<(PathBuf, Line)>,
    ) {
        if depth > 16 {
            self.problem(format!(
                "{}: includes nested too deeply; not read",
                file.display()
            ));
            return;
        }
        let Some(text) = self.read(file, why, optional) else {
            return;
        };
        for l in parse(&text) {
            let inc = include(self, file, &l);
            out.push((file.to_path_buf(), l));
            for (f, why, optional) in inc {
                self.flatten_into(&f, why, optional, depth + 1, parse, include, out);
            }
        }
    }
}

/// Which files a config line includes: `(cx, the file it is in, the line)` → `(file, why, optional)`.
pub(crate) type Includer = dyn FnMut(&mut AppCx, &Path, &Line) -> Vec<(PathBuf, String, bool)>;

/// The program's name without its directory.
pub(crate) fn program(argv0: &str) -> &str {
    argv0.rsplit('/').next().unwrap_or(argv0)
}

/// The value of option `name` in `argv` (`--name value`, `--name=value`; `-x value`, `-xvalue` for a
/// one-letter option), last one wins.
pub(crate) fn option<'v>(argv: &'v [String], names: &[&str]) -> Option<&'v str> {
    let mut found = None;
    for (i, a) in argv.iter().enumerate() {
        for n in names {
            if a == n {
                found = argv.get(i + 1).map(String::as_str).or(found);
            } else if let Some(v) = a.strip_prefix(n) {
                if n.starts_with("--") {
                    if let Some(v) = v.strip_prefix('=') {
                        found = Some(v);
                    }
                } else if n.len() == 2 && !v.is_empty() {
                    found = Some(v);
                }
            }
        }
    }
    found
}

/// The commands a `sh -c SCRIPT` runs, roughly: the script split at `;`, `&&`, `||`, `|` and newlines, each
/// piece split at whitespace with quotes dropped, without a leading `exec`, `env` or `VAR=value`, and
/// `$VAR`/`${VAR}` words replaced by the unit's variables split at whitespace (as the shell would). Enough
/// to find `exec /usr/sbin/mariadbd $MYSQLD_OPTS` in Debian's mariadb.service.
fn script_commands(
    script: &str,
    env: &std::collections::BTreeMap<String, String>,
) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let flat = script
        .replace("&&", ";")
        .replace("||", ";")
        .replace(['|', '\n'], ";");
    for piece in flat.split(';') {
        let mut argv: Vec<String> = Vec::new();
        for w in piece.split_whitespace() {
            let w = w.trim_matches(|c| c == '"' || c == '\'' || c == '`');
            let var = w
                .strip_prefix("${")
                .and_then(|v| v.strip_suffix('}'))
                .or_else(|| w.strip_prefix('$'));
            match var {
                Some(v) if v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                    argv.extend(
                        env.get(v)
                            .map_or("", String::as_str)
                            .split_whitespace()
                            .map(str::to_string),
                    );
                }
                _ if argv.is_empty() && (w == "exec" || w == "env" || w.contains('=')) => {}
                _ if !w.is_empty() => argv.push(w.to_string()),
                _ => {}
            }
        }
        if !argv.is_empty() {
            out.push(argv);
        }
    }
    out
}

/// The commands an `ExecStart=` runs: itself, or those of its `sh -c` script.
fn commands_of(
    argv: &[String],
    env: &std::collections::BTreeMap<String, String>,
) -> Vec<Vec<String>> {
    let shell = matches!(program(&argv[0]), "sh" | "bash" | "dash");
    match (shell, argv.iter().position(|a| a == "-c")) {
        (true, Some(i)) => argv
            .get(i + 1)
            .map_or_else(Vec::new, |s| script_commands(s, env)),
        _ => vec![argv.to_vec()],
    }
}

/// Inspect the app the unit runs, if it is one wayback knows.
pub(crate) fn inspect(view: &View, src: &dyn UnitSource) -> AppFacts {
    let mut cx = AppCx::new(view, src);
    let starts: Vec<Vec<String>> = view
        .starts()
        .flat_map(|c| commands_of(&c.argv, &view.env))
        .collect();
    for argv in &starts {
        let prog = program(&argv[0]);
        let known = match prog {
            "redis-server" => redis::inspect(&mut cx, argv),
            "mosquitto" => mosquitto::inspect(&mut cx, argv),
            "pg_ctlcluster" => postgres::debian(&mut cx, argv),
            "postgres" | "postmaster" | "pg_ctl" => postgres::plain(&mut cx, argv),
            "mariadbd" | "mysqld" | "mysqld_safe" | "mariadbd-safe" => {
                mysql::inspect(&mut cx, argv)
            }
            "nginx" => nginx::inspect(&mut cx, argv),
            "caddy" => caddy::inspect(&mut cx, argv),
            p if p.starts_with("php-fpm") => phpfpm::inspect(&mut cx, argv),
            _ => false,
        };
        if known {
            break;
        }
    }
    cx.facts
}

#[cfg(test)]
mod tests {
    use super::{option, script_commands};

    #[test]
    fn shell_scripts() {
        let env = [(
            "MYSQLD_OPTS".to_string(),
            "--skip-name-resolve --port=3307".to_string(),
        )]
        .into();
        let got = script_commands(
            "set -f; [ ! -e /usr/bin/galera_recovery ] && VAR= ||  VAR=`/usr/bin/galera_recovery`; [ $? -eq 0 ] || exit 1;  exec /usr/sbin/mariadbd $MYSQLD_OPTS $_WSREP_NEW_CLUSTER $VAR",
            &env,
        );
        assert_eq!(
            got.last().unwrap(),
            &["/usr/sbin/mariadbd", "--skip-name-resolve", "--port=3307"]
        );
    }

    #[test]
    fn options() {
        let argv: Vec<String> = ["x", "-c", "/a", "--config=/b", "-P3307", "--port", "3308"]
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        assert_eq!(option(&argv, &["-c"]), Some("/a"));
        assert_eq!(option(&argv, &["-c", "--config"]), Some("/b"));
        assert_eq!(option(&argv, &["-P"]), Some("3307"));
        assert_eq!(option(&argv, &["-P", "--port"]), Some("3308"));
        assert_eq!(option(&argv, &["-y"]), None);
    }
}
