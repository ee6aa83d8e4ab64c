//! The systemd-nspawn process of an instance: launch it (own process group, output to the instance log),
//! find it again by its `--machine=` argument (after a crash we have no PID) or its init by its command line
//! (`/.wayback-init __init SPEC MACHINE`, possibly through the host's loader), and stop it: SIGTERM, which
//! nspawn forwards to wayback's init (`--kill-signal=SIGTERM`) for an orderly stop, then SIGKILL.
//!
//! Tools: systemd-nspawn. Syscalls: kill(2); reads /proc/*/cmdline.

use std::fs::{self, File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::sys::pidfd::{self, Pidfd};
use crate::sys::procfs::{self, Liveness};

#[derive(Debug, thiserror::Error)]
pub enum NspawnError {
    #[error("cannot open container log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start systemd-nspawn: {source} (is the systemd-container package installed?)")]
    Spawn { source: std::io::Error },
    #[error("cannot signal container {machine} (pid {pid}): {source}")]
    Signal {
        machine: String,
        pid: i32,
        source: nix::Error,
    },
    #[error("container {machine} (pid {pid}) did not exit after SIGKILL")]
    Stuck { machine: String, pid: i32 },
    #[error("cannot tell whether {what} still runs ({why}); run `wayback gc` again once the host has file descriptors to spare")]
    Unknown { what: String, why: String },
}

/// Start nspawn with `argv` (program first), stdin from /dev/null, stdout+stderr appended to `log`, in the
/// cgroups `cgroups` (directories that exist) when given.
pub fn launch(argv: &[String], log: &Path, cgroups: &[PathBuf]) -> Result<Child, NspawnError> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|source| NspawnError::Log {
            path: log.into(),
            source,
        })?;
    let err = out.try_clone().map_err(|source| NspawnError::Log {
        path: log.into(),
        source,
    })?;
    let procs: Vec<std::ffi::CString> = cgroups
        .iter()
        .filter_map(|c| {
            std::ffi::CString::new(c.join("cgroup.procs").as_os_str().as_encoded_bytes()).ok()
        })
        .collect();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Own process group: a Ctrl-C on the terminal reaches `up`, which then stops the container in order.
        .process_group(0);
    if !procs.is_empty() {
        // SAFETY: runs in the forked child before exec; only open/write/close on C strings prepared before
        // the fork (no allocation). Writing "0" to cgroup.procs moves the writing process itself.
        unsafe {
            cmd.pre_exec(move || {
                for p in &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if n != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    cmd.spawn().map_err(|source| NspawnError::Spawn { source })
}

/// PIDs of systemd-nspawn processes started with `--machine=<machine>`, and of that container's init (its
/// command line ends with the machine name) — which outlives a killed nspawn.
pub fn find(machine: &str) -> Vec<i32> {
    find_in(Path::new("/proc"), machine)
}

fn find_in(proc_root: &Path, machine: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = fs::read_dir(proc_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| matches(proc_root, *pid, machine))
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether `pid` is an nspawn process of `machine` or that container's init.
fn matches(proc_root: &Path, pid: i32, machine: &str) -> bool {
    let want = format!("--machine={machine}");
    let Ok(cmdline) = fs::read(proc_root.join(pid.to_string()).join("cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    let Some(a0) = args.first() else { return false };
    let is_nspawn = *a0 == b"systemd-nspawn" || a0.ends_with(b"/systemd-nspawn");
    // Exec'd directly, or through the host's loader (`--software snapshot`).
    let is_init = wayback_core::nspawn::is_init_command(&args);
    (is_nspawn && args.contains(&want.as_bytes()))
        || (is_init && args.last() == Some(&machine.as_bytes()))
}

/// The running container as the process hosting it watches it: its own child (the exit status comes from
/// waitpid), or one adopted after a restart (PID and start time). Only a real exit status or a definite "no
/// such process" counts as exited; a failed /proc read (no file descriptor left, say) is `Unknown`.
#[derive(Debug)]
pub enum Watch {
    Child(Child),
    Adopted { pid: i32, start_time: u64 },
}

impl Watch {
    /// Watch the running nspawn of `machine` (found by its command line). None if none runs.
    pub fn adopt(machine: &str) -> Option<Watch> {
        find(machine).into_iter().find_map(|pid| {
            let start_time = procfs::start_time(pid).ok()??;
            Some(Watch::Adopted { pid, start_time })
        })
    }

    pub fn check(&mut self) -> Liveness {
        match self {
            Watch::Child(c) => match c.try_wait() {
                Ok(None) => Liveness::Alive,
                Ok(Some(_)) => Liveness::Gone,
                Err(e) => Liveness::Unknown(format!("waitpid({}): {e}", c.id())),
            },
            Watch::Adopted { pid, start_time } => procfs::liveness(*pid, *start_time),
        }
    }
}

/// Stop one process we started (`pid` with this `start_time`): SIGTERM, then SIGKILL after `grace`.
/// Gone already (or the PID now belongs to another process): Ok. The wait is on a pidfd, so it ends the
/// moment the process exits. Without a pidfd (none left, /proc unreadable) it falls back to polling, and
/// while /proc cannot be read the process is not signalled (it might not be ours); if that lasts past the
/// grace period, the stop fails rather than guessing.
pub fn stop_pid(pid: i32, start_time: u64, grace: Duration) -> Result<(), NspawnError> {
    let result = match Pidfd::open(pid, Some(start_time)) {
        Ok(None) => Ok(()),
        Ok(Some(fd)) => stop_fds(&format!("pid {pid}"), &[fd], grace),
        Err(e) => {
            tracing::debug!("pidfd of {pid}: {e}; polling instead");
            stop_pid_polling(pid, start_time, grace)
        }
    };
    reap(&[pid]);
    result
}

/// SIGTERM each process (repeated every second: one forwarded to a container's init before it is ready
/// for it is lost), SIGKILL what still runs after `grace`; every wait wakes on the exits themselves.
fn stop_fds(what: &str, fds: &[Pidfd], grace: Duration) -> Result<(), NspawnError> {
    let start = Instant::now();
    let mut live: Vec<&Pidfd> = fds.iter().collect();
    let send = |fd: &Pidfd, sig| {
        fd.signal(sig).map_err(|e| NspawnError::Signal {
            machine: what.into(),
            pid: fd.pid,
            source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })
    };
    while !live.is_empty() && start.elapsed() < grace {
        for fd in &live {
            send(fd, Signal::SIGTERM)?;
        }
        let step = Duration::from_secs(1).min(grace.saturating_sub(start.elapsed()));
        live = pidfd::wait_all(&live, step)
            .into_iter()
            .map(|i| live[i])
            .collect();
    }
    if live.is_empty() {
        return Ok(());
    }
    for fd in &live {
        send(fd, Signal::SIGKILL)?;
    }
    match pidfd::wait_all(&live, Duration::from_secs(10)).first() {
        None => Ok(()),
        Some(&i) => Err(NspawnError::Stuck {
            machine: what.into(),
            pid: live[i].pid,
        }),
    }
}

/// [`stop_pid`] without a pidfd: look every 20 ms.
fn stop_pid_polling(pid: i32, start_time: u64, grace: Duration) -> Result<(), NspawnError> {
    let what = format!("pid {pid}");
    let start = Instant::now();
    let mut last_term: Option<Instant> = None;
    loop {
        match procfs::liveness(pid, start_time) {
            Liveness::Gone => return Ok(()),
            Liveness::Unknown(why) if start.elapsed() >= grace => {
                return Err(NspawnError::Unknown { what, why })
            }
            Liveness::Unknown(_) => {}
            Liveness::Alive if start.elapsed() >= grace => {
                signal(&what, pid, Signal::SIGKILL)?;
                std::thread::sleep(Duration::from_millis(50));
                reap(&[pid]);
                if start.elapsed() >= grace + Duration::from_secs(10) {
                    return Err(NspawnError::Stuck { machine: what, pid });
                }
                continue;
            }
            // Repeated: a SIGTERM forwarded to the container's init before it is ready for it is lost.
            Liveness::Alive if last_term.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) => {
                signal(&what, pid, Signal::SIGTERM)?;
                last_term = Some(Instant::now());
            }
            Liveness::Alive => {}
        }
        reap(&[pid]);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stop every nspawn process of `machine` (and an init it left behind): SIGTERM, repeated every second,
/// then SIGKILL after `grace`. None running: Ok. Each process found is held by a pidfd (opened, then its
/// command line checked again, so a PID reused in between is never signalled) and waited for on it; /proc
/// is searched again only after those have exited, for any that appeared meanwhile.
pub fn stop(machine: &str, grace: Duration) -> Result<(), NspawnError> {
    let start = Instant::now();
    let mut seen: Vec<i32> = Vec::new();
    loop {
        let pids = find(machine);
        if pids.is_empty() {
            return Ok(());
        }
        let mut fds = Vec::new();
        for pid in pids {
            match Pidfd::open(pid, None) {
                Ok(Some(fd)) if matches(Path::new("/proc"), pid, machine) => fds.push(fd),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("pidfd of {pid}: {e}; polling instead");
                    return stop_polling(machine, grace.saturating_sub(start.elapsed()), &mut seen);
                }
            }
            seen.push(pid);
        }
        if fds.is_empty() {
            // Every one found was gone (or another process) by the time it was opened: look again soon.
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = grace.saturating_sub(start.elapsed());
        let stopped = stop_fds(machine, &fds, left);
        reap(&seen);
        stopped?;
        if start.elapsed() >= grace + Duration::from_secs(10) {
            return Err(NspawnError::Stuck {
                machine: machine.into(),
                pid: find(machine).first().copied().unwrap_or(0),
            });
        }
    }
}

/// [`stop`] without pidfds: search /proc every 20 ms.
fn stop_polling(machine: &str, grace: Duration, seen: &mut Vec<i32>) -> Result<(), NspawnError> {
    let start = Instant::now();
    while start.elapsed() < grace {
        let pids = find(machine);
        if pids.is_empty() {
            return Ok(());
        }
        for pid in &pids {
            signal(machine, *pid, Signal::SIGTERM)?;
        }
        if wait_gone(machine, Duration::from_secs(1), seen) {
            return Ok(());
        }
    }
    for pid in find(machine) {
        signal(machine, pid, Signal::SIGKILL)?;
    }
    if wait_gone(machine, Duration::from_secs(10), seen) {
        Ok(())
    } else {
        Err(NspawnError::Stuck {
            machine: machine.into(),
            pid: find(machine).first().copied().unwrap_or(0),
        })
    }
}

fn signal(machine: &str, pid: i32, sig: Signal) -> Result<(), NspawnError> {
    match kill(Pid::from_raw(pid), sig) {
        Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
        Err(source) => Err(NspawnError::Signal {
            machine: machine.into(),
            pid,
            source,
        }),
    }
}

/// Wait until no nspawn of `machine` runs. Reaps those of them that are our children on the way (a zombie
/// has a cmdline of zero length, so it no longer matches); `seen` collects their PIDs across calls.
fn wait_gone(machine: &str, timeout: Duration, seen: &mut Vec<i32>) -> bool {
    let start = Instant::now();
    loop {
        reap(seen);
        let pids = find(machine);
        if pids.is_empty() {
            return true;
        }
        for p in pids {
            if !seen.contains(&p) {
                seen.push(p);
            }
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Collect these processes if they are exited children of this process, so they do not linger as zombies.
/// Never `waitpid(-1)`: that would also collect children other threads wait for (the `nft` and `wayback
/// exec` of other instances in the same process), whose waits then fail with ECHILD.
fn reap(pids: &[i32]) {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    for pid in pids {
        let _ = waitpid(nix::unistd::Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG));
    }
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(log) else {
        return String::new();
    };
    use std::io::{Read, Seek, SeekFrom};
    let len = f.metadata().map_or(0, |m| m.len());
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut buf = String::new();
    let _ = f.read_to_string(&mut buf);
    let all: Vec<&str> = buf.lines().filter(|l| !is_noise(l)).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// nspawn prints this on every exit on hosts without systemd as PID 1; it means nothing.
fn is_noise(line: &str) -> bool {
    line.contains("Attempted to remove disk file system under \"/run/systemd/nspawn/propagate")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_machine_argument_only() {
        let root = tempfile::tempdir().unwrap();
        let mk = |pid: &str, args: &[&str]| {
            let d = root.path().join(pid);
            fs::create_dir(&d).unwrap();
            fs::write(d.join("cmdline"), args.join("\0") + "\0").unwrap();
        };
        mk("10", &["systemd-nspawn", "--quiet", "--machine=wb-a"]);
        mk("11", &["/usr/bin/systemd-nspawn", "--machine=wb-a"]);
        mk("12", &["systemd-nspawn", "--machine=wb-ab"]);
        mk("13", &["bash", "-c", "--machine=wb-a"]);
        mk("self", &["x"]);
        mk(
            "14",
            &["/.wayback-init", "__init", "/.wayback-spec.json", "wb-a"],
        );
        mk(
            "15",
            &[
                "/.wayback-host/ld-linux-x86-64.so.2",
                "--library-path",
                "/.wayback-host",
                "/.wayback-init",
                "__init",
                "/.wayback-spec.json",
                "wb-a",
            ],
        );
        mk("16", &["/bin/sh", "/.wayback-init", "__init", "x", "wb-a"]);
        assert_eq!(find_in(root.path(), "wb-a"), vec![10, 11, 14, 15]);
        assert!(find_in(root.path(), "wb-zz").is_empty());
    }
}
