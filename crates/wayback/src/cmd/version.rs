//! `wayback version [--json]`: this binary's version, the state file format it writes and the earlier ones
//! it reads (`wayback_core::format`), and the daemon protocol it speaks and answers (`control`): what an
//! admin checks before and after an upgrade.

use std::process::ExitCode;

use anyhow::Result;

pub fn run(json: bool) -> Result<ExitCode> {
    let (format, protocol) = (
        wayback_core::format::CURRENT,
        wayback_engine::control::PROTOCOL,
    );
    let version = env!("CARGO_PKG_VERSION");
    if json {
        let v = serde_json::json!({
            "version": version,
            "state_format": { "writes": format, "reads": (0..=format).collect::<Vec<_>>() },
            "protocol": { "speaks": protocol, "answers": (0..=protocol).collect::<Vec<_>>() },
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("wayback {version}");
        println!("state files: writes format {format}, reads formats 0 to {format}");
        println!("daemon protocol: speaks {protocol}, answers 0 to {protocol}");
    }
    Ok(ExitCode::SUCCESS)
}
