//! wayback's engine: everything between a validated request and the kernel, and back.
//!
//! - Planning ([`planning`]) reads the system and turns an `UpRequest` (from `wayback-core`) into a pure
//!   `Plan`; nothing is created there.
//! - [`apply`] creates the plan's resources through the [`host::Host`] seam, journaling each before it
//!   exists; [`teardown`] replays the journal backwards. Each kernel object or external tool owns its
//!   create and undo in one module under [`sys`] (btrfs, overlay, nspawn, …), `wayback-net` (netns, veth,
//!   nftables) and [`drivers`] (host nginx/Caddy).
//! - [`instance`] is one instance's life in the process that hosts it (a foreground `up` or the daemon);
//!   [`daemon`] is `wayback serve`; [`state`] the on-disk instance directories; [`status`], [`catalog`],
//!   [`profile`] and [`applogs`] what the commands, the daemon's API and the console read.
//! - [`init`] is PID 1 inside a container; [`verify`] the lifecycle of a restore verification run.
//!
//! The `wayback` binary parses the command line, calls in here and prints; it maps errors to exit codes
//! with [`error::is_bad_input`].

pub mod applogs;
pub mod apply;
pub mod catalog;
pub mod clock;
pub mod console;
pub mod container;
pub mod control;
pub mod daemon;
pub mod drivers;
pub mod error;
pub mod fault;
pub mod host;
pub mod hostdetect;
pub mod init;
pub mod instance;
pub mod nested;
pub mod planning;
pub mod profile;
pub mod progress;
pub mod proxyhost;
pub mod reset;
pub mod serve;
pub mod sources;
pub mod state;
pub mod status;
pub mod steps;
pub mod sys;
pub mod teardown;
pub mod verbs;
pub mod verify;
