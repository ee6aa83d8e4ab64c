//! Caddy: `caddy run --config FILE` (a Caddyfile; a config the `json` adapter reads, or a `.json` file, is
//! not read). The Caddyfile is lines of words split at whitespace (`"…"` and `` `…` `` keep spaces), `#`
//! comments, blocks in `{ }` opened at the end of a line, a global options block (`{` alone first), snippets
//! (`(name) { }`), and `import PATTERN` (a file or glob, relative to the importing file's directory; a bare
//! name is a snippet). Read: `root` of the sites (the served files), the first site address's port for
//! readiness (`:8080`, `host:8080`; `http://` 80, else 443, with the global `http_port`/`https_port`),
//! `output file PATH` of `log` blocks, and the files it names for TLS (`tls CERT KEY`).

use std::path::{Path, PathBuf};

use super::{at, option, AppCx, Line};
use crate::units::infer::ConfigKind;

/// The key of a line opening a site block; its arguments are the site's addresses.
const SITE: &str = "(site)";

/// The lines of a Caddyfile: a site block's opening line as [`SITE`] with its addresses, every other line
/// as its first word and the rest (a trailing `{` dropped), in the section of the site it is in ("" outside
/// any, "(global)" in the global options block, the snippet's name in a snippet).
pub(crate) fn parse(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let (mut depth, mut section) = (0usize, String::new());
    let mut first_block = true;
    for (i, raw) in text.lines().enumerate() {
        let mut words = words(raw);
        if words.is_empty() {
            continue;
        }
        let closes = words.iter().take_while(|w| *w == "}").count();
        depth = depth.saturating_sub(closes);
        words.drain(..closes);
        if depth == 0 && closes > 0 {
            section.clear();
        }
        let opens = words.last().is_some_and(|w| w == "{");
        if opens {
            words.pop();
        }
        if depth == 0 && opens {
            section = match words.first() {
                None if first_block => "(global)".into(),
                Some(w) if w.starts_with('(') => w.clone(),
                _ => words.join(" "),
            };
            if !section.starts_with('(') {
                out.push(line(i, &section, SITE.into(), site_addresses(&words)));
            }
        } else if let Some((key, args)) = words.split_first() {
            out.push(line(i, &section, key.clone(), args.to_vec()));
        }
        first_block = false;
        depth += usize::from(opens);
    }
    out
}

fn line(i: usize, section: &str, key: String, args: Vec<String>) -> Line {
    Line {
        line: i + 1,
        section: section.to_string(),
        key,
        args,
    }
}

/// The words of a line, up to a `#` comment that starts a word.
fn words(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = raw.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => break,
            '"' | '`' => {
                let mut w = String::new();
                while let Some(x) = it.next() {
                    match x {
                        '\\' if c == '"' => w.extend(it.next()),
                        x if x == c => break,
                        x => w.push(x),
                    }
                }
                out.push(w);
            }
            c => {
                let mut w = String::from(c);
                while let Some(x) = it.next_if(|x| !x.is_whitespace()) {
                    w.push(x);
                }
                out.push(w);
            }
        }
    }
    out
}

/// A site block's addresses: its words split at commas.
fn site_addresses(words: &[String]) -> Vec<String> {
    words
        .iter()
        .flat_map(|w| w.split(','))
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

/// The port a site address listens on: its own (`:8080`, `host:8080`, `[::1]:8080`), else the scheme's
/// (`http://` → `http_port`), else `https_port` (Caddy serves a named site over HTTPS).
fn address_port(addr: &str, http_port: u16, https_port: u16) -> Option<u16> {
    let (scheme, rest) = match addr.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, addr),
    };
    let host_port = rest.split('/').next().unwrap_or(rest);
    let explicit = match host_port.rsplit_once(':') {
        Some((host, p)) if !host.contains(':') || host.ends_with(']') => {
            Some(p.parse::<u16>().ok()?)
        }
        _ => None,
    };
    Some(match (explicit, scheme) {
        (Some(p), _) => p,
        (None, Some("http")) => http_port,
        _ => https_port,
    })
}

pub(crate) fn inspect(cx: &mut AppCx, argv: &[String]) -> bool {
    if !matches!(argv.get(1).map(String::as_str), Some("run" | "start")) {
        return false;
    }
    let Some(conf) = option(argv, &["--config"]).map(PathBuf::from) else {
        return true; // no config: Caddy starts with none, listening nowhere
    };
    let json = option(argv, &["--adapter"]).is_some_and(|a| a != "caddyfile")
        || conf.extension().is_some_and(|e| e == "json");
    if json {
        cx.config(
            &conf,
            ConfigKind::File,
            format!("--config on ExecStart= of {}", cx.id()),
        );
        return true;
    }
    let why = format!("Caddy's config, --config on ExecStart= of {}", cx.id());
    let mut include = |cx: &mut AppCx, file: &Path, l: &Line| {
        let Some(pat) = l.args.first().filter(|_| l.key == "import") else {
            return Vec::new();
        };
        if !pat.contains('/') && !pat.contains('.') && !pat.contains('*') {
            return Vec::new(); // a snippet
        }
        let path = file.parent().unwrap_or(Path::new("/")).join(pat);
        let why = format!("import in {}", at(file, l.line));
        if pat.contains('*') {
            let found = cx.glob(&path, &why);
            return found.into_iter().map(|p| (p, why.clone(), false)).collect();
        }
        vec![(path, why, false)]
    };
    let lines = cx.flatten(&conf, why, false, parse, &mut include);
    facts(cx, &lines);
    true
}

/// The data, logs, TLS files and readiness port the lines name.
fn facts(cx: &mut AppCx, lines: &[(PathBuf, Line)]) {
    let global = |key: &str, default: u16| {
        lines
            .iter()
            .rev()
            .find(|(_, l)| l.section == "(global)" && l.key == key)
            .and_then(|(_, l)| l.args.first()?.parse().ok())
            .unwrap_or(default)
    };
    let (http_port, https_port) = (global("http_port", 80), global("https_port", 443));
    for (f, l) in lines {
        let absolute = |w: &&String| w.starts_with('/') && !w.contains('{');
        match l.key.as_str() {
            "root" => {
                if let Some(dir) = l.args.last().filter(absolute) {
                    cx.data(Path::new(dir), format!("root {dir} in {}", at(f, l.line)));
                }
            }
            "output" if l.args.first().is_some_and(|a| a == "file") => {
                if let Some(file) = l.args.get(1).filter(absolute) {
                    cx.log_file(
                        Path::new(file),
                        format!("output file {file} in {}", at(f, l.line)),
                    );
                }
            }
            "tls" => {
                for file in l.args.iter().take(2).filter(absolute) {
                    let why = format!("tls in {}", at(f, l.line));
                    cx.config(Path::new(file), ConfigKind::File, why);
                }
            }
            _ => {}
        }
    }
    let first = lines
        .iter()
        .find(|(_, l)| l.key == SITE && !l.args.is_empty());
    if let Some((f, l)) = first {
        if let Some(p) = address_port(&l.args[0], http_port, https_port) {
            cx.port(
                p,
                format!("site address {} in {}", l.args[0], at(f, l.line)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{address_port, parse, SITE};

    #[test]
    fn sites_directives_and_blocks() {
        let text = "{\n\thttp_port 8080\n}\n(common) {\n\tencode gzip\n}\n\
                    # a comment\nexample.com, :81 {\n\troot * \"/srv/my site\" # here\n\tlog {\n\t\toutput file /var/log/caddy/a.log\n\t}\n\timport common\n}\n\
                    :9000 {\n\treverse_proxy localhost:3000\n}\n";
        let got: Vec<String> = parse(text)
            .iter()
            .map(|l| format!("{}:{}:{}:{}", l.line, l.section, l.key, l.args.join("|")))
            .collect();
        assert_eq!(
            got,
            [
                "2:(global):http_port:8080",
                "5:(common):encode:gzip",
                format!("8:example.com, :81:{SITE}:example.com|:81").as_str(),
                "9:example.com, :81:root:*|/srv/my site",
                "10:example.com, :81:log:",
                "11:example.com, :81:output:file|/var/log/caddy/a.log",
                "13:example.com, :81:import:common",
                format!("15::9000:{SITE}::9000").as_str(),
                "16::9000:reverse_proxy:localhost:3000",
            ]
        );
    }

    #[test]
    fn ports_of_addresses() {
        assert_eq!(address_port(":80", 80, 443), Some(80));
        assert_eq!(address_port("example.com:8443", 80, 443), Some(8443));
        assert_eq!(address_port("example.com", 80, 443), Some(443));
        assert_eq!(address_port("http://example.com", 8080, 443), Some(8080));
        assert_eq!(
            address_port("https://example.com/path", 80, 4443),
            Some(4443)
        );
        assert_eq!(address_port("localhost", 80, 443), Some(443));
        assert_eq!(address_port("[::1]:2015", 80, 443), Some(2015));
        assert_eq!(address_port("*.example.com", 80, 443), Some(443));
        assert_eq!(address_port("host:notaport", 80, 443), None);
    }
}
