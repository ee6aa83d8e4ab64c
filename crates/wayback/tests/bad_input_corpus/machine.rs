//! What a row could have changed on the machine, limited to what this test owns (other tests run on the
//! machine at the same time): mounts under the pool's and the config's directories or naming one of the
//! test's instances, their network namespaces, links, nftables lines (tables inet wayback-quarantine and wayback) and processes
//! and cgroups, the pool's subvolumes and clones, every file under the state and runtime directories (with
//! its content, except logs and the activity stamp), and the canary trees' checksums.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use wayback_testsupport::*;

/// Where to look, and which instance names (and their interfaces) are the test's.
pub struct Scope {
    pub names: Vec<String>,
    pub dirs: Vec<PathBuf>,
    pub state_dir: PathBuf,
    pub runtime_dir: PathBuf,
    pub canaries: Vec<PathBuf>,
    pub clone_dir: PathBuf,
}

impl Scope {
    fn ifnames(&self) -> Vec<String> {
        self.names
            .iter()
            .flat_map(|n| Residue::new(n).host_if_candidates())
            .collect()
    }

    fn mine(&self, text: &str) -> bool {
        self.names
            .iter()
            .any(|n| mentions(text, n) || mentions(text, &format!("wb-{n}")))
    }
}

/// One set of lines per kind of trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State(BTreeMap<&'static str, BTreeSet<String>>);

impl State {
    pub fn capture(scope: &Scope, pool: &BtrfsPool) -> State {
        let mut s: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        let mut put = |k: &'static str, v: String| {
            s.entry(k).or_default().insert(v);
        };
        let dirs: Vec<&str> = scope.dirs.iter().map(|d| path_str(d)).collect();
        for line in fs::read_to_string("/proc/self/mountinfo").unwrap().lines() {
            if dirs.iter().any(|d| line.contains(d)) || scope.mine(line) {
                put("mount", line.to_string());
            }
        }
        for e in fs::read_dir("/run/netns").into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if scope.mine(&n) {
                put("netns", n);
            }
        }
        let ifnames = scope.ifnames();
        for l in cmd_ok("ip", &["-o", "link", "show"]).lines() {
            let name = l
                .split(": ")
                .nth(1)
                .unwrap_or("")
                .split('@')
                .next()
                .unwrap_or("");
            if ifnames.iter().any(|i| i == name) || scope.mine(name) {
                put("link", name.to_string());
            }
        }
        for table in ["wayback-quarantine", "wayback"] {
            let nft = cmd("nft", &["list", "table", "inet", table]);
            for l in String::from_utf8_lossy(&nft.stdout).lines() {
                if scope.mine(l) || ifnames.iter().any(|i| mentions(l, i)) {
                    put("nft", without_counters(l));
                }
            }
        }
        for sv in pool.subvolumes() {
            put("subvolume", sv);
        }
        for e in fs::read_dir(&scope.clone_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            put("clone", e.file_name().to_string_lossy().into_owned());
        }
        for root in [&scope.state_dir, &scope.runtime_dir] {
            for f in files(root) {
                put("file", f);
            }
        }
        for c in &scope.canaries {
            put("canary", format!("{} {}", c.display(), tree_checksum(c)));
        }
        for p in processes(scope) {
            put("process", p);
        }
        for c in cgroups(Path::new("/sys/fs/cgroup"), 3, scope) {
            put("cgroup", c);
        }
        State(s)
    }

    /// How many traces of each kind, e.g. `file 23, mount 4`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{k} {}", v.len()))
            .collect();
        parts.join(", ")
    }

    /// What differs from `before`, one line each.
    pub fn diff(&self, before: &State) -> Vec<String> {
        let empty = BTreeSet::new();
        let kinds: BTreeSet<&&str> = self.0.keys().chain(before.0.keys()).collect();
        let mut out = Vec::new();
        for k in kinds {
            let (a, b) = (
                before.0.get(*k).unwrap_or(&empty),
                self.0.get(*k).unwrap_or(&empty),
            );
            out.extend(a.difference(b).map(|l| format!("{k} gone: {l}")));
            out.extend(b.difference(a).map(|l| format!("{k} new: {l}")));
        }
        out
    }
}

fn without_counters(line: &str) -> String {
    let mut out = Vec::new();
    let mut skip = 0;
    for w in line.split_whitespace() {
        if skip > 0 {
            skip -= 1;
        } else if w == "packets" || w == "bytes" {
            skip = 1;
        } else {
            out.push(w);
        }
    }
    out.join(" ")
}

/// Every entry under `root`: relative path, type, and a content hash for regular files other than the
/// instance's growing log and its activity stamp (temporary files of atomic writes are left out).
fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let (path, name) = (e.path(), e.file_name().to_string_lossy().into_owned());
            if name.starts_with(".tmp") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let Ok(md) = fs::symlink_metadata(&path) else {
                continue;
            };
            let what = if md.is_dir() {
                stack.push(path.clone());
                "dir".to_string()
            } else if md.is_file() && !["log", "activity.json"].contains(&name.as_str()) {
                format!("file {:016x}", fnv(&fs::read(&path).unwrap_or_default()))
            } else {
                format!("{:?}", md.file_type())
            };
            out.push(format!("{}/{rel} {what}", root.display()));
        }
    }
    out
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn processes(scope: &Scope) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(raw) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if scope.mine(&line) {
            out.push(format!("{pid} {}", line.trim()));
        }
    }
    out
}

fn cgroups(dir: &Path, depth: usize, scope: &Scope) -> Vec<String> {
    let mut out = Vec::new();
    if depth == 0 {
        return out;
    }
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let p = e.path();
            if scope.mine(&e.file_name().to_string_lossy()) {
                out.push(p.display().to_string());
            }
            out.extend(cgroups(&p, depth - 1, scope));
        }
    }
    out
}
