//! Choosing each PVC's VolumeSnapshot by time: newest ready at or before, skew, refusals.

use super::*;
use crate::testutil::{facts, now, ts, SHOP};

fn snaps() -> Vec<VolumeSnapshot> {
    facts(SHOP, "shop").snapshots
}

fn claims() -> Vec<String> {
    vec!["shop-data".into(), "shop-uploads".into()]
}

#[test]
fn time_forms_are_the_hosts() {
    let n = now();
    assert_eq!(
        parse_time("2026-11-14", n).unwrap(),
        ts("2026-11-14T23:59:59Z")
    );
    assert_eq!(
        parse_time("2026-11-14T10:00", n).unwrap(),
        ts("2026-11-14T10:00:59Z")
    );
    assert_eq!(
        parse_time("2026-11-14T10:00:30+01:00", n).unwrap(),
        ts("2026-11-14T09:00:30Z")
    );
    assert_eq!(parse_time("2w", n).unwrap(), ts("2026-11-06T12:00:00Z"));
    assert_eq!(parse_time("36h", n).unwrap(), ts("2026-11-19T00:00:00Z"));
    for bad in [
        "",
        "yesterday",
        "2026-13-01",
        "2026-11-14T25:00",
        "0s",
        "@2w",
    ] {
        assert!(parse_time(bad, n).is_err(), "{bad} accepted");
    }
}

#[test]
fn newest_ready_at_or_before_with_skew() {
    let c = choose(&claims(), &[], ts("2026-11-14T23:59:59Z"), &snaps()).unwrap();
    assert_eq!(c[0].snapshot, "shop-data-20261114");
    assert_eq!(c[1].snapshot, "shop-uploads-20261114");
    assert_eq!(skew(&c), Some(300));
    // Exactly at the snapshot's time counts ("at or before").
    let c = choose(&claims()[..1], &[], ts("2026-11-13T02:00:00Z"), &snaps()).unwrap();
    assert_eq!(c[0].snapshot, "shop-data-20261113");
    assert_eq!(skew(&c), None);
}

#[test]
fn a_newer_snapshot_that_is_not_ready_is_passed_over_and_said() {
    let c = choose(&claims(), &[], now(), &snaps()).unwrap();
    assert_eq!(c[0].snapshot, "shop-data-20261114");
    assert_eq!(
        c[0].passed_over,
        vec![(
            "shop-data-20261115".to_string(),
            "readyToUse is not true yet".to_string()
        )]
    );
    assert_eq!(c[1].snapshot, "shop-uploads-20261115");
    assert_eq!(skew(&c), Some(86_400 + 300));
}

#[test]
fn missing_names_the_oldest_or_says_there_is_none() {
    let e = choose(&claims(), &[], ts("2026-11-01T00:00:00Z"), &snaps()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no VolumeSnapshot of PVC shop-data was taken at or before 2026-11-01 00:00:00 UTC (the oldest is shop-data-20261113, 2026-11-13 02:00:00 UTC)"
    );
    assert!(!e.is_transient());
    let e = choose(&["cache".into()], &[], now(), &snaps()).unwrap_err();
    assert!(
        e.to_string()
            .contains("it has no VolumeSnapshot in this namespace"),
        "{e}"
    );
}

#[test]
fn only_unready_candidates_is_transient() {
    let mut s = snaps();
    s.retain(|s| s.metadata.name.as_deref() == Some("shop-data-20261115"));
    let e = choose(&claims()[..1], &[], now(), &s).unwrap_err();
    assert!(e.is_transient());
    assert!(
        e.to_string()
            .contains("shop-data-20261115 (readyToUse is not true yet)"),
        "{e}"
    );
    // An error on the snapshot and a deletion are reasons too.
    let mut broken = s[0].clone();
    broken.status.as_mut().unwrap().error = Some(crate::snapshot::VolumeSnapshotError {
        message: Some("csi: quota".into()),
        time: None,
    });
    assert_eq!(broken.not_ready_reason(), "error: csi: quota");
}

#[test]
fn ties_are_ambiguous() {
    let mut s = snaps();
    let mut twin = s[1].clone();
    twin.metadata.name = Some("shop-data-20261114-b".into());
    s.push(twin);
    let e = choose(&claims()[..1], &[], ts("2026-11-14T12:00:00Z"), &s).unwrap_err();
    assert!(
        matches!(&e, ChoiceError::Ambiguous { names, .. } if names.len() == 2),
        "{e}"
    );
}

#[test]
fn explicit_snapshots_win_and_are_checked() {
    let pin = |c: &str, v: &str| SnapshotSource {
        claim: c.into(),
        volume_snapshot: v.into(),
    };
    let c = choose(
        &claims(),
        &[pin("shop-data", "shop-data-20261113")],
        now(),
        &snaps(),
    )
    .unwrap();
    assert_eq!(
        (c[0].snapshot.as_str(), c[0].explicit),
        ("shop-data-20261113", true)
    );
    assert_eq!(
        (c[1].snapshot.as_str(), c[1].explicit),
        ("shop-uploads-20261115", false)
    );
    let e = choose(&claims(), &[pin("shop-data", "nope")], now(), &snaps()).unwrap_err();
    assert!(
        e.to_string()
            .contains("snapshots of shop-data: shop-data-20261113"),
        "{e}"
    );
    let e = choose(
        &claims(),
        &[pin("shop-data", "shop-data-20261115")],
        now(),
        &snaps(),
    )
    .unwrap_err();
    assert!(e.is_transient(), "{e}");
    let e = choose(&claims(), &[pin("other", "x")], now(), &snaps()).unwrap_err();
    assert!(matches!(e, ChoiceError::UnknownClaim { .. }));
}
