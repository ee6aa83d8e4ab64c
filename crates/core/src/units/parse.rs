//! Unit file syntax: `[Section]` headers, `Key=value` lines, `#`/`;` comments, lines continued with a
//! trailing `\` (the backslash becomes a space; comment lines inside a continuation are skipped), and the
//! value syntaxes wayback converts: `Exec*=` command lines with their prefixes, `Environment=` assignments
//! and `EnvironmentFile=` contents. Pure: works on text already read.

use std::path::{Path, PathBuf};

use super::words::{split_words, valid_env_name};

/// Where a line came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loc {
    pub file: PathBuf,
    pub line: usize,
}

/// One `Key=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assignment {
    pub section: String,
    pub key: String,
    pub value: String,
    pub loc: Loc,
}

/// A line systemd would ignore with a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxIssue {
    pub loc: Loc,
    pub message: String,
}

/// Parse one unit file or drop-in.
pub(crate) fn parse_unit(text: &str, file: &Path) -> (Vec<Assignment>, Vec<SyntaxIssue>) {
    let mut out = Vec::new();
    let mut issues = Vec::new();
    let mut section: Option<String> = None;
    let mut cont: Option<(usize, String)> = None;
    let loc = |line| Loc {
        file: file.to_path_buf(),
        line,
    };
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let (start, logical) = match cont.take() {
            Some((start, mut buf)) => {
                let t = raw.trim_start();
                if t.starts_with('#') || t.starts_with(';') {
                    cont = Some((start, buf));
                    continue;
                }
                buf.push_str(raw);
                (start, buf)
            }
            None => {
                let t = raw.trim();
                if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
                    continue;
                }
                (line_no, raw.to_string())
            }
        };
        let trimmed = logical.trim_end();
        if let Some(body) = trimmed.strip_suffix('\\') {
            cont = Some((start, format!("{body} ")));
            continue;
        }
        let t = trimmed.trim_start();
        if t.starts_with('[') {
            match t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                Some(name) => section = Some(name.to_string()),
                None => issues.push(SyntaxIssue {
                    loc: loc(start),
                    message: format!("malformed section header {t:?}; the line is ignored"),
                }),
            }
            continue;
        }
        let Some((key, value)) = t.split_once('=') else {
            issues.push(SyntaxIssue {
                loc: loc(start),
                message: format!("line {t:?} is not Key=value; ignored (as systemd does)"),
            });
            continue;
        };
        let Some(section) = &section else {
            issues.push(SyntaxIssue {
                loc: loc(start),
                message: format!("assignment {t:?} before any [Section] header; ignored"),
            });
            continue;
        };
        out.push(Assignment {
            section: section.clone(),
            key: key.trim().to_string(),
            value: value.trim().to_string(),
            loc: loc(start),
        });
    }
    if let Some((start, _)) = cont {
        issues.push(SyntaxIssue {
            loc: loc(start),
            message: "file ends inside a continued line (trailing \\); the line is ignored".into(),
        });
    }
    (out, issues)
}

/// How an `Exec*=` command runs relative to `User=` (the `+`, `!`, `!!` prefixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Privilege {
    /// No prefix: as `User=`/`Group=`.
    AsUser,
    /// `+`: with full privileges (root), ignoring `User=` and the sandbox.
    Full,
    /// `!`: the user/group change is not applied (runs as root here).
    NoUserChange,
    /// `!!`: only differs on systems without ambient capabilities; runs as `User=` here.
    AmbientOnly,
}

/// One command of an `Exec*=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecCommand {
    /// Program first; `$VAR`s not yet expanded.
    pub argv: Vec<String>,
    /// `-`: a failing exit status is ignored.
    pub ignore_failure: bool,
    /// `@`: the second word was the argv[0] to show; wayback cannot set it.
    pub argv0: Option<String>,
    pub privilege: Privilege,
    /// `:`: no `$VAR` expansion.
    pub no_env_expand: bool,
    /// `|`: run through the user's login shell.
    pub via_shell: bool,
}

/// Parse an `Exec*=` value into its commands (a lone `;` separates several on one line). Specifiers and
/// `$VAR`s are expanded later, per word, by the caller.
pub(crate) fn parse_exec(value: &str) -> Result<Vec<ExecCommand>, String> {
    let words = split_words(value)?;
    let mut cmds = Vec::new();
    for group in words.split(|w| w.separator) {
        let mut it = group.iter().map(|w| w.text.clone());
        let Some(first) = it.next() else { continue };
        let mut cmd = ExecCommand {
            argv: Vec::new(),
            ignore_failure: false,
            argv0: None,
            privilege: Privilege::AsUser,
            no_env_expand: false,
            via_shell: false,
        };
        let mut rest = first.as_str();
        let mut at = false;
        loop {
            if let Some(r) = rest.strip_prefix("!!") {
                cmd.privilege = Privilege::AmbientOnly;
                rest = r;
            } else if let Some(r) = rest.strip_prefix('!') {
                cmd.privilege = Privilege::NoUserChange;
                rest = r;
            } else if let Some(r) = rest.strip_prefix('+') {
                cmd.privilege = Privilege::Full;
                rest = r;
            } else if let Some(r) = rest.strip_prefix('-') {
                cmd.ignore_failure = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix('@') {
                at = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix(':') {
                cmd.no_env_expand = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix('|') {
                cmd.via_shell = true;
                rest = r;
            } else {
                break;
            }
        }
        if rest.is_empty() {
            return Err(format!("command {first:?} has prefixes but no program"));
        }
        cmd.argv.push(rest.to_string());
        if at {
            cmd.argv0 = Some(
                it.next()
                    .ok_or_else(|| format!("'@' prefix on {rest:?} needs an argv[0] word"))?,
            );
        }
        cmd.argv.extend(it);
        cmds.push(cmd);
    }
    Ok(cmds)
}

/// Parse an `Environment=` value: `"A=b c" D=e`. Words that are not `NAME=value` are returned as errors.
pub(crate) fn parse_environment(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for w in split_words(value)? {
        match w.text.split_once('=') {
            Some((k, v)) if valid_env_name(k) => out.push((k.to_string(), v.to_string())),
            _ => return Err(format!("{:?} is not a NAME=value assignment", w.text)),
        }
    }
    Ok(out)
}

/// Parse an environment file as systemd does: `NAME=value` lines, `#`/`;` comments, an optional
/// `export `, values in single quotes (literal) or double quotes (backslash escapes `\"` `\\` `\$` `` \` ``),
/// unquoted values trimmed, and `\` at the end of a line continuing it. Returns the assignments and the
/// numbers of lines that were not assignments.
pub(crate) fn parse_env_file(text: &str) -> (Vec<(String, String)>, Vec<usize>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let start = i + 1;
        let line = lines[i].trim_start();
        i += 1;
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, rest)) = line.split_once('=') else {
            bad.push(start);
            continue;
        };
        let key = key.trim();
        if !valid_env_name(key) {
            bad.push(start);
            continue;
        }
        // Collect the value, pulling further lines in while a quote is open or a line ends in '\'.
        let mut value = String::new();
        let mut src: String = rest.trim_start().to_string();
        let mut quote: Option<char> = None;
        let mut unquoted_end = 0;
        loop {
            let mut chars = src.chars().peekable();
            let mut continued = false;
            while let Some(c) = chars.next() {
                match (c, quote) {
                    ('\'' | '"', None) => quote = Some(c),
                    (c, Some(q)) if c == q => {
                        quote = None;
                        unquoted_end = value.len();
                    }
                    ('\\', Some('\'')) => value.push('\\'),
                    ('\\', Some('"')) => match chars.next() {
                        Some(e @ ('"' | '\\' | '`' | '$')) => value.push(e),
                        Some(e) => {
                            value.push('\\');
                            value.push(e);
                        }
                        None => continued = true,
                    },
                    ('\\', None) => match chars.next() {
                        Some(e) => value.push(e),
                        None => continued = true,
                    },
                    (c, None) => {
                        value.push(c);
                        if !c.is_whitespace() {
                            unquoted_end = value.len();
                        }
                    }
                    (c, Some(_)) => value.push(c),
                }
            }
            if (continued || quote.is_some()) && i < lines.len() {
                if quote.is_some() && !continued {
                    value.push('\n');
                }
                src = lines[i].to_string();
                i += 1;
                continue;
            }
            break;
        }
        if quote.is_none() {
            value.truncate(unquoted_end);
        }
        out.push((key.to_string(), value));
    }
    (out, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_syntax() {
        let text = "# c\n[Unit]\nDescription = A \\\n  # skipped\n  b\n; c\n[Service]\nExecStart=x\nbogus\n[bad\n";
        let (a, issues) = parse_unit(text, Path::new("/u"));
        assert_eq!(a.len(), 2);
        assert_eq!(
            (a[0].key.as_str(), a[0].value.as_str()),
            ("Description", "A    b")
        );
        assert_eq!(a[0].loc.line, 3);
        assert_eq!((a[1].section.as_str(), a[1].loc.line), ("Service", 8));
        assert_eq!(issues.len(), 2);
        assert_eq!(issues[0].loc.line, 9);
    }

    #[test]
    fn exec_prefixes() {
        let c = parse_exec("-@/bin/sleep sleeper 10 ; +/bin/true").unwrap();
        assert_eq!(c.len(), 2);
        assert!(c[0].ignore_failure);
        assert_eq!(c[0].argv0.as_deref(), Some("sleeper"));
        assert_eq!(c[0].argv, ["/bin/sleep", "10"]);
        assert_eq!(c[1].privilege, Privilege::Full);
        assert_eq!(
            parse_exec("!!x").unwrap()[0].privilege,
            Privilege::AmbientOnly
        );
        assert_eq!(
            parse_exec("!:x").unwrap()[0].privilege,
            Privilege::NoUserChange
        );
        assert!(parse_exec(":x").unwrap()[0].no_env_expand);
        assert!(parse_exec("-").is_err());
    }

    #[test]
    fn environment_values() {
        assert_eq!(
            parse_environment(r#""A=b c" D=e F="""#).unwrap(),
            [
                ("A".to_string(), "b c".to_string()),
                ("D".into(), "e".into()),
                ("F".into(), String::new())
            ]
        );
        assert!(parse_environment("1A=x").is_err());
    }

    #[test]
    fn env_files() {
        let text = "# comment\nA=1\nexport B = two words  \nC=\"q \\\"x\\\" $y\"\nD='lit \\n'\nE=multi\\\nline\nF=\"open\nclose\"\nnot an assignment\n";
        let (vars, bad) = parse_env_file(text);
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("1"));
        assert_eq!(get("B"), Some("two words"));
        assert_eq!(get("C"), Some("q \"x\" $y"));
        assert_eq!(get("D"), Some("lit \\n"));
        assert_eq!(get("E"), Some("multiline"));
        assert_eq!(get("F"), Some("open\nclose"));
        assert_eq!(bad, [10]);
    }
}
