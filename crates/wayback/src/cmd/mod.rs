//! One module per command.
pub mod console;
pub mod down;
pub mod exec;
pub mod export;
pub mod extend;
pub mod k8s;
pub mod logs;
pub mod profile;
pub mod reset;
pub mod status;
pub mod up;
// File history (issue 16).
pub mod filediff;
pub mod restore;
pub mod show;
pub mod subject;
pub mod verify;
pub mod versions;
// Find (issue 3).
pub mod diff;
pub mod find;
pub mod snapshots;
pub mod version;
