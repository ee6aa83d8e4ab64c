//! Name-based virtual hosts: nginx picks the `server` block by the request's `Host`, so an instance asked
//! by its own hostname gets the default site (Debian's "Welcome to nginx!") and never shows the app, nor
//! its redirects. When the front page points nowhere and is such a placeholder ([`is_placeholder`]: an
//! error, or a welcome page), the names nginx serves (`server_name`, read from the config the instance
//! runs: the host's, in host mode) are asked for too; a name whose front page differs from the default
//! site's is a site the instance serves only under its live hostname. A real site on the instance's
//! hostname is taken to be the app: other names are then other sites.
//!
//! Reading the config is pure apart from the file reads: [`server_names`] follows `include` globs from
//! /etc/nginx/nginx.conf (depth- and count-bounded) and keeps plain names (no wildcards, regexes, `_`).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wayback_core::glob::Glob;
use wayback_masquerade::{Masquerade, Scheme};

use super::clues::{Clue, ClueKind, Origin};
use super::fetch::{self, Asker, Fetched};
use super::verdict::Candidate;
use super::Probe;
use crate::progress::Progress;

/// Names asked for at most (the first ones in config order).
pub const MAX_NAMES: usize = 8;
const MAX_FILES: usize = 200;

/// The sites the instance serves only under another name, as candidates (empty when there is no nginx,
/// when the default site is the app, or in boot mode, where the config is the snapshot's own).
pub(super) async fn candidates(p: &Probe<'_>, progress: &Progress) -> Vec<Candidate> {
    if p.plan.boot.is_some() || !runs(p.plan, "nginx") {
        return Vec::new();
    }
    let names: Vec<String> = server_names(Path::new("/etc/nginx/nginx.conf"))
        .into_iter()
        .filter(|n| *n != p.public.host)
        .take(MAX_NAMES)
        .collect();
    if names.is_empty() {
        return Vec::new();
    }
    let plain = Asker {
        public: p.public,
        masquerade: None,
    };
    let Ok(default) = fetch::front_page(p.dialer, p.port, &plain).await else {
        return Vec::new();
    };
    if !default.first().is_some_and(is_placeholder) {
        // The instance's hostname reaches a real site: other names are other sites, not the app.
        return Vec::new();
    }
    let mut out = Vec::new();
    for name in names {
        let Ok(m) = Masquerade::new(&name, Scheme::Http, &p.public.authority(), scheme(p.public))
        else {
            continue;
        };
        let asker = Asker {
            public: p.public,
            masquerade: Some(&m),
        };
        match fetch::front_page(p.dialer, p.port, &asker).await {
            Ok(chain) if fingerprint(&chain) != fingerprint(&default) => {
                out.push(candidate(&name, &chain, p.public.https));
            }
            Ok(_) => {}
            Err(e) => progress.note(format!("asking the app as {name}: {e:#}")),
        }
    }
    out
}

fn scheme(o: &Origin) -> Scheme {
    if o.https {
        Scheme::Https
    } else {
        Scheme::Http
    }
}

/// Whether a front page is what a web server answers when no site is meant: an error status, or the
/// default page a package installs (nginx's and Apache's welcome pages).
pub fn is_placeholder(page: &Fetched) -> bool {
    const DEFAULT_PAGES: &[&str] = &[
        "<title>Welcome to nginx!</title>",
        "Test Page for the Nginx HTTP Server",
        "Apache2 Debian Default Page",
        "Apache2 Ubuntu Default Page",
        "Test Page for the Apache HTTP Server",
        "<h1>It works!</h1>",
    ];
    if matches!(page.status, 400 | 403 | 404 | 410 | 421 | 444) || page.status >= 500 {
        return true;
    }
    let html = String::from_utf8_lossy(&page.html);
    page.status == 200 && DEFAULT_PAGES.iter().any(|d| html.contains(d))
}

/// Whether a process of the plan runs `program` (by its argv or shell script).
fn runs(plan: &wayback_core::Plan, program: &str) -> bool {
    plan.init.processes.iter().any(|p| {
        let words = p
            .command
            .iter()
            .flatten()
            .chain(p.shell.iter())
            .flat_map(|w| w.split_whitespace());
        words
            .map(|w| w.rsplit('/').next().unwrap_or(w).to_string())
            .any(|w| w == program)
    })
}

/// What distinguishes one site's front page from another's: the first response's status, `Location`
/// and body.
fn fingerprint(chain: &[Fetched]) -> Option<(u16, Option<String>, u64)> {
    let first = chain.first()?;
    let mut h = DefaultHasher::new();
    first.html.hash(&mut h);
    let location = first
        .headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Some((first.status, location, h.finish()))
}

/// The site served under `name`: its scheme is the one its own redirects and links use for it (http when
/// they name none).
pub fn candidate(name: &str, chain: &[Fetched], https: bool) -> Candidate {
    let clues = super::clues_of(chain, https);
    let own = clues
        .iter()
        .filter(|c| c.origin.host == name)
        .max_by_key(|c| c.kind)
        .map(|c| c.origin.clone());
    let origin = own.unwrap_or(Origin {
        https: false,
        host: name.to_string(),
        port: None,
    });
    Candidate {
        clues: vec![Clue {
            origin: origin.clone(),
            kind: ClueKind::VirtualHost,
            place: format!(
                "nginx server_name {name}; the instance's own hostname gets another site"
            ),
        }],
        origin,
    }
}

/// Plain `server_name`s of the nginx config at `conf` and the files it includes (file by file, `conf`
/// first, then its includes depth first), without duplicates.
pub fn server_names(conf: &Path) -> Vec<String> {
    let mut files = Vec::new();
    collect(conf, &mut files, 0);
    let mut out: Vec<String> = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for n in names_in(&text) {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// The plain names of every `server_name` directive in `text`, without duplicates.
pub fn names_in(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in all_names(text) {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

fn all_names(text: &str) -> Vec<String> {
    directives(text, "server_name")
        .into_iter()
        .filter(|n| !n.contains(['*', '~', '$']) && n != "_" && n != "localhost")
        .filter_map(|n| Origin::of_authority(&n, false).map(|o| o.host))
        .filter(|h| h.contains('.') && !h.starts_with('['))
        .collect()
}

/// The words after `key` in every `key …;` directive (comments dropped, quotes removed).
fn directives(text: &str, key: &str) -> Vec<String> {
    let stripped: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    stripped
        .split([';', '{', '}'])
        .filter_map(|d| {
            let mut w = d.split_whitespace();
            (w.next() == Some(key)).then_some(w)
        })
        .flatten()
        .map(|w| w.trim_matches(['"', '\'']).to_string())
        .collect()
}

/// `file` and, depth first, the files its `include`s name.
fn collect(file: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 8 || out.len() >= MAX_FILES || out.iter().any(|f| f == file) {
        return;
    }
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    out.push(file.to_path_buf());
    let base = file.parent().unwrap_or(Path::new("/"));
    for pattern in directives(&text, "include") {
        for f in expand(&base.join(&pattern)) {
            collect(&f, out, depth + 1);
        }
    }
}

/// The files an include pattern names (a glob in the last component only, as nginx's configs use).
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (
        pattern.parent(),
        pattern.file_name().and_then(|n| n.to_str()),
    ) else {
        return Vec::new();
    };
    let Ok(glob) = name.parse::<Glob>() else {
        return Vec::new();
    };
    if glob.is_literal() {
        return vec![pattern.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| glob.matches(Path::new(&e.file_name())))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}
