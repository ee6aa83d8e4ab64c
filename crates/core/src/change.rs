//! One path's change between two trees, decided from the two `lstat`s (and what the btrfs send stream
//! said about it), and printed like `snapper status`: six columns `+-ct`, `p`, `u`, `g`, `x`, `a`
//! (created/deleted/content/type, permissions, user, group, extended attributes, ACL), then sizes.
//!
//! What counts as modified: a different type; for non-directories a different size or mtime, or data
//! the stream rewrote; for anything a different mode, owner or group (or xattrs/ACLs, when known). A
//! directory whose only change is its mtime (entries added or removed) is not listed: its entries are.
//! atime and ctime never count. Pure.

use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    File,
    Dir,
    Symlink,
    Other,
}

/// What `lstat` says, as far as a diff cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: FileType,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Inode number: a snapshot keeps its source's, so a different number at the same path means a
    /// different object (whose subtree must be compared). Not compared by [`classify`].
    pub ino: u64,
    /// Number of hard links (the send stream names only one of them).
    pub nlink: u64,
}

/// What the send stream said about a path (always false for a plain directory walk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hints {
    pub content: bool,
    pub xattr: bool,
    pub acl: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Added,
    Removed,
    Modified,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Relative to both trees' roots.
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
    pub status: Status,
    /// The snapper-style columns, e.g. `c.....`, `+.....`, `.p.g..`.
    pub flags: String,
    pub type_a: Option<FileType>,
    pub type_b: Option<FileType>,
    pub size_a: Option<u64>,
    pub size_b: Option<u64>,
}

fn lossy<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

/// The change at `path`, or `None` when the two sides are the same (or both absent).
pub fn classify(path: &Path, a: Option<&Meta>, b: Option<&Meta>, hints: Hints) -> Option<Change> {
    let mut cols = ['.'; 6];
    let status = match (a, b) {
        (None, None) => return None,
        (None, Some(_)) => {
            cols[0] = '+';
            Status::Added
        }
        (Some(_), None) => {
            cols[0] = '-';
            Status::Removed
        }
        (Some(a), Some(b)) => {
            if a.kind != b.kind {
                cols[0] = 't';
            } else if a.kind != FileType::Dir
                && (a.size != b.size
                    || (a.mtime, a.mtime_nsec) != (b.mtime, b.mtime_nsec)
                    || hints.content)
            {
                cols[0] = 'c';
            }
            if a.mode != b.mode && a.kind != FileType::Symlink {
                cols[1] = 'p';
            }
            if a.uid != b.uid {
                cols[2] = 'u';
            }
            if a.gid != b.gid {
                cols[3] = 'g';
            }
            if hints.xattr {
                cols[4] = 'x';
            }
            if hints.acl {
                cols[5] = 'a';
            }
            if cols == ['.'; 6] {
                return None;
            }
            Status::Modified
        }
    };
    Some(Change {
        path: path.into(),
        status,
        flags: cols.iter().collect(),
        type_a: a.map(|m| m.kind),
        type_b: b.map(|m| m.kind),
        size_a: a.map(|m| m.size),
        size_b: b.map(|m| m.size),
    })
}

/// Whether `path` is `prefix` or lies below it (component-wise; no prefix: everything).
pub fn within(path: &Path, prefix: Option<&Path>) -> bool {
    prefix.is_none_or(|p| path.starts_with(p))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Summary {
    pub added: usize,
    pub removed: usize,
    pub modified: usize,
}

pub fn summary(changes: &[Change]) -> Summary {
    let mut s = Summary::default();
    for c in changes {
        match c.status {
            Status::Added => s.added += 1,
            Status::Removed => s.removed += 1,
            Status::Modified => s.modified += 1,
        }
    }
    s
}

/// A path for one line of text: control characters escaped so a name cannot break the line.
pub fn display_path(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn size_col(kind: Option<FileType>, size: Option<u64>) -> String {
    match (kind, size) {
        (Some(FileType::Dir), _) => "dir".into(),
        (_, Some(n)) => n.to_string(),
        (_, None) => "-".into(),
    }
}

/// `snapper status`-like text, one line per change, sorted by path, then a summary line.
pub fn render(changes: &[Change]) -> String {
    let mut out = String::new();
    for c in changes {
        out.push_str(&format!(
            "{} {:>12} -> {:<12} {}\n",
            c.flags,
            size_col(c.type_a, c.size_a),
            size_col(c.type_b, c.size_b),
            display_path(&c.path)
        ));
    }
    let s = summary(changes);
    out.push_str(&format!(
        "{} added, {} removed, {} modified\n",
        s.added, s.removed, s.modified
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, mtime: i64) -> Meta {
        Meta {
            kind: FileType::File,
            size,
            mtime,
            mtime_nsec: 0,
            mode: 0o644,
            uid: 0,
            gid: 0,
            ino: 300,
            nlink: 1,
        }
    }

    fn flags(a: Option<Meta>, b: Option<Meta>, h: Hints) -> Option<String> {
        classify(Path::new("x"), a.as_ref(), b.as_ref(), h).map(|c| c.flags)
    }

    #[test]
    fn classification() {
        let f = file(10, 100);
        let none = Hints::default();
        assert_eq!(flags(None, None, none), None);
        assert_eq!(flags(Some(f), Some(f), none), None);
        assert_eq!(flags(None, Some(f), none).as_deref(), Some("+....."));
        assert_eq!(flags(Some(f), None, none).as_deref(), Some("-....."));
        assert_eq!(
            flags(Some(f), Some(file(11, 100)), none).as_deref(),
            Some("c.....")
        );
        assert_eq!(
            flags(Some(f), Some(file(10, 101)), none).as_deref(),
            Some("c.....")
        );
        let content = Hints {
            content: true,
            ..none
        };
        assert_eq!(flags(Some(f), Some(f), content).as_deref(), Some("c....."));
        let g = Meta {
            mode: 0o600,
            uid: 1000,
            gid: 5,
            ..f
        };
        assert_eq!(flags(Some(f), Some(g), none).as_deref(), Some(".pug.."));
        let xa = Hints {
            xattr: true,
            acl: true,
            ..none
        };
        assert_eq!(flags(Some(f), Some(f), xa).as_deref(), Some("....xa"));
        let d = Meta {
            kind: FileType::Dir,
            ..f
        };
        // A directory's mtime or size alone is not a change; a type change is.
        assert_eq!(
            flags(
                Some(d),
                Some(Meta {
                    mtime: 5,
                    size: 99,
                    ..d
                }),
                none
            ),
            None
        );
        assert_eq!(flags(Some(d), Some(f), none).as_deref(), Some("t....."));
    }

    #[test]
    fn render_and_prefix() {
        let f = file(10, 100);
        let d = Meta {
            kind: FileType::Dir,
            ..f
        };
        let changes: Vec<Change> = [
            classify(Path::new("a/new"), None, Some(&f), Hints::default()),
            classify(Path::new("gone"), Some(&d), None, Hints::default()),
            classify(
                Path::new("with\nnl"),
                Some(&f),
                Some(&file(3, 1)),
                Hints::default(),
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        insta::assert_snapshot!(render(&changes), @r"
        +.....            - -> 10           a/new
        -.....          dir -> -            gone
        c.....           10 -> 3            with\nnl
        1 added, 1 removed, 1 modified
        ");
        assert!(within(Path::new("a/b/c"), Some(Path::new("a/b"))));
        assert!(!within(Path::new("a/bc"), Some(Path::new("a/b"))));
        assert!(within(Path::new("x"), None));
        let j = serde_json::to_value(&changes[0]).unwrap();
        assert_eq!(j["status"], "added");
        assert_eq!(j["type_b"], "file");
    }
}
