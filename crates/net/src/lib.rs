//! wayback-net: the network side of a wayback instance — a named network namespace
//! ([`netns`]), the veth pair linking it to the host ([`veth`]), and dialing TCP from the host into
//! the namespace ([`dial`]) so services bound to the instance's loopback are reachable.
//!
//! Everything that has to run *inside* a namespace (`unshare`/`setns`) does so on a dedicated
//! std::thread, never on a tokio worker.

pub mod dial;
mod error;
pub mod netns;
pub mod nft;
pub mod veth;

pub use dial::NetnsDialer;
pub use error::NetError;
pub use veth::VethSpec;
