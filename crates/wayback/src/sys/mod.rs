//! Side effects on kernel objects and external tools, one module each. (Network namespaces and veth
//! pairs live in the `wayback-net` crate.)
pub mod btrfs;
pub mod mountinfo;
pub mod nspawn;
