//! Tier-0 tests of selectors: parsing, resolution (ties, before-first, after-last, ambiguity), ranges.

use super::*;
use crate::catalog::Source;

const T0: i64 = 1_794_650_400; // 2026-11-14 10:00:00 UTC

fn snap(root: &str, id: u64, date: i64) -> Snapshot {
    Snapshot {
        id,
        date,
        seq: 0,
        source: Source::Snapper {
            root: root.into(),
            kind: "single".into(),
            cleanup: None,
            pre_num: None,
            userdata: Default::default(),
        },
        description: None,
        readonly: true,
        path: format!("{root}/.snapshots/{id}/snapshot").into(),
        root: root.into(),
        uuid: None,
        parent_uuid: None,
    }
}

/// /persist: #10 .. #14 hourly from T0; #15 has the same date as #14 (a tie). /home: #1, #2 daily.
fn catalog() -> Vec<Snapshot> {
    let mut v: Vec<Snapshot> = (10..=14)
        .map(|i| snap("/persist", i, T0 + (i as i64 - 10) * 3600))
        .collect();
    v.push(snap("/persist", 15, T0 + 4 * 3600));
    v.push(snap("/home", 1, T0 - 86_400));
    v.push(snap("/home", 2, T0 + 86_400));
    v.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    v
}

fn sel(s: &str) -> Selector {
    s.parse().unwrap()
}

fn one(s: &str, cat: &[Snapshot], now: i64) -> String {
    let r = resolve(&sel(s), cat, now).unwrap_or_else(|e| panic!("{s}: {e}"));
    format!("{}#{}", r.root.display(), r.id)
}

#[test]
fn parses_selectors() {
    assert_eq!(sel("/a/b").kind, Kind::Path("/a/b".into()));
    assert_eq!(sel("/mnt/@home").kind, Kind::Path("/mnt/@home".into()));
    assert_eq!(sel("/mnt/@home@3").root(), Some(Path::new("/mnt/@home")));
    assert_eq!(
        sel("@12").kind,
        Kind::At {
            root: None,
            target: Target::Id(12)
        }
    );
    assert!(matches!(
        sel("/persist@2w").kind,
        Kind::At {
            root: Some(_),
            target: Target::Ago(Duration(1_209_600))
        }
    ));
    assert!(matches!(
        sel("@2026-11-14T10:00").kind,
        Kind::At {
            target: Target::Time(_),
            ..
        }
    ));
    for bad in [
        "",
        "@",
        "@2026-13-01",
        "@yesterday",
        "@-3",
        "@2026-11-14T25:00",
    ] {
        let e = bad.parse::<Selector>().unwrap_err();
        assert!(e.to_string().contains("examples"), "{bad}: {e}");
    }
}

#[test]
fn ids_roots_and_ambiguity() {
    let cat = catalog();
    assert_eq!(one("@12", &cat, 0), "/persist#12");
    assert_eq!(one("/home@2", &cat, 0), "/home#2");
    assert_eq!(one("/home/.snapshots@2", &cat, 0), "/home#2");
    assert_eq!(
        one("/persist/.snapshots/13/snapshot", &cat, 0),
        "/persist#13"
    );
    // #1 exists only in /home, #2 too; but add a /persist#2 and @2 becomes ambiguous.
    let mut more = cat.clone();
    more.push(snap("/persist", 2, T0 - 10 * 86_400));
    let e = resolve(&sel("@2"), &more, 0).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SelectorError::Ambiguous { ref candidates, .. } if candidates.len() == 2));
    assert!(
        msg.contains("/home/.snapshots/2/snapshot")
            && msg.contains("/persist/.snapshots/2/snapshot"),
        "{msg}"
    );
    assert!(msg.contains("ROOT@N"), "{msg}");
    let e = resolve(&sel("@99"), &cat, 0).unwrap_err();
    assert!(matches!(e, SelectorError::Empty { .. }), "{e}");
    let e = resolve(&sel("/srv@1"), &cat, 0).unwrap_err();
    assert!(e.to_string().contains("no snapshots under /srv"), "{e}");
    let e = resolve(&sel("/elsewhere"), &cat, 0).unwrap_err();
    assert!(matches!(e, SelectorError::NotInCatalog { .. }));
}

#[test]
fn times_ties_before_first_after_last() {
    let cat = catalog();
    // Exactly at #12's time, and a minute-precision time covering it.
    assert_eq!(one("/persist@2026-11-14T12:00:00Z", &cat, 0), "/persist#12");
    assert_eq!(one("/persist@2026-11-14T12:00", &cat, 0), "/persist#12");
    // Just before #12: #11. A zone moves the instant: 13:30+01:00 is 12:30 UTC.
    assert_eq!(one("/persist@2026-11-14T11:59:59", &cat, 0), "/persist#11");
    assert_eq!(
        one("/persist@2026-11-14T13:30+01:00", &cat, 0),
        "/persist#12"
    );
    // Before the first: empty, naming the oldest.
    let e = resolve(&sel("/persist@2026-11-14T09:59:59"), &cat, 0).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SelectorError::Empty { .. }));
    assert!(msg.contains("oldest is #10"), "{msg}");
    // After the last (in /home): the newest.
    assert_eq!(one("/home@2030-01-01", &cat, 0), "/home#2");
    // A tie (#14 and #15 at the same second) is ambiguous, listing both.
    let e = resolve(&sel("/persist@2026-11-14T20:00"), &cat, 0).unwrap_err();
    match e {
        SelectorError::Ambiguous { candidates, .. } => {
            assert_eq!(candidates.len(), 2);
            assert!(candidates[0].starts_with("#14") && candidates[1].starts_with("#15"));
        }
        other => panic!("{other}"),
    }
    // Across roots, a time picks one per series: ambiguous unless a ROOT narrows it.
    let e = resolve(&sel("@2026-11-14T11:00"), &cat, 0).unwrap_err();
    assert!(e.to_string().contains("/home/.snapshots/1/snapshot"), "{e}");
    // A date alone means the whole day: @2026-11-14 sees #14/#15 (tie) — and /home#1 from the 13th.
    assert!(resolve(&sel("/persist@2026-11-14"), &cat, 0).is_err());
    assert_eq!(one("/home@2026-11-14", &cat, 0), "/home#1");
}

#[test]
fn ages_are_relative_to_now() {
    let cat = catalog();
    let now = T0 + 3 * 3600 + 1800; // 13:30
    assert_eq!(one("/persist@1h", &cat, now), "/persist#12");
    assert_eq!(one("/persist@90m", &cat, now), "/persist#12");
    assert_eq!(one("/persist@91m", &cat, now), "/persist#11");
    assert!(resolve(&sel("/persist@2w"), &cat, now).is_err());
    assert_eq!(one("/home@1d", &cat, now), "/home#1");
}

fn ids(r: &str, cat: &[Snapshot], now: i64) -> Vec<u64> {
    let range: Range = r.parse().unwrap_or_else(|e| panic!("{r}: {e}"));
    select(&range, cat, now)
        .unwrap_or_else(|e| panic!("{r}: {e}"))
        .iter()
        .map(|s| s.id)
        .collect()
}

#[test]
fn ranges() {
    let cat = catalog();
    assert_eq!(ids("@11..@13", &cat, 0), [11, 12, 13]);
    assert_eq!(ids("/persist@13..", &cat, 0), [13, 14, 15]);
    assert_eq!(ids("..@11", &cat, 0), [10, 11]);
    assert_eq!(ids("@12", &cat, 0), [12]);
    assert_eq!(ids("..", &cat, 0).len(), cat.len());
    // Times: a date bound covers whole days; open ends.
    assert_eq!(ids("@2026-11-15..", &cat, 0), [2]);
    assert_eq!(ids("..@2026-11-13", &cat, 0), [1]);
    assert_eq!(
        ids("/persist@2026-11-14T11:00..@2026-11-14T12:00", &cat, 0),
        [11, 12]
    );
    assert_eq!(
        ids("/persist@2026-11-14", &cat, 0),
        [10, 11, 12, 13, 14, 15]
    );
    let now = T0 + 4 * 3600;
    assert_eq!(ids("/persist@1h..", &cat, now), [13, 14, 15]);
    assert_eq!(ids("/persist@9h../persist@3h", &cat, now), [10, 11]);
    // Paths with ".." components stay paths.
    let r: Range = "../x/.snapshots/1/snapshot".parse().unwrap();
    assert_eq!(r.from, r.to);
    assert_eq!(
        r.from.unwrap().path(),
        Some(Path::new("../x/.snapshots/1/snapshot"))
    );
    let r: Range = "/a/../b..@3".parse().unwrap();
    assert_eq!(r.from.unwrap().path(), Some(Path::new("/a/../b")));
    // Empty and bad.
    assert!(matches!(
        select(&"@2030-01-01..".parse().unwrap(), &cat, 0),
        Err(SelectorError::Empty { .. })
    ));
    assert!("@x..@2".parse::<Range>().is_err());
}
