//! MariaDB and MySQL: `mariadbd`/`mysqld` (or a `*_safe` wrapper) read /etc/my.cnf, then /etc/mysql/my.cnf
//! (Debian: a link to mariadb.cnf), then `--defaults-extra-file`; `--defaults-file` replaces them and
//! `--no-defaults` reads none. Option files are `[group]` headers, `key`, `key = value`, `#`/`;` comments
//! (`#` also after a value), values optionally quoted (with `\` escapes), `-` and `_` alike in keys, an
//! optional `loose-` prefix, and `!include FILE` / `!includedir DIR` (its `*.cnf` files, sorted) read in
//! place. The server reads the groups [mysqld], [server], [mariadb], [mariadbd], [client-server], [galera]
//! and versioned ones ([mariadb-10.11]). Read: `datadir` (default /var/lib/mysql), `port` (default 3306,
//! none with `skip-networking`), `log_error`. Command-line options (`--datadir`, `-h`, `--port`, `-P`) win.

use std::path::{Path, PathBuf};

use super::{at, option, AppCx, Line};
use crate::units::infer::ConfigKind;

/// Unquote a value: `"…"` or `'…'` with escapes, else the text before an inline `#` comment.
fn unquote(v: &str) -> String {
    let v = v.trim();
    let quoted = v.len() >= 2
        && (v.starts_with('"') || v.starts_with('\''))
        && v[1..].contains(v.chars().next().unwrap_or('"'));
    if !quoted {
        return v.split('#').next().unwrap_or(v).trim().to_string();
    }
    let q = v.chars().next().unwrap_or('"');
    let mut out = String::new();
    let mut it = v[1..].chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('s') => out.push(' '),
                Some('b') => out.push('\x08'),
                Some('r') => out.push('\r'),
                Some(c) => out.push(c),
                None => out.push('\\'),
            },
            c if c == q => break,
            c => out.push(c),
        }
    }
    out
}

/// Normalise an option name: lower case, `_` for `-`, without `loose_`.
fn key(k: &str) -> String {
    let k = k.trim().to_ascii_lowercase().replace('-', "_");
    k.strip_prefix("loose_").map(str::to_string).unwrap_or(k)
}

pub(crate) fn parse(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        let line = i + 1;
        let push = |out: &mut Vec<Line>, section: &str, key: String, args: Vec<String>| {
            out.push(Line {
                line,
                section: section.to_string(),
                key,
                args,
            });
        };
        if let Some(rest) = t.strip_prefix('[') {
            section = rest
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
        } else if let Some(rest) = t.strip_prefix("!includedir") {
            push(
                &mut out,
                &section,
                "!includedir".into(),
                vec![rest.trim().to_string()],
            );
        } else if let Some(rest) = t.strip_prefix("!include") {
            push(
                &mut out,
                &section,
                "!include".into(),
                vec![rest.trim().to_string()],
            );
        } else {
            let (k, v) = t
                .split_once('=')
                .map_or((t, None), |(k, v)| (k, Some(unquote(v))));
            let k = k.split('#').next().unwrap_or(k);
            push(&mut out, &section, key(k), v.into_iter().collect());
        }
    }
    out
}

/// Whether the server reads option group `g`.
fn server_group(g: &str, safe: bool) -> bool {
    let versioned = |p: &str| {
        g.strip_prefix(p)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    };
    matches!(
        g,
        "mysqld" | "server" | "mariadb" | "mariadbd" | "client-server" | "galera"
    ) || ["mysqld", "mariadb", "mariadbd"]
        .iter()
        .any(|p| versioned(p))
        || (safe
            && matches!(
                g,
                "mysqld_safe" | "safe_mysqld" | "mariadbd-safe" | "mariadb-safe"
            ))
}

fn read(cx: &mut AppCx, files: &[(PathBuf, String, bool)]) -> Vec<(PathBuf, Line)> {
    let mut include = |cx: &mut AppCx, file: &Path, l: &Line| {
        let why = format!("{} in {}", l.key, at(file, l.line));
        let target = PathBuf::from(l.args.first().map_or("", String::as_str));
        match l.key.as_str() {
            "!include" => vec![(target, why, false)],
            "!includedir" => cx
                .glob(&target.join("*.cnf"), &why)
                .into_iter()
                .map(|p| (p, why.clone(), false))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut out = Vec::new();
    for (f, why, optional) in files {
        out.extend(cx.flatten(f, why.clone(), *optional, parse, &mut include));
    }
    out
}

pub(crate) fn inspect(cx: &mut AppCx, argv: &[String]) -> bool {
    let id = cx.id().to_string();
    let safe = super::program(&argv[0]).contains("safe");
    let mut files: Vec<(PathBuf, String, bool)> = Vec::new();
    if let Some(f) = option(argv, &["--defaults-file"]) {
        files.push((
            f.into(),
            format!("--defaults-file on ExecStart= of {id}"),
            false,
        ));
    } else if !argv.iter().any(|a| a == "--no-defaults") {
        for f in ["/etc/my.cnf", "/etc/mysql/my.cnf"] {
            files.push((
                f.into(),
                format!("an option file the server reads by default ({id})"),
                true,
            ));
        }
        if let Some(f) = option(argv, &["--defaults-extra-file"]) {
            files.push((
                f.into(),
                format!("--defaults-extra-file on ExecStart= of {id}"),
                false,
            ));
        }
    }
    let lines = read(cx, &files);
    let read_list: Vec<String> = files.iter().map(|f| f.0.display().to_string()).collect();
    let last = |k: &str| {
        lines
            .iter()
            .rev()
            .find(|(_, l)| l.key == k && server_group(&l.section, safe))
    };
    let on_cmd = |names: &[&str]| option(argv, names).map(str::to_string);
    let datadir = match (on_cmd(&["--datadir", "-h"]), last("datadir")) {
        (Some(d), _) => Some((d.clone(), format!("--datadir={d} on ExecStart= of {id}"))),
        (None, Some((f, l))) => l
            .args
            .first()
            .map(|d| (d.clone(), format!("datadir in {}", at(f, l.line)))),
        (None, None) => None,
    };
    let (dir, reason) = datadir.unwrap_or_else(|| {
        (
            "/var/lib/mysql".into(),
            format!(
                "the server's default datadir /var/lib/mysql, none in {} or their includes",
                read_list.join(", ")
            ),
        )
    });
    cx.data(Path::new(&dir), reason);
    if let Some((f, l)) = last("log_error") {
        if let Some(p) = l.args.first().filter(|p| p.starts_with('/')) {
            cx.log_file(Path::new(p), format!("log_error in {}", at(f, l.line)));
        }
    }
    let debian = Path::new("/etc/mysql/debian.cnf");
    if cx.exists(debian) {
        cx.config(debian, ConfigKind::File, "Debian's maintenance client options, read by /etc/mysql/debian-start (a password in older releases)");
    }
    let no_tcp = argv.iter().any(|a| a == "--skip-networking") || last("skip_networking").is_some();
    let port = match (on_cmd(&["--port", "-P"]), last("port")) {
        (Some(p), _) => p
            .parse()
            .ok()
            .map(|p: u16| (p, format!("--port={p} on ExecStart= of {id}"))),
        (None, Some((f, l))) => l
            .args
            .first()
            .and_then(|p| p.parse().ok())
            .map(|p: u16| (p, format!("port = {p} in {}", at(f, l.line)))),
        (None, None) => Some((3306, "the server's default port 3306".to_string())),
    };
    if let (false, Some((p, why))) = (no_tcp, port) {
        cx.port(p, why);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_files() {
        let l = parse("[client-server]\nsocket = /run/mysqld/mysqld.sock\n\n!includedir /etc/mysql/conf.d/\n[MySQLd]\n# datadir = /nope\nloose-datadir = \"/srv/my sql\" # moved\nskip-networking\nport = 3307 # x\n");
        let got: Vec<String> = l
            .iter()
            .map(|l| format!("{}:{}:{}={}", l.line, l.section, l.key, l.args.join(",")))
            .collect();
        assert_eq!(
            got,
            [
                "2:client-server:socket=/run/mysqld/mysqld.sock",
                "4:client-server:!includedir=/etc/mysql/conf.d/",
                "7:mysqld:datadir=/srv/my sql",
                "8:mysqld:skip_networking=",
                "9:mysqld:port=3307",
            ]
        );
        assert!(server_group("mariadb-10.11", false));
        assert!(!server_group("mariadb-client", false));
        assert!(!server_group("client", false));
        assert!(server_group("mysqld_safe", true) && !server_group("mysqld_safe", false));
    }
}
