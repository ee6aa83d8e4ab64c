//! `wayback ls` and `wayback status`: what instances exist, the state each is in and the next step for it,
//! where to reach them, time left; `status` adds the binds (and where in the snapshot each comes from), the
//! processes and their users (planned, and running inside the container), the masquerade host and the
//! access gate. `--json` carries the same fields (the engine's [`InstanceStatus`]).

use std::process::ExitCode;

use anyhow::Result;
use wayback_core::plan::GateSpec;
use wayback_core::{Config, InstanceName};
use wayback_engine::status::{self, Found, InstanceStatus, State};

pub fn ls(cfg: &Config, json: bool) -> Result<ExitCode> {
    let (all, warnings) = status::list(cfg);
    for w in warnings {
        eprintln!("wayback: {w}");
    }
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
            ttl_column(s),
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
    let (s, log) = match status::lookup(cfg, name)? {
        Found::Instance { status, log } => (status, log),
        Found::Failed(f) => return failed_status(cfg, &f, json),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render(&s, &log));
    Ok(ExitCode::SUCCESS)
}

/// No instance runs under this name, but the logs of its last, failed start are kept.
fn failed_status(
    cfg: &Config,
    f: &wayback_engine::state::failed::Failed,
    json: bool,
) -> Result<ExitCode> {
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
    if s.kept {
        line("kept", &kept(s));
    }
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

/// `ls`'s TTL column: time left, or `kept` while `wayback keep` suspends expiry.
fn ttl_column(s: &InstanceStatus) -> &str {
    if s.kept {
        return "kept";
    }
    s.ttl_left.as_deref().unwrap_or("-")
}

fn kept(s: &InstanceStatus) -> String {
    match s.kept_until {
        Some(u) => format!(
            "no TTL or idle expiry until {} UTC (`wayback keep {} --off` ends it)",
            wayback_core::civil::format_utc(u as i64),
            s.name
        ),
        None => format!(
            "no TTL or idle expiry until `wayback keep {} --off`",
            s.name
        ),
    }
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
        let nets: Vec<String> = g
            .allow
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        parts.push(format!("only from {}", nets.join(", ")));
    }
    parts.join(" + ")
}
