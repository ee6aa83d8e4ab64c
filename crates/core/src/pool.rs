//! The address pool: picks each instance's point-to-point IPv4 block (a /30 by default) so that it clashes
//! with no other instance and no route or address on the host. Pure: the caller supplies what is in use
//! (other instances' blocks from the state dir, the host's prefixes read over netlink).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The two ends of an instance's veth pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub net: Ipv4Net,
    /// Host side of the veth (the first usable address).
    pub host: Ipv4Addr,
    /// Instance side of the veth (the second usable address).
    pub peer: Ipv4Addr,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("address pool {pool} has no free /{len} block left ({used} in use by instances or host routes); widen `address_pool` in the config or remove old instances")]
    Exhausted { pool: Ipv4Net, len: u8, used: usize },
    #[error("address pool {pool} cannot be split into /{len} blocks")]
    BadLength { pool: Ipv4Net, len: u8 },
}

/// Choose the first /`len` block of `pool` that overlaps none of `in_use`.
///
/// Default routes (`/0`) in `in_use` are ignored: they cover everything and say nothing about clashes.
pub fn allocate(pool: Ipv4Net, len: u8, in_use: &[Ipv4Net]) -> Result<Block, PoolError> {
    if !(pool.prefix_len()..=30).contains(&len) {
        return Err(PoolError::BadLength { pool, len });
    }
    let relevant: Vec<&Ipv4Net> = in_use
        .iter()
        .filter(|n| n.prefix_len() > 0 && overlaps(**n, pool))
        .collect();
    let subnets = pool
        .subnets(len)
        .map_err(|_| PoolError::BadLength { pool, len })?;
    for net in subnets {
        if relevant.iter().any(|u| overlaps(**u, net)) {
            continue;
        }
        let mut hosts = net.hosts();
        let (Some(host), Some(peer)) = (hosts.next(), hosts.next()) else {
            continue;
        };
        return Ok(Block { net, host, peer });
    }
    Err(PoolError::Exhausted {
        pool,
        len,
        used: relevant.len(),
    })
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn first_free_block() {
        let b = allocate(n("10.213.0.0/16"), 30, &[]).unwrap();
        assert_eq!(b.net, n("10.213.0.0/30"));
        assert_eq!(b.host, "10.213.0.1".parse::<Ipv4Addr>().unwrap());
        assert_eq!(b.peer, "10.213.0.2".parse::<Ipv4Addr>().unwrap());
    }

    #[test]
    fn skips_instances_and_host_routes() {
        let used = [
            n("0.0.0.0/0"),
            n("10.213.0.0/30"),
            n("10.213.0.4/32"),
            n("10.0.0.0/8"),
        ];
        // 10.0.0.0/8 covers the whole pool: nothing is free.
        assert!(matches!(
            allocate(n("10.213.0.0/16"), 30, &used),
            Err(PoolError::Exhausted { .. })
        ));
        let used = [n("0.0.0.0/0"), n("10.213.0.0/30"), n("10.213.0.4/32")];
        assert_eq!(
            allocate(n("10.213.0.0/16"), 30, &used).unwrap().net,
            n("10.213.0.8/30")
        );
    }

    #[test]
    fn exhaustion_and_bad_length() {
        let pool = n("10.213.0.0/29");
        let used = [n("10.213.0.0/30"), n("10.213.0.4/30")];
        assert!(matches!(
            allocate(pool, 30, &used),
            Err(PoolError::Exhausted { .. })
        ));
        assert!(matches!(
            allocate(pool, 31, &[]),
            Err(PoolError::BadLength { .. })
        ));
        assert!(matches!(
            allocate(pool, 16, &[]),
            Err(PoolError::BadLength { .. })
        ));
    }
}
