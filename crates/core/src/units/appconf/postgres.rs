//! PostgreSQL. Debian's `postgresql@VERSION-CLUSTER.service` runs `pg_ctlcluster VERSION-CLUSTER start`:
//! the cluster's config is /etc/postgresql/VERSION/CLUSTER/postgresql.conf, its data directory that file's
//! `data_directory` (else the `pgdata` link beside it, else /var/lib/postgresql/VERSION/CLUSTER), its log
//! /var/log/postgresql/postgresql-VERSION-CLUSTER.log. A plain `postgres`/`pg_ctl` takes `-D DIR` or
//! `$PGDATA`, and `-c config_file=`/`--config-file=` when the config is not in the data directory.
//!
//! postgresql.conf: `name = value` (the `=` optional), `#` comments, values bare or in single quotes (`''`
//! and backslash escapes), names case-insensitive, the last wins, and `include`, `include_if_exists`,
//! `include_dir` (its `*.conf` files, sorted) read in place, relative to the including file.

use std::path::{Path, PathBuf};

use super::{at, option, AppCx, Line};
use crate::units::infer::ConfigKind;

/// One value: quoted (with `''`/`\'` escapes) or bare up to whitespace or `#`. Returns the value and the rest.
fn value(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    let Some(body) = s.strip_prefix('\'') else {
        let end = s
            .find(|c: char| c.is_whitespace() || c == '#')
            .unwrap_or(s.len());
        return Some((s[..end].to_string(), &s[end..]));
    };
    let mut out = String::new();
    let mut it = body.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        match c {
            '\'' if it.peek().map(|x| x.1) == Some('\'') => {
                it.next();
                out.push('\'');
            }
            '\'' => return Some((out, &body[i + 1..])),
            '\\' => out.push(it.next()?.1),
            c => out.push(c),
        }
    }
    None
}

pub(crate) fn parse(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let end = t
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(t.len());
        let (key, rest) = t.split_at(end);
        let rest = rest.trim_start();
        let rest = rest.strip_prefix('=').unwrap_or(rest);
        let Some((v, _)) = value(rest) else { continue };
        if key.is_empty() {
            continue;
        }
        out.push(Line {
            line: i + 1,
            section: String::new(),
            key: key.to_ascii_lowercase(),
            args: vec![v],
        });
    }
    out
}

/// Lines of a postgresql.conf and what it includes.
fn read(cx: &mut AppCx, conf: &Path, why: String) -> Vec<(PathBuf, Line)> {
    let mut include = |cx: &mut AppCx, file: &Path, l: &Line| {
        let base = file.parent().unwrap_or(Path::new("/"));
        let target = base.join(&l.args[0]);
        let why = format!("{} in {}", l.key, at(file, l.line));
        match l.key.as_str() {
            "include" => vec![(target, why, false)],
            "include_if_exists" => vec![(target, why, true)],
            "include_dir" => cx
                .glob(&target.join("*.conf"), &why)
                .into_iter()
                .map(|p| (p, why.clone(), false))
                .collect(),
            _ => Vec::new(),
        }
    };
    cx.flatten(conf, why, false, parse, &mut include)
}

fn last<'l>(lines: &'l [(PathBuf, Line)], key: &str) -> Option<(&'l Path, &'l Line)> {
    lines
        .iter()
        .rev()
        .find(|(_, l)| l.key == key && !l.args[0].is_empty())
        .map(|(f, l)| (f.as_path(), l))
}

/// Port and the hba/ident files from a parsed config; the default port when it names none.
fn settings(cx: &mut AppCx, lines: &[(PathBuf, Line)], conf: &Path, port: Option<(u16, String)>) {
    for key in ["hba_file", "ident_file"] {
        if let Some((f, l)) = last(lines, key) {
            let reason = format!("{key} in {}", at(f, l.line));
            cx.config(Path::new(&l.args[0]), ConfigKind::File, reason);
        }
    }
    let from_conf = last(lines, "port").and_then(|(f, l)| {
        let p = l.args[0].parse::<u16>().ok()?;
        Some((p, format!("port = {p} in {}", at(f, l.line))))
    });
    let (p, why) = port.or(from_conf).unwrap_or_else(|| {
        (
            5432,
            format!(
                "PostgreSQL's default port 5432, no `port` in {}",
                conf.display()
            ),
        )
    });
    cx.port(p, why);
}

/// `VERSION CLUSTER`, `VERSION-CLUSTER` or `VERSION/CLUSTER` among pg_ctlcluster's arguments.
fn cluster(argv: &[String]) -> Option<(String, String)> {
    let mut pos = Vec::new();
    let mut skip = false;
    for a in &argv[1..] {
        if skip {
            skip = false;
        } else if matches!(a.as_str(), "-m" | "--mode" | "-o" | "--options") {
            skip = true;
        } else if !a.starts_with('-') {
            pos.push(a.as_str());
        }
    }
    let version = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.');
    match pos.as_slice() {
        [v, c, _action] if version(v) => Some((v.to_string(), c.to_string())),
        [vc, _action] => {
            let (v, c) = vc.split_once(['-', '/'])?;
            (version(v) && !c.is_empty()).then(|| (v.to_string(), c.to_string()))
        }
        _ => None,
    }
}

pub(crate) fn debian(cx: &mut AppCx, argv: &[String]) -> bool {
    let id = cx.id().to_string();
    let Some((v, c)) = cluster(argv) else {
        return false;
    };
    let dir = PathBuf::from(format!("/etc/postgresql/{v}/{c}"));
    let conf = dir.join("postgresql.conf");
    let why = format!("the cluster's config: pg_ctlcluster {v}-{c} on ExecStart= of {id}");
    cx.config(
        &dir,
        ConfigKind::Directory,
        format!(
            "the configuration directory of cluster {v}/{c} (pg_ctlcluster on ExecStart= of {id})"
        ),
    );
    let lines = read(cx, &conf, why);
    for f in [
        "pg_hba.conf",
        "pg_ident.conf",
        "start.conf",
        "pg_ctl.conf",
        "environment",
    ] {
        let p = dir.join(f);
        if cx.exists(&p) {
            cx.config(
                &p,
                ConfigKind::File,
                format!("cluster {v}/{c}'s settings, read by pg_ctlcluster"),
            );
        }
    }
    match last(&lines, "data_directory") {
        Some((f, l)) => {
            let reason = format!("data_directory = '{}' in {}", l.args[0], at(f, l.line));
            cx.data(Path::new(&l.args[0]), reason);
        }
        None => {
            let link = dir.join("pgdata");
            let (path, reason) = match cx.resolve(&link) {
                Some(t) => (
                    t,
                    format!(
                        "the link {} to the data directory, no data_directory in {}",
                        link.display(),
                        conf.display()
                    ),
                ),
                None => (
                    PathBuf::from(format!("/var/lib/postgresql/{v}/{c}")),
                    format!(
                        "the default data directory of cluster {v}/{c}, no data_directory in {}",
                        conf.display()
                    ),
                ),
            };
            cx.data(&path, reason);
        }
    }
    let log = format!("/var/log/postgresql/postgresql-{v}-{c}.log");
    cx.log_file(Path::new(&log), format!("pg_ctlcluster's log {log}"));
    settings(cx, &lines, &conf, None);
    true
}

/// `postgres`/`postmaster`/`pg_ctl`: `-D DIR`/`--pgdata`/`$PGDATA`, `-p PORT`, a config file named with
/// `-c config_file=` or `--config-file=` (read from the host; one inside the data directory is the
/// snapshot's and is not read).
pub(crate) fn plain(cx: &mut AppCx, argv: &[String]) -> bool {
    let id = cx.id().to_string();
    let data = option(argv, &["-D", "--pgdata"])
        .map(|d| (d.to_string(), format!("-D {d} on ExecStart= of {id}")))
        .or_else(|| {
            let d = cx.view.env.get("PGDATA")?;
            let origin = cx.view.env_origin.get("PGDATA")?;
            Some((d.clone(), format!("PGDATA={d} in {origin}")))
        });
    let config = option(argv, &["--config-file", "--config_file"])
        .map(str::to_string)
        .or_else(|| {
            argv.iter()
                .find_map(|a| a.strip_prefix("config_file=").map(str::to_string))
        });
    let port = option(argv, &["-p", "--port"]).and_then(|p| {
        let p = p.parse::<u16>().ok()?;
        Some((p, format!("-p {p} on ExecStart= of {id}")))
    });
    let lines = match &config {
        Some(c) => read(
            cx,
            Path::new(c),
            format!("the config file named on ExecStart= of {id}"),
        ),
        None => Vec::new(),
    };
    match (data, last(&lines, "data_directory")) {
        (Some((d, reason)), _) => cx.data(Path::new(&d), reason),
        (None, Some((f, l))) => {
            let reason = format!("data_directory = '{}' in {}", l.args[0], at(f, l.line));
            cx.data(Path::new(&l.args[0]), reason);
        }
        (None, None) => {}
    }
    let conf = config.map_or_else(
        || PathBuf::from("the data directory's postgresql.conf"),
        PathBuf::from,
    );
    settings(cx, &lines, &conf, port);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_values_and_clusters() {
        let l = parse("data_directory = '/var/lib/pg''s dir'\t\t# moved\nport=5433#x\n  # c\nlisten_addresses 'a,b'\nInclude_Dir = 'conf.d'\n");
        let got: Vec<(usize, &str, &str)> = l
            .iter()
            .map(|l| (l.line, l.key.as_str(), l.args[0].as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (1, "data_directory", "/var/lib/pg's dir"),
                (2, "port", "5433"),
                (4, "listen_addresses", "a,b"),
                (5, "include_dir", "conf.d"),
            ]
        );
        let argv = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            cluster(&argv(
                "pg_ctlcluster --skip-systemctl-redirect 15-main start"
            )),
            Some(("15".into(), "main".into()))
        );
        assert_eq!(
            cluster(&argv("pg_ctlcluster 9.6 my-db start")),
            Some(("9.6".into(), "my-db".into()))
        );
        assert_eq!(
            cluster(&argv("pg_ctlcluster -m fast 16/other-one stop")),
            Some(("16".into(), "other-one".into()))
        );
        assert_eq!(cluster(&argv("pg_ctlcluster start")), None);
    }
}
