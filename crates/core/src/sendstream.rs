//! The text of `btrfs send --no-data -p A B | btrfs receive --dump`, turned into the set of paths that
//! may differ between A and B, for `wayback diff`.
//!
//! The stream is a list of operations that turn A into B, with paths in the namespace of the moment
//! (new inodes are made under orphan names like `o259-7-0` and renamed into place; whole directories are
//! renamed). This module replays the renames to map every touched path back to its name in A and forward
//! to its name in B. The caller then compares those paths in A and B (lstat), so the stream only has to
//! say *where* to look: the verdict comes from the trees themselves.
//!
//! Since issue 16 this is the second way: two snapshots of one subvolume are compared from btrfs metadata
//! (`wayback::sys::treediff`); the send stream serves other pairs. It is read as `btrfs receive --dump`
//! text rather than with the btrfs-stream crate (0.13): that crate decodes every path as a UTF-8
//! `String` and rejects a stream holding any other file name (`StreamError::InvalidAttribute`), and
//! Linux names are bytes; the dump escapes them and this parser gets them back exactly.
//!
//! Pure: parses bytes, no processes. Paths are printed escaped by btrfs-progs (`print_path_escaped`:
//! `\ ` for space, `\\`, `\n` and friends, `\ooo` octal for other unprintable bytes).

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What one dump line does, as far as a diff cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// mkfile, mkdir, mknod, mkfifo, mksock, symlink.
    Create,
    /// unlink, rmdir.
    Remove,
    Rename {
        to: PathBuf,
    },
    /// A new name for an existing inode (`target` is its current name).
    Link {
        target: PathBuf,
    },
    /// write, update_extent, clone, truncate, fallocate, encoded_write.
    Content,
    /// chmod, chown, fileattr.
    Meta,
    /// set_xattr, remove_xattr; `acl` when the name is a POSIX ACL.
    Xattr {
        acl: bool,
    },
    /// utimes: by itself it changes nothing a diff reports (atime/ctime noise); mtime is compared later.
    Times,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub kind: OpKind,
    /// Relative to the subvolume root ("" for the root itself).
    pub path: PathBuf,
}

/// A parsed dump.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dump {
    /// The subvolume path on the first line (e.g. `./B`).
    pub subvol: PathBuf,
    pub ops: Vec<Op>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DumpError {
    #[error("btrfs receive --dump output does not start with a subvol/snapshot line (got {0:?})")]
    NoHeader(String),
    #[error("btrfs receive --dump line {line}: {why}: {text:?}")]
    Line {
        line: usize,
        why: &'static str,
        text: String,
    },
}

/// Read one escaped path from the start of `s`; returns the raw bytes and the rest (after the first
/// unescaped space).
fn take_path(s: &[u8]) -> (Vec<u8>, &[u8]) {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b' ' => return (out, &s[i..]),
            b'\\' if i + 1 < s.len() => {
                let c = s[i + 1];
                let simple = match c {
                    b'a' => Some(7),
                    b'b' => Some(8),
                    b'e' => Some(27),
                    b'f' => Some(12),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    b'v' => Some(11),
                    b' ' => Some(b' '),
                    b'\\' => Some(b'\\'),
                    _ => None,
                };
                if let Some(b) = simple {
                    out.push(b);
                    i += 2;
                } else if i + 3 < s.len()
                    && s[i + 1..i + 4].iter().all(|d| (b'0'..=b'7').contains(d))
                {
                    let v = s[i + 1..i + 4]
                        .iter()
                        .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                    out.push(v as u8);
                    i += 4;
                } else {
                    out.push(b'\\');
                    i += 1;
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    (out, &[])
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| **b == b' ').count();
    &s[n..]
}

fn to_path(b: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b))
}

/// `./B/x/y` → `x/y` (relative to the subvolume). Paths outside it are kept as they are.
fn relative(full: &Path, subvol: &Path) -> PathBuf {
    full.strip_prefix(subvol)
        .map_or_else(|_| full.into(), Path::to_path_buf)
}

/// Parse dump text (bytes: names need not be UTF-8).
pub fn parse_dump(text: &[u8]) -> Result<Dump, DumpError> {
    let mut dump = Dump::default();
    let mut header = false;
    for (n, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let bad = |why| DumpError::Line {
            line: n + 1,
            why,
            text: String::from_utf8_lossy(line).into_owned(),
        };
        let cmd_len = line.iter().take_while(|b| **b != b' ').count();
        let cmd = &line[..cmd_len];
        let (raw, rest) = take_path(trim_start(&line[cmd_len..]));
        let rest = trim_start(rest);
        if !header {
            if cmd != b"snapshot" && cmd != b"subvol" {
                return Err(DumpError::NoHeader(String::from_utf8_lossy(line).into()));
            }
            dump.subvol = to_path(&raw);
            header = true;
            continue;
        }
        let path = relative(&to_path(&raw), &dump.subvol);
        let dest = || {
            rest.strip_prefix(b"dest=")
                .map(|d| to_path(&take_path(d).0))
                .ok_or_else(|| bad("missing dest="))
        };
        let kind = match cmd {
            b"mkfile" | b"mkdir" | b"mknod" | b"mkfifo" | b"mksock" | b"symlink" => OpKind::Create,
            b"unlink" | b"rmdir" => OpKind::Remove,
            b"rename" => OpKind::Rename {
                to: relative(&dest()?, &dump.subvol),
            },
            b"link" => OpKind::Link { target: dest()? },
            b"write" | b"update_extent" | b"clone" | b"truncate" | b"fallocate"
            | b"encoded_write" => OpKind::Content,
            b"chmod" | b"chown" | b"fileattr" => OpKind::Meta,
            b"set_xattr" | b"remove_xattr" => OpKind::Xattr {
                acl: rest.starts_with(b"name=system.posix_acl_"),
            },
            b"utimes" => OpKind::Times,
            // A second subvolume in one stream, or verity: nothing a diff reports.
            b"snapshot" | b"subvol" | b"enable_verity" => continue,
            _ => return Err(bad("unknown command")),
        };
        dump.ops.push(Op { kind, path });
    }
    if !header {
        return Err(DumpError::NoHeader(String::new()));
    }
    Ok(dump)
}

/// Paths to compare between A and B, and what the stream says about them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    /// Names to look up in both trees (names in A and names in B).
    pub paths: BTreeSet<PathBuf>,
    /// B names whose data the stream rewrote (content may differ even if size and mtime do not).
    pub content: BTreeSet<PathBuf>,
    /// B names whose extended attributes changed.
    pub xattr: BTreeSet<PathBuf>,
    /// B names whose POSIX ACLs changed.
    pub acl: BTreeSet<PathBuf>,
}

/// Rename history, indexed for prefix lookups.
struct Renames<'a> {
    list: Vec<(usize, &'a Path, &'a Path)>,
    by_from: HashMap<&'a Path, Vec<usize>>,
    by_to: HashMap<&'a Path, Vec<usize>>,
}

impl<'a> Renames<'a> {
    fn new(ops: &'a [Op]) -> Self {
        let mut r = Renames {
            list: Vec::new(),
            by_from: HashMap::new(),
            by_to: HashMap::new(),
        };
        for (i, op) in ops.iter().enumerate() {
            if let OpKind::Rename { to } = &op.kind {
                let k = r.list.len();
                r.list.push((i, &op.path, to));
                r.by_from.entry(&op.path).or_default().push(k);
                r.by_to.entry(to).or_default().push(k);
            }
        }
        r
    }

    /// The name `p` (as of op `at`) has once all later renames are applied: its name in B.
    fn forward(&self, p: &Path, at: usize) -> PathBuf {
        let (mut p, mut at) = (p.to_path_buf(), at);
        loop {
            let next = p
                .ancestors()
                .filter_map(|q| self.by_from.get(q))
                .filter_map(|ks| ks.iter().copied().find(|&k| self.list[k].0 > at))
                .min();
            let Some(k) = next else { return p };
            let (i, from, to) = self.list[k];
            p = to.join(p.strip_prefix(from).expect("ancestor"));
            at = i;
        }
    }

    /// The name `p` (as of op `at`) had before all earlier renames: its name in A.
    fn backward(&self, p: &Path, at: usize) -> PathBuf {
        let (mut p, mut at) = (p.to_path_buf(), at);
        loop {
            let prev = p
                .ancestors()
                .filter_map(|q| self.by_to.get(q))
                .filter_map(|ks| ks.iter().rev().copied().find(|&k| self.list[k].0 < at))
                .max();
            let Some(k) = prev else { return p };
            let (i, from, to) = self.list[k];
            p = from.join(p.strip_prefix(to).expect("ancestor"));
            at = i;
        }
    }
}

/// Strip a trailing "" component: `Path::new("").join("")` is "", and the root stays "".
fn clean(p: PathBuf) -> PathBuf {
    p.components().collect()
}

/// Every path the stream touches, by its name in A and its name in B.
pub fn candidates(dump: &Dump) -> Candidates {
    let r = Renames::new(&dump.ops);
    let mut c = Candidates::default();
    for (i, op) in dump.ops.iter().enumerate() {
        let mut touch = |p: &Path| {
            let b = clean(r.forward(p, i));
            c.paths.insert(clean(r.backward(p, i)));
            c.paths.insert(b.clone());
            b
        };
        let b = touch(&op.path);
        match &op.kind {
            OpKind::Rename { to } => {
                touch(to);
            }
            OpKind::Content => {
                c.content.insert(b);
            }
            OpKind::Xattr { acl: false } => {
                c.xattr.insert(b);
            }
            OpKind::Xattr { acl: true } => {
                c.acl.insert(b);
            }
            _ => {}
        }
    }
    c.paths.remove(Path::new(""));
    c
}

#[cfg(test)]
mod tests;
