//! The nftables quarantine of an instance: from the host's point of view, nothing that arrives on the
//! instance's host-side veth may open a connection — not to the host (every host service bound to
//! `0.0.0.0` or `::` listens on the veth's IPv4 and fe80:: addresses), not to another instance, not
//! anywhere the host would forward it. Replies to connections the host opened *into* the instance still
//! flow; the host's proxy and `--publish` do not use the veth at all (they dial 127.0.0.1 inside the
//! namespace, see [`crate::dial`]).
//!
//! Owns `table inet wayback`, shared by all instances, which holds:
//! - the verdict map `instances` (`type ifname : verdict`), one element per instance: `"<host_if>" :
//!   jump wb-<instance>`;
//! - base chains `quarantine-input` and `quarantine-forward` (`type filter`, `priority filter - 1`,
//!   `policy accept`), each with one rule, `iifname vmap @instances`: a packet costs one lookup, however
//!   many instances run;
//! - per instance a chain `wb-<instance>`: `ct state established,related accept`; IPv6 neighbour
//!   discovery accept; one accept per `--allow-egress` hole; `counter goto refuse`;
//! - the shared chain `refuse`: `meta l4proto tcp reject with tcp reset`, then `reject with icmpx
//!   admin-prohibited`, so a TCP connect fails with ECONNREFUSED and a DNS query (UDP, connected socket)
//!   with EHOSTUNREACH at once instead of timing out. Exception: from an IPv6 link-local source
//!   everything gets the ICMPv6 error, because the kernel routes a TCP reset to a link-local address
//!   without its interface (out of the host's first `fe80::/64` route, e.g. eth0, never reaching the
//!   instance). A TCP connect to the host's `fe80::` address therefore fails with EACCES after about
//!   1 s: the first ICMPv6 error arrives while `connect()` still holds the socket and is only noted as
//!   a soft error; the one for the SYN retransmitted after 1 s ends the connect.
//!
//! Only traffic from instance interfaces is touched; the host's own traffic and other tables are not.
//! `iifname` matches by name, so [`apply`] can (and should) run before the veth exists: there is then no
//! moment at which the interface is up and unquarantined.
//!
//! An `--allow-egress` hole is only the nftables half. To the host's veth address it works as it is; to
//! any other destination the instance also needs a route inside its namespace (it has none beyond its
//! /30 and fe80::/64), and the host needs `ip_forward` (on the veth at least) plus NAT or a return route.
//! **wayback does none of that by default**; the caller that wants a real egress hole has to add it.
//!
//! Tools: the `nft` program (Debian package `nftables`) and the `nftables` crate's JSON schema: `nft -j
//! -f -`, one atomic transaction per [`apply`] / [`remove`] / [`remove_table`], built without looking
//! at the kernel first, so the common [`apply`] and [`remove`] run `nft` once (the number of instances
//! does not change what they send or how much they read). `nft -j list table inet wayback` is read
//! only by [`instances_in_ruleset`] and by the fallback of [`remove`].
//!
//! Concurrent wayback processes are safe. Deleting the table with the last instance is guarded inside
//! the same transaction: it first deletes the `refuse` chain, which the kernel refuses (EBUSY, aborting
//! everything) while any instance chain still ends in `goto refuse` — also one that another process
//! added meanwhile; [`remove`] then sends the same removal without the table. Removals are serialised
//! across processes by a lock file ([`REMOVAL_LOCK`]): two instances removed at once would otherwise each
//! fail the guarded deletion while the other's chain exists, and leave the table behind with neither.
//! An instance quarantined by a release before 0.3 (one `iifname … jump` rule per instance in base
//! chains `input` and `forward`) is removed by looking: its jump rules are deleted by handle, and when
//! the ruleset changed in between, the transaction fails as a whole and is retried with a fresh look.

mod listing;
mod ruleset;

use std::io::Write;
use std::process::{Command, Stdio};

use nftables::helper::{self, NftablesError};
use nftables::schema::{NfListObject, NfObject};

use listing::Listing;

pub use ruleset::{
    chain_name, removal, ruleset, Cmd, Egress, NftLayout, Proto, Quarantine, Transaction,
    CHAIN_PREFIX, LEGACY_TABLE, TABLE,
};

use crate::NetError;

/// The program run for every transaction and listing.
const NFT: &str = "nft";
/// How often a transaction is retried when the ruleset changed between looking and acting.
const ATTEMPTS: u32 = 5;
/// Held (`flock`, exclusive) by every [`remove`] across its transactions; `/run` is a tmpfs, so the file
/// goes at the next boot.
pub const REMOVAL_LOCK: &str = "/run/wayback-quarantine.lock";

/// Install (or replace) the quarantine of `q.instance`, in one transaction. Re-applying (e.g. with
/// other holes) never leaves the instance unquarantined for a moment, nor doubles its map element.
pub fn apply(q: &Quarantine) -> Result<(), NetError> {
    apply_with(NFT, q)
}

/// Remove the quarantine of `instance` (whose host interface is `host_if`), made in `layout` (what
/// the journal recorded); `Ok` if already gone. When no instance chain is left in its table, the
/// table goes too (guarded against a concurrent [`apply`]).
pub fn remove(instance: &str, host_if: &str, layout: NftLayout) -> Result<(), NetError> {
    remove_with(NFT, instance, host_if, layout)
}

/// Delete wayback's tables (both layouts) with everything in them (for `gc`); `Ok` if absent. Unlike
/// [`remove`] this also takes away other instances' quarantines: only call it when
/// [`instances_in_ruleset`] is empty or every instance is known to be dead.
pub fn remove_table() -> Result<(), NetError> {
    let mut t = Transaction::default();
    for table in [TABLE, LEGACY_TABLE] {
        t.0.extend(ruleset::delete_table(table).into_iter().map(Cmd::Nft));
    }
    run(
        NFT,
        &t,
        "delete tables inet wayback-quarantine and inet wayback",
    )
}

/// The instances that have a chain in wayback's tables (sorted; empty if there is none).
pub fn instances_in_ruleset() -> Result<Vec<String>, NetError> {
    let action = "list the instances in wayback's nftables tables";
    let mut all = Vec::new();
    for table in [TABLE, LEGACY_TABLE] {
        all.extend(
            list(NFT, table, action)?
                .map(|l| l.instances())
                .unwrap_or_default(),
        );
    }
    all.sort();
    Ok(all)
}

fn apply_with(nft: &str, q: &Quarantine) -> Result<(), NetError> {
    check_instance(&q.instance)?;
    check_host_if(&q.host_if)?;
    let action = format!(
        "add the nftables quarantine of instance {} (interface {})",
        q.instance, q.host_if
    );
    run(nft, &ruleset(q), &action)
}

fn remove_with(
    nft: &str,
    instance: &str,
    host_if: &str,
    layout: NftLayout,
) -> Result<(), NetError> {
    check_instance(instance)?;
    check_host_if(host_if)?;
    let action = format!("remove the nftables quarantine of instance {instance}");
    if layout == NftLayout::JumpRules {
        return remove_by_listing(nft, LEGACY_TABLE, instance, &action);
    }
    let _serial = removal_lock();
    // The last instance takes the table with it; the guard fails this when others are left.
    if run(nft, &removal(instance, host_if, true), &action).is_ok() {
        return Ok(());
    }
    match run(nft, &removal(instance, host_if, false), &action) {
        Ok(()) => Ok(()),
        // Something else still jumps to the chain: look, and delete by handle.
        Err(e) => {
            tracing::debug!(error = %e, "removal without looking failed, looking");
            remove_by_listing(nft, TABLE, instance, &action)
        }
    }
}

/// [`REMOVAL_LOCK`], held until dropped (opened without following a symlink there); `None` (removal
/// unserialised, as before the lock) when the file cannot be opened or locked.
fn removal_lock() -> Option<nix::fcntl::Flock<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(REMOVAL_LOCK)
        .map_err(|e| tracing::debug!(error = %e, "cannot open {REMOVAL_LOCK}"))
        .ok()?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| tracing::debug!(error = %e, "cannot lock {REMOVAL_LOCK}"))
        .ok()
}

/// Remove the instance's chain from `table`, with every rule that jumps to it and every map element
/// that leads to it, as the table shows them now (the quarantine of a release before 0.3, or
/// anything added by hand).
fn remove_by_listing(
    nft: &str,
    table: &'static str,
    instance: &str,
    action: &str,
) -> Result<(), NetError> {
    let chain = chain_name(instance);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(listing) = list(nft, table, action)? else {
            return Ok(());
        };
        let others = listing.instances().iter().any(|i| i != instance);
        let mut t = Transaction::default();
        let jumps = listing.jumps_to(&chain);
        t.0.extend(
            jumps
                .iter()
                .map(|(b, h)| ruleset::delete_rule(table, b, *h).into()),
        );
        let elements = listing.elements_to(&chain);
        t.0.extend(
            elements
                .iter()
                .map(|k| ruleset::delete_element(table, k).into()),
        );
        if listing.chains.contains(&chain) {
            t.0.push(ruleset::delete_chain(table, &chain).into());
        }
        if t.0.is_empty() && others {
            return Ok(());
        }
        if !others {
            t.0.extend(
                ruleset::delete_table_if_unused(table)
                    .into_iter()
                    .map(Cmd::Nft),
            );
        }
        match run(nft, &t, action) {
            Ok(()) if !others => return Ok(()),
            // Ours are gone; look again in case the others went meanwhile and the table can go too.
            Ok(()) => {}
            // Another process added an instance (guard) or removed rules (handles): look again.
            Err(e) if attempt < ATTEMPTS => {
                tracing::debug!(error = %e, "nftables changed underneath, retrying");
                std::thread::sleep(std::time::Duration::from_millis(5 * u64::from(attempt)));
            }
            Err(e) => return Err(e),
        }
    }
}

/// `table` as it is now, or `None` if there is none.
fn list(nft: &str, table: &'static str, action: &str) -> Result<Option<Listing>, NetError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let spawn_err = |source| NetError::NftSpawn {
            action: action.to_string(),
            source,
        };
        let out = (Command::new(nft).args(["-j", "list", "table", "inet", table]))
            .stdin(Stdio::null())
            .output()
            .map_err(spawn_err)?;
        if out.status.success() {
            let set = serde_json::from_slice(&out.stdout).map_err(|e| NetError::Nft {
                action: action.to_string(),
                hint: "nft printed JSON this wayback cannot read; is the table edited by hand?",
                source: std::io::Error::other(e.to_string()),
            })?;
            return Ok(Some(Listing::parse(&set, table)));
        }
        // Most likely ENOENT, but the message is localised: ask which tables exist instead. If the
        // table is there now, another process re-created it in between: look again.
        if !table_exists(nft, table, action)? {
            return Ok(None);
        }
        if attempt >= ATTEMPTS {
            return Err(failed(action, &String::from_utf8_lossy(&out.stderr)));
        }
    }
}

fn table_exists(nft: &str, table: &str, action: &str) -> Result<bool, NetError> {
    let set = helper::get_current_ruleset_with_args(Some(nft), &["list", "tables"])
        .map_err(|e| nft_error(action, e))?;
    Ok(set.objects.iter().any(|o| {
        matches!(o, NfObject::ListObject(NfListObject::Table(t))
            if t.family == nftables::types::NfFamily::INet && t.name == table)
    }))
}

/// Run `t` as one `nft -j -f -` transaction. (Not `nftables::helper::apply_ruleset`: that lets nft's
/// error message go to our stderr instead of into the error.)
fn run(nft: &str, t: &Transaction, action: &str) -> Result<(), NetError> {
    let json = serde_json::to_string(t).expect("nftables commands serialise to JSON");
    let spawn_err = |source| NetError::NftSpawn {
        action: action.to_string(),
        source,
    };
    let mut child = Command::new(nft)
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    // Dropping stdin at the end of this statement closes the pipe: nft reads to EOF, then commits.
    let fed = (child.stdin.take().expect("stdin is piped")).write_all(json.as_bytes());
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        return Err(failed(action, &String::from_utf8_lossy(&out.stderr)));
    }
    fed.map_err(spawn_err)
}

/// `nft` ran and failed with `stderr`.
fn failed(action: &str, stderr: &str) -> NetError {
    let hint = if stderr.contains("Operation not permitted") {
        "needs root (CAP_NET_ADMIN)"
    } else {
        "see `nft list table inet wayback`"
    };
    let msg = match stderr.trim() {
        "" => "nft exited with an error and no message",
        m => m,
    };
    NetError::Nft {
        action: action.to_string(),
        hint,
        source: std::io::Error::other(msg.to_string()),
    }
}

fn nft_error(action: &str, e: NftablesError) -> NetError {
    let other = |m: String| std::io::Error::other(m);
    let action = action.to_string();
    match e {
        NftablesError::NftExecution { inner, .. } => NetError::NftSpawn {
            action,
            source: inner,
        },
        NftablesError::NftFailed { stderr, .. } => failed(&action, &stderr),
        NftablesError::NftOutputEncoding { inner, .. } => NetError::Nft {
            action,
            hint: "nft printed something that is not UTF-8",
            source: other(inner.to_string()),
        },
        NftablesError::NftInvalidJson(inner) => NetError::Nft {
            action,
            hint: "nft printed JSON this wayback cannot read; is the table edited by hand?",
            source: other(inner.to_string()),
        },
    }
}

/// `[a-z0-9-]{1,32}`: safe as part of a chain name.
fn check_instance(name: &str) -> Result<(), NetError> {
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then_some(()).ok_or_else(|| NetError::InvalidName {
        name: name.to_string(),
        reason: "instance names are 1 to 32 characters a-z, 0-9 and '-'",
    })
}

/// 1..=15 bytes of `[A-Za-z0-9_.-]`: in particular no `*`, which `iifname` treats as a wildcard.
fn check_host_if(name: &str) -> Result<(), NetError> {
    let ok = (1..=15).contains(&name.len())
        && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    ok.then_some(()).ok_or_else(|| NetError::InvalidName {
        name: name.to_string(),
        reason: "host interface names for the quarantine are 1 to 15 bytes of A-Z, a-z, 0-9, '_', '.', '-'",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["a", "cloud-old", "x0", &"a".repeat(32)] {
            check_instance(good).unwrap();
        }
        for bad in ["", "Cloud", "a_b", "a.b", "a b", &"a".repeat(33)] {
            assert!(check_instance(bad).is_err(), "{bad:?}");
        }
        for good in ["wb-demo", "wb-cloud-ol1a2b", "eth0.5", "a"] {
            check_host_if(good).unwrap();
        }
        for bad in ["", "wb-*", "wb-\"x", "a b", "a234567890123456", "wb/x"] {
            assert!(check_host_if(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_nft_names_the_instance_and_the_package() {
        let q = Quarantine {
            instance: "demo".into(),
            host_if: "wb-demo".into(),
            allow: vec![],
        };
        let e = apply_with("/nonexistent/nft", &q).unwrap_err();
        assert!(matches!(e, NetError::NftSpawn { .. }), "{e:?}");
        let msg = e.to_string();
        for part in ["demo", "wb-demo", "is the nftables package installed?"] {
            assert!(msg.contains(part), "{msg}");
        }
        let e =
            remove_with("/nonexistent/nft", "demo", "wb-demo", NftLayout::VerdictMap).unwrap_err();
        assert!(e.to_string().contains("is the nftables package installed?"));
    }

    #[test]
    fn a_failing_nft_is_reported_with_its_message_as_source() {
        // `false` fails like nft does, with an empty message.
        let e = list("false", TABLE, "look").unwrap_err();
        assert!(matches!(e, NetError::Nft { .. }), "{e:?}");
        assert!(e.to_string().starts_with("cannot look: nft failed"), "{e}");
        let e = run("false", &Transaction::default(), "apply").unwrap_err();
        let source = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(source, "nft exited with an error and no message");
        let e = nft_error(
            "x",
            NftablesError::NftFailed {
                program: "nft".into(),
                hint: String::new(),
                stdout: String::new(),
                stderr: "Error: Could not process rule: Operation not permitted\n".into(),
            },
        );
        assert!(e.to_string().contains("needs root"), "{e}");
        let source = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(
            source,
            "Error: Could not process rule: Operation not permitted"
        );
    }

    #[test]
    fn the_table_cannot_be_deleted_under_a_live_instance() {
        if !nix::unistd::geteuid().is_root() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI must run as root"
            );
            eprintln!("skipped: needs root for nftables");
            return;
        }
        let name = format!("wbtq{}u-guard", std::process::id() % 100_000);
        let q = Quarantine {
            instance: name.clone(),
            host_if: "wbtq-guard".into(),
            allow: vec![],
        };
        apply(&q).unwrap();
        // What `remove` of the last other instance sends, computed before ours was added.
        let mut guard = Transaction::default();
        guard.0.extend(
            ruleset::delete_table_if_unused(TABLE)
                .into_iter()
                .map(Cmd::Nft),
        );
        let guarded = run(NFT, &guard, "test the guard");
        let still = instances_in_ruleset().unwrap();
        remove(&name, &q.host_if, NftLayout::VerdictMap).unwrap();
        assert!(guarded.is_err(), "the guard let the table go");
        assert!(still.contains(&name), "{still:?}");
        assert!(!instances_in_ruleset().unwrap().contains(&name));
    }
}
