//! The execution context of a unit as a profile process needs it: users, `*Directory=` (→ `dirs`; which of
//! them the snapshot has and become binds is state.rs's business), `Environment=`/`EnvironmentFile=`/
//! `UnsetEnvironment=`, with specifiers expanded. Also the bookkeeping every conversion step shares: which
//! assignments are still in effect after empty-value resets, and how a report is written.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::parse::{parse_env_file, parse_environment, Assignment};
use super::search::EnvFileReader;
use super::words::{specifiers, split_words, Names};
use super::{Report, ReportKind};
use crate::profile::DirSpec;

/// The assignments still in effect: an empty value clears the earlier ones of the same key.
pub(crate) struct Effective<'a>(BTreeMap<(String, String), Vec<&'a Assignment>>);

impl<'a> Effective<'a> {
    pub fn new(all: &'a [Assignment]) -> Self {
        let mut m: BTreeMap<(String, String), Vec<&Assignment>> = BTreeMap::new();
        for a in all {
            let v = m.entry((a.section.clone(), a.key.clone())).or_default();
            if a.value.is_empty() {
                v.clear();
            } else {
                v.push(a);
            }
        }
        Effective(m)
    }

    pub fn all(&self, section: &str, key: &str) -> &[&'a Assignment] {
        self.0
            .get(&(section.to_string(), key.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    pub fn last(&self, section: &str, key: &str) -> Option<&'a Assignment> {
        self.all(section, key).last().copied()
    }

    pub fn holds(&self, a: &Assignment) -> bool {
        self.all(&a.section, &a.key)
            .iter()
            .any(|x| std::ptr::eq(*x, a))
    }
}

/// Reports and specifier expansion for one unit.
pub(crate) struct Ctx<'r> {
    pub id: String,
    pub names: Names,
    pub reports: &'r mut Vec<Report>,
}

impl Ctx<'_> {
    pub fn report(&mut self, a: &Assignment, kind: ReportKind, message: impl Into<String>) {
        self.reports.push(Report {
            unit: self.id.clone(),
            file: Some(a.loc.file.clone()),
            line: Some(a.loc.line),
            directive: a.key.clone(),
            value: a.value.clone(),
            kind,
            message: message.into(),
        });
    }

    /// A report not tied to one line.
    pub fn note(&mut self, directive: &str, kind: ReportKind, message: impl Into<String>) {
        self.reports.push(Report {
            unit: self.id.clone(),
            file: None,
            line: None,
            directive: directive.into(),
            value: String::new(),
            kind,
            message: message.into(),
        });
    }

    /// Expand specifiers in each word of `a`'s value (or of `words`), reporting unresolvable ones once.
    pub fn expand(&mut self, a: &Assignment, words: &[String]) -> Vec<String> {
        let mut unknown = Vec::new();
        let out = words
            .iter()
            .map(|w| specifiers(w, &self.names, &mut unknown))
            .collect();
        if !unknown.is_empty() {
            let list: Vec<String> = unknown.iter().map(|c| format!("%{c}")).collect();
            self.report(
                a,
                ReportKind::Approximated,
                format!(
                    "specifier {} depends on the running system and is left as written; replace it in the profile",
                    list.join(" ")
                ),
            );
        }
        out
    }

    pub fn expand_one(&mut self, a: &Assignment, s: &str) -> String {
        self.expand(a, &[s.to_string()]).remove(0)
    }

    /// `a`'s value split into words and expanded; a quoting error is reported and yields no words.
    pub fn words(&mut self, a: &Assignment) -> Vec<String> {
        match split_words(&a.value) {
            Ok(w) => {
                let w: Vec<String> = w.into_iter().map(|w| w.text).collect();
                self.expand(a, &w)
            }
            Err(e) => {
                self.report(a, ReportKind::Ignored, format!("cannot be parsed: {e}"));
                Vec::new()
            }
        }
    }
}

/// `User=`/`Group=` as a name, `None` for root.
pub(crate) fn identity(cx: &mut Ctx, eff: &Effective, key: &str) -> Option<String> {
    let a = eff.last("Service", key)?;
    let v = cx.expand_one(a, &a.value);
    if v == "root" || v == "0" {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        cx.report(
            a,
            ReportKind::Approximated,
            "a numeric id: wayback looks users and groups up by name in the host's /etc/passwd and /etc/group; replace it with the name",
        );
    }
    Some(v)
}

/// What the `*Directory=` settings produce (the binds come from state.rs).
#[derive(Debug, Default)]
pub(crate) struct Dirs {
    pub dirs: Vec<DirSpec>,
    /// `RUNTIME_DIRECTORY` and friends, as systemd sets them.
    pub env: BTreeMap<String, String>,
}

const DIR_KINDS: [(&str, &str, &str); 5] = [
    ("RuntimeDirectory", "/run", "RUNTIME_DIRECTORY"),
    ("StateDirectory", "/var/lib", "STATE_DIRECTORY"),
    ("CacheDirectory", "/var/cache", "CACHE_DIRECTORY"),
    ("LogsDirectory", "/var/log", "LOGS_DIRECTORY"),
    ("ConfigurationDirectory", "/etc", "CONFIGURATION_DIRECTORY"),
];

pub(crate) fn directories(
    cx: &mut Ctx,
    eff: &Effective,
    user: &Option<String>,
    group: &Option<String>,
) -> Dirs {
    let mut out = Dirs::default();
    for (key, base, var) in DIR_KINDS {
        let mut mode = "0755".to_string();
        if let Some(a) = eff.last("Service", &format!("{key}Mode")) {
            if u32::from_str_radix(&a.value, 8).is_ok() && a.value.len() <= 4 {
                mode = format!("{:0>4}", a.value);
            } else {
                cx.report(a, ReportKind::Ignored, "not an octal mode; 0755 is used");
            }
        }
        let mut paths = Vec::new();
        for a in eff.all("Service", key) {
            for w in cx.words(a) {
                let (name, link) = w
                    .split_once(':')
                    .map_or((w.as_str(), None), |(n, l)| (n, Some(l)));
                let rel = Path::new(name);
                if name.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                    cx.report(
                        a,
                        ReportKind::Ignored,
                        format!("{name:?} is not a relative path below {base}; ignored"),
                    );
                    continue;
                }
                if let Some(l) = link {
                    cx.report(
                        a,
                        ReportKind::Ignored,
                        format!("the symlink {l} to {name} is not created"),
                    );
                }
                let path = Path::new(base).join(rel);
                paths.push(path.display().to_string());
                let dir = DirSpec {
                    path: path.clone(),
                    owner: user.clone(),
                    group: group.clone(),
                    mode: Some(mode.clone()),
                };
                if key == "ConfigurationDirectory" {
                    cx.report(
                        a,
                        ReportKind::Approximated,
                        format!(
                            "{} comes from the host's /etc (read-only) and is not created",
                            path.display()
                        ),
                    );
                } else {
                    // State, cache and log directories the snapshot has are bound instead (state.rs);
                    // the conversion drops the `dirs` entries a bind covers.
                    out.dirs.push(dir);
                }
            }
        }
        if !paths.is_empty() {
            out.env.insert(var.to_string(), paths.join(":"));
        }
    }
    out
}

/// `Environment=`, then `EnvironmentFile=` (overriding, as in systemd), minus `UnsetEnvironment=`.
pub(crate) fn environment(
    cx: &mut Ctx,
    eff: &Effective,
    env_files: &dyn EnvFileReader,
    mut env: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    for a in eff.all("Service", "Environment") {
        match parse_environment(&a.value) {
            Ok(vars) => {
                for (k, v) in vars {
                    let v = cx.expand_one(a, &v);
                    env.insert(k, v);
                }
            }
            Err(e) => cx.report(a, ReportKind::Ignored, format!("{e}; the line is ignored")),
        }
    }
    for a in eff.all("Service", "EnvironmentFile") {
        let (optional, raw) = match a.value.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, a.value.as_str()),
        };
        let path = PathBuf::from(cx.expand_one(a, raw));
        if !path.is_absolute() {
            cx.report(a, ReportKind::Ignored, "not an absolute path; ignored");
            continue;
        }
        match env_files.read_env_file(&path) {
            Ok(text) => {
                let (vars, bad) = parse_env_file(&text);
                let n = vars.len();
                env.extend(vars);
                let mut msg = format!(
                    "{} read now: its {n} variable(s) are copied into the profile's `env` (later changes to the file are not seen; mind secrets in the profile)",
                    path.display()
                );
                if !bad.is_empty() {
                    let lines: Vec<String> = bad.iter().map(usize::to_string).collect();
                    msg.push_str(&format!("; lines {} are not assignments and were skipped", lines.join(", ")));
                }
                cx.report(a, ReportKind::Note, msg);
            }
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => cx.report(
                a,
                ReportKind::Ignored,
                format!(
                    "cannot read {}: {e}; its variables are missing from the profile (a file created at start, e.g. by ExecStartPre=, cannot be read in advance)",
                    path.display()
                ),
            ),
        }
    }
    for a in eff.all("Service", "UnsetEnvironment") {
        for w in cx.words(a) {
            match w.split_once('=') {
                Some((k, v)) => {
                    if env.get(k).is_some_and(|x| x == v) {
                        env.remove(k);
                    }
                }
                None => {
                    env.remove(&w);
                }
            }
        }
    }
    env
}
