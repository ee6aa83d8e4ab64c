//! Which errors are the user's to fix: [`is_bad_input`] (the binary maps it to exit 2, the daemon's API to
//! `bad_input`), the engine's own [`BadInput`], and [`render`], an error with its causes on one line.
//!
//! Library errors stay typed (thiserror); this module decides which of them are the user's to fix.

use wayback_core::config::ConfigError;
use wayback_core::names::NameError;
use wayback_core::plan::PlanError;
use wayback_core::profile::ProfileError;

use crate::state::StateError;
use crate::sys::btrfs::BtrfsError;

/// An input error detected by wayback itself (not by a library).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

impl BadInput {
    pub fn new(msg: impl Into<String>) -> BadInput {
        BadInput(msg.into())
    }
    /// Mark an error as the user's to fix (keeping its message and context).
    pub fn wrap(e: anyhow::Error) -> anyhow::Error {
        anyhow::Error::new(BadInput(render(&e)))
    }
}

/// The error and its causes on one line, `a: b: c`, leaving out a cause whose text the line already holds
/// (typed errors often name their source in their own message: no "(os error 2): … (os error 2)").
pub fn render(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Whether `e` (or anything in its chain) is bad input.
pub fn is_bad_input(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<BadInput>()
            || c.is::<PlanError>()
            || c.is::<NameError>()
            || c.is::<ConfigError>()
            || c.is::<wayback_core::hostpaths::HostPathError>()
            || c.is::<ProfileError>()
            || matches!(
                c.downcast_ref::<StateError>(),
                Some(
                    StateError::Taken(_)
                        | StateError::NotFound { .. }
                        | StateError::HostnameTaken { .. }
                )
            )
            || matches!(
                c.downcast_ref::<BtrfsError>(),
                Some(
                    BtrfsError::Missing { .. }
                        | BtrfsError::NotBtrfs { .. }
                        | BtrfsError::NotSubvolume { .. }
                )
            )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn causes_already_named_are_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let inner = anyhow::Error::new(io).context(format!(
            "cannot open /x: {}",
            std::io::Error::from(std::io::ErrorKind::NotFound)
        ));
        let e = inner.context("starting wb-1");
        let text = super::render(&e);
        assert_eq!(text.matches("entity not found").count(), 1, "{text}");
        assert!(text.starts_with("starting wb-1: cannot open /x"), "{text}");
    }
}
