//! What [`crate::nft`] needs to know of the table as `nft -j list table inet wayback` shows it: the
//! instance chains, the handles of rules that jump to them (a release before 0.3 hung one per instance
//! on its base chains) and the verdict map's elements. Pure. Read as plain JSON, not through the
//! `nftables` crate's schema, which cannot represent a verdict map.

use serde_json::Value;

use super::ruleset::{CHAIN_PREFIX, MAP};

/// What of the table matters here.
#[derive(Debug, Default)]
pub struct Listing {
    pub chains: Vec<String>,
    /// (chain, rule handle, jump target)
    jumps: Vec<(String, u32, String)>,
    /// (host interface, jump target) of the verdict map
    elements: Vec<(String, String)>,
}

impl Listing {
    /// The objects of `table` in `set`.
    pub fn parse(set: &Value, table: &str) -> Listing {
        let mut out = Listing::default();
        let objects = set["nftables"].as_array().map_or(&[][..], Vec::as_slice);
        for obj in objects {
            if let Some(c) = ours(&obj["chain"], table) {
                out.chains.extend(c["name"].as_str().map(str::to_string));
            } else if let Some(r) = ours(&obj["rule"], table) {
                out.parse_rule(r);
            } else if let Some(m) = ours(&obj["map"], table).filter(|m| m["name"] == MAP) {
                out.parse_map(m);
            }
        }
        out
    }

    fn parse_rule(&mut self, r: &Value) {
        let (Some(chain), Some(handle)) = (r["chain"].as_str(), r["handle"].as_u64()) else {
            return;
        };
        let Ok(handle) = u32::try_from(handle) else {
            return;
        };
        for stmt in r["expr"].as_array().into_iter().flatten() {
            if let Some(target) = stmt["jump"]["target"].as_str() {
                (self.jumps).push((chain.to_string(), handle, target.to_string()));
            }
        }
    }

    fn parse_map(&mut self, m: &Value) {
        for e in m["elem"].as_array().into_iter().flatten() {
            let (Some(key), Some(target)) = (e[0].as_str(), e[1]["jump"]["target"].as_str()) else {
                continue;
            };
            (self.elements).push((key.to_string(), target.to_string()));
        }
    }

    pub fn instances(&self) -> Vec<String> {
        let mut v: Vec<String> = (self.chains.iter())
            .filter_map(|c| c.strip_prefix(CHAIN_PREFIX).map(str::to_string))
            .collect();
        v.sort();
        v
    }

    /// The rules that jump to `chain`: (their chain, handle).
    pub fn jumps_to(&self, chain: &str) -> Vec<(String, u32)> {
        (self.jumps.iter())
            .filter(|(_, _, target)| target == chain)
            .map(|(base, handle, _)| (base.clone(), *handle))
            .collect()
    }

    /// The host interfaces the verdict map sends to `chain`.
    pub fn elements_to(&self, chain: &str) -> Vec<String> {
        (self.elements.iter())
            .filter(|(_, target)| target == chain)
            .map(|(key, _)| key.clone())
            .collect()
    }
}

/// `v` if it is an object of `table inet <table>`.
fn ours<'a>(v: &'a Value, table: &str) -> Option<&'a Value> {
    (v["family"] == "inet" && v["table"] == table).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nft -j list table inet wayback` with instances `demo` and `other` as a release before
    /// 0.3 left them (jump rules), and map elements as this one adds them (trimmed).
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
{"map":{"family":"inet","table":"wayback","name":"instances","type":"ifname","handle":20,"map":"verdict","elem":[["wb-new",{"jump":{"target":"wb-new"}}],["wb-demo2",{"jump":{"target":"wb-demo"}}]]}},
{"rule":{"family":"inet","table":"wayback","chain":"wb-demo","handle":13,"expr":[{"counter":{"packets":0,"bytes":0}},{"goto":{"target":"refuse"}}]}}]}"#;

    #[test]
    fn listing_finds_instance_chains_and_jump_handles() {
        let set: Value = serde_json::from_str(LISTING).unwrap();
        let l = Listing::parse(&set, "wayback");
        assert!(Listing::parse(&set, "other").chains.is_empty());
        assert_eq!(l.instances(), ["demo", "other"]);
        let demo = [("input".to_string(), 14), ("forward".to_string(), 15)];
        assert_eq!(l.jumps_to("wb-demo"), demo);
        assert_eq!(l.jumps_to("wb-other"), [("input".to_string(), 16)]);
        assert!(l.jumps_to("refuse").is_empty(), "goto is not a jump rule");
        assert!(l.jumps_to("wb-gone").is_empty());
        assert_eq!(l.elements_to("wb-demo"), ["wb-demo2"]);
        assert_eq!(l.elements_to("wb-new"), ["wb-new"]);
        assert!(l.elements_to("wb-other").is_empty());
    }
}
