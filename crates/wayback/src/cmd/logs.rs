//! `wayback logs`: the container's output (wayback's init and the service's stdout/stderr), then the app's
//! own log files (its /var/log directories, kept on disk in the instance's directory). For an instance
//! whose start failed, the logs kept from that start, with the error.

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use wayback_core::{Config, InstanceName};

use wayback_engine::applogs::app_logs;
use wayback_engine::state::{failed, InstanceDir, StateError};

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
        if out.write_all(&buf).and_then(|()| out.flush()).is_err() {
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
