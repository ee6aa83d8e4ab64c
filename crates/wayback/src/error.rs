//! Exit codes: 2 for bad input (a clear message, nothing created), 1 for everything else.
//!
//! Library errors stay typed (thiserror); this module decides which of them are the user's to fix.

use wayback_core::config::ConfigError;
use wayback_core::names::NameError;
use wayback_core::plan::PlanError;
use wayback_core::profile::ProfileError;

use crate::state::StateError;
use crate::sys::btrfs::BtrfsError;

/// An input error detected by the binary itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

impl BadInput {
    pub fn new(msg: impl Into<String>) -> BadInput {
        BadInput(msg.into())
    }
    /// Mark an error as the user's to fix (keeping its message and context).
    pub fn wrap(e: anyhow::Error) -> anyhow::Error {
        anyhow::Error::new(BadInput(format!("{e:#}")))
    }
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

pub fn exit_code(e: &anyhow::Error) -> u8 {
    if is_bad_input(e) {
        2
    } else {
        1
    }
}
