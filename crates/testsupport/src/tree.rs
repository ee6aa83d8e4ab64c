//! Tree manifests and checksums: "is the source snapshot byte-identical?".

#![allow(dead_code, unused_imports)]

use super::*;

/// FNV-1a 64: stable, dependency-free; good enough to detect changes in test trees.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The names of the entries of `dir`, sorted (none when it does not exist or cannot be read).
pub fn entry_names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// One line per entry of the tree under `root` (relative path → "type mode uid gid size content-hash or
/// link target"). Does not follow symlinks; mtimes and atimes are ignored.
pub fn tree_manifest(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

pub fn walk(root: &Path, p: &Path, out: &mut BTreeMap<String, String>) {
    let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
    let rel = if rel.is_empty() { ".".to_string() } else { rel };
    let head = format!("{:o} {}:{}", md.mode(), md.uid(), md.gid());
    let ft = md.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(p).unwrap();
        out.insert(rel, format!("link {head} -> {}", target.display()));
    } else if ft.is_dir() {
        out.insert(rel, format!("dir {head}"));
        let mut entries: Vec<PathBuf> = fs::read_dir(p)
            .unwrap_or_else(|e| panic!("readdir {}: {e}", p.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for e in entries {
            walk(root, &e, out);
        }
    } else if ft.is_file() {
        let mut h = Fnv::new();
        let mut f = fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        out.insert(rel, format!("file {head} {} {:016x}", md.size(), h.0));
    } else {
        out.insert(rel, format!("special {head} rdev={}", md.rdev()));
    }
}

/// A deterministic checksum of the tree under `root`: paths, types, modes, owners, sizes, file contents and
/// symlink targets.
pub fn tree_checksum(root: &Path) -> String {
    checksum_of(&tree_manifest(root))
}

pub fn checksum_of(manifest: &BTreeMap<String, String>) -> String {
    let mut h = Fnv::new();
    for (k, v) in manifest {
        h.update(k.as_bytes());
        h.update(b"\0");
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    format!("{:016x}-{}", h.0, manifest.len())
}

/// Human-readable differences between two manifests (empty when equal).
pub fn manifest_diff(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => d.push(format!("removed {k} ({v})")),
            Some(w) if w != v => d.push(format!("changed {k}: {v} => {w}")),
            _ => {}
        }
    }
    for (k, v) in after {
        if !before.contains_key(k) {
            d.push(format!("added {k} ({v})"));
        }
    }
    d
}
