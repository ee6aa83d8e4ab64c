//! Mosquitto: `mosquitto -c FILE`. mosquitto.conf is `key value…` lines split at spaces, `#` comment
//! lines, and `include_dir DIR` (its `*.conf` files in alphabetical order). Read: `persistence` and
//! `persistence_location` (the data directory), `listener PORT`/`port PORT` (default 1883), `log_dest file`,
//! and the files holding secrets or settings: `password_file`, `acl_file`, `psk_file`, TLS files.

use std::path::{Path, PathBuf};

use super::{at, option, AppCx, Line};
use crate::units::infer::ConfigKind;

pub(crate) fn parse(text: &str) -> Vec<Line> {
    super::keyword_lines(text, |t| {
        Some(t.split_whitespace().map(str::to_string).collect())
    })
}

const SECRET_FILES: &[&str] = &[
    "password_file",
    "acl_file",
    "psk_file",
    "certfile",
    "keyfile",
    "cafile",
];

pub(crate) fn inspect(cx: &mut AppCx, argv: &[String]) -> bool {
    let id = cx.id().to_string();
    let Some(conf) = option(argv, &["-c", "--config-file"]).map(PathBuf::from) else {
        cx.port(
            1883,
            "mosquitto's default port 1883, no -c FILE on ExecStart=".into(),
        );
        return true;
    };
    let why = format!("mosquitto's config, -c on ExecStart= of {id}");
    let mut include = |cx: &mut AppCx, file: &Path, l: &Line| {
        if l.key != "include_dir" || l.args.is_empty() {
            return Vec::new();
        }
        let why = format!("include_dir in {}", at(file, l.line));
        let dir = Path::new(&l.args[0]);
        cx.glob(&dir.join("*.conf"), &why)
            .into_iter()
            .map(|p| (p, why.clone(), false))
            .collect()
    };
    let lines = cx.flatten(&conf, why, false, parse, &mut include);
    let last = |key: &str| {
        lines
            .iter()
            .rev()
            .find(|(_, l)| l.key == key && !l.args.is_empty())
    };
    let persistent = last("persistence").is_some_and(|(_, l)| l.args[0] == "true");
    if let (true, Some((f, l))) = (persistent, last("persistence_location")) {
        let reason = format!("persistence_location {} in {}", l.args[0], at(f, l.line));
        cx.data(Path::new(&l.args[0]), reason);
    }
    for (f, l) in &lines {
        if l.key == "log_dest" && l.args.len() > 1 && l.args[0] == "file" {
            let reason = format!("log_dest file {} in {}", l.args[1], at(f, l.line));
            cx.log_file(Path::new(&l.args[1]), reason);
        }
        if SECRET_FILES.contains(&l.key.as_str()) && !l.args.is_empty() {
            let reason = format!("{} in {}", l.key, at(f, l.line));
            cx.config(Path::new(&l.args[0]), ConfigKind::File, reason);
        }
    }
    let port = lines
        .iter()
        .find(|(_, l)| (l.key == "listener" || l.key == "port") && !l.args.is_empty())
        .and_then(|(f, l)| Some((l.args[0].parse::<u16>().ok()?, f, l)));
    match port {
        Some((p, f, l)) => cx.port(p, format!("{} {p} in {}", l.key, at(f, l.line))),
        None => cx.port(
            1883,
            format!(
                "mosquitto's default port 1883, no `listener` in {}",
                conf.display()
            ),
        ),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn lines() {
        let l = parse("# x\npersistence_location /var/lib/mosquitto/\n  listener 8883 127.0.0.1\n");
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].key, "listener");
        assert_eq!(l[1].args, ["8883", "127.0.0.1"]);
        assert_eq!(l[1].line, 3);
    }
}
