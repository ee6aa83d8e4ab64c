//! php-fpm: `php-fpmX.Y --fpm-config FILE` (or `-y FILE`; default /etc/php/X.Y/fpm/php-fpm.conf for a
//! versioned binary), and php.ini from `-c FILE` or beside the config. php-fpm.conf is INI: `[section]`
//! (`global` or a pool's name), `key = value`, `;` comments (also after a value), values optionally in
//! double quotes, `$pool` standing for the pool's name, and `include=PATTERN` (a glob) read in place.
//! Read: each pool's `chdir` (its site) and `listen` (a TCP port is the readiness; sockets are not).

use std::path::{Path, PathBuf};

use super::{at, option, AppCx, Line};
use crate::units::infer::ConfigKind;

pub(crate) fn parse(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.is_empty() || t.starts_with(';') || t.starts_with('#') {
            continue;
        }
        if let Some(rest) = t.strip_prefix('[') {
            section = rest.split(']').next().unwrap_or("").trim().to_string();
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = match v.strip_prefix('"') {
            Some(q) => q.split('"').next().unwrap_or(q),
            None => v.split(';').next().unwrap_or(v).trim(),
        };
        out.push(Line {
            line: i + 1,
            section: section.clone(),
            key: k.trim().to_string(),
            args: vec![v.replace("$pool", &section)],
        });
    }
    out
}

/// The TCP port of a `listen` value (`9000`, `127.0.0.1:9000`, `[::]:9000`); none for a socket path.
fn tcp_port(v: &str) -> Option<u16> {
    if v.starts_with('/') {
        return None;
    }
    v.rsplit(':').next()?.parse().ok()
}

pub(crate) fn inspect(cx: &mut AppCx, argv: &[String]) -> bool {
    let id = cx.id().to_string();
    let prog = super::program(&argv[0]);
    let conf = match option(argv, &["--fpm-config", "-y"]) {
        Some(c) => (
            PathBuf::from(c),
            format!("php-fpm's config, named on ExecStart= of {id}"),
        ),
        None => match prog.strip_prefix("php-fpm").filter(|v| !v.is_empty()) {
            Some(v) => (
                PathBuf::from(format!("/etc/php/{v}/fpm/php-fpm.conf")),
                format!("{prog}'s default config ({id})"),
            ),
            None => return true,
        },
    };
    let (conf, why) = conf;
    let mut include = |cx: &mut AppCx, file: &Path, l: &Line| {
        if l.key != "include" || !l.args[0].starts_with('/') {
            return Vec::new();
        }
        let why = format!("include in {}", at(file, l.line));
        cx.glob(Path::new(&l.args[0]), &why)
            .into_iter()
            .map(|p| (p, why.clone(), false))
            .collect()
    };
    let lines = cx.flatten(&conf, why, false, parse, &mut include);
    let dir = conf.parent().unwrap_or(Path::new("/"));
    let ini = option(argv, &["-c", "--php-ini"]).map_or_else(|| dir.join("php.ini"), PathBuf::from);
    if cx.exists(&ini) {
        cx.config(&ini, ConfigKind::File, format!("php.ini of {prog} ({id})"));
    }
    let mut port = None;
    for (f, l) in &lines {
        let v = &l.args[0];
        match l.key.as_str() {
            "chdir" if l.section != "global" && v.starts_with('/') => {
                let reason = format!("chdir = {v} of pool [{}] in {}", l.section, at(f, l.line));
                cx.data(Path::new(v), reason);
            }
            "listen" if port.is_none() => {
                port = tcp_port(v).map(|p| {
                    (
                        p,
                        format!("listen = {v} of pool [{}] in {}", l.section, at(f, l.line)),
                    )
                });
            }
            _ => {}
        }
    }
    if let Some((p, why)) = port {
        cx.port(p, why);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools() {
        let l = parse("[global]\ninclude=/etc/php/8.2/fpm/pool.d/*.conf\n[wiki]\n; chdir = /nope\nchdir = \"/srv/$pool\" ; site\nlisten = 127.0.0.1:9001 ; tcp\n");
        let got: Vec<String> = l
            .iter()
            .map(|l| format!("{}:{}:{}={}", l.line, l.section, l.key, l.args[0]))
            .collect();
        assert_eq!(
            got,
            [
                "2:global:include=/etc/php/8.2/fpm/pool.d/*.conf",
                "5:wiki:chdir=/srv/wiki",
                "6:wiki:listen=127.0.0.1:9001",
            ]
        );
        assert_eq!(tcp_port("127.0.0.1:9001"), Some(9001));
        assert_eq!(tcp_port("[::]:9000"), Some(9000));
        assert_eq!(tcp_port("9000"), Some(9000));
        assert_eq!(tcp_port("/run/php/php8.2-fpm.sock"), None);
    }
}
