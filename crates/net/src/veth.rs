//! The veth pair that links an instance's network namespace to the host, and a look at the host's IPv4
//! routing so the caller can pick an address block that clashes with nothing.
//!
//! Netlink (rtnetlink): `RTM_NEWLINK` of kind veth whose peer carries `IFLA_NET_NS_FD` (the peer is born
//! inside the namespace, no temporary host-side name), `RTM_GETLINK`/`RTM_SETLINK` (up), `RTM_NEWADDR`,
//! `RTM_DELLINK`, and `RTM_GETROUTE`/`RTM_GETADDR` dumps. Requests that must be made from inside the
//! namespace (peer address, `lo` up) run on a dedicated std::thread that `setns(CLONE_NEWNET)`s into it
//! and drives its own current-thread tokio runtime: a netlink socket talks to the namespace it was
//! created in. No default route, NAT or forwarding is set up.

use std::fs::File;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use nix::sched::{setns, CloneFlags};
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth};

use crate::error::{nl_errno, nl_io};
use crate::NetError;

/// What [`create`] builds: `host_if` on the host with `host_addr/prefix_len`, `peer_if` inside the
/// namespace at `netns_path` with `peer_addr/prefix_len`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethSpec {
    /// Host-side interface name, e.g. "wb-foo" (at most 15 bytes).
    pub host_if: String,
    /// Interface name inside the namespace, e.g. "host0".
    pub peer_if: String,
    pub host_addr: Ipv4Addr,
    pub peer_addr: Ipv4Addr,
    /// Prefix length of both addresses, e.g. 30.
    pub prefix_len: u8,
    /// The namespace file, e.g. /run/netns/<name>.
    pub netns_path: PathBuf,
}

/// Create the veth pair with its peer end directly inside the namespace, address both ends, set both
/// ends and the namespace's `lo` up. On failure after the pair exists, the host end (and with it the
/// peer) is deleted before returning. Not cancellation-safe: dropping the future midway can leave the
/// pair behind (`delete(host_if)` cleans it up).
pub async fn create(spec: &VethSpec) -> Result<(), NetError> {
    check_ifname(&spec.host_if)?;
    check_ifname(&spec.peer_if)?;
    let ns = File::open(&spec.netns_path).map_err(|source| NetError::Open {
        path: spec.netns_path.clone(),
        source,
    })?;
    let nl = Rtnl::connect()?;
    // The peer is set up from inside the namespace below: kernel 6.18 answers ENOTCONN when the peer's
    // ifinfomsg asks for IFF_UP together with IFLA_NET_NS_FD (`ip link add … peer … up netns X` fails too).
    let peer = LinkMessageBuilder::<LinkUnspec>::default()
        .name(spec.peer_if.clone())
        .setns_by_fd(ns.as_raw_fd())
        .build();
    let pair = LinkVeth::new(&spec.host_if, &spec.peer_if)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .up()
        .build();
    let added = nl.handle.link().add(pair).execute().await;
    drop(ns);
    added.map_err(|e| NetError::LinkAdd {
        name: spec.host_if.clone(),
        peer: spec.peer_if.clone(),
        netns: spec.netns_path.clone(),
        source: nl_io(e),
    })?;

    let configured = async {
        let host = link_index(&nl.handle, &spec.host_if).await?;
        add_addr(
            &nl.handle,
            &spec.host_if,
            host,
            spec.host_addr,
            spec.prefix_len,
        )
        .await?;
        let (peer_if, peer_addr, prefix_len) =
            (spec.peer_if.clone(), spec.peer_addr, spec.prefix_len);
        in_netns(&spec.netns_path, move |h| async move {
            let lo = link_index(&h, "lo").await?;
            set_up(&h, "lo", lo).await?;
            let peer = link_index(&h, &peer_if).await?;
            add_addr(&h, &peer_if, peer, peer_addr, prefix_len).await?;
            set_up(&h, &peer_if, peer).await
        })
        .await
    };
    if let Err(e) = configured.await {
        if let Err(undo) = delete_on(&nl.handle, &spec.host_if).await {
            tracing::warn!(error = %undo, "cannot remove half-configured veth {}", spec.host_if);
        }
        return Err(e);
    }
    Ok(())
}

/// Delete a host-side veth by name (its peer goes with it). `Ok(())` if it does not exist; refuses
/// ([`NetError::NotVeth`]) to delete an interface of any other kind.
pub async fn delete(host_if: &str) -> Result<(), NetError> {
    let nl = Rtnl::connect()?;
    delete_on(&nl.handle, host_if).await
}

/// Whether a host interface with this name exists.
pub async fn exists(host_if: &str) -> Result<bool, NetError> {
    let nl = Rtnl::connect()?;
    Ok(get_link(&nl.handle, host_if).await?.is_some())
}

/// Every IPv4 destination prefix in all of the host's routing tables (the default route 0.0.0.0/0
/// excepted, it would clash with everything) plus the network of every IPv4 address on a host
/// interface. Sorted, without duplicates.
pub async fn host_ipv4_prefixes() -> Result<Vec<Ipv4Net>, NetError> {
    let nl = Rtnl::connect()?;
    let mut out = Vec::new();

    // Without NETLINK_GET_STRICT_CHK the kernel ignores the header filter and dumps every table.
    let mut query = RouteMessage::default();
    query.header.address_family = AddressFamily::Inet;
    let mut routes = nl.handle.route().get(query).execute();
    while let Some(route) = routes.try_next().await.map_err(|e| NetError::Netlink {
        what: "dump IPv4 routes",
        source: nl_io(e),
    })? {
        if let Some(net) = route_prefix(&route) {
            out.push(net);
        }
    }

    let mut addrs = nl.handle.address().get().execute();
    while let Some(msg) = addrs.try_next().await.map_err(|e| NetError::Netlink {
        what: "dump IPv4 addresses",
        source: nl_io(e),
    })? {
        for attr in &msg.attributes {
            if let AddressAttribute::Local(IpAddr::V4(a))
            | AddressAttribute::Address(IpAddr::V4(a)) = attr
            {
                if let Ok(net) = Ipv4Net::new(*a, msg.header.prefix_len) {
                    out.push(net.trunc());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The destination of an IPv4 route as a prefix; `None` for the default route and non-IPv4 routes.
fn route_prefix(route: &RouteMessage) -> Option<Ipv4Net> {
    if route.header.address_family != AddressFamily::Inet
        || route.header.destination_prefix_length == 0
    {
        return None;
    }
    route.attributes.iter().find_map(|attr| match attr {
        RouteAttribute::Destination(RouteAddress::Inet(a)) => {
            Ipv4Net::new(*a, route.header.destination_prefix_length)
                .ok()
                .map(|n| n.trunc())
        }
        _ => None,
    })
}

/// Interface names the kernel accepts: 1..=15 bytes, no '/', no whitespace, not "." or "..".
fn check_ifname(name: &str) -> Result<(), NetError> {
    let reason = if name.is_empty() || name.len() > 15 {
        "interface names are 1 to 15 bytes long"
    } else if name == "."
        || name == ".."
        || name.contains(['/', ':', '\0'])
        || name.contains(char::is_whitespace)
    {
        "not a valid interface name"
    } else {
        return Ok(());
    };
    Err(NetError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// An rtnetlink connection whose driver task is aborted when this is dropped.
struct Rtnl {
    handle: Handle,
    driver: tokio::task::JoinHandle<()>,
}

impl Rtnl {
    /// Open a route netlink socket in the calling thread's network namespace (needs a tokio runtime).
    fn connect() -> Result<Self, NetError> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|source| NetError::Netlink {
                what: "open a route netlink socket",
                source,
            })?;
        Ok(Rtnl {
            handle,
            driver: tokio::spawn(conn),
        })
    }
}

impl Drop for Rtnl {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Run `f` with an rtnetlink handle whose socket lives in the namespace at `path`, on a fresh thread
/// (setns never touches a tokio worker) with its own current-thread runtime.
async fn in_netns<T, F, Fut>(path: &Path, f: F) -> Result<T, NetError>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetError>>,
{
    let path = path.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread_err = |source| NetError::Thread {
        what: "configuring a network namespace",
        source,
    };
    std::thread::Builder::new()
        .name("wb-netns-rtnl".into())
        .spawn(move || {
            let _ = tx.send(run_in_netns(&path, f));
        })
        .map_err(thread_err)?;
    rx.await
        .map_err(|_| thread_err(std::io::Error::other("thread panicked")))?
}

/// The body of [`in_netns`]; leaves the calling thread inside the namespace.
fn run_in_netns<T, F, Fut>(path: &Path, f: F) -> Result<T, NetError>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T, NetError>>,
{
    let ns = File::open(path).map_err(|source| NetError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| NetError::SetNs {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| NetError::Thread {
            what: "configuring a network namespace (runtime)",
            source,
        })?;
    rt.block_on(async move {
        let nl = Rtnl::connect()?;
        f(nl.handle.clone()).await
    })
}

/// The link called `name`, or `None` if there is none (ENODEV).
async fn get_link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, NetError> {
    let mut links = handle.link().get().match_name(name).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(e) if nl_errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(NetError::Netlink {
            what: "look up a network interface",
            source: nl_io(e),
        }),
    }
}

async fn link_index(handle: &Handle, name: &str) -> Result<u32, NetError> {
    match get_link(handle, name).await? {
        Some(link) => Ok(link.header.index),
        None => Err(NetError::LinkNotFound {
            name: name.to_string(),
        }),
    }
}

async fn set_up(handle: &Handle, name: &str, index: u32) -> Result<(), NetError> {
    let msg = LinkUnspec::new_with_index(index).up().build();
    handle
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| NetError::LinkUp {
            name: name.to_string(),
            source: nl_io(e),
        })
}

async fn add_addr(
    handle: &Handle,
    name: &str,
    index: u32,
    addr: Ipv4Addr,
    prefix_len: u8,
) -> Result<(), NetError> {
    let req = handle.address().add(index, IpAddr::V4(addr), prefix_len);
    req.execute().await.map_err(|e| NetError::AddrAdd {
        name: name.to_string(),
        addr,
        prefix_len,
        source: nl_io(e),
    })
}

fn is_veth(link: &LinkMessage) -> bool {
    link.attributes.iter().any(|attr| match attr {
        LinkAttribute::LinkInfo(infos) => infos
            .iter()
            .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth))),
        _ => false,
    })
}

async fn delete_on(handle: &Handle, name: &str) -> Result<(), NetError> {
    let Some(link) = get_link(handle, name).await? else {
        return Ok(());
    };
    if !is_veth(&link) {
        return Err(NetError::NotVeth {
            name: name.to_string(),
        });
    }
    match handle.link().del(link.header.index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if nl_errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(NetError::LinkDel {
            name: name.to_string(),
            source: nl_io(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: Option<Ipv4Addr>, len: u8) -> RouteMessage {
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet;
        r.header.destination_prefix_length = len;
        if let Some(a) = dst {
            r.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(a)));
        }
        r
    }

    #[test]
    fn route_prefixes_skip_the_default_route_and_truncate() {
        assert_eq!(route_prefix(&route(None, 0)), None);
        assert_eq!(
            route_prefix(&route(Some(Ipv4Addr::new(0, 0, 0, 0)), 0)),
            None
        );
        assert_eq!(
            route_prefix(&route(Some(Ipv4Addr::new(10, 1, 2, 3)), 24)),
            Some("10.1.2.0/24".parse().unwrap())
        );
        let mut v6 = route(Some(Ipv4Addr::new(10, 1, 2, 3)), 24);
        v6.header.address_family = AddressFamily::Inet6;
        assert_eq!(route_prefix(&v6), None);
    }

    #[test]
    fn interface_names_follow_kernel_rules() {
        for good in ["wb-foo", "host0", "wbtn12345c99-h", "a23456789012345"] {
            check_ifname(good).unwrap();
        }
        for bad in ["", "a234567890123456", ".", "..", "a/b", "a b", "a:b"] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_veth_kind_counts_as_veth() {
        let veth = LinkVeth::new("a", "b").build();
        assert!(is_veth(&veth));
        assert!(!is_veth(&LinkUnspec::new_with_name("eth0").build()));
    }
}
