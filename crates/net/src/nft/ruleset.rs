//! The pure half of [`crate::nft`]: what a quarantine is ([`Quarantine`], [`Egress`]) and the nftables
//! JSON transactions that install one ([`ruleset`]) or take one away ([`removal`]). Nothing here runs
//! `nft`.
//!
//! The `nftables` crate's schema has no `verdict` map type (its `SetType` lacks it), so a transaction is
//! a list of [`Cmd`]: the crate's typed objects, plus the one declaration of the verdict map, which
//! [`Transaction`] serialises itself.

use std::borrow::Cow;

use nftables::expr::Verdict;
use nftables::expr::{
    Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, SetItem, CT,
};
use nftables::schema::{Chain, Element, FlushObject, NfCmd, NfListObject, NfObject, Rule, Table};
use nftables::stmt::{
    AnonymousCounter, Counter, JumpTarget, Match, Operator, Reject, RejectType, Statement,
    VerdictMap,
};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook, RejectCode};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

pub use wayback_core::egress::{Egress, Proto};

pub use wayback_core::journal::NftLayout;

/// The one table every instance shares.
pub const TABLE: &str = "wayback-quarantine";
/// The table of releases before 0.3 (rules per instance, no map), which they still read and change
/// while they run; kept apart so that they never meet a verdict map they cannot parse.
pub const LEGACY_TABLE: &str = "wayback";

/// Every instance chain is called `wb-<instance>`; nothing else in the table starts with this.
pub const CHAIN_PREFIX: &str = "wb-";
/// The shared chain every instance chain ends in with `goto` (and the guard of table deletion).
pub const REFUSE_CHAIN: &str = "refuse";
/// The verdict map from a host interface to `jump wb-<instance>`: the base chains' only rule looks the
/// packet's input interface up in it, so a packet costs one lookup however many instances run.
pub const MAP: &str = "instances";
/// The base chains, with the hook each one hangs on. (Releases before 0.3 hung one `iifname … jump`
/// rule per instance on chains called `input` and `forward`; [`crate::nft`] still removes those.)
pub const BASE_CHAINS: [(&str, NfHook); 2] = [
    ("quarantine-input", NfHook::Input),
    ("quarantine-forward", NfHook::Forward),
];
/// `priority filter - 1`: just before the usual `filter` chains of other tables.
pub const PRIORITY: i32 = -1;

/// One instance's quarantine: everything that enters the host through `host_if` (the host end of the
/// instance's veth) and is not a reply, or a hole in `allow`, is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    /// Instance name, `[a-z0-9-]{1,32}`; the chain is `wb-<instance>`.
    pub instance: String,
    /// Host-side veth interface, e.g. `wb-demo` (1 to 15 bytes of `[A-Za-z0-9_.-]`, no wildcard).
    pub host_if: String,
    /// `--allow-egress` holes, in order.
    pub allow: Vec<Egress>,
}

/// The chain of an instance: `wb-<instance>`.
pub fn chain_name(instance: &str) -> String {
    format!("{CHAIN_PREFIX}{instance}")
}

/// One transaction: what [`crate::nft`] hands to `nft -j -f -`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction(pub Vec<Cmd>);

/// One command of a [`Transaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// One of the `nftables` crate's typed commands.
    Nft(NfObject<'static>),
    /// `add map inet wayback instances { type ifname : verdict; }` (idempotent).
    AddMap,
}

impl From<NfObject<'static>> for Cmd {
    fn from(o: NfObject<'static>) -> Cmd {
        Cmd::Nft(o)
    }
}

impl Transaction {
    fn extend(&mut self, cmds: impl IntoIterator<Item = NfObject<'static>>) {
        self.0.extend(cmds.into_iter().map(Cmd::Nft));
    }

    fn push(&mut self, cmd: impl Into<Cmd>) {
        self.0.push(cmd.into());
    }
}

impl Serialize for Transaction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Cmds<'a>(&'a [Cmd]);
        impl Serialize for Cmds<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for c in self.0 {
                    match c {
                        Cmd::Nft(o) => seq.serialize_element(o)?,
                        Cmd::AddMap => seq.serialize_element(&add_map())?,
                    }
                }
                seq.end()
            }
        }
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("nftables", &Cmds(&self.0))?;
        map.end()
    }
}

/// `add map inet wayback-quarantine instances { type ifname : verdict; }`, as nft's JSON.
fn add_map() -> serde_json::Value {
    serde_json::json!({"add": {"map": {
        "family": "inet", "table": TABLE, "name": MAP, "type": "ifname", "map": "verdict",
    }}})
}

/// The commands that add (or re-fill) the quarantine of `q`, as one transaction that needs no look at
/// the kernel first: create the table, the verdict map and the shared chains idempotently (`add`), flush
/// and re-fill the base chains (their one `iifname vmap @instances` rule), the `refuse` chain and the
/// instance chain, and map `q.host_if` to `jump wb-<instance>` (add, delete, add: whether or not the
/// element was there, it is there once afterwards). Pure: names are validated by `nft::apply`.
pub fn ruleset(q: &Quarantine) -> Transaction {
    let chain = chain_name(&q.instance);
    let mut cmds = Transaction::default();
    cmds.push(add(NfListObject::Table(table())));
    cmds.push(Cmd::AddMap);
    for (name, hook) in BASE_CHAINS {
        cmds.push(add(NfListObject::Chain(Chain {
            _type: Some(NfChainType::Filter),
            hook: Some(hook),
            prio: Some(PRIORITY),
            policy: Some(NfChainPolicy::Accept),
            ..plain_chain(name)
        })));
        cmds.extend(fill(name, vec![vec![lookup()]]));
    }
    // Shared: TCP gets a reset (connect() fails with ECONNREFUSED at once), everything else an ICMP /
    // ICMPv6 "administratively prohibited" (EHOSTUNREACH on a connected socket, so DNS fails at once).
    // Not a reset to an IPv6 link-local source: the kernel routes that reset without its interface
    // (out of the host's first fe80::/64 route, e.g. eth0), so it would never reach the instance.
    cmds.extend(fill(
        REFUSE_CHAIN,
        vec![
            vec![
                Statement::Match(Match {
                    left: payload("ip6", "saddr"),
                    right: Expression::Named(NamedExpression::Prefix(Prefix {
                        addr: Box::new(s("fe80::")),
                        len: 10,
                    })),
                    op: Operator::EQ,
                }),
                admin_prohibited(),
            ],
            vec![
                eq(meta(MetaKey::L4proto), "tcp"),
                Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None))),
            ],
            vec![admin_prohibited()],
        ],
    ));
    let mut rules = vec![
        // Replies to connections the host opened into the instance (and their ICMP errors).
        vec![
            Statement::Match(Match {
                left: Expression::Named(NamedExpression::CT(CT {
                    key: "state".into(),
                    family: None,
                    dir: None,
                })),
                right: Expression::List(vec![s("established"), s("related")]),
                op: Operator::IN,
            }),
            Statement::Accept(None),
        ],
        // IPv6 neighbour discovery, so a blocked connect to the host's fe80:: address gets refused
        // instead of hanging in address resolution. Not a connection; the kernel answers it.
        vec![
            Statement::Match(Match {
                left: payload("icmpv6", "type"),
                right: Expression::Named(NamedExpression::Set(vec![
                    SetItem::Element(s("nd-neighbor-solicit")),
                    SetItem::Element(s("nd-neighbor-advert")),
                ])),
                op: Operator::EQ,
            }),
            Statement::Accept(None),
        ],
    ];
    for hole in &q.allow {
        let family = if hole.addr.is_ipv4() { "ip" } else { "ip6" };
        rules.push(vec![
            eq(payload(family, "daddr"), &hole.addr.to_string()),
            Statement::Match(Match {
                left: payload(hole.proto.as_str(), "dport"),
                right: Expression::Number(u32::from(hole.port)),
                op: Operator::EQ,
            }),
            Statement::Accept(None),
        ]);
    }
    rules.push(vec![
        Statement::Counter(Counter::Anonymous(Some(AnonymousCounter::default()))),
        Statement::Goto(JumpTarget {
            target: REFUSE_CHAIN.into(),
        }),
    ]);
    cmds.extend(fill(&chain, rules));
    let element = || element(&q.host_if, Some(&chain));
    cmds.push(add(NfListObject::Element(element())));
    cmds.push(delete(NfListObject::Element(element())));
    cmds.push(add(NfListObject::Element(element())));
    cmds
}

/// The transaction that removes the quarantine of `instance` (host interface `host_if`) and, with
/// `table_if_unused`, the whole table if no other instance is left in it. Needs no look at the kernel
/// either: the instance chain and map element are added before they are deleted, so it succeeds when
/// they are already gone. It fails as a whole (EBUSY) when something else still jumps to the chain (a
/// rule of a release before 0.3), or with `table_if_unused` when another instance chain exists.
pub fn removal(instance: &str, host_if: &str, table_if_unused: bool) -> Transaction {
    let chain = chain_name(instance);
    let mut cmds = Transaction::default();
    cmds.push(add(NfListObject::Table(table())));
    cmds.push(Cmd::AddMap);
    cmds.push(add(NfListObject::Chain(plain_chain(&chain))));
    cmds.push(add(NfListObject::Element(element(host_if, Some(&chain)))));
    cmds.push(delete(NfListObject::Element(element(host_if, None))));
    cmds.push(delete_chain(TABLE, &chain));
    if table_if_unused {
        cmds.extend(delete_table_if_unused(TABLE));
    }
    cmds
}

/// Delete the map element of `host_if` from the map of `table` (a removal after looking, see
/// [`crate::nft`]).
pub fn delete_element(table: &'static str, host_if: &str) -> NfObject<'static> {
    delete(NfListObject::Element(Element {
        table: table.into(),
        ..element(host_if, None)
    }))
}

/// Delete rule `handle` of chain `chain` of `table`.
pub fn delete_rule(table: &'static str, chain: &str, handle: u32) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Delete(NfListObject::Rule(Rule {
        handle: Some(handle),
        table: table.into(),
        ..rule(chain, Vec::new())
    })))
}

/// Delete chain `chain` of `table` (and its rules; the kernel refuses while anything still jumps to
/// it).
pub fn delete_chain(table: &'static str, chain: &str) -> NfObject<'static> {
    delete(NfListObject::Chain(Chain {
        table: table.into(),
        ..plain_chain(chain)
    }))
}

/// Delete the whole table, but only if no instance chain is left: the `refuse` chain is (re)added and
/// deleted first, which the kernel refuses (EBUSY, aborting the whole transaction) while any instance
/// chain still ends in `goto refuse` — also one that another process added after we last looked.
/// Adding the table first makes this succeed when the table is already gone.
pub fn delete_table_if_unused(table: &'static str) -> Vec<NfObject<'static>> {
    let refuse = Chain {
        table: table.into(),
        ..plain_chain(REFUSE_CHAIN)
    };
    vec![
        add(NfListObject::Table(table_named(table))),
        add(NfListObject::Chain(refuse)),
        delete_chain(table, REFUSE_CHAIN),
        delete(NfListObject::Table(table_named(table))),
    ]
}

/// Delete table `table` whatever is in it; succeeds when it is absent.
pub fn delete_table(table: &'static str) -> Vec<NfObject<'static>> {
    vec![
        add(NfListObject::Table(table_named(table))),
        delete(NfListObject::Table(table_named(table))),
    ]
}

fn table() -> Table<'static> {
    table_named(TABLE)
}

fn table_named(name: &'static str) -> Table<'static> {
    Table {
        family: NfFamily::INet,
        name: name.into(),
        handle: None,
    }
}

fn plain_chain(name: &str) -> Chain<'static> {
    Chain {
        family: NfFamily::INet,
        table: TABLE.into(),
        name: name.to_string().into(),
        ..Chain::default()
    }
}

fn rule(chain: &str, expr: Vec<Statement<'static>>) -> Rule<'static> {
    Rule {
        family: NfFamily::INet,
        table: TABLE.into(),
        chain: chain.to_string().into(),
        expr: expr.into(),
        ..Rule::default()
    }
}

/// `add chain`, `flush chain`, then one `add rule` per entry of `rules`.
fn fill(chain: &str, rules: Vec<Vec<Statement<'static>>>) -> Vec<NfObject<'static>> {
    let mut out = vec![
        add(NfListObject::Chain(plain_chain(chain))),
        NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(plain_chain(chain)))),
    ];
    out.extend(
        rules
            .into_iter()
            .map(|r| add(NfListObject::Rule(rule(chain, r)))),
    );
    out
}

fn add(obj: NfListObject<'static>) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Add(obj))
}

fn delete(obj: NfListObject<'static>) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Delete(obj))
}

/// `iifname vmap @instances`.
fn lookup() -> Statement<'static> {
    Statement::VerdictMap(VerdictMap {
        key: meta(MetaKey::Iifname),
        data: s(&format!("@{MAP}")),
    })
}

/// The map element of `host_if`: with a chain `"<host_if>" : jump <chain>` (to add), without only
/// the key (to delete).
fn element(host_if: &str, chain: Option<&str>) -> Element<'static> {
    let item = match chain {
        Some(c) => Expression::List(vec![
            s(host_if),
            Expression::Verdict(Verdict::Jump(JumpTarget {
                target: c.to_string().into(),
            })),
        ]),
        None => s(host_if),
    };
    Element {
        family: NfFamily::INet,
        table: TABLE.into(),
        name: MAP.into(),
        elem: vec![item].into(),
    }
}

fn admin_prohibited() -> Statement<'static> {
    Statement::Reject(Some(Reject::new(
        Some(RejectType::ICMPX),
        Some(RejectCode::AdminProhibited),
    )))
}

fn s(text: &str) -> Expression<'static> {
    Expression::String(Cow::Owned(text.to_string()))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn eq(left: Expression<'static>, right: &str) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right: s(right),
        op: Operator::EQ,
    })
}
