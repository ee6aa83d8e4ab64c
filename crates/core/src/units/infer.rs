//! What a unit's own directives say about its state and its configuration: `StateDirectory=`,
//! `CacheDirectory=`, `LogsDirectory=`, `ReadWritePaths=`, `WorkingDirectory=`, absolute paths in its
//! environment and on its `ExecStart=` line (state candidates, see state.rs); `ConfigurationDirectory=`,
//! `EnvironmentFile=` and the files its command lines name (configuration files, for drift detection).
//! What the app's own config files say is appconf.rs's business.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::state::Candidate;
use super::view::View;

/// A configuration file or directory a unit uses, with why: `up` compares it with the snapshot's copy
/// (passwords kept in /etc, an old pool config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigFile {
    pub unit: String,
    pub path: PathBuf,
    pub kind: ConfigKind,
    /// e.g. `EnvironmentFile= of redis-server.service`, `include in /etc/nginx/nginx.conf:60`.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigKind {
    File,
    /// A directory whose files are all configuration (`ConfigurationDirectory=`, an `include_dir`).
    Directory,
}

/// Options whose value is a configuration file, on any command line.
const CONFIG_OPTIONS: &[&str] = &[
    "-c",
    "--config",
    "--conf",
    "--config-file",
    "--fpm-config",
    "-y",
    "--defaults-file",
    "--defaults-extra-file",
];

/// Directories under which a named file is configuration from the host, not software or state.
fn is_config_path(p: &Path) -> bool {
    p.starts_with("/etc")
}

/// State candidates from the unit's directives, in file order of the directives' kinds.
pub(crate) fn candidates(v: &View) -> Vec<Candidate> {
    let mut out = Vec::new();
    let id = v.id.as_str();
    let dynamic = v
        .eff
        .last("Service", "DynamicUser")
        .is_some_and(|a| super::directives::switched_on(&a.value));
    for (key, base) in [
        ("StateDirectory", "/var/lib"),
        ("CacheDirectory", "/var/cache"),
        ("LogsDirectory", "/var/log"),
    ] {
        for a in v.eff.all("Service", key) {
            for w in v.words(a) {
                let name = w.split_once(':').map_or(w.as_str(), |(n, _)| n);
                let base = match (dynamic, key) {
                    (true, "StateDirectory") => "/var/lib/private",
                    _ => base,
                };
                let named = Path::new(base).join(name);
                let reason = format!("{key}={name} of {id}");
                out.extend(Candidate::new(id, &named, true, reason));
            }
        }
    }
    for key in ["ReadWritePaths", "ReadWriteDirectories"] {
        for a in v.eff.all("Service", key) {
            for w in v.words(a) {
                let p = w.trim_start_matches(['-', '+']);
                out.extend(Candidate::new(
                    id,
                    Path::new(p),
                    true,
                    format!("{key}={w} of {id}"),
                ));
            }
        }
    }
    if let Some(a) = v.eff.last("Service", "WorkingDirectory") {
        let w = v.value(a);
        let p = w.trim_start_matches('-');
        let reason = format!("WorkingDirectory={w} of {id}");
        out.extend(Candidate::new(id, Path::new(p), true, reason));
    }
    for (k, val) in &v.env {
        let Some(origin) = v.env_origin.get(k) else {
            continue;
        };
        // One path, not a list (`PYTHONPATH=/srv/a:/srv/b`).
        if val.starts_with('/') && !val.contains(':') {
            let reason = format!("{k}={val} in {origin}");
            out.extend(Candidate::new(id, Path::new(val), true, reason));
        }
    }
    for c in v.starts() {
        for arg in c.argv.iter().skip(1) {
            if let Some(p) = path_in(arg) {
                let reason = format!("{arg} on ExecStart= of {id}");
                out.extend(Candidate::new(id, Path::new(p), true, reason));
            }
        }
    }
    out
}

/// The absolute path in a command-line word: the word itself, or the value of `--opt=/path` / `KEY=/path`;
/// not a list of paths (`a:b`).
fn path_in(arg: &str) -> Option<&str> {
    let p = match arg.split_once('=') {
        _ if arg.starts_with('/') => arg,
        Some((_, v)) if v.starts_with('/') => v,
        _ => return None,
    };
    (!p.contains(':')).then_some(p)
}

/// Configuration files and directories the unit's directives and command lines name.
pub(crate) fn configs(v: &View) -> Vec<ConfigFile> {
    let id = v.id.as_str();
    let mut out = Vec::new();
    let mut add = |path: PathBuf, kind, reason: String| {
        if !out.iter().any(|c: &ConfigFile| c.path == path) {
            out.push(ConfigFile {
                unit: id.to_string(),
                path,
                kind,
                reason,
            });
        }
    };
    for a in v.eff.all("Service", "ConfigurationDirectory") {
        for w in v.words(a) {
            let name = w.split_once(':').map_or(w.as_str(), |(n, _)| n);
            let reason = format!("ConfigurationDirectory={name} of {id}");
            add(Path::new("/etc").join(name), ConfigKind::Directory, reason);
        }
    }
    for a in v.eff.all("Service", "EnvironmentFile") {
        let p = v.value(a);
        let p = p.trim_start_matches('-');
        let runtime = ["/run", "/var/run", "/tmp"]
            .iter()
            .any(|r| Path::new(p).starts_with(r));
        if p.starts_with('/') && !runtime {
            let reason = format!("EnvironmentFile= of {id}");
            add(PathBuf::from(p), ConfigKind::File, reason);
        }
    }
    for key in ["ReadWritePaths", "ReadWriteDirectories"] {
        for a in v.eff.all("Service", key) {
            for w in v.words(a) {
                let p = Path::new(w.trim_start_matches(['-', '+']));
                if is_config_path(p) {
                    let reason = format!("{key}={w} of {id} (the service writes there)");
                    add(p.to_path_buf(), ConfigKind::Directory, reason);
                }
            }
        }
    }
    for c in &v.commands {
        let mut prev: Option<&str> = None;
        for (i, arg) in c.argv.iter().enumerate() {
            let named = match (prev, arg.split_once('=')) {
                (Some(o), _) if CONFIG_OPTIONS.contains(&o) && arg.starts_with('/') => {
                    Some(arg.as_str())
                }
                (_, Some((o, val))) if CONFIG_OPTIONS.contains(&o) && val.starts_with('/') => {
                    Some(val)
                }
                _ => path_in(arg).filter(|p| is_config_path(Path::new(p))),
            };
            prev = Some(arg);
            let Some(p) = named else { continue };
            let p = Path::new(p);
            if p.starts_with("/nix/store") || p.starts_with("/usr") {
                continue;
            }
            let what = if i == 0 { "run by" } else { "named on" };
            let reason = format!("{what} {}= of {id}", c.key);
            add(p.to_path_buf(), ConfigKind::File, reason);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::path_in;

    #[test]
    fn paths_in_words() {
        assert_eq!(path_in("/srv/x"), Some("/srv/x"));
        assert_eq!(path_in("--data=/srv/x"), Some("/srv/x"));
        assert_eq!(path_in("PGDATA=/srv/x"), Some("/srv/x"));
        assert_eq!(path_in("--data"), None);
        assert_eq!(path_in("/srv/a:/srv/b"), None, "a list, not a path");
        assert_eq!(path_in("127.0.0.1:3000"), None);
    }
}
