//! What the nginx driver reads from and writes into nginx's configuration: the vhost text ([`render`]),
//! the default include directory (which of `conf.d`/`sites-enabled` nginx.conf includes), and, to make a
//! reload "done" when `publish` returns, nginx's master PID (from nginx.conf's `pid` directive) so the
//! driver can wait until the master has replaced its workers. Pure apart from reading nginx.conf and /proc.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::config::{NginxConfig, Via};
use super::nginx::{header, NginxError};
use super::DriverRoute;

/// How long a publish waits for nginx's old workers to leave after a reload (they linger while they
/// finish long requests; new connections already go to the new workers).
const RELOAD_WAIT: Duration = Duration::from_secs(3);

/// The vhost file's text: a WebSocket-aware `proxy_pass` server for the hostname, with TLS and an
/// HTTP → HTTPS redirect when `cfg.tls` or `route.tls` is set.
pub fn render(cfg: &NginxConfig, route: &DriverRoute) -> Result<String, NginxError> {
    let (inst, host) = (&route.instance, &route.host);
    let var = format!("$wayback_{}_connection", inst.replace('-', "_"));
    let tls = route.tls.as_ref().or(cfg.tls.as_ref());
    let mut o = format!(
        "{}\n# {host} -> http://{} ({}).\n\nmap $http_upgrade {var} {{\n    default upgrade;\n    '' close;\n}}\n\nserver {{\n",
        header(inst),
        route.upstream,
        match cfg.via {
            Via::Builtin => "wayback's built-in proxy: access gate, masquerade and idle detection apply",
            Via::Direct => "the instance itself, directly",
        }
    );
    let listens = |o: &mut String, values: &[String], extra: &str| -> Result<(), NginxError> {
        for v in values {
            check_listen(v)?;
            o.push_str(&format!("    listen {v}{extra};\n"));
        }
        Ok(())
    };
    match tls {
        Some(t) => {
            listens(&mut o, &cfg.https_listen, " ssl")?;
            o.push_str(&format!(
                "    server_name {host};\n    ssl_certificate {};\n    ssl_certificate_key {};\n",
                quote(&t.cert.display().to_string()),
                quote(&t.key.display().to_string())
            ));
        }
        None => {
            listens(&mut o, &cfg.http_listen, "")?;
            o.push_str(&format!("    server_name {host};\n"));
        }
    }
    o.push_str(&format!(
        "\n    location / {{\n        proxy_pass http://{};\n        proxy_http_version 1.1;\n        proxy_set_header Host $host;\n        proxy_set_header X-Real-IP $remote_addr;\n        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n        proxy_set_header X-Forwarded-Proto $scheme;\n        proxy_set_header X-Forwarded-Host $host;\n        proxy_set_header Upgrade $http_upgrade;\n        proxy_set_header Connection {var};\n        proxy_read_timeout 1h;\n        proxy_buffering off;\n        client_max_body_size 0;\n    }}\n}}\n",
        route.upstream
    ));
    if tls.is_some() && !cfg.http_listen.is_empty() {
        let port = cfg.https_listen.first().map_or("443", |v| port_of(v));
        let port = if port == "443" {
            String::new()
        } else {
            format!(":{port}")
        };
        o.push_str("\nserver {\n");
        listens(&mut o, &cfg.http_listen, "")?;
        o.push_str(&format!(
            "    server_name {host};\n    return 301 https://$host{port}$request_uri;\n}}\n"
        ));
    }
    Ok(o)
}

/// `PORT`, `ADDR:PORT`, `[V6]:PORT` or `*:PORT`: nothing that could end the directive.
fn check_listen(v: &str) -> Result<(), NginxError> {
    let ok = port_of(v).parse::<u16>().is_ok()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:[]*-".contains(&b));
    ok.then_some(()).ok_or_else(|| NginxError::Listen(v.into()))
}

fn port_of(v: &str) -> &str {
    v.rsplit_once(':').map_or(v, |(_, p)| p)
}

/// A directive value, quoted unless plain (nginx has no escape for `$`): the export's rule.
fn quote(s: &str) -> String {
    wayback_core::export::nginx_value(s)
}

/// The configured include directory, else `conf.d` or `sites-enabled` beside nginx.conf if it includes it.
pub fn include_dir(cfg: &NginxConfig) -> Result<PathBuf, NginxError> {
    if let Some(d) = &cfg.include_dir {
        return Ok(d.clone());
    }
    let conf = conf_file(cfg);
    let text = fs::read_to_string(&conf).map_err(|source| NginxError::ReadConf {
        conf: conf.clone(),
        source,
    })?;
    let base = conf.parent().unwrap_or(Path::new("/"));
    let includes = includes(&text, base);
    ["conf.d", "sites-enabled"]
        .iter()
        .map(|c| base.join(c))
        .find(|d| {
            d.is_dir()
                && includes.iter().any(|p| {
                    p.parent() == Some(d.as_path())
                        && p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|pat| name_matches(pat, "wayback-example.conf"))
                })
        })
        .ok_or(NginxError::NoIncludeDir { conf })
}

/// The `include` patterns of an nginx config text, relative ones resolved against `base`.
fn includes(text: &str, base: &Path) -> Vec<PathBuf> {
    strip_comments(text)
        .split([';', '{', '}'])
        .filter_map(|d| {
            let mut words = d.split_whitespace();
            (words.next() == Some("include"))
                .then(|| words.next())
                .flatten()
        })
        .map(|p| base.join(p.trim_matches(['"', '\''])))
        .collect()
}

/// Whether a file name matches an `include` glob's last component (`*`, `?`, `[...]`, as glob(3)).
fn name_matches(pattern: &str, name: &str) -> bool {
    (pattern.parse::<wayback_core::glob::Glob>()).is_ok_and(|g| g.matches(Path::new(name)))
}

/// nginx.conf as nginx reads it: `conf` (a relative one under `prefix`), else /etc/nginx/nginx.conf.
fn conf_file(cfg: &NginxConfig) -> PathBuf {
    let conf = cfg.conf_path();
    match (&cfg.prefix, conf.is_relative()) {
        (Some(p), true) => p.join(conf),
        _ => conf,
    }
}

/// nginx's pid file: nginx.conf's `pid` directive (a relative one under `prefix`), else /run/nginx.pid.
pub fn pid_file(cfg: &NginxConfig) -> Option<PathBuf> {
    let text = fs::read_to_string(conf_file(cfg)).ok()?;
    let pid = strip_comments(&text)
        .split([';', '{', '}'])
        .find_map(|d| {
            let mut w = d.split_whitespace();
            (w.next() == Some("pid")).then(|| w.next()).flatten()
        })
        .map(|p| p.trim_matches(['"', '\'']).to_string());
    Some(match pid {
        Some(p) if Path::new(&p).is_relative() => cfg.prefix.clone()?.join(p),
        Some(p) => p.into(),
        None => "/run/nginx.pid".into(),
    })
}

/// nginx's master and its workers just before a reload.
pub struct Workers {
    master: i32,
    old: Vec<i32>,
}

impl Workers {
    /// `None` when the master cannot be found (no readable pid file) or has no workers: nothing to wait for.
    pub fn before_reload(pid_file: Option<&Path>) -> Option<Workers> {
        let master = fs::read_to_string(pid_file?).ok()?.trim().parse().ok()?;
        let old = crate::sys::procfs::children(master);
        (!old.is_empty()).then_some(Workers { master, old })
    }

    /// Wait (at most [`RELOAD_WAIT`]) until the master runs new workers and the old ones are gone, so the
    /// new config answers when `publish` returns. Returns whether new workers appeared.
    pub fn wait_replaced(&self) -> bool {
        let deadline = Instant::now() + RELOAD_WAIT;
        loop {
            let now = crate::sys::procfs::children(self.master);
            let fresh = now.iter().any(|p| !self.old.contains(p));
            if (fresh && !now.iter().any(|p| self.old.contains(p))) || Instant::now() >= deadline {
                return fresh;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The names of every `server_name` directive in an nginx config text (quotes removed; wildcards and
/// regexes as written).
pub fn server_names(text: &str) -> Vec<String> {
    strip_comments(text)
        .split([';', '{', '}'])
        .filter_map(|d| {
            let mut words = d.split_whitespace();
            (words.next() == Some("server_name")).then_some(words)
        })
        .flatten()
        .map(|w| w.trim_matches(['"', '\'']).to_string())
        .collect()
}

/// The text without `#` comments (to the end of the line).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_detection() {
        let conf = "user www-data;\nhttp {\n  # include /etc/nginx/conf.d/*.conf;\n  include mime.types;\n  include \"/etc/nginx/sites-enabled/*\";\n}\n";
        let inc = includes(conf, Path::new("/etc/nginx"));
        assert_eq!(
            inc,
            [
                PathBuf::from("/etc/nginx/mime.types"),
                "/etc/nginx/sites-enabled/*".into()
            ]
        );
        assert!(name_matches("*.conf", "wayback-a.conf"));
        assert!(name_matches("*", "wayback-a.conf"));
        assert!(name_matches("wayback-[a-z].conf", "wayback-a.conf"));
        assert!(!name_matches("*.site", "wayback-a.conf"));
    }

    #[test]
    fn server_name_directives() {
        let text = "# server_name commented.example;\nserver {\n  listen 80;\n  server_name a.example \"B.Example\"\n     *.wild.example ~^re$;\n}\nserver { server_name c.example; }\n";
        assert_eq!(
            server_names(text),
            [
                "a.example",
                "B.Example",
                "*.wild.example",
                "~^re$",
                "c.example"
            ]
        );
    }

    #[test]
    fn listen_values() {
        for ok in ["80", "[::]:443", "127.0.0.1:8080", "*:80"] {
            assert!(check_listen(ok).is_ok(), "{ok}");
        }
        for bad in ["80;", "80 ssl", "x", "1.2.3.4:99999"] {
            assert!(check_listen(bad).is_err(), "{bad}");
        }
        assert_eq!(quote("/etc/ssl/a.pem"), "/etc/ssl/a.pem");
        assert_eq!(quote("/a b/\"c\";"), r#""/a b/\"c\";""#);
    }

    #[test]
    fn vhost_text() {
        let cfg = NginxConfig {
            tls: Some(super::super::TlsFiles {
                cert: "/etc/ssl/wild card.pem".into(),
                key: "/etc/ssl/key.pem".into(),
            }),
            ..NginxConfig::default()
        };
        let route = DriverRoute {
            instance: "old-www".into(),
            host: "old-www.restore.example.org".into(),
            upstream: "127.0.0.1:8080".parse().unwrap(),
            tls: None,
        };
        let text = render(&cfg, &route).unwrap();
        println!("{text}");
        assert!(text.starts_with(&format!("{}\n", header("old-www"))));
        for line in [
            "map $http_upgrade $wayback_old_www_connection {",
            "    listen [::]:443 ssl;",
            "    ssl_certificate \"/etc/ssl/wild card.pem\";",
            "        proxy_pass http://127.0.0.1:8080;",
            "        proxy_set_header Connection $wayback_old_www_connection;",
            "    return 301 https://$host$request_uri;",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
    }
}
