//! Exit codes: 0 ok, 2 for bad input (a clear message, nothing created), 1 for everything else. Which
//! errors are bad input is the engine's call ([`wayback_engine::error::is_bad_input`]).

/// The process exit code for a command that failed with `e`.
pub fn code(e: &anyhow::Error) -> u8 {
    if wayback_engine::error::is_bad_input(e) {
        2
    } else {
        1
    }
}
