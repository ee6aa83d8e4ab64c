//! What is rewritten in free text (bodies and URL-bearing header values), and the streaming scanner.
//!
//! With `ORIG` the original host and `PUB` the public one, the patterns are (host and scheme matched
//! ASCII-case-insensitively):
//!
//! | found                                              | becomes                         |
//! |----------------------------------------------------|---------------------------------|
//! | `https://ORIG`, `http://ORIG`                      | `PUBSCHEME://PUB`               |
//! | `wss://ORIG`, `ws://ORIG`                          | `ws(s)://PUB` (wss if PUBSCHEME is https) |
//! | the same with `:\/\/` (JSON-escaped)               | `PUBSCHEME:\/\/PUB`             |
//! | the same with `%3A%2F%2F` (percent-encoded)        | `PUBSCHEME%3A%2F%2FPUB`         |
//! | `//ORIG`, `\/\/ORIG`, `%2F%2FORIG`                 | `//PUB`, `\/\/PUB`, `%2F%2FPUB` |
//! | bare `ORIG` (e.g. `"cloud.example.org"` in JSON)   | `PUB`                           |
//!
//! A match only counts at label boundaries: the byte after it must not continue a hostname (a letter, digit,
//! `-`, `_`, or a `.` followed by one), so `cloud.example.org.evil` and `cloud.example.orgx` are left alone;
//! and a bare `ORIG` must not follow a hostname byte, a `.` or an `@`, so `notcloud.example.org`,
//! `www.cloud.example.org` and the e-mail address `admin@cloud.example.org` are left alone. When `ORIG` has
//! no port, `ORIG:PORT` is rewritten only for the scheme's default port (`https://ORIG:443` → `https://PUB`):
//! another port is another service. When `ORIG` has a port, only `ORIG:THATPORT` matches.
//!
//! Streaming: the scanner never decides a match it cannot see whole. It keeps the last `keep` bytes of each
//! chunk (longest pattern + [`LOOKAHEAD`]) for the next one, so memory per response is bounded and a match
//! straddling any chunk boundary is found. The byte before the kept tail is remembered for the left boundary.

use aho_corasick::{AhoCorasick, Input, MatchKind};

use crate::Scheme;

/// Bytes after a match needed to decide its right boundary: `:` + up to 6 port digits + one more.
const LOOKAHEAD: usize = 8;

struct Pattern {
    replacement: Vec<u8>,
    /// A bare host: also check the left boundary.
    bare: bool,
    /// The port that may follow and is swallowed (the matched scheme's default), when ORIG has no port.
    default_port: u16,
}

/// The compiled patterns of one masquerade.
pub(crate) struct Matcher {
    ac: AhoCorasick,
    patterns: Vec<Pattern>,
    original_has_port: bool,
    /// Bytes held back between chunks.
    keep: usize,
}

impl Matcher {
    pub(crate) fn new(
        original: &str,
        original_scheme: Scheme,
        public: &str,
        public_scheme: Scheme,
    ) -> Self {
        let mut needles: Vec<String> = Vec::new();
        let mut patterns: Vec<Pattern> = Vec::new();
        let mut add = |needle: String, replacement: String, bare: bool, default_port: u16| {
            needles.push(needle);
            patterns.push(Pattern {
                replacement: replacement.into_bytes(),
                bare,
                default_port,
            });
        };
        let schemes = [
            ("https", 443, public_scheme.as_str()),
            ("http", 80, public_scheme.as_str()),
            ("wss", 443, public_scheme.ws_str()),
            ("ws", 80, public_scheme.ws_str()),
        ];
        for (scheme, port, to) in schemes {
            for sep in ["://", ":\\/\\/", "%3A%2F%2F"] {
                add(
                    format!("{scheme}{sep}{original}"),
                    format!("{to}{sep}{public}"),
                    false,
                    port,
                );
            }
        }
        let port = original_scheme.default_port();
        for rel in ["//", "\\/\\/", "%2F%2F"] {
            add(
                format!("{rel}{original}"),
                format!("{rel}{public}"),
                false,
                port,
            );
        }
        add(original.to_owned(), public.to_owned(), true, port);

        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&needles)
            // Sixteen short literals are far below every size limit of the builder.
            .expect("masquerade patterns compile");
        let longest = needles.iter().map(String::len).max().unwrap_or(0);
        Matcher {
            ac,
            patterns,
            original_has_port: crate::split_port(original).1.is_some(),
            keep: longest + LOOKAHEAD,
        }
    }

    /// Rewrite a complete text. `None` when nothing was rewritten.
    pub(crate) fn rewrite_all(&self, text: &[u8]) -> Option<Vec<u8>> {
        self.ac.find(text)?;
        let mut out = Vec::with_capacity(text.len() + 32);
        let mut prev = None;
        let (_, changed) = self.scan(text, true, &mut prev, &mut out);
        changed.then_some(out)
    }

    /// Scan `buf`, appending the rewritten output to `out`. Unless `eof`, bytes a match could still need are
    /// held back: returns how many bytes of `buf` were consumed, and whether anything was rewritten. `prev` is
    /// the input byte just before `buf` and is updated to the last consumed one.
    fn scan(
        &self,
        buf: &[u8],
        eof: bool,
        prev: &mut Option<u8>,
        out: &mut Vec<u8>,
    ) -> (usize, bool) {
        let len = buf.len();
        // A match starting before `safe` fits in `buf` with LOOKAHEAD bytes after it; one starting later
        // might be longer or be decided otherwise once more bytes arrive.
        let safe = if eof {
            len
        } else {
            len.saturating_sub(self.keep)
        };
        let (mut pos, mut emitted, mut changed) = (0, 0, false);
        while pos < safe {
            let Some(m) = self.ac.find(Input::new(buf).span(pos..len)) else {
                break;
            };
            if m.start() >= safe {
                break;
            }
            let before = match m.start() {
                0 => *prev,
                s => Some(buf[s - 1]),
            };
            let pattern = &self.patterns[m.pattern().as_usize()];
            match self.accept(pattern, &buf[m.end()..], m.end(), before) {
                Some(end) => {
                    out.extend_from_slice(&buf[emitted..m.start()]);
                    out.extend_from_slice(&pattern.replacement);
                    (emitted, pos, changed) = (end, end, true);
                }
                None => pos = m.start() + 1,
            }
        }
        let upto = emitted.max(safe);
        out.extend_from_slice(&buf[emitted..upto]);
        if upto > 0 {
            *prev = Some(buf[upto - 1]);
        }
        (upto, changed)
    }

    /// Boundary checks for a match ending at `end` followed by `rest`; the end of the accepted match (past a
    /// swallowed default port), or `None` if this occurrence is part of something else.
    fn accept(
        &self,
        pattern: &Pattern,
        rest: &[u8],
        end: usize,
        before: Option<u8>,
    ) -> Option<usize> {
        if pattern.bare && before.is_some_and(|b| is_label_byte(b) || b == b'.' || b == b'@') {
            return None;
        }
        match rest.first().copied() {
            None => Some(end),
            Some(b) if is_label_byte(b) => None,
            Some(b'.') if rest.get(1).copied().is_some_and(is_label_byte) => None,
            Some(b':') if !self.original_has_port => {
                let digits = rest[1..]
                    .iter()
                    .take(6)
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                match digits {
                    0 => Some(end),
                    1..=5 => {
                        let port: u32 = rest[1..=digits]
                            .iter()
                            .fold(0, |n, d| n * 10 + u32::from(d - b'0'));
                        (port == u32::from(pattern.default_port)).then_some(end + 1 + digits)
                    }
                    _ => None,
                }
            }
            Some(_) => Some(end),
        }
    }
}

/// A byte that continues a DNS label.
fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The streaming state of one body: the held-back tail and the byte before it.
pub(crate) struct Stream {
    matcher: std::sync::Arc<Matcher>,
    tail: Vec<u8>,
    prev: Option<u8>,
}

impl Stream {
    pub(crate) fn new(matcher: std::sync::Arc<Matcher>) -> Self {
        Stream {
            matcher,
            tail: Vec::new(),
            prev: None,
        }
    }

    /// Rewrite `chunk`, appending what can be emitted now to `out`.
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.tail.is_empty() {
            let (used, _) = self.matcher.scan(chunk, false, &mut self.prev, out);
            self.tail.extend_from_slice(&chunk[used..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let (used, _) = self.matcher.scan(&self.tail, false, &mut self.prev, out);
            self.tail.drain(..used);
            if self.tail.capacity() > 4 * self.matcher.keep + 64 * 1024 {
                // One huge chunk must not pin its buffer for the rest of the body.
                self.tail.shrink_to(2 * self.matcher.keep);
            }
        }
    }

    /// End of body: append the rest to `out`.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        let tail = std::mem::take(&mut self.tail);
        self.matcher.scan(&tail, true, &mut self.prev, out);
    }
}
