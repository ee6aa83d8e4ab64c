//! Directories the listed units expect from the host's tmpfiles.d(5) (`d /run/php 0755 www-data www-data`):
//! systemd-tmpfiles does not run in an instance, whose /run and /var are a fresh tmpfs, so Debian's
//! php-fpm, MariaDB and PostgreSQL would miss their runtime directories. An entry of type `d`/`D`/`v`/`q`/`Q`
//! is taken into the profile's `dirs` when it belongs to a listed unit: its file is named after the unit
//! (`php8.2-fpm.conf`, `postgresql-common.conf` for `postgresql@…`), or the unit mentions a path inside it
//! (`/run/mysqld/mysqld.sock`). Each one taken is reported as a note with its file and line.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::search::UnitSource;
use super::words::{specifiers, Names};
use super::{Report, ReportKind, UnitError};
use crate::profile::DirSpec;

/// tmpfiles.d directories, most important first.
pub const TMPFILES_PATH: &[&str] = &[
    "/etc/tmpfiles.d",
    "/run/tmpfiles.d",
    "/usr/local/lib/tmpfiles.d",
    "/usr/lib/tmpfiles.d",
];

/// What tmpfiles needs to know about one listed unit.
pub(crate) struct UnitPaths {
    pub id: String,
    /// The unit's name before `@` or the type suffix.
    pub prefix: String,
    /// Absolute paths the unit's lines mention.
    pub mentions: Vec<PathBuf>,
}

/// One `d` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    dir: DirSpec,
    file: PathBuf,
    line: usize,
}

fn parse(text: &str, file: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 2
            || f[0].starts_with('#')
            || !matches!(&f[0][..1], "d" | "D" | "v" | "q" | "Q")
        {
            continue;
        }
        let mut unknown = Vec::new();
        let path = specifiers(f[1], &Names::default(), &mut unknown);
        if !unknown.is_empty() || !path.starts_with('/') {
            continue;
        }
        let path = match path.strip_prefix("/var/run/") {
            Some(rest) => format!("/run/{rest}"),
            None => path,
        };
        let field = |n: usize| f.get(n).copied().filter(|v| *v != "-");
        let mode = field(2)
            .map(|m| m.trim_start_matches(['~', ':']))
            .filter(|m| u32::from_str_radix(m, 8).is_ok() && m.len() <= 4)
            .map_or("0755".to_string(), |m| format!("{m:0>4}"));
        let owner = field(3).map(str::to_string);
        let group = field(4)
            .map(str::to_string)
            .or_else(|| owner.as_ref().map(|_| "root".to_string()));
        out.push(Entry {
            dir: DirSpec {
                path: PathBuf::from(path),
                owner,
                group,
                mode: Some(mode),
            },
            file: file.to_path_buf(),
            line: i + 1,
        });
    }
    out
}

/// Directories in an instance's tmpfs that the host creates at boot and these units expect, except those
/// `skip` rejects (already bound or created).
pub(crate) fn wanted_dirs(
    src: &dyn UnitSource,
    units: &[UnitPaths],
    skip: &dyn Fn(&Path) -> bool,
    reports: &mut Vec<Report>,
) -> Result<Vec<DirSpec>, UnitError> {
    let mut files: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
    for dir in TMPFILES_PATH {
        let entries = match src.list_dir(Path::new(dir)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(UnitError::Read {
                    unit: "tmpfiles.d".into(),
                    path: dir.into(),
                    source,
                })
            }
        };
        for path in entries {
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            if !name.ends_with(".conf") || files.contains_key(&name) {
                continue;
            }
            let masked = src
                .canonicalize(&path)
                .is_ok_and(|c| c == Path::new("/dev/null"));
            files.insert(name, (!masked).then_some(path));
        }
    }
    let mut out: Vec<DirSpec> = Vec::new();
    for (name, path) in files {
        let Some(path) = path else { continue };
        let stem = name.trim_end_matches(".conf");
        let text = src.read(&path).map_err(|source| UnitError::Read {
            unit: "tmpfiles.d".into(),
            path: path.clone(),
            source,
        })?;
        for e in parse(&text, &path) {
            let p = &e.dir.path;
            let wanted = [
                "/run/",
                "/var/log/",
                "/var/cache/",
                "/var/lib/",
                "/var/spool/",
            ]
            .iter()
            .any(|base| p.starts_with(base) && p != Path::new(base.trim_end_matches('/')));
            let owner = units.iter().find(|u| {
                stem == u.prefix
                    || stem.starts_with(&format!("{}-", u.prefix))
                    || u.mentions.iter().any(|m| m.starts_with(p))
            });
            let (true, Some(u)) = (wanted, owner) else {
                continue;
            };
            if skip(p) || out.iter().any(|d| d.path == *p) {
                continue;
            }
            reports.push(Report {
                unit: u.id.clone(),
                file: Some(e.file.clone()),
                line: Some(e.line),
                directive: "tmpfiles.d".into(),
                value: p.display().to_string(),
                kind: ReportKind::Note,
                message: "created in the instance's tmpfs as the host's tmpfiles.d entry says (systemd-tmpfiles does not run in an instance)".into(),
            });
            out.push(e.dir);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let e = parse(
            "# c\nd /run/mysqld 0755 mysql root -\nd /var/run/php - www-data\nL /run/x - - - - /y\nD! %t/x\nd /run/pg 2775 postgres postgres - -\n",
            Path::new("/usr/lib/tmpfiles.d/x.conf"),
        );
        let got: Vec<String> = e
            .iter()
            .map(|e| {
                let d = &e.dir;
                format!(
                    "{} {:?} {:?} {:?}",
                    d.path.display(),
                    d.owner,
                    d.group,
                    d.mode
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                r#"/run/mysqld Some("mysql") Some("root") Some("0755")"#,
                r#"/run/php Some("www-data") Some("root") Some("0755")"#,
                r#"/run/x None None Some("0755")"#,
                r#"/run/pg Some("postgres") Some("postgres") Some("2775")"#,
            ]
        );
        assert_eq!(e[3].line, 6);
    }
}
