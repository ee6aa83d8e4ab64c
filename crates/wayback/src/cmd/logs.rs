//! `wayback logs`: the container's output (wayback's init and the service's stdout/stderr).

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use wayback_core::{Config, InstanceName};

use crate::state::InstanceDir;

pub async fn logs(cfg: &Config, name: &InstanceName, follow: bool) -> Result<ExitCode> {
    let dir = InstanceDir::open(cfg, name)?;
    let path = dir.log_path();
    let mut f =
        std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        f.read_to_end(&mut buf)?;
        if out.write_all(&buf).and_then(|_| out.flush()).is_err() {
            return Ok(ExitCode::SUCCESS); // closed pipe (e.g. `| head`): not an error
        }
        if !follow || !dir.path.exists() {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let pos = f.stream_position()?;
        f.seek(SeekFrom::Start(pos))?;
    }
}
