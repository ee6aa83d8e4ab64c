//! The on-disk formats of other tools' catalogs: snapper's `info.xml` and btrbk's snapshot names
//! (`timestamp_format` short, long and long-iso). Pure: strings in, values or a reason out.

use std::collections::BTreeMap;

use crate::civil::{self, ParsedTime, Precision};

/// What a snapper `info.xml` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapperInfo {
    pub num: u64,
    pub date: i64,
    pub kind: String,
    pub description: Option<String>,
    pub cleanup: Option<String>,
    pub pre_num: Option<u64>,
    pub userdata: BTreeMap<String, String>,
}

/// Parse a snapper `info.xml`. The date is `YYYY-MM-DD HH:MM:SS` in UTC (snapper always writes UTC).
pub fn parse_snapper_info(xml: &str) -> Result<SnapperInfo, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not valid XML: {e}"))?;
    let top = doc.root_element();
    if top.tag_name().name() != "snapshot" {
        return Err(format!(
            "top element is <{}>, expected <snapshot>",
            top.tag_name().name()
        ));
    }
    let text = |name: &str| {
        top.children()
            .find(|n| n.has_tag_name(name))
            .map(|n| n.text().unwrap_or("").trim().to_string())
    };
    let num = text("num").ok_or("no <num>")?;
    let num: u64 = num
        .parse()
        .map_err(|_| format!("<num> {num:?} is not a number"))?;
    let date = text("date").ok_or("no <date>")?;
    let date = parse_snapper_date(&date)
        .ok_or_else(|| format!("<date> {date:?} is not \"YYYY-MM-DD HH:MM:SS\" (UTC)"))?;
    let kind = text("type").ok_or("no <type>")?;
    let pre_num = match text("pre_num") {
        Some(p) => Some(
            p.parse()
                .map_err(|_| format!("<pre_num> {p:?} is not a number"))?,
        ),
        None => None,
    };
    let mut userdata = BTreeMap::new();
    for ud in top.children().filter(|n| n.has_tag_name("userdata")) {
        let field = |name| {
            ud.children()
                .find(|n| n.has_tag_name(name))
                .map(|n| n.text().unwrap_or("").to_string())
        };
        match (field("key"), field("value")) {
            (Some(k), v) if !k.is_empty() => {
                userdata.insert(k, v.unwrap_or_default());
            }
            _ => return Err("<userdata> without a <key>".into()),
        }
    }
    Ok(SnapperInfo {
        num,
        date,
        kind,
        description: text("description").filter(|d| !d.is_empty()),
        cleanup: text("cleanup").filter(|c| !c.is_empty()),
        pre_num,
        userdata,
    })
}

fn parse_snapper_date(s: &str) -> Option<i64> {
    let t = civil::parse_datetime(s)?;
    (t.precision == Precision::Second && t.offset.is_none()).then(|| t.start_utc())
}

/// A btrbk snapshot name, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtrbkName {
    pub name: String,
    pub time: ParsedTime,
    /// The `_N` suffix btrbk adds when the timestamp is already taken.
    pub seq: u32,
}

/// Parse `<name>.<YYYYMMDD>[T<hhmm>[ss][±hhmm]][_N]`. `Ok(None)`: not btrbk-shaped (no `.` followed by
/// eight digits). `Err`: btrbk-shaped but invalid (e.g. month 13), to be reported as a warning.
pub fn parse_btrbk_name(s: &str) -> Result<Option<BtrbkName>, String> {
    let Some((name, stamp)) = s.rsplit_once('.') else {
        return Ok(None);
    };
    let Some((date, rest)) = civil::digits(stamp, 8) else {
        return Ok(None);
    };
    if name.is_empty() {
        return Ok(None);
    }
    let bad = |why: &str| Err(format!("btrbk-style name {s:?}: {why}"));
    let (rest, seq) = match rest.rsplit_once('_') {
        Some((r, n)) => match n.parse::<u32>() {
            Ok(v) if n.bytes().all(|b| b.is_ascii_digit()) => (r, v),
            _ => return bad("the suffix after '_' is not a number"),
        },
        None => (rest, 0),
    };
    let (y, m, d) = (date / 10_000, date / 100 % 100, date % 100);
    let (h, mi, sec, offset, precision) = if rest.is_empty() {
        (0, 0, 0, None, Precision::Day)
    } else {
        let Some(t) = rest.strip_prefix('T') else {
            return bad("expected 'T' or '_' after the date");
        };
        let Some((hhmm, t)) = civil::digits(t, 4) else {
            return bad("expected hhmm after 'T'");
        };
        let (sec, t, precision) = match civil::digits(t, 2) {
            Some((ss, t)) => (ss, t, Precision::Second),
            None => (0, t, Precision::Minute),
        };
        let offset = if t.is_empty() {
            None
        } else {
            match civil::parse_zone(t) {
                Some(o) if t.len() == 5 => Some(o),
                _ => return bad("the zone must be ±hhmm"),
            }
        };
        (hhmm / 100, hhmm % 100, sec, offset, precision)
    };
    let Some(civil) = civil::from_fields(y, m, d, h, mi, sec) else {
        return bad("no such date or time");
    };
    Ok(Some(BtrbkName {
        name: name.to_string(),
        time: ParsedTime {
            civil,
            offset,
            precision,
        },
        seq,
    }))
}
