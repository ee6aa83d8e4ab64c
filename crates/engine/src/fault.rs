//! Fault injection for crash-safety tests: with `WAYBACK_FAULT_POINT=N` in the environment, the process
//! kills itself with SIGKILL at the N-th fault point it passes. Points sit after every journal entry is
//! written and after every resource is created or removed, so a test can crash `up`, `down` and the daemon
//! at each of them and check that `gc` (or the next daemon) leaves nothing behind. Without the variable a
//! point costs one atomic load.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

static PASSED: AtomicU32 = AtomicU32::new(0);

fn target() -> Option<u32> {
    static TARGET: OnceLock<Option<u32>> = OnceLock::new();
    *TARGET.get_or_init(|| std::env::var("WAYBACK_FAULT_POINT").ok()?.parse().ok())
}

/// Mark a point; die here if it is the chosen one.
pub fn point(what: &str) {
    let Some(target) = target() else { return };
    let n = PASSED.fetch_add(1, Ordering::SeqCst) + 1;
    if n == target {
        eprintln!("wayback: fault injection: SIGKILL at point {n} ({what})");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    }
}
