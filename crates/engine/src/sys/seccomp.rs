//! The system calls a process entering a container is refused, as systemd-nspawn's filter refuses them to
//! the container's own processes.
//!
//! nspawn installs an allow-list filter in the container; the kernel gives no way to copy another running
//! process's filter without stopping it (PTRACE_SECCOMP_GET_FILTER), which would interrupt the container's
//! init. So `wayback exec` installs this deny-list instead: every call nspawn's filter was measured to refuse
//! (EPERM) in a host-mode container that its capabilities would not refuse anyway — above all the kernel
//! keyrings, which are not namespaced (root's keyring is the host root's), and ptrace of the container's
//! processes, BPF, perf events, time setting, module and kexec loading, swap, quota, accounting.
//!
//! Syscalls: seccomp(SECCOMP_SET_MODE_FILTER); the BPF program is built by `seccompiler`.

use std::collections::BTreeMap;

use caps::{Capability, CapsHashSet};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

/// Refused with EPERM, like nspawn does — unless the container keeps the capability named, for which
/// nspawn's filter allows the call too (a booted container keeps CAP_SYS_PTRACE, say).
const DENIED: &[(libc::c_long, Option<Capability>)] = &[
    (libc::SYS_add_key, None),
    (libc::SYS_keyctl, None),
    (libc::SYS_request_key, None),
    (libc::SYS_ptrace, Some(Capability::CAP_SYS_PTRACE)),
    (libc::SYS_pidfd_getfd, Some(Capability::CAP_SYS_PTRACE)),
    (libc::SYS_bpf, None),
    (libc::SYS_perf_event_open, None),
    (libc::SYS_memfd_secret, None),
    (libc::SYS_pkey_alloc, None),
    (libc::SYS_landlock_create_ruleset, None),
    (libc::SYS_lookup_dcookie, None),
    (libc::SYS_quotactl, None),
    (libc::SYS_acct, None),
    (libc::SYS_syslog, None),
    (libc::SYS_vhangup, None),
    (libc::SYS_swapon, None),
    (libc::SYS_swapoff, None),
    (libc::SYS_reboot, None),
    (libc::SYS_kexec_load, None),
    (libc::SYS_kexec_file_load, None),
    (libc::SYS_init_module, Some(Capability::CAP_SYS_MODULE)),
    (libc::SYS_finit_module, Some(Capability::CAP_SYS_MODULE)),
    (libc::SYS_delete_module, Some(Capability::CAP_SYS_MODULE)),
    (libc::SYS_settimeofday, Some(Capability::CAP_SYS_TIME)),
    (libc::SYS_adjtimex, Some(Capability::CAP_SYS_TIME)),
    (libc::SYS_clock_adjtime, Some(Capability::CAP_SYS_TIME)),
    (libc::SYS_clock_settime, Some(Capability::CAP_SYS_TIME)),
    (
        libc::SYS_open_by_handle_at,
        Some(Capability::CAP_DAC_READ_SEARCH),
    ),
    (libc::SYS_fanotify_init, None),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_iopl, Some(Capability::CAP_SYS_RAWIO)),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_ioperm, Some(Capability::CAP_SYS_RAWIO)),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_modify_ldt, None),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_uselib, None),
];

#[derive(Debug, thiserror::Error)]
#[error("cannot install the container's system-call filter: {0}")]
pub struct SeccompError(String);

/// Build the filter for this machine's architecture and a container whose bounding set is `bounding`.
pub fn filter(bounding: &CapsHashSet) -> Result<BpfProgram, SeccompError> {
    let arch =
        TargetArch::try_from(std::env::consts::ARCH).map_err(|e| SeccompError(e.to_string()))?;
    let rules = DENIED
        .iter()
        .filter(|(_, unless)| unless.is_none_or(|c| !bounding.contains(&c)))
        .map(|(nr, _)| (*nr, Vec::new()))
        .collect::<BTreeMap<_, _>>();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| SeccompError(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| SeccompError(e.to_string()))
}

/// Install it on the calling thread (inherited by exec). Needs no-new-privileges or CAP_SYS_ADMIN, and —
/// unlike `seccompiler::apply_filter` — does not set no-new-privileges itself: a booted container's
/// processes run without it, and so does a process entering one.
pub fn install(program: &BpfProgram) -> Result<(), SeccompError> {
    let prog = libc::sock_fprog {
        len: u16::try_from(program.len()).map_err(|_| SeccompError("filter too long".into()))?,
        filter: program.as_ptr().cast_mut().cast(),
    };
    // SAFETY: seccomp(SECCOMP_SET_MODE_FILTER) reads `prog` and the instructions it points to (owned by
    // `program`, alive for the call); the kernel copies them and keeps no pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(SeccompError(std::io::Error::last_os_error().to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_filter_builds_for_this_machine() {
        let host_mode = super::filter(&Default::default()).unwrap();
        let all = super::filter(&caps::all()).unwrap();
        assert!(
            all.len() < host_mode.len(),
            "capabilities kept allow their calls"
        );
    }
}
