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

/// The protocol version this release speaks; every request line carries it (`"v"`), and a daemon refuses
/// a request from a newer client instead of misreading it. Requests without it are version 0 (the release
/// before versions were recorded), which this daemon still answers.
pub const PROTOCOL: u32 = 1;

/// A request line: the protocol version and the request.
#[derive(Debug, Serialize, Deserialize)]
pub struct RequestLine {
    #[serde(default)]
    pub v: u32,
    #[serde(flatten)]
    pub req: Request,
}

impl RequestLine {
    /// Parse a line from a client; a newer protocol is refused with the versions named.
    pub fn parse(line: &str) -> std::result::Result<Request, String> {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("bad request: {e}"))?;
        let version = v.get("v").and_then(serde_json::Value::as_u64).unwrap_or(0);
        if version > u64::from(PROTOCOL) {
            return Err(format!(
                "the client speaks protocol {version}, this daemon {PROTOCOL}: restart the daemon after an \
                 upgrade (`systemctl restart wayback`; its instances keep running and are adopted)"
            ));
        }
        serde_json::from_value::<RequestLine>(v)
            .map(|l| l.req)
            .map_err(|e| format!("bad request: {e}"))
    }
}

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
    /// Swap an instance the daemon hosts to another snapshot (`wayback reset`).
    Reset {
        name: InstanceName,
        snapshot: String,
    },
    /// Protect an instance from expiry, or end that (`wayback keep`).
    Keep {
        name: InstanceName,
        keep: crate::verbs::KeepRequest,
    },
    /// Move an instance's expiry later (`wayback extend`).
    Extend {
        name: InstanceName,
        by: wayback_core::Duration,
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
    /// The result of `keep` or `extend`.
    Value {
        value: serde_json::Value,
    },
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
    // The request's own fields next to the version: `{"v":1,"op":"down","name":"x"}` (a `RequestLine`).
    let mut obj = serde_json::to_value(req)?;
    obj.as_object_mut()
        .context("a request is a JSON object")?
        .insert("v".into(), PROTOCOL.into());
    let mut line = serde_json::to_string(&obj)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_of_earlier_and_later_clients() {
        assert!(matches!(
            RequestLine::parse(r#"{"op":"ping"}"#),
            Ok(Request::Ping)
        ));
        assert!(matches!(
            RequestLine::parse(r#"{"v":1,"op":"down","name":"pg-1"}"#),
            Ok(Request::Down { .. })
        ));
        let e = RequestLine::parse(r#"{"v":2,"op":"ping"}"#).unwrap_err();
        assert!(
            e.contains("protocol 2") && e.contains("restart the daemon"),
            "{e}"
        );
        assert!(RequestLine::parse(r#"{"v":1,"op":"down","name":"../x"}"#).is_err());
    }
}
