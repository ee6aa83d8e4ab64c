//! `wayback ls` and `wayback status`: what instances exist, the state each is in (see [`State`]) and the
//! next step for it, where to reach them, time left; `status` adds the binds (and where in the snapshot
//! each comes from), the processes and their users (planned, and running inside the container), the
//! masquerade host and the access gate. `--json` carries the same fields.

use std::process::ExitCode;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use wayback_core::nspawn::MountBind;
use wayback_core::plan::GateSpec;
use wayback_core::{Config, Duration, InstanceName};

use crate::state::{self, InstanceDir};

mod lifecycle;
mod live;

pub use lifecycle::State;
pub use live::LiveProcess;

#[derive(Debug, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub state: State,
    /// What the state means.
    #[serde(default)]
    pub meaning: String,
    /// What to do next.
    #[serde(default)]
    pub next: String,
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
    #[serde(default)]
    pub idle: Option<String>,
    pub owner_pid: Option<i32>,
    /// The owner is the daemon (`up --detach`), not a foreground `up`.
    #[serde(default)]
    pub owner_daemon: bool,
    /// The app's usual origin shown to it (`--original-host`), e.g. `https://cloud.example.org`.
    #[serde(default)]
    pub masquerade: Option<String>,
    /// What the pinned-hostname check found after the app answered (with `--original-host auto`: the
    /// origin that became the masquerade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_check: Option<crate::hostdetect::HostCheckRecord>,
    #[serde(default)]
    pub gate: GateSpec,
    /// What the container shows of the clone (and wayback's own read-only files), with where each comes
    /// from in the snapshot (`clone`: root, path asked for, path it resolved to).
    #[serde(default)]
    pub binds: Vec<MountBind>,
    /// The profile's processes, in start order, with their users.
    #[serde(default)]
    pub processes: Vec<PlannedProcess>,
    /// What runs in the container now (only from `status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Vec<LiveProcess>>,
    /// The one-time share link, only in `up`'s ready output (it is never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedProcess {
    pub name: String,
    pub user: String,
    /// A hook run to completion before the next process starts.
    pub hook: bool,
    pub command: String,
}

impl InstanceStatus {
    pub fn of(dir: &InstanceDir) -> InstanceStatus {
        let plan = dir.plan().ok();
        let owner = dir.owner();
        let state = State::of(dir);
        let expires = dir.expires();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let processes = plan
            .as_ref()
            .map(|p| {
                p.init
                    .processes
                    .iter()
                    .map(|pr| PlannedProcess {
                        name: pr.name.clone(),
                        user: pr.user.clone().unwrap_or_else(|| "root".into()),
                        hook: pr.oneshot,
                        command: pr.argv(&p.init.shell).join(" "),
                    })
                    .collect()
            })
            .unwrap_or_default();
        InstanceStatus {
            name: dir.name.to_string(),
            state,
            meaning: state.meaning().into(),
            next: state.next_step(dir.name.as_str()),
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
            idle: plan.as_ref().and_then(|p| p.idle.map(|d| d.to_string())),
            owner_pid: owner.map(|o| o.pid),
            owner_daemon: owner.is_some_and(|o| o.daemon),
            masquerade: plan.as_ref().and_then(|p| {
                p.masquerade
                    .as_ref()
                    .map(|m| format!("{}://{}", if m.https { "https" } else { "http" }, m.host))
            }),
            host_check: crate::hostdetect::HostCheckRecord::load(dir),
            gate: plan.as_ref().map(|p| p.gate.clone()).unwrap_or_default(),
            binds: plan
                .as_ref()
                .map(|p| p.container.binds.clone())
                .unwrap_or_default(),
            processes,
            running: None,
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
        "{:<20} {:<11} {:<10} {:<15} URL / PUBLISH",
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
            "{:<20} {:<11} {:<10} {:<15} {}",
            s.name,
            s.state.as_str(),
            s.ttl_left.as_deref().unwrap_or("-"),
            s.address.as_deref().unwrap_or("-"),
            reach
        );
    }
    // What the unusual states mean and what to do about them, once each, after the table.
    let mut seen: Vec<State> = Vec::new();
    for s in all
        .iter()
        .filter(|s| !matches!(s.state, State::Running | State::Starting))
    {
        if !seen.contains(&s.state) {
            seen.push(s.state);
            let next = if s.state == State::Orphaned {
                "`wayback gc` removes it".to_string()
            } else {
                s.next.clone()
            };
            eprintln!("{}: {}; {next}", s.state.as_str(), s.state.meaning());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn status(cfg: &Config, name: &InstanceName, json: bool) -> Result<ExitCode> {
    let dir = match InstanceDir::open(cfg, name) {
        Ok(d) => d,
        Err(crate::state::StateError::NotFound { .. }) => {
            match crate::state::failed::find(cfg, name) {
                Some(f) => return failed_status(cfg, &f, json),
                None => {
                    return Err(crate::state::StateError::NotFound {
                        name: name.to_string(),
                    }
                    .into())
                }
            }
        }
        Err(e) => return Err(e.into()),
    };
    let mut s = InstanceStatus::of(&dir);
    // Also for an orphan: whether its container still runs is what the admin wants to know.
    s.running = dir
        .plan()
        .ok()
        .map(|p| live::processes(&p.container.machine, &dir.journal_path()));
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render(&s, &dir.log_path()));
    Ok(ExitCode::SUCCESS)
}

/// No instance runs under this name, but the logs of its last, failed start are kept.
fn failed_status(cfg: &Config, f: &crate::state::failed::Failed, json: bool) -> Result<ExitCode> {
    let when = wayback_core::civil::format_utc(f.when as i64);
    let next = format!(
        "`wayback logs {}` shows what happened; `wayback gc` removes the logs after {}",
        f.name, cfg.keep_failed_logs
    );
    if json {
        let v = serde_json::json!({
            "name": f.name, "state": "failed", "failed_at": f.when, "error": f.error, "next_step": next,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("name       {}", f.name);
        println!("state      failed: its start failed at {when} UTC; nothing of it runs");
        println!("error      {}", f.error);
        println!("next step  {next}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `status` as text: one `key  value` line each, lists indented below their key.
fn render(s: &InstanceStatus, log: &std::path::Path) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(o, "{}", format!("{k:<11}{v}").trim_end());
    };
    line("name", &s.name);
    line("state", &format!("{}: {}", s.state.as_str(), s.meaning));
    line("next", &s.next);
    line("profile", &opt(&s.profile));
    line("url", &opt(&s.url));
    for p in &s.publish {
        line("publish", p);
    }
    line("address", &opt(&s.address));
    line("source", &opt(&s.source));
    line("clone", &opt(&s.clone));
    line("ttl left", &opt(&s.ttl_left));
    if let Some(idle) = &s.idle {
        line("idle", &format!("removed after {idle} without a request"));
    }
    if s.url.is_some() {
        line("gate", &gate(&s.gate));
    }
    if let Some(m) = &s.masquerade {
        line("masquerade", &format!("the app sees {m}"));
    }
    if let Some(c) = &s.host_check {
        match &c.evidence {
            Some(e) => line("host check", &format!("the app {e}: {}", c.outcome)),
            None => line("host check", &c.outcome),
        }
    }
    line("log", &log.display().to_string());
    match (s.owner_pid, s.owner_daemon) {
        (Some(pid), true) => line("owner", &format!("the daemon (pid {pid})")),
        (Some(pid), false) => line("owner", &format!("wayback up (pid {pid})")),
        (None, _) => line("owner", "-"),
    }
    if !s.binds.is_empty() {
        line("binds", "");
    }
    for b in &s.binds {
        let mode = if b.readonly { "ro" } else { "rw" };
        let from = match &b.clone {
            Some(c) if c.resolved != c.path => format!(
                "{} of {} (resolved to {})",
                c.path.display(),
                c.root.display(),
                c.resolved.display()
            ),
            Some(c) => format!("{} of {}", c.path.display(), c.root.display()),
            None => b.source.display().to_string(),
        };
        let _ = writeln!(o, "  {} ({mode}) <- {from}", b.dest.display());
    }
    if !s.processes.is_empty() {
        let _ = writeln!(o, "processes");
    }
    for p in &s.processes {
        let kind = if p.hook { " (hook)" } else { "" };
        let _ = writeln!(o, "  {}{kind} as {}: {}", p.name, p.user, p.command);
    }
    if let Some(running) = &s.running {
        let _ = writeln!(o, "running");
        if running.is_empty() {
            let _ = writeln!(o, "  (no process found: the container is not running)");
        }
        for p in running {
            let _ = writeln!(o, "  {:>5} {:<10} {}", p.pid, p.user, p.command);
        }
    }
    o
}

fn gate(g: &GateSpec) -> String {
    if g.is_open() {
        return "open (anyone who reaches the proxy)".into();
    }
    let mut parts = Vec::new();
    if let Some(d) = g.share {
        parts.push(format!("one-time share link (valid {d})"));
    }
    if let Some(u) = &g.basic_auth_user {
        parts.push(format!("basic auth (user {u})"));
    }
    if !g.allow.is_empty() {
        let nets: Vec<String> = g.allow.iter().map(|n| n.to_string()).collect();
        parts.push(format!("only from {}", nets.join(", ")));
    }
    parts.join(" + ")
}
