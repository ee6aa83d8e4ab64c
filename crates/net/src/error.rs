//! The error type of this crate: one variant per step that can fail, each naming the namespace file,
//! interface or address it was about.
//!
//! The `Display` text says *what* failed ("cannot create network namespace /run/netns/wb-x"); the
//! underlying OS / netlink error is exposed through `std::error::Error::source` and is not repeated in
//! the text, so `anyhow`'s `{:#}` prints "cannot create network namespace /run/netns/wb-x: File exists
//! (os error 17)" without duplication. Netlink errors are converted to `std::io::Error` (errno) so every
//! cause reads like an OS error.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Everything that can go wrong while creating, wiring or tearing down an instance's network.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum NetError {
    /// A namespace name or interface name that the kernel would refuse or that would escape the directory.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    /// `netns::create` found something at the target path already.
    #[error("cannot create network namespace {path}: it already exists")]
    Exists { path: PathBuf },

    /// Creating the directory that holds namespace files failed.
    #[error("cannot create network namespace directory {path}")]
    CreateDir { path: PathBuf, source: io::Error },

    /// Making the namespace directory a shared mount (like `ip netns add` does) failed.
    #[error("cannot make network namespace directory {path} a shared mount")]
    SharedMount { path: PathBuf, source: io::Error },

    /// Creating the empty file the namespace gets bind-mounted onto failed.
    #[error("cannot create network namespace file {path}")]
    CreateFile { path: PathBuf, source: io::Error },

    /// `unshare(CLONE_NEWNET)` failed.
    #[error("cannot create network namespace {path}: unshare(CLONE_NEWNET) failed")]
    Unshare { path: PathBuf, source: io::Error },

    /// Bind-mounting the new namespace onto its file failed.
    #[error("cannot create network namespace {path}: bind mount of the namespace failed")]
    BindMount { path: PathBuf, source: io::Error },

    /// Bringing the loopback interface up inside a new namespace failed.
    #[error("cannot bring up the loopback interface in network namespace {path}")]
    LoopbackUp { path: PathBuf, source: io::Error },

    /// Setting a sysctl of a new namespace (under /proc/sys/net) failed.
    #[error("cannot set {sysctl} in network namespace {path}")]
    Sysctl {
        path: PathBuf,
        sysctl: &'static str,
        source: io::Error,
    },

    /// Unmounting a namespace file failed.
    #[error("cannot unmount network namespace {path}")]
    Umount { path: PathBuf, source: io::Error },

    /// Removing a namespace file failed.
    #[error("cannot remove network namespace file {path}")]
    Remove { path: PathBuf, source: io::Error },

    /// Opening a namespace file failed.
    #[error("cannot open network namespace {path}")]
    Open { path: PathBuf, source: io::Error },

    /// `setns(CLONE_NEWNET)` into a namespace failed.
    #[error("cannot enter network namespace {path}")]
    SetNs { path: PathBuf, source: io::Error },

    /// A helper thread could not be started, or died.
    #[error("helper thread for {what} failed")]
    Thread {
        what: &'static str,
        source: io::Error,
    },

    /// Creating the veth pair failed.
    #[error("cannot create veth pair {name} (peer {peer} in {netns})")]
    LinkAdd {
        name: String,
        peer: String,
        netns: PathBuf,
        source: io::Error,
    },

    /// A link that should be there is not.
    #[error("network interface {name} not found")]
    LinkNotFound { name: String },

    /// Setting a link up failed.
    #[error("cannot bring up network interface {name}")]
    LinkUp { name: String, source: io::Error },

    /// Deleting a link failed.
    #[error("cannot delete network interface {name}")]
    LinkDel { name: String, source: io::Error },

    /// Refusing to delete a link that wayback did not make (it is not a veth).
    #[error("refusing to delete network interface {name}: it is not a veth interface")]
    NotVeth { name: String },

    /// Adding an address to a link failed.
    #[error("cannot add address {addr}/{prefix_len} to network interface {name}")]
    AddrAdd {
        name: String,
        addr: Ipv4Addr,
        prefix_len: u8,
        source: io::Error,
    },

    /// The `nft` program could not be started (or fed its input).
    #[error("cannot {action}: cannot run nft (is the nftables package installed?)")]
    NftSpawn { action: String, source: io::Error },

    /// `nft` ran and failed; the source carries its message.
    #[error("cannot {action}: nft failed ({hint})")]
    Nft {
        action: String,
        hint: &'static str,
        source: io::Error,
    },

    /// Any other netlink request (opening the socket, dumps).
    #[error("netlink request failed: {what}")]
    Netlink {
        what: &'static str,
        source: io::Error,
    },
}

/// Turn an rtnetlink error into an `io::Error`, keeping the errno when the kernel sent one.
pub(crate) fn nl_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

/// The errno of an rtnetlink error, if the kernel sent one.
pub(crate) fn nl_errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => Some(msg.raw_code().abs()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn display_names_the_object_and_keeps_the_cause_as_source() {
        let e = NetError::BindMount {
            path: "/run/netns/wb-x".into(),
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        assert_eq!(
            e.to_string(),
            "cannot create network namespace /run/netns/wb-x: bind mount of the namespace failed"
        );
        assert!(e.source().unwrap().to_string().contains("not permitted"));
    }

    #[test]
    fn netlink_errors_become_errno() {
        let mut msg = rtnetlink::packet_core::ErrorMessage::default();
        msg.code = std::num::NonZeroI32::new(-libc::ENODEV);
        let e = rtnetlink::Error::NetlinkError(msg);
        assert_eq!(nl_errno(&e), Some(libc::ENODEV));
        assert_eq!(nl_io(e).raw_os_error(), Some(libc::ENODEV));
        assert_eq!(nl_errno(&rtnetlink::Error::RequestFailed), None);
    }
}
