//! The app's own log files an instance keeps (`applogs/` in its directory, the container's /var/log/APP
//! bound there so they outlive it), read as the service sees them: `wayback logs`, the failure message of
//! a start, the console.

use std::path::{Path, PathBuf};

/// The app's log files under `root` (`applogs/var/log/APP/FILE`), each under a header naming it as the
/// service sees it (`==> /var/log/APP/FILE <==`), whole or only its last `lines` lines.
pub fn app_logs(root: &Path, lines: Option<usize>) -> String {
    let mut out = String::new();
    for (shown, file) in files(root) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()).into_owned();
        let text = match lines {
            Some(n) => {
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(n)..].join("\n") + "\n"
            }
            None => text,
        };
        if text.trim().is_empty() {
            continue;
        }
        out.push_str(&format!("==> {} <==\n{text}", shown.display()));
    }
    out
}

/// Regular files below `root`, as (path in the container, path on the host), sorted.
fn files(root: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                let rel = e.path().strip_prefix(root).map(Path::to_path_buf);
                out.push((Path::new("/").join(rel.unwrap_or_default()), e.path()));
            }
        }
    }
    out.sort();
    out
}
