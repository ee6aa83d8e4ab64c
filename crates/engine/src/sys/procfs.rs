//! The one reader of `/proc/PID/stat` (a process's identity: PID plus start time; its parent; the children
//! of a process) and the liveness rule built on it: a process is gone only when the kernel says so (`kill(pid, 0)` fails with ESRCH, or its stat shows a
//! zombie or another start time). A failed *read* of /proc — no file descriptor left, say — is never taken
//! for "gone": callers get `Unknown` and keep what is running.
//!
//! Syscalls: kill(2) with signal 0; reads /proc/PID/stat.

use std::io;

use nix::sys::signal::kill;
use nix::unistd::Pid;

/// What is known about a recorded process (PID + start time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// It runs (the PID exists with the recorded start time).
    Alive,
    /// It is gone: no such PID, a zombie, or the PID now belongs to another process.
    Gone,
    /// It could not be told (reading /proc failed); treat as alive.
    Unknown(String),
}

/// Field 22 of /proc/PID/stat (start time in clock ticks since boot). `Ok(None)`: no such process, or a
/// zombie (dead, waiting to be reaped by a parent that may never do so). `Err`: /proc could not be read.
pub fn start_time(pid: i32) -> io::Result<Option<u64>> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(parse_start_time(&stat))
}

/// The fields of /proc/PID/stat text after the command name, starting with the state (field 3). The
/// command name (field 2) may contain spaces and parentheses: split after the last ')'.
fn fields(stat: &str) -> Option<std::str::Split<'_, char>> {
    Some(stat.get(stat.rfind(')')? + 2..)?.split(' '))
}

/// The parent PID (field 4) from the text of a /proc/PID/stat file.
pub fn parse_ppid(stat: &str) -> Option<i32> {
    fields(stat)?.nth(1)?.parse().ok()
}

/// The PIDs whose parent is `parent` (none when /proc cannot be read).
pub fn children(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            parse_ppid(&stat) == Some(parent)
        })
        .collect()
}

/// The start time from the text of a /proc/PID/stat file; `None` for a zombie or malformed text.
fn parse_start_time(stat: &str) -> Option<u64> {
    let mut fields = fields(stat)?;
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Whether the process `pid` that started at `start_time` still runs.
pub fn liveness(pid: i32, start_time_ticks: u64) -> Liveness {
    match kill(Pid::from_raw(pid), None) {
        Err(nix::Error::ESRCH) => return Liveness::Gone,
        Err(nix::Error::EPERM) | Ok(()) => {}
        Err(e) => return Liveness::Unknown(format!("kill({pid}, 0): {e}")),
    }
    match start_time(pid) {
        Ok(Some(t)) if t == start_time_ticks => Liveness::Alive,
        Ok(_) => Liveness::Gone,
        Err(e) => Liveness::Unknown(format!("reading /proc/{pid}/stat: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_zombies() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 777 1000 10";
        assert_eq!(parse_start_time(line), Some(777));
        let zombie = "42 (x) Z 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 777 1000 10";
        assert_eq!(parse_start_time(zombie), None);
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn self_is_alive_and_others_are_not_mistaken_for_it() {
        let me = std::process::id() as i32;
        let t = start_time(me).unwrap().unwrap();
        assert_eq!(liveness(me, t), Liveness::Alive);
        assert_eq!(liveness(me, t + 1), Liveness::Gone);
        assert_eq!(start_time(i32::MAX).unwrap(), None);
    }
}
