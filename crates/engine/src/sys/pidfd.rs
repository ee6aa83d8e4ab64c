//! Process file descriptors: wait for a process to exit without polling /proc. A pidfd holds one process
//! (never a later one that reuses its PID), becomes readable the moment that process exits (also when it
//! is a zombie nobody has reaped yet), and signals sent through it cannot reach another process. The stop
//! paths in [`crate::sys::nspawn`] use it to wake on the exit itself instead of sleeping in steps.
//!
//! Syscalls: pidfd_open(2), pidfd_send_signal(2), poll(2).

use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use crate::sys::procfs;

/// An open pidfd and the PID it was opened for.
#[derive(Debug)]
pub struct Pidfd {
    pub pid: i32,
    fd: OwnedFd,
}

impl Pidfd {
    /// Open a pidfd on `pid`. `Ok(None)`: no such process. When `start_time` is given, the process must
    /// still have it once the pidfd is open (so the pidfd holds the recorded process, not a successor
    /// that took its PID); otherwise it counts as gone too.
    pub fn open(pid: i32, start_time: Option<u64>) -> io::Result<Option<Pidfd>> {
        // SAFETY: pidfd_open takes a PID and flags and returns a new file descriptor or -1; no memory is
        // passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ESRCH) => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: `fd` is a descriptor the kernel just returned to us; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let pidfd = Pidfd { pid, fd };
        if let Some(want) = start_time {
            // Read after the open: if the PID still shows the recorded start time now, the pidfd is on
            // that process. A zombie (None) has exited already.
            match procfs::start_time(pid)? {
                Some(t) if t == want => {}
                _ => return Ok(None),
            }
        }
        Ok(Some(pidfd))
    }

    /// Send `sig` to exactly this process; one that has exited already is not an error.
    pub fn signal(&self, sig: Signal) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal takes our open pidfd, a signal number, a null siginfo (the kernel then
        // fills one as kill(2) would) and flags 0; no memory is shared.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether the process has exited (without waiting).
    pub fn exited(&self) -> bool {
        wait_all(&[self], Duration::ZERO).is_empty()
    }
}

/// Wait until every process in `fds` has exited or `timeout` passed; returns the indices of those still
/// running (empty: all exited).
pub fn wait_all(fds: &[&Pidfd], timeout: Duration) -> Vec<usize> {
    let start = Instant::now();
    let mut running: Vec<usize> = (0..fds.len()).collect();
    loop {
        let mut polls: Vec<PollFd> = running
            .iter()
            .map(|&i| PollFd::new(fds[i].fd.as_fd(), PollFlags::POLLIN))
            .collect();
        let left = timeout.saturating_sub(start.elapsed());
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        match poll(&mut polls, ms) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            // poll on our own valid descriptors does not fail otherwise; keep the caller's timeout.
            Err(_) => std::thread::sleep(left.min(Duration::from_millis(10))),
        }
        let exited: Vec<bool> = polls
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        running = running
            .into_iter()
            .zip(exited)
            .filter_map(|(i, done)| (!done).then_some(i))
            .collect();
        if running.is_empty() || start.elapsed() >= timeout {
            return running;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_on_exit_and_refuses_another_start_time() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let t = procfs::start_time(pid).unwrap().unwrap();
        assert!(Pidfd::open(pid, Some(t + 1)).unwrap().is_none());
        let fd = Pidfd::open(pid, Some(t)).unwrap().unwrap();
        assert!(!fd.exited());
        assert_eq!(wait_all(&[&fd], Duration::ZERO), vec![0]);
        fd.signal(Signal::SIGTERM).unwrap();
        assert!(wait_all(&[&fd], Duration::from_secs(10)).is_empty());
        child.wait().unwrap();
        // Signalling a process that is gone is not an error.
        fd.signal(Signal::SIGTERM).unwrap();
    }
}
