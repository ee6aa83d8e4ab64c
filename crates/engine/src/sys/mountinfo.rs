//! `/proc/self/mountinfo`: which mount holds a path, its filesystem type, and which mounts lie under a
//! prefix (for residue checks). Parsing is pure; `read` takes the file's path so tests can pass fixtures.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount's id, and its parent mount's id (the mount it is mounted on; its own id for the root).
    pub id: u32,
    pub parent: u32,
    /// Path inside the filesystem that is mounted here (e.g. `/@persist` for a btrfs subvolume mount).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    pub options: String,
    /// The filesystem's device (`major:minor`): the same for every mount of one filesystem (also every
    /// subvolume mount of one btrfs filesystem), different between filesystems.
    pub dev: String,
}

/// Parse mountinfo text. Malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    if l.len() < 6 || r.len() < 2 {
        return None;
    }
    Some(Mount {
        id: l[0].parse().ok()?,
        parent: l[1].parse().ok()?,
        root: PathBuf::from(unescape(l[3])),
        mount_point: PathBuf::from(unescape(l[4])),
        options: l[5].to_string(),
        fs_type: r[0].to_string(),
        source: unescape(r[1]),
        dev: l[2].to_string(),
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount that holds `path` (an absolute, canonical path): the last-mounted one with the longest
/// mount point that is a prefix of it.
pub fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    let mut best: Option<&Mount> = None;
    for m in mounts {
        if path.starts_with(&m.mount_point)
            && best
                .is_none_or(|b| m.mount_point.as_os_str().len() >= b.mount_point.as_os_str().len())
        {
            best = Some(m);
        }
    }
    best
}

/// Read and parse a mountinfo file (normally `/proc/self/mountinfo`).
pub fn read(path: &Path) -> std::io::Result<Vec<Mount>> {
    Ok(parse(&std::fs::read_to_string(path)?))
}

pub fn read_self() -> std::io::Result<Vec<Mount>> {
    read(Path::new("/proc/self/mountinfo"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 7:0 / /persist rw,relatime shared:20 - btrfs /dev/loop0 rw,space_cache=v2,subvolid=5,subvol=/
41 40 7:0 /snaps /persist/my\\040snaps ro,relatime shared:21 - btrfs /dev/loop0 rw,subvol=/snaps
";

    #[test]
    fn parses_and_finds_longest_prefix() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 3);
        assert_eq!((m[2].id, m[2].parent), (41, 40));
        assert_eq!(m[2].mount_point, Path::new("/persist/my snaps"));
        assert_eq!(
            mount_of(&m, Path::new("/persist/.snapshots/1/snapshot"))
                .unwrap()
                .mount_point,
            Path::new("/persist")
        );
        assert_eq!(
            mount_of(&m, Path::new("/persist/my snaps/x")).unwrap().root,
            Path::new("/snaps")
        );
        assert_eq!(mount_of(&m, Path::new("/etc")).unwrap().fs_type, "ext4");
        // "/persistent" is not under "/persist".
        assert_eq!(
            mount_of(&m, Path::new("/persistent")).unwrap().mount_point,
            Path::new("/")
        );
    }
}
