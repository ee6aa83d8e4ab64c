//! What [`crate::nft`] needs to know of the table as `nft -j list table inet wayback` shows it: the
//! instance chains, and the handles of the jump rules that lead to them. Pure.

use nftables::schema::{NfListObject, NfObject, Nftables};
use nftables::stmt::Statement;
use nftables::types::NfFamily;

use super::ruleset::{CHAIN_PREFIX, TABLE};

/// What of the table matters here: its chains, and the jump rules of the base chains.
#[derive(Debug, Default)]
pub struct Listing {
    pub chains: Vec<String>,
    /// (base chain, rule handle, jump target)
    jumps: Vec<(String, u32, String)>,
}

impl Listing {
    pub fn parse(set: &Nftables) -> Listing {
        let mut out = Listing::default();
        for obj in set.objects.iter() {
            match obj {
                NfObject::ListObject(NfListObject::Chain(c)) if ours(c.family, &c.table) => {
                    out.chains.push(c.name.to_string());
                }
                NfObject::ListObject(NfListObject::Rule(r)) if ours(r.family, &r.table) => {
                    for stmt in r.expr.iter() {
                        if let (Statement::Jump(j), Some(h)) = (stmt, r.handle) {
                            out.jumps
                                .push((r.chain.to_string(), h, j.target.to_string()));
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    pub fn instances(&self) -> Vec<String> {
        let mut v: Vec<String> = (self.chains.iter())
            .filter_map(|c| c.strip_prefix(CHAIN_PREFIX).map(str::to_string))
            .collect();
        v.sort();
        v
    }

    pub fn jumps_to(&self, chain: &str) -> Vec<(String, u32)> {
        (self.jumps.iter())
            .filter(|(_, _, target)| target == chain)
            .map(|(base, handle, _)| (base.clone(), *handle))
            .collect()
    }
}

pub fn ours(family: NfFamily, table: &str) -> bool {
    family == NfFamily::INet && table == TABLE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nft -j list table inet wayback` with instances `demo` and `other` (trimmed).
    const LISTING: &str = r#"{"nftables":[{"metainfo":{"version":"1.0.6","release_name":"Lester Gooch #5","json_schema_version":1}},
{"table":{"family":"inet","name":"wayback","handle":59}},
{"chain":{"family":"inet","table":"wayback","name":"input","handle":1,"type":"filter","hook":"input","prio":-1,"policy":"accept"}},
{"chain":{"family":"inet","table":"wayback","name":"refuse","handle":3}},
{"chain":{"family":"inet","table":"wayback","name":"wb-demo","handle":7}},
{"chain":{"family":"inet","table":"wayback","name":"wb-other","handle":9}},
{"rule":{"family":"inet","table":"wayback","chain":"input","handle":14,"expr":[{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"wb-demo"}},{"jump":{"target":"wb-demo"}}]}},
{"rule":{"family":"inet","table":"wayback","chain":"forward","handle":15,"expr":[{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"wb-demo"}},{"jump":{"target":"wb-demo"}}]}},
{"rule":{"family":"inet","table":"wayback","chain":"input","handle":16,"expr":[{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"wb-other"}},{"jump":{"target":"wb-other"}}]}},
{"rule":{"family":"inet","table":"wayback","chain":"refuse","handle":5,"expr":[{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"tcp"}},{"reject":{"type":"tcp reset"}}]}},
{"rule":{"family":"inet","table":"wayback","chain":"wb-demo","handle":8,"expr":[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":["established","related"]}},{"accept":null}]}},
{"rule":{"family":"inet","table":"wayback","chain":"wb-demo","handle":13,"expr":[{"counter":{"packets":0,"bytes":0}},{"goto":{"target":"refuse"}}]}}]}"#;

    #[test]
    fn listing_finds_instance_chains_and_jump_handles() {
        let set: Nftables = serde_json::from_str(LISTING).unwrap();
        let l = Listing::parse(&set);
        assert_eq!(l.instances(), ["demo", "other"]);
        let demo = [("input".to_string(), 14), ("forward".to_string(), 15)];
        assert_eq!(l.jumps_to("wb-demo"), demo);
        assert_eq!(l.jumps_to("wb-other"), [("input".to_string(), 16)]);
        assert!(l.jumps_to("refuse").is_empty(), "goto is not a jump rule");
        assert!(l.jumps_to("wb-gone").is_empty());
    }
}
