//! Path globs for `wayback find`: `*`, `?`, `[...]` (ranges, `!`/`^` negation) within a name, `**` as a
//! whole component for any number of directories, `\` to escape. Patterns are relative to a snapshot's
//! root (a leading `/` is ignored). `*` also matches names starting with a dot.
//!
//! Pure: matching, and a walk that only lists the directories the pattern can reach (the literal prefix
//! is never listed, only the parts after it), through a caller-supplied `list` function.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Char(char),
    One,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Comp {
    Literal(String),
    Pattern(Vec<Tok>),
    AnyDirs,
}

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    comps: Vec<Comp>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid pattern {pattern:?}: {why} (a path or glob relative to the snapshot root, e.g. var/lib/app/data/**/report*.odt)")]
pub struct GlobError {
    pub pattern: String,
    pub why: &'static str,
}

fn parse_comp(s: &str) -> Result<Comp, &'static str> {
    if s == "**" {
        return Ok(Comp::AnyDirs);
    }
    let mut toks = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        toks.push(match c {
            '\\' => Tok::Char(it.next().ok_or("trailing '\\'")?),
            '?' => Tok::One,
            '*' => {
                while it.peek() == Some(&'*') {
                    it.next();
                }
                Tok::Star
            }
            '[' => {
                let negated = matches!(it.peek(), Some('!' | '^'));
                if negated {
                    it.next();
                }
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    let c = it.next().ok_or("unclosed '['")?;
                    if c == ']' && !first {
                        break;
                    }
                    first = false;
                    let lo = if c == '\\' {
                        it.next().ok_or("unclosed '['")?
                    } else {
                        c
                    };
                    let mut look = it.clone();
                    if look.next() == Some('-') && look.peek().is_some_and(|&n| n != ']') {
                        it.next();
                        let hi = it.next().ok_or("unclosed '['")?;
                        ranges.push((lo, hi));
                    } else {
                        ranges.push((lo, lo));
                    }
                }
                Tok::Class { negated, ranges }
            }
            c => Tok::Char(c),
        });
    }
    if toks.iter().all(|t| matches!(t, Tok::Char(_))) {
        return Ok(Comp::Literal(
            toks.iter()
                .map(|t| match t {
                    Tok::Char(c) => *c,
                    _ => unreachable!(),
                })
                .collect(),
        ));
    }
    Ok(Comp::Pattern(toks))
}

impl FromStr for Glob {
    type Err = GlobError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| GlobError {
            pattern: s.into(),
            why,
        };
        let mut comps = Vec::new();
        for part in s.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if part == ".." {
                return Err(err("'..' would leave the snapshot"));
            }
            let c = parse_comp(part).map_err(err)?;
            if !(c == Comp::AnyDirs && comps.last() == Some(&Comp::AnyDirs)) {
                comps.push(c);
            }
        }
        if comps.is_empty() {
            return Err(err("empty"));
        }
        Ok(Glob {
            text: s.into(),
            comps,
        })
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn match_toks(toks: &[Tok], name: &[char]) -> bool {
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let ok = match toks.get(t) {
            Some(Tok::Char(c)) => *c == name[n],
            Some(Tok::One) => true,
            Some(Tok::Class { negated, ranges }) => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&name[n])) != *negated
            }
            Some(Tok::Star) => {
                star = Some((t, n));
                t += 1;
                continue;
            }
            None => false,
        };
        if ok {
            t += 1;
            n += 1;
        } else if let Some((st, sn)) = star {
            t = st + 1;
            n = sn + 1;
            star = Some((st, sn + 1));
        } else {
            return false;
        }
    }
    toks[t..].iter().all(|t| *t == Tok::Star)
}

fn match_comp(c: &Comp, name: &str) -> bool {
    match c {
        Comp::Literal(l) => l == name,
        Comp::Pattern(toks) => match_toks(toks, &name.chars().collect::<Vec<_>>()),
        Comp::AnyDirs => true,
    }
}

impl Glob {
    /// Whether the pattern has no wildcards (then it names exactly one path).
    pub fn is_literal(&self) -> bool {
        self.comps.iter().all(|c| matches!(c, Comp::Literal(_)))
    }

    /// The leading wildcard-free directories (and the whole path for a literal pattern).
    pub fn literal_prefix(&self) -> PathBuf {
        self.comps
            .iter()
            .map_while(|c| match c {
                Comp::Literal(l) => Some(l.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Whether a relative path matches the whole pattern.
    pub fn matches(&self, path: &Path) -> bool {
        let names: Vec<String> = path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        fn go(comps: &[Comp], names: &[String]) -> bool {
            match comps.first() {
                None => names.is_empty(),
                Some(Comp::AnyDirs) => (0..=names.len()).any(|k| go(&comps[1..], &names[k..])),
                Some(c) => {
                    names.first().is_some_and(|n| match_comp(c, n)) && go(&comps[1..], &names[1..])
                }
            }
        }
        go(&self.comps, &names)
    }

    /// Candidate paths (relative to the snapshot root) that may match, found by listing only what the
    /// pattern can reach. `list(dir)` returns `(name, is_directory)` for a relative directory (empty
    /// when it does not exist). Literal tails are returned unlisted: the caller checks they exist.
    /// Sorted, without duplicates.
    pub fn walk(&self, list: &mut dyn FnMut(&Path) -> Vec<(OsString, bool)>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        self.step(&self.literal_prefix(), self.literal_count(), list, &mut out);
        out.sort();
        out.dedup();
        out
    }

    fn literal_count(&self) -> usize {
        self.comps
            .iter()
            .take_while(|c| matches!(c, Comp::Literal(_)))
            .count()
    }

    fn step(
        &self,
        rel: &Path,
        idx: usize,
        list: &mut dyn FnMut(&Path) -> Vec<(OsString, bool)>,
        out: &mut Vec<PathBuf>,
    ) {
        let last = idx + 1 == self.comps.len();
        match self.comps.get(idx) {
            None => out.push(rel.into()),
            Some(Comp::Literal(l)) if last => out.push(rel.join(l)),
            Some(Comp::Literal(l)) => self.step(&rel.join(l), idx + 1, list, out),
            Some(c @ Comp::Pattern(_)) => {
                for (name, is_dir) in list(rel) {
                    if match_comp(c, &name.to_string_lossy()) {
                        if last {
                            out.push(rel.join(&name));
                        } else if is_dir {
                            self.step(&rel.join(&name), idx + 1, list, out);
                        }
                    }
                }
            }
            Some(Comp::AnyDirs) => {
                if !last {
                    self.step(rel, idx + 1, list, out);
                }
                for (name, is_dir) in list(rel) {
                    if last {
                        out.push(rel.join(&name));
                    }
                    if is_dir {
                        self.step(&rel.join(&name), idx, list, out);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn g(s: &str) -> Glob {
        s.parse().unwrap()
    }

    #[test]
    fn matching() {
        let m = |p: &str, path: &str| g(p).matches(Path::new(path));
        assert!(m("a/b/c.txt", "a/b/c.txt"));
        assert!(m("/a/./b/c.txt", "a/b/c.txt"));
        assert!(!m("a/b", "a/b/c"));
        assert!(m("a/*.odt", "a/report.odt"));
        assert!(m("a/*.odt", "a/.hidden.odt"));
        assert!(!m("a/*.odt", "a/x/report.odt"));
        assert!(m("a/**/r*.odt", "a/r.odt"));
        assert!(m("a/**/r*.odt", "a/x/y/report-final.odt"));
        assert!(m("**/x", "x") && m("**/x", "p/q/x") && !m("**/x", "p/xx"));
        assert!(m("a/**", "a/b/c") && !m("a/**", "b/c"));
        assert!(m("f?le[0-9].[!c]*", "file7.txt"));
        assert!(!m("f?le[0-9].[!c]*", "file7.csv"));
        assert!(m("[]x]", "]") && m("[a-]", "-") && m("[^a]", "b"));
        assert!(m("a\\*b", "a*b") && !m("a\\*b", "axb"));
        assert!(m("*a*b*c", "xxaxxbxxc") && !m("*a*b*c", "xxaxxbxx"));
        assert!(m("***", "anything"));
    }

    #[test]
    fn errors_and_prefix() {
        for bad in ["", "/", "a/../b", "a/[bc", "a\\"] {
            assert!(bad.parse::<Glob>().is_err(), "{bad}");
        }
        let p = g("var/lib/nextcloud/data/alice/files/**/report*.odt");
        assert_eq!(
            p.literal_prefix(),
            Path::new("var/lib/nextcloud/data/alice/files")
        );
        assert!(!p.is_literal());
        assert!(g("/etc/passwd").is_literal());
        assert_eq!(g("/etc/passwd").literal_prefix(), Path::new("etc/passwd"));
    }

    #[test]
    fn walk_lists_only_what_the_pattern_reaches() {
        let mut tree: BTreeMap<PathBuf, Vec<(OsString, bool)>> = BTreeMap::new();
        let mut add = |dir: &str, entries: &[(&str, bool)]| {
            tree.insert(
                dir.into(),
                entries
                    .iter()
                    .map(|(n, d)| (OsString::from(n), *d))
                    .collect(),
            );
        };
        add("", &[("var", true), ("home", true)]);
        add(
            "var/lib/app",
            &[("a", true), ("report1.odt", false), ("x", false)],
        );
        add("var/lib/app/a", &[("b", true), ("report2.odt", false)]);
        add(
            "var/lib/app/a/b",
            &[("report3.odt", false), ("report3.txt", false)],
        );
        let listed = std::cell::RefCell::new(Vec::new());
        let mut list = |d: &Path| {
            listed.borrow_mut().push(d.to_path_buf());
            tree.get(d).cloned().unwrap_or_default()
        };
        let got = g("var/lib/app/**/report*.odt").walk(&mut list);
        assert_eq!(
            got,
            [
                "var/lib/app/a/b/report3.odt",
                "var/lib/app/a/report2.odt",
                "var/lib/app/report1.odt"
            ]
            .map(PathBuf::from)
        );
        assert!(
            listed.borrow().iter().all(|d| d.starts_with("var/lib/app")),
            "{listed:?}"
        );
        listed.borrow_mut().clear();
        let got = g("var/lib/app/a/report2.odt").walk(&mut list);
        assert_eq!(got, [PathBuf::from("var/lib/app/a/report2.odt")]);
        assert!(
            listed.borrow().is_empty(),
            "a literal pattern lists nothing: {listed:?}"
        );
        let got = g("var/lib/app/*/b/*.txt").walk(&mut list);
        assert_eq!(got, [PathBuf::from("var/lib/app/a/b/report3.txt")]);
        let got = g("var/lib/app/a/**").walk(&mut list);
        assert_eq!(got.len(), 4, "{got:?}");
    }
}
