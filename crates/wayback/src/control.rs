//! The daemon's control protocol: JSON lines over a unix socket in the runtime dir (mode 0600, so only root
//! can talk to it). The client sends one request line; the daemon answers with progress lines and one final
//! reply. Also the client side, used by `up --detach` and `down`. Names are typed ([`InstanceName`]): a
//! request naming an invalid instance does not parse, and the daemon answers it with a bad-input error.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use wayback_core::plan::UpRequest;
use wayback_core::{Config, InstanceName};

use crate::error::BadInput;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Start an instance and host it in the daemon.
    Up {
        req: Box<UpRequest>,
    },
    /// Stop an instance the daemon hosts and remove everything it created.
    Down {
        name: InstanceName,
    },
    Ping,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Progress {
        line: String,
    },
    /// The instance answers; `status` is what `wayback status --json` prints.
    Ready {
        status: serde_json::Value,
    },
    Done,
    Pong {
        pid: u32,
    },
    Error {
        message: String,
        bad_input: bool,
    },
}

impl Reply {
    fn is_final(&self) -> bool {
        !matches!(self, Reply::Progress { .. })
    }
}

pub fn socket_path(cfg: &Config) -> PathBuf {
    cfg.runtime_dir.join("wayback.sock")
}

/// Send `req` to the daemon; progress lines go to `on_progress`; returns the final reply. An `Error` reply
/// becomes an error (bad input keeps exit status 2).
pub async fn call(cfg: &Config, req: &Request, mut on_progress: impl FnMut(&str)) -> Result<Reply> {
    let path = socket_path(cfg);
    let stream = UnixStream::connect(&path)
        .await
        .with_context(|| format!("no wayback daemon answers on {} (start it with `wayback serve`, or run `up` without --detach)", path.display()))?;
    let (r, mut w) = stream.into_split();
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    w.write_all(line.as_bytes()).await?;
    let mut lines = BufReader::new(r).lines();
    while let Some(l) = lines.next_line().await? {
        let reply: Reply =
            serde_json::from_str(&l).with_context(|| format!("bad reply from the daemon: {l}"))?;
        match reply {
            Reply::Progress { line } => on_progress(&line),
            Reply::Error {
                message,
                bad_input: true,
            } => return Err(BadInput::new(message).into()),
            Reply::Error { message, .. } => return Err(anyhow!(message)),
            other if other.is_final() => return Ok(other),
            _ => {}
        }
    }
    Err(anyhow!(
        "the daemon closed the connection without an answer (see its log)"
    ))
}
