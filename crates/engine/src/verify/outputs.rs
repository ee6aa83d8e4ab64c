//! Where a `verify`'s results go besides the history and stdout: the Prometheus text file (rewritten
//! atomically from the whole history, so it holds every job's latest state), the JUnit XML file
//! (`--junit`), and the failure hook (`[verify] on_failure`), a command given the JSON report on stdin,
//! killed after `hook_timeout`; its failure is reported, never fatal to the runs.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use anyhow::{anyhow, Context, Result};
use tokio::io::AsyncWriteExt;
use wayback_core::verify::report;
use wayback_core::Config;

use super::history::History;

/// Write `text` to `path` atomically (a temporary file in the same directory, fsync, rename), mode 0644.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".wayback-")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "cannot write {}: its directory {} must exist and be writable",
                path.display(),
                dir.display()
            )
        })?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .and_then(|()| {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
        })
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| anyhow!("cannot replace {}: {}", path.display(), e.error))?;
    Ok(())
}

/// Rewrite the metrics file from the history, when one is configured.
pub fn write_metrics(cfg: &Config, history: &History) -> Result<()> {
    let Some(path) = &cfg.verify.metrics_file else {
        return Ok(());
    };
    let jobs = history.metrics()?;
    let text = report::prometheus(&jobs, crate::clock::now());
    write_atomic(path, &text).context("[verify] metrics_file")
}

/// Run the failure hook with `json` on stdin: None when none is configured or it succeeded, else why it
/// failed (its exit status, a timeout, or that it could not start).
pub async fn run_hook(cfg: &Config, json: &str) -> Option<String> {
    let argv = &cfg.verify.on_failure;
    let program = argv.first()?;
    let timeout = cfg.verify.hook_timeout;
    let mut child = match tokio::process::Command::new(program)
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Some(format!(
                "[verify] on_failure {program}: cannot start it: {e}"
            ))
        }
    };
    let mut stdin = child.stdin.take().expect("piped");
    let body = json.to_string();
    let feed = tokio::spawn(async move {
        // A hook that does not read its stdin gets EPIPE here: not an error of the hook.
        let _ = stdin.write_all(body.as_bytes()).await;
    });
    let waited = tokio::time::timeout(timeout.as_std(), child.wait()).await;
    feed.abort();
    match waited {
        Ok(Ok(s)) if s.success() => None,
        Ok(Ok(s)) => Some(format!("[verify] on_failure {program} failed ({s})")),
        Ok(Err(e)) => Some(format!("[verify] on_failure {program}: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Some(format!(
                "[verify] on_failure {program} did not end within hook_timeout {timeout}: killed"
            ))
        }
    }
}
