//! Redis: `redis-server [CONFIG] [--key value…]`. redis.conf is `key arg…` lines, `#` comments, arguments
//! split as redis does (`"…"` with C escapes, `'…'`), keys case-insensitive, the last of a key wins, and
//! `include PATH` (a glob since Redis 7) read in place. Command-line `--key` options come after the file.
//! Read: `dir` (the data directory), `port` (default 6379; 0 means no TCP), `logfile`, `include`, `aclfile`.

use std::path::{Path, PathBuf};

use super::{at, AppCx, Line};
use crate::units::infer::ConfigKind;

/// Split a line into arguments as Redis's `sdssplitargs` does; `None` for unbalanced quotes (Redis refuses
/// such a line).
pub(crate) fn split_args(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut it = line.chars().peekable();
    loop {
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        let Some(&first) = it.peek() else {
            return Some(out);
        };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            it.next();
            loop {
                match (it.next()?, first) {
                    ('\\', '"') => word.push(match it.next()? {
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'b' => '\x08',
                        'a' => '\x07',
                        'x' => {
                            let h: String = [it.next()?, it.next()?].iter().collect();
                            char::from(u8::from_str_radix(&h, 16).ok()?)
                        }
                        c => c,
                    }),
                    ('\\', '\'') if it.peek() == Some(&'\'') => word.push(it.next()?),
                    (c, q) if c == q => break,
                    (c, _) => word.push(c),
                }
            }
            if it.peek().is_some_and(|c| !c.is_whitespace()) {
                return None;
            }
        } else {
            while let Some(c) = it.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
        }
        out.push(word);
    }
}

pub(crate) fn parse(text: &str) -> Vec<Line> {
    let mut lines = super::keyword_lines(text, split_args);
    for l in &mut lines {
        l.key.make_ascii_lowercase();
    }
    lines
}

/// `--key v…` options after the config file, as lines.
fn command_line(argv: &[String]) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::new();
    for a in argv {
        match a.strip_prefix("--") {
            Some(k) => out.push(Line {
                line: 0,
                section: String::new(),
                key: k.to_ascii_lowercase(),
                args: Vec::new(),
            }),
            None => {
                if let Some(l) = out.last_mut() {
                    l.args.push(a.clone());
                }
            }
        }
    }
    out
}

pub(crate) fn inspect(cx: &mut AppCx, argv: &[String]) -> bool {
    let id = cx.id().to_string();
    let (config, opts) = match argv.get(1) {
        Some(c) if !c.starts_with("--") && c != "-" => (Some(PathBuf::from(c)), &argv[2..]),
        _ => (None, argv.get(1..).unwrap_or(&[])),
    };
    let mut lines: Vec<(String, Line)> = Vec::new();
    if let Some(conf) = &config {
        let why = format!("redis-server's config, named on ExecStart= of {id}");
        let mut include = |cx: &mut AppCx, file: &Path, l: &Line| {
            if l.key != "include" {
                return Vec::new();
            }
            let why = format!("include in {}", at(file, l.line));
            l.args
                .iter()
                .flat_map(|p| cx.glob(Path::new(p), &why))
                .map(|p| (p, why.clone(), false))
                .collect()
        };
        for (f, l) in cx.flatten(conf, why, false, parse, &mut include) {
            let place = format!("in {}", at(&f, l.line));
            lines.push((place, l));
        }
    }
    for l in command_line(opts) {
        lines.push((format!("on ExecStart= of {id}"), l));
    }
    let last = |key: &str| {
        lines
            .iter()
            .rev()
            .find(|(_, l)| l.key == key && !l.args.is_empty())
    };
    if let Some((place, l)) = last("dir") {
        let reason = format!("dir {} {place}", l.args[0]);
        if l.args[0].starts_with('/') {
            cx.data(Path::new(&l.args[0]), reason);
        }
    }
    if let Some((place, l)) = last("logfile") {
        cx.log_file(
            Path::new(&l.args[0]),
            format!("logfile {} {place}", l.args[0]),
        );
    }
    if let Some((place, l)) = last("aclfile") {
        let p = PathBuf::from(&l.args[0]);
        cx.config(&p, ConfigKind::File, format!("aclfile {place}"));
    }
    match last("port") {
        Some((place, l)) => {
            if let Ok(p) = l.args[0].parse::<u16>() {
                if p != 0 {
                    cx.port(p, format!("port {p} {place}"));
                }
            }
        }
        None => {
            let not_in = config
                .as_ref()
                .map_or(String::new(), |c| format!(", no `port` in {}", c.display()));
            cx.port(6379, format!("redis-server's default port 6379{not_in}"));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_as_redis_splits_them() {
        let s = |l: &str| split_args(l).map(|v| v.join("|"));
        assert_eq!(
            s("dir /var/lib/redis").as_deref(),
            Some("dir|/var/lib/redis")
        );
        assert_eq!(
            s(r#"dir "/srv/my redis""#).as_deref(),
            Some("dir|/srv/my redis")
        );
        assert_eq!(s(r#"x "a\x41\n" 'it\'s'"#).as_deref(), Some("x|aA\n|it's"));
        assert_eq!(s(r#"x "open"#), None);
        assert_eq!(
            s(r#"x "a"b"#),
            None,
            "a closing quote must end the argument"
        );
        let l = parse("# c\n  PORT 6380\n\nsave \"\"\n");
        assert_eq!(
            (l[0].line, l[0].key.as_str(), l[0].args.as_slice()),
            (2, "port", &["6380".to_string()][..])
        );
        assert_eq!(l[1].args, [""]);
    }
}
