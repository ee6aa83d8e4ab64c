//! nginx: `nginx [-c FILE]` (default /etc/nginx/nginx.conf). The config is directives ending in `;` and
//! blocks in `{ }`, `#` comments, words quoted with `"…"`/`'…'` (backslash escapes), and `include PATTERN;`
//! (a glob, relative to the config's directory) read in place, inside the block it appears in. Read:
//! `root`/`alias` of the served sites (the data), `listen` of the `server` blocks (the first is the
//! readiness port; a server without `listen` listens on 80), the `*_log` files, the `*_cache_path`
//! directories, and the files holding secrets (`auth_basic_user_file`, TLS keys and certificates).

use std::path::{Path, PathBuf};

use super::{at, option, AppCx};
use crate::profile::DirSpec;
use crate::units::infer::ConfigKind;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Semi,
    Open,
    Close,
}

/// The tokens of a config file, with their line numbers.
fn tokens(text: &str) -> Vec<(usize, Tok)> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut it = text.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => while it.next_if(|c| *c != '\n').is_some() {},
            ';' => out.push((line, Tok::Semi)),
            '{' => out.push((line, Tok::Open)),
            '}' => out.push((line, Tok::Close)),
            '"' | '\'' => {
                let start = line;
                let mut w = String::new();
                while let Some(x) = it.next() {
                    match x {
                        '\\' => match it.next() {
                            Some(e @ ('"' | '\'' | '\\')) => w.push(e),
                            Some('n') => w.push('\n'),
                            Some('t') => w.push('\t'),
                            Some(e) => {
                                w.push('\\');
                                w.push(e);
                            }
                            None => {}
                        },
                        x if x == c => break,
                        '\n' => {
                            line += 1;
                            w.push('\n');
                        }
                        x => w.push(x),
                    }
                }
                out.push((start, Tok::Word(w)));
            }
            c => {
                let mut w = String::from(c);
                while let Some(x) = it.next_if(|x| !x.is_whitespace() && !";{}".contains(*x)) {
                    w.push(x);
                }
                out.push((line, Tok::Word(w)));
            }
        }
    }
    out
}

/// One directive, with the blocks around it.
#[derive(Debug, Clone)]
struct Stmt {
    file: PathBuf,
    line: usize,
    /// The `server` block it is in (numbered in reading order).
    server: Option<usize>,
    args: Vec<String>,
}

struct Walk {
    prefix: PathBuf,
    servers: usize,
    out: Vec<Stmt>,
}

impl Walk {
    /// Read `file`'s directives inside the blocks `stack` (name, server number), following includes.
    fn file(
        &mut self,
        cx: &mut AppCx,
        file: &Path,
        why: String,
        stack: &mut Vec<(String, Option<usize>)>,
        depth: usize,
    ) {
        let Some(text) = cx.read(file, why, false) else {
            return;
        };
        let base = stack.len();
        let mut words: Vec<String> = Vec::new();
        let mut first = 0;
        for (line, tok) in tokens(&text) {
            let server = stack.last().and_then(|s| s.1);
            match tok {
                Tok::Word(w) => {
                    if words.is_empty() {
                        first = line;
                    }
                    words.push(w);
                }
                Tok::Open => {
                    let name = words.first().cloned().unwrap_or_default();
                    let server = if name == "server" {
                        self.servers += 1;
                        Some(self.servers)
                    } else {
                        server
                    };
                    stack.push((name, server));
                    words.clear();
                }
                Tok::Close => {
                    if stack.len() > base {
                        stack.pop();
                    }
                    words.clear();
                }
                Tok::Semi if words.first().map(String::as_str) == Some("include") && depth < 16 => {
                    let why = format!("include in {}", at(file, first));
                    for w in words.drain(..).skip(1) {
                        for f in cx.glob(&self.prefix.join(&w), &why) {
                            self.file(cx, &f, why.clone(), stack, depth + 1);
                        }
                    }
                }
                Tok::Semi => self.out.push(Stmt {
                    file: file.to_path_buf(),
                    line: first,
                    server,
                    args: std::mem::take(&mut words),
                }),
            }
        }
        stack.truncate(base);
    }
}

/// The port of a `listen` argument: `80`, `127.0.0.1:8080`, `[::]:443`, `*:80`, `localhost` (80); none for
/// `unix:` sockets.
fn listen_port(arg: &str) -> Option<u16> {
    if arg.starts_with("unix:") {
        return None;
    }
    let after = match arg.strip_prefix('[') {
        Some(r) => r.split_once(']').map_or("", |x| x.1),
        None => arg,
    };
    match after.rsplit_once(':') {
        Some((_, p)) => p.parse().ok(),
        None => after.parse().ok().or(Some(80)),
    }
}

const SECRETS: &[&str] = &[
    "auth_basic_user_file",
    "ssl_certificate",
    "ssl_certificate_key",
    "ssl_trusted_certificate",
    "ssl_password_file",
    "ssl_dhparam",
];

pub(crate) fn inspect(cx: &mut AppCx, argv: &[String]) -> bool {
    let id = cx.id().to_string();
    let (conf, why) = match option(argv, &["-c"]) {
        Some(c) => (
            PathBuf::from(c),
            format!("nginx's config, -c on ExecStart= of {id}"),
        ),
        None => (
            "/etc/nginx/nginx.conf".into(),
            format!("nginx's default config ({id})"),
        ),
    };
    let prefix = conf.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut walk = Walk {
        prefix,
        servers: 0,
        out: Vec::new(),
    };
    walk.file(cx, &conf, why, &mut Vec::new(), 0);
    let mut port: Option<(u16, String)> = None;
    for s in &walk.out {
        let (name, arg) = (s.args[0].as_str(), s.args.get(1).map_or("", String::as_str));
        let place = at(&s.file, s.line);
        match name {
            "root" | "alias" if arg.starts_with('/') && !arg.contains('$') => {
                cx.data(Path::new(arg), format!("{name} {arg} in {place}"));
            }
            "listen" if s.server.is_some() && port.is_none() => {
                port = listen_port(arg).map(|p| (p, format!("listen {arg} in {place}")));
            }
            "error_log" | "access_log" if arg.starts_with('/') => {
                cx.log_file(Path::new(arg), format!("{name} {arg} in {place}"));
            }
            n if n.ends_with("_cache_path") && arg.starts_with('/') => {
                cx.data(Path::new(arg), format!("{name} {arg} in {place}"));
            }
            n if SECRETS.contains(&n) && !arg.is_empty() && !arg.contains('$') => {
                let p = walk.prefix.join(arg);
                cx.config(&p, ConfigKind::File, format!("{name} in {place}"));
            }
            _ => {}
        }
    }
    let listens: Vec<usize> = walk
        .out
        .iter()
        .filter(|s| s.args[0] == "listen")
        .filter_map(|s| s.server)
        .collect();
    let silent = (1..=walk.servers).find(|n| !listens.contains(n));
    match (port, silent) {
        (Some((p, why)), _) => cx.port(p, why),
        (None, Some(_)) => cx.port(
            80,
            "nginx's default port 80 for a server block without `listen`".into(),
        ),
        (None, None) => {}
    }
    if argv[0].starts_with("/usr/sbin/") {
        let dir = DirSpec {
            path: "/var/lib/nginx".into(),
            owner: None,
            group: None,
            mode: Some("0755".into()),
        };
        cx.facts.dirs.push((
            dir,
            "nginx's compiled-in temporary directories (/var/lib/nginx/body, …) on Debian".into(),
        ));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_comments_quotes() {
        let t = tokens("http { # c\n  root \"/srv/my site\";\n  add_header X 'a;b' ; }\n");
        let words: Vec<String> = t
            .iter()
            .map(|(l, t)| match t {
                Tok::Word(w) => format!("{l}:{w}"),
                other => format!("{l}:{other:?}"),
            })
            .collect();
        assert_eq!(
            words,
            [
                "1:http",
                "1:Open",
                "2:root",
                "2:/srv/my site",
                "2:Semi",
                "3:add_header",
                "3:X",
                "3:a;b",
                "3:Semi",
                "3:Close"
            ]
        );
        assert_eq!(listen_port("80"), Some(80));
        assert_eq!(listen_port("127.0.0.1:8080"), Some(8080));
        assert_eq!(listen_port("[::]:443"), Some(443));
        assert_eq!(listen_port("localhost"), Some(80));
        assert_eq!(listen_port("unix:/run/x.sock"), None);
        assert_eq!(listen_port("[::1]"), Some(80));
        assert_eq!(listen_port("*:8080"), Some(8080));
    }
}
