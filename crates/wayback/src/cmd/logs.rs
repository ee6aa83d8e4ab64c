//! `wayback logs`: the container's output (wayback's init and the service's stdout/stderr), then the app's
//! own log files (its /var/log directories, kept on disk in the instance's directory). For an instance
//! whose start failed, the logs kept from that start, with the error.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use wayback_core::{Config, InstanceName};

use crate::state::{failed, InstanceDir, StateError};

pub async fn logs(cfg: &Config, name: &InstanceName, follow: bool) -> Result<ExitCode> {
    let dir = match InstanceDir::open(cfg, name) {
        Ok(d) => d,
        Err(StateError::NotFound { .. }) if failed::find(cfg, name).is_some() => {
            return failed_logs(cfg, name);
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = std::io::stdout().lock();
    if !follow {
        let _ = out.write_all(&std::fs::read(dir.log_path()).unwrap_or_default());
        let _ = out.write_all(app_logs(&dir.path.join("applogs"), None).as_bytes());
        return Ok(ExitCode::SUCCESS);
    }
    let path = dir.log_path();
    let mut f =
        std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        f.read_to_end(&mut buf)?;
        if out.write_all(&buf).and_then(|_| out.flush()).is_err() {
            return Ok(ExitCode::SUCCESS); // closed pipe (e.g. `| head`): not an error
        }
        if !dir.path.exists() {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let pos = f.stream_position()?;
        f.seek(SeekFrom::Start(pos))?;
    }
}

/// The logs kept from the last failed start of `name`.
fn failed_logs(cfg: &Config, name: &InstanceName) -> Result<ExitCode> {
    let f = failed::find(cfg, name).context("the failed start's logs are gone")?;
    let mut out = std::io::stdout().lock();
    let when = wayback_core::civil::format_utc(f.when as i64);
    let _ = writeln!(
        out,
        "wayback: no instance {name} runs; its last start failed at {when} UTC: {}\n(these logs stay until `wayback gc` after keep_failed_logs)",
        f.error
    );
    let _ = out.write_all(&std::fs::read(f.log_path()).unwrap_or_default());
    let _ = out.write_all(app_logs(&f.applogs(), None).as_bytes());
    Ok(ExitCode::SUCCESS)
}

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
