//! Fault injection for crash-safety tests: with `WAYBACK_FAULT_POINT=N` in the environment, the process
//! kills itself with SIGKILL at the N-th fault point it passes; with `WAYBACK_FAULT_POINT=PREFIX:N`, at the
//! N-th point whose description starts with PREFIX (e.g. `reset:3`: the third step of a reset, whatever the
//! daemon did before). Points sit after every journal entry is written and after every resource is created
//! or removed, so a test can crash `up`, `down`, `reset` and the daemon at each of them and check that `gc`
//! (or the next daemon) leaves nothing behind. Without the variable a point costs one atomic load.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

static PASSED: AtomicU32 = AtomicU32::new(0);

/// The chosen point: an optional prefix and its number.
fn target() -> Option<&'static (String, u32)> {
    static TARGET: OnceLock<Option<(String, u32)>> = OnceLock::new();
    TARGET
        .get_or_init(|| parse(&std::env::var("WAYBACK_FAULT_POINT").ok()?))
        .as_ref()
}

fn parse(v: &str) -> Option<(String, u32)> {
    match v.rsplit_once(':') {
        Some((prefix, n)) => Some((prefix.to_string(), n.parse().ok()?)),
        None => Some((String::new(), v.parse().ok()?)),
    }
}

/// Mark a point; die here if it is the chosen one.
pub fn point(what: &str) {
    let Some((prefix, target)) = target() else {
        return;
    };
    if !what.starts_with(prefix.as_str()) {
        return;
    }
    let n = PASSED.fetch_add(1, Ordering::SeqCst) + 1;
    if n == *target {
        eprintln!("wayback: fault injection: SIGKILL at point {n} ({what})");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn targets() {
        assert_eq!(super::parse("7"), Some((String::new(), 7)));
        assert_eq!(super::parse("reset:3"), Some(("reset".into(), 3)));
        assert_eq!(super::parse("x"), None);
    }
}
