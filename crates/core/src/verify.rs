//! `wayback verify`: proving that snapshots can be brought back. The pure parts live here:
//!
//! - [`job`]: a verify job (`/etc/wayback/verify.d/NAME.toml`): which snapshots, how to run them (as `up`
//!   takes it, rendered as `up`'s own arguments so the CLI's parsing and checks apply unchanged), and the
//!   checks. Unknown keys are errors naming the key and the file, never echoing a value.
//! - [`check`]: the checks (`http`, `tcp`, `sql`, `command`, `file`) as typed values, and the evaluation of
//!   what the binary observed against what the job expects, with a reason when it does not match.
//! - [`select`]: which snapshots of a series a run takes (the newest not yet verified, every one since the
//!   last verified, or a selector).
//! - [`report`]: the record of a run and its checks, and its renderings: the Prometheus text file
//!   (node_exporter's textfile collector) and JUnit XML.
//!
//! Nothing here reads the clock, the filesystem (besides [`job::load`]) or the history database.

pub mod check;
pub mod job;
pub mod report;
pub mod select;

pub use check::{Check, CheckKind};
pub use job::{Job, JobError};
pub use report::{CheckOutcome, CheckResult, Outcome, RunReport, SnapshotRef};
