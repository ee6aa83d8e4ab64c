//! wayback-core: the pure logic behind wayback — configuration, profiles, names, the address pool, the
//! plan `up` applies, the journal format, and the systemd-nspawn command line. Nothing here needs root or
//! touches kernel objects; the `wayback` binary gathers facts from the system and applies plans.

pub mod catalog;
pub mod change;
pub mod civil;
pub mod config;
pub mod drift;
pub mod drivers;
pub mod duration;
pub mod egress;
pub mod export;
pub mod format;
pub mod glob;
pub mod history;
pub mod hostpaths;
pub mod journal;
pub mod names;
pub mod nspawn;
pub mod ownership;
pub mod plan;
pub mod pool;
pub mod presence;
pub mod probe;
pub mod profile;
pub mod selector;
pub mod sendstream;
pub mod units;
pub mod verify;

pub use config::Config;
pub use duration::Duration;
pub use names::InstanceName;
pub use plan::{Plan, UpRequest};
pub use profile::Profile;
