//! Evaluating what a check observed (an output, a response, a file's facts) against what the job expects;
//! a failure is a reason that quotes what was seen (cut to [`QUOTE_MAX`] characters).

use std::path::PathBuf;

use super::{CheckKind, Expect};

/// How much of an output or body a failure reason quotes.
const QUOTE_MAX: usize = 300;

impl Expect {
    /// Whether `out` (an output or a body) is as expected; else why not.
    pub fn eval(&self, out: &str) -> Result<(), String> {
        let text = out.trim();
        if let Some(e) = &self.equals {
            if text != e.trim() {
                return Err(format!("got {}, expected {:?}", quote(text), e.trim()));
            }
        }
        if let Some(c) = &self.contains {
            if !out.contains(c.as_str()) {
                return Err(format!("{} does not contain {c:?}", quote(text)));
            }
        }
        if let Some(r) = &self.regex {
            let re = regex::Regex::new(r).map_err(|e| format!("regex: {e}"))?;
            if !re.is_match(out) {
                return Err(format!("{} does not match /{r}/", quote(text)));
            }
        }
        if let Some(n) = self.min_rows {
            let rows = text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
            if rows < n {
                return Err(format!("{rows} rows, expected at least {n}"));
            }
        }
        if self.min.is_some() || self.max.is_some() {
            let first = text
                .lines()
                .next()
                .and_then(|l| l.split(['|', '\t']).next())
                .unwrap_or("")
                .trim();
            let v: f64 = first
                .parse()
                .map_err(|_| format!("{} is not a number", quote(text)))?;
            if let Some(min) = self.min.filter(|m| v < *m) {
                return Err(format!("{v} is less than the minimum {min}"));
            }
            if let Some(max) = self.max.filter(|m| v > *m) {
                return Err(format!("{v} is more than the maximum {max}"));
            }
        }
        Ok(())
    }
}

/// An output for a reason: quoted, cut to [`QUOTE_MAX`] characters.
pub fn quote(text: &str) -> String {
    if text.is_empty() {
        return "empty output".into();
    }
    let cut: String = text.chars().take(QUOTE_MAX).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// What was found at a `file` check's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub is_dir: bool,
    pub size: u64,
    pub mtime: i64,
    /// Entries of a directory.
    pub entries: usize,
}

/// Evaluate a `file` check; `snapshot_date` is what `max_age` counts back from.
pub fn eval_file(kind: &CheckKind, f: &FileFacts, snapshot_date: i64) -> Result<(), String> {
    let CheckKind::File {
        not_empty,
        min_size,
        max_size,
        max_age,
        ..
    } = kind
    else {
        return Err("not a file check".into());
    };
    if *not_empty && f.is_dir && f.entries == 0 {
        return Err("the directory is empty".into());
    }
    if *not_empty && !f.is_dir && f.size == 0 {
        return Err("the file is empty".into());
    }
    if let Some(min) = min_size.filter(|m| f.size < *m) {
        return Err(format!("{} bytes, expected at least {min}", f.size));
    }
    if let Some(max) = max_size.filter(|m| f.size > *m) {
        return Err(format!("{} bytes, expected at most {max}", f.size));
    }
    if let Some(age) = max_age {
        let oldest = snapshot_date - age.as_secs() as i64;
        if f.mtime < oldest {
            return Err(format!(
                "last modified {}, more than {age} before the snapshot ({})",
                crate::civil::format_utc(f.mtime),
                crate::civil::format_utc(snapshot_date)
            ));
        }
    }
    Ok(())
}

/// `{date}`, `{year}`, `{month}`, `{day}` in a `file` path → the snapshot's date (UTC).
pub fn expand_date(path: &std::path::Path, date: i64) -> PathBuf {
    let c = jiff::Timestamp::from_second(date)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let (y, m, d) = (c.year(), c.month(), c.day());
    let text = path
        .to_string_lossy()
        .replace("{date}", &format!("{y:04}-{m:02}-{d:02}"))
        .replace("{year}", &format!("{y:04}"))
        .replace("{month}", &format!("{m:02}"))
        .replace("{day}", &format!("{d:02}"));
    PathBuf::from(text)
}

/// Evaluate an `http` check's response.
pub fn eval_http(kind: &CheckKind, status: u16, body: &str) -> Result<(), String> {
    let CheckKind::Http {
        status: want,
        expect,
        ..
    } = kind
    else {
        return Err("not an http check".into());
    };
    if status != *want {
        return Err(format!(
            "status {status}, expected {want}; body: {}",
            quote(body.trim())
        ));
    }
    expect.eval(body).map_err(|e| format!("body: {e}"))
}

/// Evaluate a `sql` or `command` check's exit status and output (`stderr` goes into the reason).
pub fn eval_exec(kind: &CheckKind, code: i32, stdout: &str, stderr: &str) -> Result<(), String> {
    let (want, expect) = match kind {
        CheckKind::Sql { expect, .. } => (0, expect),
        CheckKind::Command { exit, expect, .. } => (*exit, expect),
        _ => return Err("not a sql or command check".into()),
    };
    if code != want {
        let said = match stderr.trim() {
            "" => quote(stdout.trim()),
            e => quote(e),
        };
        return Err(format!("exit status {code} (expected {want}): {said}"));
    }
    expect.eval(stdout)
}
