//! A verify job's `[run]` as `up`'s command line, parsed by `up`'s own parser (so every check of the
//! command line applies to a job), and `up`'s request built from it for the engine's runs; a refusal
//! names the job's key, never its value.

use anyhow::{anyhow, Result};
use clap::Parser;
use wayback_core::verify::Job;
use wayback_core::InstanceName;
use wayback_engine::error::BadInput;

use crate::cli::{Cli, Cmd, UpArgs};

/// The job's `[run]` as `up`'s command line, parsed by `up`'s own parser (so every check of the command
/// line applies); errors name the job's key.
pub fn up_args(job: &Job, snapshot: &std::path::Path, date: i64, name: &str) -> Result<UpArgs> {
    InstanceName::new(name)?;
    let mut argv = vec!["wayback".to_string(), "up".into()];
    match &job.run.at {
        Some(live) => {
            argv.push(live.display().to_string());
            let at = wayback_core::civil::format_utc(date).replace(' ', "T");
            argv.push(format!("--at={at}Z"));
        }
        None => argv.push(snapshot.display().to_string()),
    }
    argv.push(format!("--name={name}"));
    argv.push(format!("--ttl={}", job.timeout));
    argv.extend(job.run.up_args());
    match Cli::try_parse_from(&argv) {
        Ok(Cli {
            cmd: Cmd::Up(args), ..
        }) => Ok(*args),
        Ok(_) => Err(anyhow!(
            "internal: `up` arguments parsed as another command"
        )),
        Err(e) => Err(clap_error(job, &e).into()),
    }
}

/// A refusal of `up`'s parser as a job error: the key (`run.unit`), what is wrong, no value.
fn clap_error(job: &Job, e: &clap::Error) -> BadInput {
    use clap::error::{ContextKind, ErrorKind};
    let key = |k: ContextKind| {
        e.get(k).map(|v| {
            let flag = v.to_string();
            let flag = flag
                .split([' ', '='])
                .next()
                .unwrap_or_default()
                .to_string();
            format!("run.{}", flag.trim_start_matches('-').replace('-', "_"))
        })
    };
    let what = match e.kind() {
        ErrorKind::ArgumentConflict => format!(
            "cannot be combined with {}",
            key(ContextKind::PriorArg).map_or_else(|| "another key".into(), |k| format!("`{k}`"))
        ),
        ErrorKind::MissingRequiredArgument => {
            "needs a key it goes with (see `wayback up --help`)".into()
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => "invalid value".into(),
        k => k
            .as_str()
            .unwrap_or("refused as `up` would refuse it")
            .into(),
    };
    let key = key(ContextKind::InvalidArg).unwrap_or_else(|| "run".into());
    BadInput::new(format!(
        "invalid verify job {}: key `{key}`: {what}",
        job.file.display()
    ))
}
