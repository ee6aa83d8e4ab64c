//! Finding a unit's files: systemd's search path (earlier directories win), template instances
//! (`foo@x.service` falls back to `foo@.service`), aliases (a symlink to another unit's file), masking
//! (a symlink to /dev/null), and drop-ins (`*.conf` in `NAME.d/`, `TEMPLATE@.service.d/`, `PREFIX-.service.d/`
//! and `service.d/` of every search directory; for one file name the most important directory wins; all are
//! applied after the main file in lexical order of file name).
//!
//! All file access goes through [`UnitSource`]; [`FsUnitSource`] reads a real tree (the host's `/`, or a
//! fixture directory standing in for it) and resolves symlinks *inside* that tree, so NixOS links such as
//! `/etc/systemd/system/x.service -> /nix/store/…-unit-x.service/x.service` work under a fixture root too.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::parse::{parse_unit, Assignment, SyntaxIssue};
use super::UnitError;

/// systemd's system unit search path, most important first.
pub const SEARCH_PATH: &[&str] = &[
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// Read access to unit files. Paths are absolute, as on the host.
pub trait UnitSource {
    /// The text of a file (following symlinks).
    fn read(&self, path: &Path) -> io::Result<String>;
    /// The entries of a directory, as `dir.join(name)`, sorted. `NotFound` if it does not exist.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// The path with every symlink resolved. `NotFound` if it does not exist; a link to `/dev/null` resolves
    /// to `/dev/null` (a masked unit) whether or not that exists in the tree.
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;
}

/// Reads `EnvironmentFile=` files. Implemented by [`FsUnitSource`] and by any
/// `Fn(&Path) -> io::Result<String>` (for tests).
pub trait EnvFileReader {
    fn read_env_file(&self, path: &Path) -> io::Result<String>;
}

impl<F: Fn(&Path) -> io::Result<String>> EnvFileReader for F {
    fn read_env_file(&self, path: &Path) -> io::Result<String> {
        self(path)
    }
}

/// Unit files from a real directory tree standing for `/` (the host: `FsUnitSource::new("/")`).
#[derive(Debug, Clone)]
pub struct FsUnitSource {
    pub root: PathBuf,
}

impl FsUnitSource {
    pub fn new(root: impl Into<PathBuf>) -> FsUnitSource {
        FsUnitSource { root: root.into() }
    }

    fn host(&self, p: &Path) -> PathBuf {
        self.root.join(p.strip_prefix("/").unwrap_or(p))
    }
}

impl UnitSource for FsUnitSource {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(self.host(&self.canonicalize(path)?))
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let real = self.host(&self.canonicalize(dir)?);
        let mut out: Vec<PathBuf> = std::fs::read_dir(real)?
            .map(|e| e.map(|e| dir.join(e.file_name())))
            .collect::<io::Result<_>>()?;
        out.sort();
        Ok(out)
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        resolve_links(path, "", &|p: &Path| {
            let host = self.host(p);
            if !std::fs::symlink_metadata(&host)?.file_type().is_symlink() {
                return Ok(None);
            }
            std::fs::read_link(host).map(Some)
        })
    }
}

/// `path` with every symlink on it followed *within* a tree (absolute targets start again at the tree's
/// root, `..` never leaves it), as systemd reads unit files: `read_link(p)` is the target of `p` when `p`
/// is a symlink, `None` when it is not. A link to `/dev/null` (a masked unit) is returned as such. More than
/// 40 links (the kernel's limit) is an error naming where, followed by `within` (e.g. " in the snapshot").
pub fn resolve_links(
    path: &Path,
    within: &str,
    read_link: &dyn Fn(&Path) -> io::Result<Option<PathBuf>>,
) -> io::Result<PathBuf> {
    let mut todo: Vec<PathBuf> = path
        .components()
        .rev()
        .map(|c| c.as_os_str().into())
        .collect();
    let mut out = PathBuf::from("/");
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        match Path::new(&part).components().next() {
            Some(Component::RootDir) => out = PathBuf::from("/"),
            Some(Component::ParentDir) => {
                out.pop();
            }
            Some(Component::Normal(name)) => {
                let next = out.join(name);
                let Some(target) = read_link(&next)? else {
                    out = next;
                    continue;
                };
                hops += 1;
                if hops > 40 {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links at {}{within}",
                        next.display()
                    )));
                }
                if target == Path::new("/dev/null") {
                    return Ok(target);
                }
                todo.extend(target.components().rev().map(|c| c.as_os_str().into()));
            }
            _ => {}
        }
    }
    Ok(out)
}

impl EnvFileReader for FsUnitSource {
    fn read_env_file(&self, path: &Path) -> io::Result<String> {
        self.read(path)
    }
}

/// A unit name split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnitName {
    pub full: String,
    /// Before `@`, or the whole name without the suffix.
    pub prefix: String,
    /// `Some("")` for a template itself.
    pub instance: Option<String>,
    pub suffix: String,
}

impl UnitName {
    pub fn parse(s: &str) -> Option<UnitName> {
        let (stem, suffix) = s.rsplit_once('.')?;
        let ok = !stem.is_empty()
            && s.len() <= 255
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b));
        if !ok || suffix.is_empty() {
            return None;
        }
        let (prefix, instance) = match stem.split_once('@') {
            Some((p, i)) if !p.is_empty() && !i.contains('@') => (p, Some(i.to_string())),
            Some(_) => return None,
            None => (stem, None),
        };
        Some(UnitName {
            full: s.to_string(),
            prefix: prefix.to_string(),
            instance,
            suffix: suffix.to_string(),
        })
    }

    pub fn template(&self) -> Option<String> {
        self.instance
            .as_ref()
            .map(|_| format!("{}@.{}", self.prefix, self.suffix))
    }

    /// Drop-in directory names, most specific first.
    fn dropin_dirs(&self) -> Vec<String> {
        let mut v = vec![format!("{}.d", self.full)];
        if let Some(t) = self.template() {
            if t != self.full {
                v.push(format!("{t}.d"));
            }
        }
        let dashes: Vec<usize> = self.prefix.match_indices('-').map(|(i, _)| i).collect();
        for i in dashes.into_iter().rev() {
            v.push(format!("{}-.{}.d", &self.prefix[..i], self.suffix));
        }
        v.push(format!("{}.d", self.suffix));
        v
    }
}

/// A unit's files, read and parsed: the main file, then its drop-ins.
#[derive(Debug, Clone)]
pub(crate) struct LoadedUnit {
    pub name: UnitName,
    /// The name it was asked for, when that is an alias of `name`.
    pub alias: Option<String>,
    /// The main file as found in the search path, and where its symlinks lead.
    pub fragment: PathBuf,
    pub resolved: PathBuf,
    pub dropins: Vec<PathBuf>,
    pub assignments: Vec<Assignment>,
    pub issues: Vec<SyntaxIssue>,
}

/// Find and read a unit. `Ok(None)` if no file exists for it.
pub(crate) fn load(name: &UnitName, src: &dyn UnitSource) -> Result<Option<LoadedUnit>, UnitError> {
    let read_err = |path: &Path, source: io::Error| UnitError::Read {
        unit: name.full.clone(),
        path: path.to_path_buf(),
        source,
    };
    let mut found = None;
    'search: for candidate in std::iter::once(name.full.clone()).chain(name.template()) {
        for dir in SEARCH_PATH {
            let path = Path::new(dir).join(&candidate);
            match src.canonicalize(&path) {
                Ok(resolved) => {
                    found = Some((path, resolved, candidate == name.full));
                    break 'search;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(read_err(&path, e)),
            }
        }
    }
    let Some((fragment, resolved, exact)) = found else {
        return Ok(None);
    };
    if resolved == Path::new("/dev/null") {
        return Err(UnitError::Masked {
            unit: name.full.clone(),
            path: fragment,
        });
    }
    // An alias: the file found under this name is another unit's (e.g. mysql.service -> mariadb.service).
    let mut real = name.clone();
    let mut alias = None;
    if exact {
        if let Some(target) = resolved
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(UnitName::parse)
            .filter(|t| t.suffix == name.suffix && t.full != name.full)
        {
            real = match (&target.instance, &name.instance) {
                (Some(i), Some(inst)) if i.is_empty() => {
                    UnitName::parse(&format!("{}@{inst}.{}", target.prefix, target.suffix))
                        .unwrap_or(target)
                }
                _ => target,
            };
            alias = Some(name.full.clone());
        }
    }
    let text = src.read(&fragment).map_err(|e| read_err(&fragment, e))?;
    let (mut assignments, mut issues) = parse_unit(&text, &fragment);

    // Drop-ins: first file of each name wins (search path order, then the most specific directory).
    let mut by_name: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
    let mut dirs = real.dropin_dirs();
    if alias.is_some() {
        dirs.splice(0..0, name.dropin_dirs().into_iter().take(1));
    }
    for base in SEARCH_PATH {
        for d in &dirs {
            let dir = Path::new(base).join(d);
            let entries = match src.list_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(read_err(&dir, e)),
            };
            for path in entries {
                let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                    continue;
                };
                if !file.ends_with(".conf") || by_name.contains_key(file) {
                    continue;
                }
                let masked = src
                    .canonicalize(&path)
                    .is_ok_and(|c| c == Path::new("/dev/null"));
                by_name.insert(file.to_string(), (!masked).then_some(path));
            }
        }
    }
    let dropins: Vec<PathBuf> = by_name.into_values().flatten().collect();
    for d in &dropins {
        let text = src.read(d).map_err(|e| read_err(d, e))?;
        let (a, i) = parse_unit(&text, d);
        assignments.extend(a);
        issues.extend(i);
    }
    Ok(Some(LoadedUnit {
        name: real,
        alias,
        fragment,
        resolved,
        dropins,
        assignments,
        issues,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = UnitName::parse("postgresql@15-main.service").unwrap();
        assert_eq!(n.prefix, "postgresql");
        assert_eq!(n.instance.as_deref(), Some("15-main"));
        assert_eq!(n.template().as_deref(), Some("postgresql@.service"));
        assert_eq!(
            n.dropin_dirs(),
            [
                "postgresql@15-main.service.d",
                "postgresql@.service.d",
                "service.d"
            ]
        );
        let n = UnitName::parse("php8.2-fpm.service").unwrap();
        assert_eq!(
            n.dropin_dirs(),
            ["php8.2-fpm.service.d", "php8.2-.service.d", "service.d"]
        );
        for bad in [
            "noext",
            "a b.service",
            "@x.service",
            "a@b@c.service",
            ".service",
        ] {
            assert!(UnitName::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn fs_source_resolves_inside_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("nix/store/abc-unit-x.service")).unwrap();
        std::fs::write(
            r.join("nix/store/abc-unit-x.service/x.service"),
            "[Service]\n",
        )
        .unwrap();
        std::fs::create_dir_all(r.join("etc/static")).unwrap();
        std::os::unix::fs::symlink("/nix/store/abc-unit-x.service", r.join("etc/static/u"))
            .unwrap();
        std::os::unix::fs::symlink("static/u/x.service", r.join("etc/x.service")).unwrap();
        std::os::unix::fs::symlink("/dev/null", r.join("etc/masked.service")).unwrap();
        let src = FsUnitSource::new(r);
        assert_eq!(
            src.canonicalize(Path::new("/etc/x.service")).unwrap(),
            Path::new("/nix/store/abc-unit-x.service/x.service")
        );
        assert_eq!(
            src.read(Path::new("/etc/x.service")).unwrap(),
            "[Service]\n"
        );
        assert_eq!(
            src.canonicalize(Path::new("/etc/masked.service")).unwrap(),
            Path::new("/dev/null")
        );
        assert_eq!(
            src.canonicalize(Path::new("/etc/nope")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            src.list_dir(Path::new("/etc")).unwrap(),
            [
                Path::new("/etc/masked.service"),
                Path::new("/etc/static"),
                Path::new("/etc/x.service")
            ]
        );
    }
}
