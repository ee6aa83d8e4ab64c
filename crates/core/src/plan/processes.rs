//! What runs in the instance: the profile's processes or `--exec` commands, with `--env`, checked against
//! the host's users and groups (host mode runs the host's software as the host's users, so an unknown one
//! would only fail inside the container), and how readiness is told.

use super::{Facts, PlanError, UpRequest};
use crate::profile::{Process, Ready};

/// The processes init starts, in order (none in boot mode).
pub(super) fn processes(req: &UpRequest, facts: &Facts) -> Result<Vec<Process>, PlanError> {
    if req.exec.is_empty() && req.user.is_some() {
        return Err(PlanError::UserWithoutExec);
    }
    if req.boot {
        return Ok(Vec::new());
    }
    let mut processes: Vec<Process> = if req.exec.is_empty() {
        req.profile.processes.clone()
    } else {
        if let Some(i) = req.exec.iter().position(|c| c.trim().is_empty()) {
            return Err(PlanError::EmptyExec(i + 1));
        }
        req.exec
            .iter()
            .enumerate()
            .map(|(i, cmd)| Process {
                name: format!("exec{}", i + 1),
                shell: Some(cmd.clone()),
                user: req.user.clone(),
                ..Process::default()
            })
            .collect()
    };
    if processes.is_empty() {
        return Err(PlanError::NothingToRun(req.profile.name.clone()));
    }
    for p in &mut processes {
        p.env.extend(req.env.clone());
        check_accounts(
            p,
            facts,
            req.software == Some(crate::drift::Software::Snapshot),
        )?;
    }
    Ok(processes)
}

/// The process's user and group must exist on the host (in the snapshot, with its own software).
fn check_accounts(p: &Process, facts: &Facts, snapshot: bool) -> Result<(), PlanError> {
    let unknown = |what: &'static str, name: &str| PlanError::UnknownSnapshotAccount {
        process: p.name.clone(),
        what,
        name: name.into(),
    };
    if let Some(u) = p
        .user
        .as_deref()
        .filter(|u| !facts.users.iter().any(|x| x == u))
    {
        if snapshot {
            return Err(unknown("user", u));
        }
        return Err(PlanError::UnknownUser {
            process: p.name.clone(),
            user: u.into(),
        });
    }
    if let Some(g) = p
        .group
        .as_deref()
        .filter(|g| !facts.groups.iter().any(|x| x == g))
    {
        if snapshot {
            return Err(unknown("group", g));
        }
        return Err(PlanError::UnknownGroup {
            process: p.name.clone(),
            group: g.into(),
        });
    }
    Ok(())
}

/// How `up` tells the instance is ready: the profile's check, else its HTTP port, else the last process's
/// own network check (a path check can only run inside the container), else the first publish.
pub(super) fn ready(
    req: &UpRequest,
    processes: &[Process],
    http_port: Option<u16>,
) -> Option<Ready> {
    req.profile
        .ready
        .clone()
        .or_else(|| http_port.map(Ready::tcp))
        .or_else(|| {
            processes
                .iter()
                .rev()
                .find_map(|p| p.ready.clone().filter(|r| r.path.is_none()))
        })
        .or_else(|| req.publish.first().map(|p| Ready::tcp(p.port)))
}
