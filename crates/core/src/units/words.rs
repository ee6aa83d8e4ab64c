//! The value syntax inside unit files: splitting a value into words the way systemd does (quotes anywhere in
//! a word, C escapes), specifiers (`%n`, `%i`, …) and `$VAR`/`${VAR}` expansion in command lines.
//!
//! Only what can be resolved without the running system is resolved: unit-name specifiers, the system
//! manager's fixed directories, and `%u`/`%g` from `User=`/`Group=`. The rest stays literal and is reported
//! by the caller.

use std::collections::BTreeMap;

/// One word of a value after unquoting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub text: String,
    /// The word was written as a lone unquoted `;` (the command separator of `Exec*=` lines).
    pub separator: bool,
}

/// Split `s` into words: whitespace separates; `"…"` and `'…'` quote (also in the middle of a word);
/// backslash escapes are C-style (`\n`, `\t`, `\xHH`, `\NNN`, `\uXXXX`, `\s` for a space, `\;`).
pub(crate) fn split_words(s: &str) -> Result<Vec<Word>, String> {
    let mut words = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut text = String::new();
        let mut plain = true;
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => {
                    plain = false;
                    match chars.next() {
                        Some(e) => unescape_one(e, &mut chars, &mut text)?,
                        None => text.push('\\'),
                    }
                }
                (q @ ('"' | '\''), None) => {
                    plain = false;
                    quote = Some(q);
                }
                (q, Some(open)) if q == open => quote = None,
                (c, None) if c.is_whitespace() => break,
                (c, _) => text.push(c),
            }
        }
        if let Some(q) = quote {
            return Err(format!("unbalanced quote {q} in {s:?}"));
        }
        words.push(Word {
            separator: plain && text == ";",
            text,
        });
    }
}

fn unescape_one(
    e: char,
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    out: &mut String,
) -> Result<(), String> {
    let mut hex = |n: usize, radix: u32| -> Result<char, String> {
        let digits: String = (0..n).filter_map(|_| chars.next()).collect();
        u32::from_str_radix(&digits, radix)
            .ok()
            .filter(|_| digits.len() == n)
            .and_then(char::from_u32)
            .ok_or_else(|| format!("bad escape \\{e}{digits}"))
    };
    let c = match e {
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        's' => ' ',
        'x' => hex(2, 16)?,
        'u' => hex(4, 16)?,
        'U' => hex(8, 16)?,
        '0'..='7' => {
            let rest: String = (0..2).filter_map(|_| chars.next()).collect();
            let digits = format!("{e}{rest}");
            u32::from_str_radix(&digits, 8)
                .ok()
                .filter(|_| digits.len() == 3)
                .and_then(char::from_u32)
                .ok_or_else(|| format!("bad escape \\{digits}"))?
        }
        // \\ \" \' \; and anything else: the character itself.
        other => other,
    };
    out.push(c);
    Ok(())
}

/// What specifiers can resolve to for one unit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    /// Full unit name, e.g. `postgresql@15-main.service`.
    pub id: String,
    /// Prefix: the part before `@`, or the name without its suffix.
    pub prefix: String,
    /// Instance (escaped), for template instances.
    pub instance: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
}

/// Expand specifiers in `s`. Unresolvable ones stay as written and are added to `unknown`.
pub(crate) fn specifiers(s: &str, n: &Names, unknown: &mut Vec<char>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            break;
        };
        let instance = n.instance.as_deref().unwrap_or("");
        let last_dash = |p: &str| p.rsplit('-').next().unwrap_or(p).to_string();
        let value: Option<String> = match spec {
            '%' => Some("%".into()),
            'n' => Some(n.id.clone()),
            'N' => Some(n.id.rsplit_once('.').map_or(&*n.id, |(a, _)| a).into()),
            'p' => Some(n.prefix.clone()),
            'P' => Some(unescape_name(&n.prefix)),
            'i' => Some(instance.into()),
            'I' => Some(unescape_name(instance)),
            'j' => Some(last_dash(&n.prefix)),
            'J' => Some(unescape_name(&last_dash(&n.prefix))),
            'f' => Some(format!(
                "/{}",
                unescape_name(if instance.is_empty() {
                    &n.prefix
                } else {
                    instance
                })
                .trim_start_matches('/')
            )),
            't' => Some("/run".into()),
            'S' => Some("/var/lib".into()),
            'C' => Some("/var/cache".into()),
            'L' => Some("/var/log".into()),
            'E' => Some("/etc".into()),
            'T' => Some("/tmp".into()),
            'V' => Some("/var/tmp".into()),
            'u' => Some(n.user.clone().unwrap_or_else(|| "root".into())),
            'g' => Some(n.group.clone().unwrap_or_else(|| "root".into())),
            _ => None,
        };
        match value {
            Some(v) => out.push_str(&v),
            None => {
                if !unknown.contains(&spec) {
                    unknown.push(spec);
                }
                out.push('%');
                out.push(spec);
            }
        }
    }
    out
}

/// Undo systemd's unit-name escaping: `-` is `/`, `\xHH` is a byte.
pub(crate) fn unescape_name(s: &str) -> String {
    let mut bytes = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && b.len() >= i + 4 {
            if let Some(v) = std::str::from_utf8(&b[i + 2..i + 4])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                bytes.push(v);
                i += 4;
                continue;
            }
        }
        bytes.push(if b[i] == b'-' { b'/' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `s` is a valid environment variable name (as systemd accepts for `Environment=`).
pub(crate) fn valid_env_name(s: &str) -> bool {
    is_env_name(s)
}

/// Expand variables in a command line as systemd does: a word that is exactly `$NAME` becomes the value
/// split at whitespace (zero words if unset or empty); `${NAME}` anywhere becomes the value as one piece;
/// `$$` is a literal `$`. Names used but not in `env` are added to `unset`.
pub(crate) fn expand_env(
    argv: &[String],
    env: &BTreeMap<String, String>,
    unset: &mut Vec<String>,
) -> Vec<String> {
    let mut note = |name: &str| {
        if !env.contains_key(name) && !unset.iter().any(|u| u == name) {
            unset.push(name.to_string());
        }
    };
    let mut out = Vec::new();
    for word in argv {
        if let Some(name) = word.strip_prefix('$').filter(|n| is_env_name(n)) {
            note(name);
            if let Some(v) = env.get(name) {
                out.extend(v.split_whitespace().map(str::to_string));
            }
            continue;
        }
        let mut s = String::new();
        let mut rest = word.as_str();
        while let Some(i) = rest.find('$') {
            s.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(r) = after.strip_prefix('$') {
                s.push('$');
                rest = r;
            } else if let Some((name, r)) = after
                .strip_prefix('{')
                .and_then(|a| a.split_once('}'))
                .filter(|(n, _)| is_env_name(n))
            {
                note(name);
                s.push_str(env.get(name).map_or("", String::as_str));
                rest = r;
            } else {
                s.push('$');
                rest = after;
            }
        }
        s.push_str(rest);
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        split_words(s)
            .unwrap()
            .into_iter()
            .map(|w| w.text)
            .collect()
    }

    #[test]
    fn quoting() {
        assert_eq!(texts(r#""A=b c" D=e"#), ["A=b c", "D=e"]);
        assert_eq!(texts(r#"A="b c"'d'"#), ["A=b cd"]);
        assert_eq!(
            texts(r"-g 'daemon on; master_process on;'"),
            ["-g", "daemon on; master_process on;"]
        );
        assert_eq!(
            texts(r"a\sb \x41 \101 \; c\\d"),
            ["a b", "A", "A", ";", r"c\d"]
        );
        assert!(split_words("a 'b").is_err());
        let w = split_words(r"a ; b \;").unwrap();
        assert!(w[1].separator && !w[3].separator);
    }

    #[test]
    fn specifier_expansion() {
        let n = Names {
            id: "postgresql@15-main.service".into(),
            prefix: "postgresql".into(),
            instance: Some("15-main".into()),
            user: Some("postgres".into()),
            group: None,
        };
        let mut unknown = vec![];
        assert_eq!(
            specifiers("%n %N %p %i %I %f %t/%u %g 100%% %H", &n, &mut unknown),
            "postgresql@15-main.service postgresql@15-main postgresql 15-main 15/main /15/main /run/postgres root 100% %H"
        );
        assert_eq!(unknown, ['H']);
        assert_eq!(unescape_name(r"a\x2db-c"), "a-b/c");
    }

    #[test]
    fn env_expansion() {
        let env: BTreeMap<String, String> = [("A", "x  y"), ("E", "")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let argv: Vec<String> = ["cmd", "$A", "${A}", "-p${A}.", "$E", "$NOPE", "$$A", "a$b"]
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        let mut unset = vec![];
        assert_eq!(
            expand_env(&argv, &env, &mut unset),
            ["cmd", "x", "y", "x  y", "-px  y.", "$A", "a$b"]
        );
        assert_eq!(unset, ["NOPE"]);
    }
}
