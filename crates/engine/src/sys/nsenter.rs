//! Entering a running container from the host: find its PID 1, read how it is confined, join its namespaces.
//!
//! - [`find`]: the container's PID 1 is the child of the instance's own systemd-nspawn process — the one the
//!   journal recorded (PID and start time), else one found by its `--machine=` argument in the host's PID
//!   namespace (a process inside a container can name itself anything, but cannot be the host-side nspawn's
//!   child or live in the host's PID namespace). Its PID, parent and start time are checked again after a
//!   pidfd is opened on it, so a PID reused meanwhile is never entered.
//! - [`Confinement`]: its capability sets (bounding, effective, permitted, inheritable) and
//!   no-new-privileges, from `/proc/PID/status`: what nspawn gave the container, which a process entering
//!   it must not exceed. [`Confinement::apply`] makes the calling process equal to it.
//! - [`Target::enter`]: one `setns(2)` on the pidfd for the mount, network, PID, UTS, IPC and cgroup
//!   namespaces together. The PID namespace applies to children: the caller forks next. Only in a
//!   single-threaded process (checked), which `wayback exec` is: it runs before any async runtime starts.
//!
//! Syscalls: pidfd_open, setns, unshare(CLONE_FS), prctl(PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS), capset,
//! seccomp;
//! reads /proc/PID/{stat,status,cmdline,task/*/children,ns/pid}.

use std::collections::HashSet;
use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use caps::{CapSet, Capability, CapsHashSet};
use nix::sched::{setns, unshare, CloneFlags};
use wayback_core::journal::{self, Resource};

use crate::sys::procfs;

/// How long a container may take from nspawn's start to its init.
const SETUP_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    #[error("cannot read {path}: {source}")]
    Proc {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} does not say {field}")]
    Field { path: String, field: &'static str },
    #[error("cannot open a pidfd on the container's init (pid {pid}): {source}")]
    Pidfd { pid: i32, source: nix::Error },
    #[error(
        "the container is still being set up by systemd-nspawn (pid {pid}); try again in a moment"
    )]
    Setup { pid: i32 },
    #[error("the container's init (pid {pid}) ended while wayback was entering it")]
    Gone { pid: i32 },
    #[error("cannot join the container's namespaces (pid {pid}): {source}")]
    Setns { pid: i32, source: nix::Error },
    #[error("wayback must be single-threaded to enter a container's mount namespace ({threads} threads)")]
    Threads { threads: String },
    #[error("cannot take on the container's confinement ({step}): {why}")]
    Confine { step: &'static str, why: String },
}

/// The capabilities and no-new-privileges flag of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confinement {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub no_new_privs: bool,
    /// The process runs under a system-call filter (systemd-nspawn's); see [`crate::sys::seccomp`].
    pub seccomp: bool,
}

/// A container's PID 1, held by a pidfd.
#[derive(Debug)]
pub struct Target {
    pub pid: i32,
    pub confinement: Confinement,
    pidfd: OwnedFd,
}

/// The running container of `machine` whose nspawn the journal at `journal_path` recorded (or, failing
/// that, the nspawn found by its `--machine=` argument). `Ok(None)`: not running.
pub fn find(machine: &str, journal_path: &Path) -> Result<Option<Target>, EnterError> {
    let recorded: Vec<(i32, u64)> = journal::read(journal_path)
        .unwrap_or_default()
        .into_iter()
        .rev()
        .filter_map(|e| match e.resource {
            Resource::Process {
                pid,
                start_time,
                what,
            } if what == "systemd-nspawn" => Some((pid, start_time)),
            _ => None,
        })
        .collect();
    let nspawn = recorded
        .into_iter()
        .find(|(pid, t)| procfs::liveness(*pid, *t) == procfs::Liveness::Alive)
        .or_else(|| by_machine(machine));
    let Some((nspawn, _)) = nspawn else {
        return Ok(None);
    };
    // Right after the start, PID 1 may still be nspawn's own child setting the container up (mounts half
    // made): wait until it has executed the container's init.
    let deadline = Instant::now() + SETUP_WAIT;
    loop {
        match init_of(nspawn) {
            Some(pid) if !same_file(pid, nspawn) => return Target::open(pid, nspawn).map(Some),
            Some(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Some(pid) => return Err(EnterError::Setup { pid }),
            None => return Ok(None),
        }
    }
}

/// Whether two processes run the same executable (device and inode of /proc/PID/exe).
fn same_file(a: i32, b: i32) -> bool {
    let id = |pid| fs::metadata(format!("/proc/{pid}/exe")).map(|m| (m.dev(), m.ino()));
    matches!((id(a), id(b)), (Ok(x), Ok(y)) if x == y)
}

/// A systemd-nspawn with `--machine=<machine>` in this (the host's) PID namespace.
fn by_machine(machine: &str) -> Option<(i32, u64)> {
    let own = fs::read_link("/proc/self/ns/pid").ok()?;
    crate::sys::nspawn::find(machine)
        .into_iter()
        .filter(|pid| fs::read_link(format!("/proc/{pid}/ns/pid")).ok().as_ref() == Some(&own))
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let a0 = c.split(|b| *b == 0).next().unwrap_or_default();
                a0.ends_with(b"systemd-nspawn")
            })
        })
        .find_map(|pid| Some((pid, procfs::start_time(pid).ok()??)))
}

/// The child of `nspawn` that is PID 1 of its own PID namespace.
fn init_of(nspawn: i32) -> Option<i32> {
    let tasks = fs::read_dir(format!("/proc/{nspawn}/task")).ok()?;
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .find(|pid| {
            fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| field(&s, "NSpid").map(|v| v.split_whitespace().last() == Some("1")))
                .unwrap_or(false)
        })
}

impl Target {
    /// Open a pidfd on `pid`, then check it is still `parent`'s child (so the pidfd holds that process,
    /// not one that took over its PID) and read its confinement.
    fn open(pid: i32, parent: i32) -> Result<Target, EnterError> {
        // SAFETY: pidfd_open takes a PID and flags and returns a new file descriptor or -1; no memory is
        // passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(EnterError::Pidfd {
                pid,
                source: nix::Error::last(),
            });
        }
        // SAFETY: `fd` is a descriptor the kernel just returned to us; nothing else owns it.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let stat_path = format!("/proc/{pid}/stat");
        let stat = fs::read_to_string(&stat_path).map_err(|_| EnterError::Gone { pid })?;
        if procfs::parse_ppid(&stat) != Some(parent) {
            return Err(EnterError::Gone { pid });
        }
        let start_time = procfs::start_time(pid)
            .ok()
            .flatten()
            .ok_or(EnterError::Gone { pid })?;
        let status_path = format!("/proc/{pid}/status");
        let status = fs::read_to_string(&status_path).map_err(|source| EnterError::Proc {
            path: status_path.clone(),
            source,
        })?;
        let confinement = Confinement::parse(&status, &status_path)?;
        // The status read above belongs to the pidfd's process only if it still runs under that PID.
        if procfs::liveness(pid, start_time) != procfs::Liveness::Alive {
            return Err(EnterError::Gone { pid });
        }
        Ok(Target {
            pid,
            confinement,
            pidfd,
        })
    }

    /// Join the container's namespaces. The caller's children are born in its PID namespace.
    pub fn enter(&self) -> Result<(), EnterError> {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let threads = field(&status, "Threads").unwrap_or("?").trim().to_string();
        if threads != "1" {
            return Err(EnterError::Threads { threads });
        }
        // A mount namespace can only be joined by a process that shares its root and cwd with nobody.
        unshare(CloneFlags::CLONE_FS).map_err(|source| EnterError::Setns {
            pid: self.pid,
            source,
        })?;
        let mut all = CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWCGROUP;
        // A booted container runs in a user namespace of its own: its root is root only there.
        let ns = |p: String| fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        if ns(format!("/proc/{}/ns/user", self.pid)).ok() != ns("/proc/self/ns/user".into()).ok() {
            all |= CloneFlags::CLONE_NEWUSER;
        }
        setns(&self.pidfd, all).map_err(|source| match source {
            nix::Error::ESRCH => EnterError::Gone { pid: self.pid },
            source => EnterError::Setns {
                pid: self.pid,
                source,
            },
        })
    }
}

impl Confinement {
    /// From the text of /proc/PID/status.
    pub fn parse(status: &str, path: &str) -> Result<Confinement, EnterError> {
        let set = |name: &'static str| -> Result<CapsHashSet, EnterError> {
            let hex = field(status, name).ok_or(EnterError::Field {
                path: path.into(),
                field: name,
            })?;
            let mask = u64::from_str_radix(hex.trim(), 16).map_err(|_| EnterError::Field {
                path: path.into(),
                field: name,
            })?;
            Ok(from_mask(mask))
        };
        Ok(Confinement {
            bounding: set("CapBnd")?,
            effective: set("CapEff")?,
            permitted: set("CapPrm")?,
            inheritable: set("CapInh")?,
            no_new_privs: field(status, "NoNewPrivs").is_some_and(|v| v.trim() == "1"),
            seccomp: field(status, "Seccomp").is_some_and(|v| v.trim() == "2"),
        })
    }

    /// Take on this confinement (the calling thread; call it in the forked child): capabilities outside
    /// the bounding set dropped for good, effective/permitted/inheritable set, no-new-privileges set, and
    /// when the container runs under a system-call filter, wayback's equivalent of it (`filter`). The
    /// identity may change afterwards (setuid to a user clears the effective and permitted sets, as it did
    /// for the container's own processes).
    pub fn apply(&self, filter: &seccompiler::BpfProgram) -> Result<(), EnterError> {
        let err = |step| {
            move |e: caps::errors::CapsError| EnterError::Confine {
                step,
                why: e.to_string(),
            }
        };
        let supported = caps::runtime::thread_all_supported();
        for cap in supported.iter().filter(|c| !self.bounding.contains(c)) {
            caps::drop(None, CapSet::Bounding, *cap).map_err(err("bounding set"))?;
        }
        caps::clear(None, CapSet::Ambient).map_err(err("ambient set"))?;
        // Inheritable first (still allowed from the full permitted set), then effective before permitted:
        // the effective set must stay within the permitted one at every step.
        caps::set(None, CapSet::Inheritable, &self.inheritable).map_err(err("inheritable set"))?;
        caps::set(None, CapSet::Effective, &self.effective).map_err(err("effective set"))?;
        caps::set(None, CapSet::Permitted, &self.permitted).map_err(err("permitted set"))?;
        if self.no_new_privs {
            nix::sys::prctl::set_no_new_privs().map_err(|e| EnterError::Confine {
                step: "no-new-privileges",
                why: e.to_string(),
            })?;
        }
        if self.seccomp {
            crate::sys::seccomp::install(filter).map_err(|e| EnterError::Confine {
                step: "system-call filter",
                why: e.to_string(),
            })?;
        }
        Ok(())
    }
}

fn from_mask(mask: u64) -> CapsHashSet {
    caps::all()
        .into_iter()
        .filter(|c: &Capability| mask & c.bitmask() != 0)
        .collect::<HashSet<_>>()
}

/// The value of `name:` in a /proc status file.
fn field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == name).then_some(v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\twayback\nNSpid:\t12077\t1\nCapInh:\t00000000000424fb\n\
        CapPrm:\t00000000000424fb\nCapEff:\t00000000000424fb\nCapBnd:\t00000000000424fb\n\
        CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n";

    #[test]
    fn reads_the_confinement_of_a_host_mode_container() {
        let c = Confinement::parse(STATUS, "/proc/1/status").unwrap();
        assert!(c.no_new_privs && c.seccomp);
        assert!(c.bounding.contains(&Capability::CAP_SETUID));
        assert!(c.effective.contains(&Capability::CAP_NET_BIND_SERVICE));
        for cap in wayback_core::nspawn::HOST_MODE_DROPPED {
            assert!(
                !c.bounding.iter().any(|b| b.to_string() == *cap),
                "{cap} should be missing from {:?}",
                c.bounding
            );
        }
        assert_eq!(field(STATUS, "NSpid"), Some("12077\t1"));
        let missing = Confinement::parse("Name:\tx\n", "/proc/2/status").unwrap_err();
        assert_eq!(missing.to_string(), "/proc/2/status does not say CapBnd");
    }

    #[test]
    fn parent_pid_of_names_with_spaces() {
        assert_eq!(procfs::parse_ppid("42 (a (b) c) S 7 42 42 0"), Some(7));
        assert_eq!(procfs::parse_ppid("garbage"), None);
    }
}
