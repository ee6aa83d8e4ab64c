//! A profile as editable TOML: the reports as `#` comments on top (so `wayback profile from-units … > FILE`
//! shows what needs a look), then the profile in the key order of docs/profiles.md, with multi-line shell
//! scripts as literal strings. The output parses back with `Profile::parse` to the same profile.

use std::fmt::Write;

use super::{Conversion, Report, ReportKind};
use crate::profile::{Bind, DirSpec, Process, Profile, Ready};

/// A TOML basic string.
fn basic(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A string value: multi-line text as a literal block when that represents it exactly, else a basic string.
fn string(s: &str) -> String {
    let literal_ok = s.contains('\n')
        && !s.contains("'''")
        && !s.ends_with('\'')
        && !s
            .chars()
            .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\r');
    if literal_ok {
        format!("'''\n{s}'''")
    } else {
        basic(s)
    }
}

fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        basic(k)
    }
}

fn path(p: &std::path::Path) -> String {
    basic(&p.display().to_string())
}

fn ready(r: &Ready) -> String {
    let mut parts = Vec::new();
    if let Some(p) = r.tcp {
        parts.push(format!("tcp = {p}"));
    }
    if let Some(p) = r.http {
        parts.push(format!("http = {p}"));
    }
    if let Some(p) = &r.http_path {
        parts.push(format!("http_path = {}", basic(p)));
    }
    if let Some(p) = &r.path {
        parts.push(format!("path = {}", path(p)));
    }
    format!("{{ {} }}", parts.join(", "))
}

fn comment(out: &mut String, text: &str) {
    for line in text.lines() {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            let _ = writeln!(out, "# {line}");
        }
    }
}

/// One report as a comment line: where, what, and what wayback does about it.
fn report_line(r: &Report) -> String {
    let place = match (&r.file, r.line) {
        (Some(f), Some(l)) => format!("{} ({}:{l})", r.unit, f.display()),
        _ => r.unit.clone(),
    };
    let what = match (r.directive.is_empty(), r.value.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!("{}: ", r.directive),
        (false, false) => format!("{}={}: ", r.directive, r.value.replace('\n', " ")),
    };
    format!("{place}: {what}{}", r.message)
}

fn dir(out: &mut String, d: &DirSpec) {
    out.push_str("\n[[dirs]]\n");
    let _ = writeln!(out, "path = {}", path(&d.path));
    for (k, v) in [("owner", &d.owner), ("group", &d.group), ("mode", &d.mode)] {
        if let Some(v) = v {
            let _ = writeln!(out, "{k} = {}", basic(v));
        }
    }
}

fn process(out: &mut String, p: &Process) {
    out.push_str("\n[[process]]\n");
    let _ = writeln!(out, "name = {}", basic(&p.name));
    for (k, v) in [("user", &p.user), ("group", &p.group)] {
        if let Some(v) = v {
            let _ = writeln!(out, "{k} = {}", basic(v));
        }
    }
    if let Some(w) = &p.workdir {
        let _ = writeln!(out, "workdir = {}", path(w));
    }
    if let Some(s) = &p.stop_signal {
        let _ = writeln!(out, "stop_signal = {}", basic(s));
    }
    if let Some(r) = &p.ready {
        let _ = writeln!(out, "ready = {}", ready(r));
    }
    if let Some(c) = &p.command {
        let words: Vec<String> = c.iter().map(|w| basic(w)).collect();
        let _ = writeln!(out, "command = [{}]", words.join(", "));
    }
    if let Some(s) = &p.shell {
        let _ = writeln!(out, "shell = {}", string(s));
    }
    if !p.env.is_empty() {
        let _ = writeln!(out, "\n[process.env]");
        for (k, v) in &p.env {
            let _ = writeln!(out, "{} = {}", key(k), basic(v));
        }
    }
}

/// Render `profile` as TOML with `reports` as comments on top.
pub fn render_toml(profile: &Profile, reports: &[Report]) -> String {
    render(profile, reports, &[])
}

/// Render a conversion: [`render_toml`], with the state paths looked for but not bound (not in the
/// snapshot, or left out with `--no-bind`) as comments above `binds`.
pub fn render_conversion(c: &Conversion) -> String {
    let mut notes = Vec::new();
    for (list, what) in [
        (&c.state.missing, "not in the snapshot"),
        (&c.state.dropped, "left out with --no-bind"),
    ] {
        if list.is_empty() {
            continue;
        }
        notes.push(format!("State paths the units name, {what}:"));
        for m in list {
            notes.push(format!("- {} ({})", m.named.display(), m.reason));
        }
    }
    render(&c.profile, &c.reports, &notes)
}

fn render(profile: &Profile, reports: &[Report], binds_notes: &[String]) -> String {
    let mut out = String::new();
    comment(&mut out, &format!("wayback profile {:?}", profile.name));
    if !profile.description.is_empty() {
        comment(&mut out, &profile.description);
    }
    let count = |k: ReportKind| reports.iter().filter(|r| r.kind == k).count();
    if !reports.is_empty() {
        comment(&mut out, &format!(
            "\n{} directive(s) not honoured, {} honoured differently, {} note(s). Review them before use:",
            count(ReportKind::Ignored),
            count(ReportKind::Approximated),
            count(ReportKind::Note)
        ));
        for kind in [
            ReportKind::Ignored,
            ReportKind::Approximated,
            ReportKind::Note,
        ] {
            let of_kind: Vec<&Report> = reports.iter().filter(|r| r.kind == kind).collect();
            if of_kind.is_empty() {
                continue;
            }
            comment(&mut out, &format!("\n{}:", kind.heading()));
            for r in of_kind {
                comment(&mut out, &format!("- {}", report_line(r)));
            }
        }
    }
    let _ = writeln!(out, "\nname = {}", basic(&profile.name));
    if !profile.description.is_empty() {
        let _ = writeln!(out, "description = {}", basic(&profile.description));
    }
    for n in binds_notes {
        comment(&mut out, n);
    }
    if profile.binds.is_empty() {
        out.push_str(
            "# binds = [\"/var/lib/...\"]  # the snapshot's paths that hold the services' state\n",
        );
    } else {
        let binds: Vec<String> = profile
            .binds
            .iter()
            .map(|b| match b {
                Bind::Path(p) => path(p),
                Bind::Full {
                    path: p,
                    dest,
                    source,
                    reason,
                } => {
                    let mut fields = vec![format!("path = {}", path(p))];
                    if let Some(d) = dest {
                        fields.push(format!("dest = {}", path(d)));
                    }
                    if let Some(s) = source {
                        fields.push(format!("source = {}", basic(s)));
                    }
                    if let Some(r) = reason {
                        fields.push(format!("reason = {}", basic(r)));
                    }
                    format!("{{ {} }}", fields.join(", "))
                }
            })
            .collect();
        if binds.len() == 1 {
            let _ = writeln!(out, "binds = [{}]", binds[0]);
        } else {
            let _ = writeln!(out, "binds = [\n    {},\n]", binds.join(",\n    "));
        }
    }
    match profile.http_port {
        Some(p) => {
            let _ = writeln!(out, "http_port = {p}");
        }
        None => out.push_str(
            "# http_port = 80  # the port that speaks HTTP, to get a hostname on the proxy\n",
        ),
    }
    if let Some(r) = &profile.ready {
        let _ = writeln!(out, "ready = {}", ready(r));
    }
    for d in &profile.dirs {
        dir(&mut out, d);
    }
    for p in &profile.processes {
        process(&mut out, p);
    }
    out
}

impl ReportKind {
    fn heading(self) -> &'static str {
        match self {
            ReportKind::Ignored => "Not honoured",
            ReportKind::Approximated => "Honoured differently",
            ReportKind::Note => "Notes",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn strings_round_trip() {
        for s in [
            "plain",
            "q\"b\\s",
            "tab\there",
            "ctl\u{1}x",
            "multi\nline 'x'\n",
            "end'\n'",
            "a'''b\n",
        ] {
            let doc = format!("v = {}\n", string(s));
            let back: BTreeMap<String, String> = toml::from_str(&doc).unwrap();
            assert_eq!(back["v"], s, "{doc}");
        }
        assert_eq!(key("PATH"), "PATH");
        assert_eq!(key("a.b"), "\"a.b\"");
    }
}
