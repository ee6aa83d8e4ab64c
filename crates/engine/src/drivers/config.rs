//! The drivers' config types live in `wayback_core::drivers` (they are part of `config.toml`).

pub use wayback_core::drivers::{CaddyConfig, NginxConfig, Via};
