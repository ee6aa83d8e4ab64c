//! `wayback ls` and `wayback status`: what instances exist, their state, where to reach them, time left.

use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;
use wayback_core::{Config, Duration, InstanceName};

use crate::state::{self, InstanceDir, Phase};

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    /// starting, running, stopping, or orphaned (its owner died: `wayback gc` removes it).
    pub state: String,
    pub profile: Option<String>,
    pub url: Option<String>,
    pub host: Option<String>,
    pub publish: Vec<String>,
    pub address: Option<String>,
    pub source: Option<String>,
    pub clone: Option<String>,
    pub created: Option<u64>,
    pub expires: Option<u64>,
    pub ttl_left: Option<String>,
    pub owner_pid: Option<i32>,
    /// The masquerade's original origin (given, or found by `--original-host auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_host: Option<String>,
    /// What the pinned-hostname check found after the app answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_check: Option<crate::hostdetect::HostCheckRecord>,
    /// The one-time share link, only in `up`'s ready output (it is never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_url: Option<String>,
}

impl InstanceStatus {
    pub fn of(dir: &InstanceDir) -> InstanceStatus {
        let plan = dir.plan().ok();
        let owner = dir.owner();
        let state = match (owner.map(|o| o.alive()), dir.phase()) {
            (Some(true), Some(Phase::Running)) => "running",
            (Some(true), Some(Phase::Stopping)) => "stopping",
            (Some(true), _) => "starting",
            _ => "orphaned",
        };
        let expires = dir.expires();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        InstanceStatus {
            name: dir.name.to_string(),
            state: state.into(),
            profile: plan.as_ref().map(|p| p.profile.clone()),
            url: plan
                .as_ref()
                .and_then(|p| p.http.as_ref().map(|h| h.url.clone())),
            host: plan
                .as_ref()
                .and_then(|p| p.http.as_ref().map(|h| h.host.clone())),
            publish: plan
                .as_ref()
                .map(|p| {
                    p.publish
                        .iter()
                        .map(|x| format!("{}->{}", x.listen, x.port))
                        .collect()
                })
                .unwrap_or_default(),
            address: plan.as_ref().map(|p| p.block.peer.to_string()),
            source: plan.as_ref().map(|p| p.source.path.display().to_string()),
            clone: plan.as_ref().map(|p| p.clone.display().to_string()),
            created: plan.as_ref().map(|p| p.created),
            expires,
            ttl_left: expires.map(|e| Duration(e.saturating_sub(now).max(1)).to_string()),
            owner_pid: owner.map(|o| o.pid),
            original_host: plan.as_ref().and_then(|p| {
                p.masquerade
                    .as_ref()
                    .map(|m| format!("{}://{}", if m.https { "https" } else { "http" }, m.host))
            }),
            host_check: crate::hostdetect::HostCheckRecord::load(dir),
            share_url: None,
        }
    }

    /// The one line `up` prints when ready: `ready NAME URL|- PUBLISH...`.
    pub fn ready_line(&self) -> String {
        let mut s = format!("ready {} {}", self.name, self.url.as_deref().unwrap_or("-"));
        for p in &self.publish {
            s.push(' ');
            s.push_str(p);
        }
        s
    }
}

pub fn ls(cfg: &Config, json: bool) -> Result<ExitCode> {
    let all: Vec<InstanceStatus> = state::list(cfg)
        .iter()
        .filter_map(|n| InstanceDir::open(cfg, n).ok())
        .map(|d| InstanceStatus::of(&d))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        eprintln!("no instances");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<9} {:<8} {:<15} URL / PUBLISH",
        "NAME", "STATE", "TTL", "ADDRESS"
    );
    for s in &all {
        let reach = s
            .url
            .iter()
            .cloned()
            .chain(s.publish.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "{:<20} {:<9} {:<8} {:<15} {}",
            s.name,
            s.state,
            s.ttl_left.as_deref().unwrap_or("-"),
            s.address.as_deref().unwrap_or("-"),
            reach
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn status(cfg: &Config, name: &InstanceName, json: bool) -> Result<ExitCode> {
    let dir = InstanceDir::open(cfg, name)?;
    let s = InstanceStatus::of(&dir);
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    println!("name      {}", s.name);
    println!("state     {}", s.state);
    println!("profile   {}", opt(&s.profile));
    println!("url       {}", opt(&s.url));
    for p in &s.publish {
        println!("publish   {p}");
    }
    println!("address   {}", opt(&s.address));
    println!("source    {}", opt(&s.source));
    println!("clone     {}", opt(&s.clone));
    println!("ttl left  {}", opt(&s.ttl_left));
    if let Some(o) = &s.original_host {
        println!("original  {o} (the app sees it; masquerade)");
    }
    if let Some(c) = &s.host_check {
        match &c.evidence {
            Some(e) => println!("host check the app {e}: {}", c.outcome),
            None => println!("host check {}", c.outcome),
        }
    }
    println!("log       {}", dir.log_path().display());
    if let Some(pid) = s.owner_pid {
        println!("owner pid {pid}");
    }
    Ok(ExitCode::SUCCESS)
}
