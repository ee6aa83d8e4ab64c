//! What runs inside an instance's container now: every process in the PID namespace of its PID 1 (found as
//! `wayback exec` finds it), with its PID inside the container, its user and its command line.
//!
//! Reads /proc/*/ns/pid, /proc/*/status (NSpid, Uid) and /proc/*/cmdline; users are named from the host's
//! passwd (a host-mode container shares it), numerically when unknown.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::sys::nsenter;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveProcess {
    /// The PID inside the container (1: its init).
    pub pid: u32,
    /// The PID on the host.
    pub host_pid: u32,
    pub user: String,
    pub command: String,
}

/// The processes of the container of `machine` (empty when it does not run), by PID inside it.
pub fn processes(machine: &str, journal: &Path) -> Vec<LiveProcess> {
    let Ok(Some(init)) = nsenter::find(machine, journal) else {
        return Vec::new();
    };
    let Ok(ns) = fs::read_link(format!("/proc/{}/ns/pid", init.pid)) else {
        return Vec::new();
    };
    let mut out: Vec<LiveProcess> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs::read_link(format!("/proc/{pid}/ns/pid")).ok().as_ref() == Some(&ns))
        .filter_map(|host_pid| {
            let status = fs::read_to_string(format!("/proc/{host_pid}/status")).ok()?;
            let cmdline = fs::read(format!("/proc/{host_pid}/cmdline")).ok()?;
            describe(host_pid, &status, &cmdline)
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// One process from its status and cmdline texts; None for a zombie (empty command line).
fn describe(host_pid: u32, status: &str, cmdline: &[u8]) -> Option<LiveProcess> {
    let field = |name: &str| {
        status.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k == name).then(|| v.trim().to_string())
        })
    };
    let pid = field("NSpid")?.split_whitespace().last()?.parse().ok()?;
    let uid: u32 = field("Uid")?.split_whitespace().next()?.parse().ok()?;
    let command = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    if command.is_empty() {
        return None;
    }
    let user = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name);
    Some(LiveProcess {
        pid,
        host_pid,
        user,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_a_process_by_its_pid_inside() {
        let status = "Name:\tpostgres\nUid:\t0\t0\t0\t0\nNSpid:\t4242\t7\n";
        let p = describe(4242, status, b"postgres\0-D\0/var/lib/pg\0").unwrap();
        assert_eq!(
            p,
            LiveProcess {
                pid: 7,
                host_pid: 4242,
                user: "root".into(),
                command: "postgres -D /var/lib/pg".into()
            }
        );
        assert_eq!(describe(1, status, b""), None);
    }
}
