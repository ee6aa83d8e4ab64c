//! Side effects on kernel objects and external tools, one module each. (Network namespaces and veth
//! pairs live in the `wayback-net` crate.)
pub mod boot;
pub mod btrfs;
pub mod cgroupjoin;
pub mod elfdeps;
pub mod ids;
pub mod initbin;
pub mod inroot;
pub mod launchns;
pub mod mountinfo;
pub mod nsenter;
pub mod nspawn;
pub mod overlay;
pub mod owned_dir;
pub mod pidfd;
pub mod procfs;
pub mod pty;
pub mod seccomp;
pub mod snapunits;
// Find (issue 3): catalog probe, find/diff walks, send-stream diff.
pub mod snapdiff;
pub mod walk;
// File history (issue 16): versions, show, restore.
pub mod copy;
pub mod history;
pub mod restore;
pub mod treediff;
