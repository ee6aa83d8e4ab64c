//! The engine of `wayback verify` (the command itself is `cmd::verify`): one run's lifecycle ([`run`]),
//! the checks as they run against an instance ([`checks`]), the history database ([`history`]), and the
//! metrics file, JUnit XML and failure hook ([`outputs`]). Jobs, check evaluation, snapshot selection and
//! the renderings are pure and live in `wayback_core::verify`.

pub mod checks;
pub mod history;
pub mod outputs;
pub mod run;
