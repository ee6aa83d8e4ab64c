//! Tier-0 tests of live (writable) subvolumes against snapshots: discovery lists them apart (at the root
//! and below it, writable snapper/btrbk snapshots with a warning, hand-made writable snapshots with their
//! origin), the search below a root (nested snapshot directories, the depth bound, symlinks and other
//! filesystems never searched, subvolumes never descended into, the directory budget), selectors and
//! ranges that never pick a live subvolume, and `inspect`.

use super::tests::Fixture;
use super::*;
use crate::selector::{resolve_in, select_in, Range, Selector, SelectorError};

const T0: i64 = 1_794_650_400; // 2026-11-14 10:00:00 UTC
const H: i64 = 3600;

/// The layout of the bug report, and more:
/// - /pool: the pool's top level (writable, no uuid, like subvolume 5)
/// - /pool/live: live data; /pool/live/inner is a read-only subvolume inside it (never found: the
///   search does not descend into subvolumes)
/// - /pool/snaps/1, /2: read-only snapshots of live; /pool/snaps/3: a snapshot of live made writable,
///   and the newest thing in that directory
/// - /pool/fork: a writable snapshot of /pool/snaps/1
/// - /pool/a/b/live2: live, two levels down; /pool/a/b/c/x: read-only, four levels down (found);
///   /pool/a/b/c/d/y: five levels down (too deep)
/// - /pool/bk: btrbk, one writable (warned about, live) and one read-only
/// - /pool/link: a symlink, /pool/other-fs: another filesystem's mount point (neither searched)
fn pool() -> Fixture {
    let mut f = Fixture::default();
    f.dir("/pool");
    f.subvols.insert(
        "/pool".into(),
        SubvolMeta {
            otime: 0,
            readonly: false,
            uuid: None,
            parent_uuid: None,
        },
    );
    f.subvol_of("/pool/live", T0 - 10 * H, false, None);
    f.subvol_of("/pool/live/inner", T0, true, Some("uuid-/pool/live"));
    f.subvol_of("/pool/snaps/1", T0, true, Some("uuid-/pool/live"));
    f.subvol_of("/pool/snaps/2", T0 + H, true, Some("uuid-/pool/live"));
    f.subvol_of("/pool/snaps/3", T0 + 2 * H, false, Some("uuid-/pool/live"));
    f.subvol_of("/pool/fork", T0 + 3 * H, false, Some("uuid-/pool/snaps/1"));
    f.subvol_of("/pool/a/b/live2", T0, false, None);
    f.subvol_of(
        "/pool/a/b/c/x",
        T0 - 5 * H,
        true,
        Some("uuid-/pool/a/b/live2"),
    );
    f.subvol_of("/pool/a/b/c/d/y", T0, true, None);
    f.subvol_of("/pool/bk/home.20261114T1200", 0, false, None);
    f.subvol_of("/pool/bk/home.20261113", 0, true, None);
    f.symlink("/pool/link");
    f.subvol_of("/elsewhere/snap", T0, true, None);
    f.dir("/pool/other-fs/deeper");
    f.mounts.insert("/pool/other-fs".into());
    f.subvol_of("/pool/other-fs/deeper/z", T0, true, None);
    f
}

fn paths<'a>(it: impl IntoIterator<Item = &'a Path>) -> Vec<String> {
    it.into_iter().map(|p| p.display().to_string()).collect()
}

#[test]
fn live_subvolumes_are_listed_apart_never_as_snapshots() {
    let cat = discover(&["/pool".into()], &pool()).unwrap();
    assert!(cat.snapshots.iter().all(|s| s.readonly));
    insta::assert_snapshot!(render(&cat), @r"
         ID  DATE (UTC)           SOURCE            DESCRIPTION               PATH
         #1  2026-11-12 23:00:00  btrbk home        -                         /pool/bk/home.20261113
         #2  2026-11-14 05:00:00  plain             -                         /pool/a/b/c/x
         #3  2026-11-14 10:00:00  plain             -                         /pool/snaps/1
         #4  2026-11-14 11:00:00  plain             -                         /pool/snaps/2

    Live subvolumes (writable: today's data, never picked as a snapshot; `up` on one needs --from-live):
      CREATED (UTC)        SNAPSHOTS  PATH  (WHAT)
      1970-01-01 00:00:00          0  /pool  (live data)
      2026-11-14 10:00:00          1  /pool/a/b/live2  (live data)
      1970-01-01 00:00:00          0  /pool/bk/home.20261114T1200  (btrbk-style name (home) but writable (an interrupted transfer?))
      2026-11-14 13:00:00          0  /pool/fork  (writable snapshot of /pool/snaps/1)
      2026-11-14 00:00:00          2  /pool/live  (live data)
      2026-11-14 12:00:00          0  /pool/snaps/3  (writable snapshot of /pool/live)
    ");
    let warned: Vec<String> = cat
        .warnings
        .iter()
        .map(|w| format!("{}: {}", w.path.display(), w.message))
        .collect();
    insta::assert_snapshot!(warned.join("\n"), @r#"/pool/bk/home.20261114T1200: named like a btrbk snapshot of "home" but writable (btrbk's snapshots and backups are read-only: an interrupted transfer, or made writable by hand?); listed as live, never used as a snapshot"#);
    // Series per directory: the nested snapshot directories are series of their own.
    let series: Vec<String> = cat.snapshots.iter().map(Snapshot::series).collect();
    assert_eq!(
        series,
        [
            "btrbk /pool/bk/home",
            "plain /pool/a/b/c",
            "plain /pool/snaps",
            "plain /pool/snaps"
        ]
    );
}

#[test]
fn the_search_below_a_root_is_bounded_and_stays_inside() {
    let cat = discover(&["/pool".into()], &pool()).unwrap();
    let found: Vec<String> = paths(
        cat.snapshots
            .iter()
            .map(|s| s.path.as_path())
            .chain(cat.live.iter().map(|l| l.path.as_path())),
    );
    for absent in [
        "/pool/live/inner",        // inside a subvolume
        "/pool/a/b/c/d/y",         // five levels down
        "/elsewhere/snap",         // behind a symlink
        "/pool/other-fs/deeper/z", // on another filesystem
    ] {
        assert!(!found.contains(&absent.to_string()), "{absent} found");
    }
    assert!(found.contains(&"/pool/a/b/c/x".to_string()));
    // The same tree given as a deeper root: ids restart, series stay per directory.
    let cat = discover(&["/pool/snaps".into()], &pool()).unwrap();
    let ids: Vec<(u64, String)> = cat
        .snapshots
        .iter()
        .map(|s| (s.id, s.path.display().to_string()))
        .collect();
    assert_eq!(
        ids,
        [(1, "/pool/snaps/1".into()), (2, "/pool/snaps/2".into())]
    );
    assert_eq!(
        paths(cat.live.iter().map(|l| l.path.as_path())),
        ["/pool/snaps/3"]
    );
    // A writable snapshot's origin is named only when discovery found it.
    assert_eq!(
        cat.live[0].what(),
        "writable snapshot of subvolume uuid-/pool/live (not under the given roots)"
    );
}

#[test]
fn the_directory_budget_stops_with_a_warning() {
    let mut f = Fixture::default();
    for i in 0..MAX_DIRS + 10 {
        f.dir(&format!("/big/d{i:05}"));
    }
    f.subvol_of("/big/d00000/early", T0, true, None);
    f.subvol_of(&format!("/big/d{:05}/late", MAX_DIRS + 5), T0, true, None);
    let cat = discover(&["/big".into()], &f).unwrap();
    assert_eq!(
        paths(cat.snapshots.iter().map(|s| s.path.as_path())),
        ["/big/d00000/early"]
    );
    assert_eq!(cat.warnings.len(), 1, "{:?}", cat.warnings);
    assert!(
        cat.warnings[0]
            .message
            .contains("stopped after searching 4096 directories"),
        "{:?}",
        cat.warnings
    );
}

#[test]
fn a_writable_snapper_snapshot_is_live_and_warned_about() {
    let mut f = Fixture::default();
    f.subvol_of("/srv", 0, false, None);
    f.subvol_of("/srv/.snapshots", 0, false, None);
    f.snapper("/srv/.snapshots", 1, "2026-11-14 10:00:00");
    f.snapper_rw("/srv/.snapshots", 2, "2026-11-14 11:00:00", false);
    for root in ["/srv", "/srv/.snapshots"] {
        let cat = discover(&[root.into()], &f).unwrap();
        let ids: Vec<u64> = cat.snapshots.iter().map(|s| s.id).collect();
        assert_eq!(ids, [1], "{root}");
        let l = cat
            .live_at(Path::new("/srv/.snapshots/2/snapshot"))
            .unwrap();
        assert_eq!(l.kind, LiveKind::Snapper { num: 2 });
        assert_eq!(
            l.what(),
            "snapper snapshot #2 made writable (changed by hand?)"
        );
        assert!(
            cat.warnings
                .iter()
                .any(|w| w.message.contains("snapper snapshot #2 is writable")),
            "{:?}",
            cat.warnings
        );
        // Its own root: listed as live when given as the parent, not when .snapshots is the root.
        assert_eq!(cat.live_at(Path::new("/srv")).is_some(), root == "/srv");
    }
    // Both selectors that would have picked #2 pick #1 or fail, and the path says what it is.
    let cat = discover(&["/srv".into()], &f).unwrap();
    let sel = |s: &str| s.parse::<Selector>().unwrap();
    assert_eq!(resolve_in(&sel("/srv@2026-11-15"), &cat, 0).unwrap().id, 1);
    let e = resolve_in(&sel("/srv@2"), &cat, 0).unwrap_err();
    assert!(
        e.to_string().contains("snapper snapshot #2 made writable"),
        "{e}"
    );
    let e = resolve_in(&sel("/srv/.snapshots/2/snapshot"), &cat, 0).unwrap_err();
    assert!(matches!(e, SelectorError::Live { .. }), "{e}");
}

fn sel(s: &str) -> Selector {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn selectors_never_resolve_to_live() {
    let cat = discover(&["/pool".into()], &pool()).unwrap();
    let live: Vec<&Path> = cat.live.iter().map(|l| l.path.as_path()).collect();
    // Every id, every time, every age: only snapshots.
    let mut picked = Vec::new();
    for s in [
        "/pool@1",
        "/pool@2",
        "/pool@3",
        "/pool@4",
        "@3",
        "/pool/snaps@2030-01-01",
        "/pool/snaps@2026-11-14T12:30",
        "/pool/snaps@1m",
        "/pool/snaps@1h",
    ] {
        let now = T0 + 3 * H;
        match resolve_in(&sel(s), &cat, now) {
            Ok(snap) => picked.push((s, snap.path.display().to_string())),
            Err(e) => panic!("{s}: {e}"),
        }
    }
    for (s, p) in &picked {
        assert!(!live.contains(&Path::new(p)), "{s} picked live {p}");
    }
    // The newest in /pool/snaps is the writable #3: "newest" skips it.
    assert_eq!(picked[5].1, "/pool/snaps/2");
    assert_eq!(picked[7].1, "/pool/snaps/2");
    // Asked by path, a live subvolume says what it is and names its newest snapshot.
    let e = resolve_in(&sel("/pool/live"), &cat, 0).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SelectorError::Live { .. }), "{msg}");
    assert!(
        msg.contains(
            "/pool/live is a writable subvolume (live data): today's state, not a snapshot"
        ) && msg.contains("newest snapshot is #4  2026-11-14 11:00:00  /pool/snaps/2 (2 in all"),
        "{msg}"
    );
    let e = resolve_in(&sel("/pool/fork"), &cat, 0).unwrap_err();
    assert!(
        e.to_string().contains("writable snapshot of /pool/snaps/1"),
        "{e}"
    );
    // Nothing there: the error names the live subvolumes it passed over.
    let e = resolve_in(&sel("/pool/a/b@1"), &cat, 0).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("no snapshot matches /pool/a/b@1"), "{msg}");
    let e = resolve_in(&sel("/pool/snaps@2026-11-13"), &cat, 0).unwrap_err();
    assert!(
        e.to_string()
            .contains("passed over: /pool/snaps/3 (writable snapshot of /pool/live)"),
        "{e}"
    );
}

fn ids(r: &str, cat: &Catalog) -> Result<Vec<String>, SelectorError> {
    let range: Range = r.parse().unwrap_or_else(|e| panic!("{r}: {e}"));
    Ok(select_in(&range, cat, T0 + 10 * H)?
        .iter()
        .map(|s| s.path.display().to_string())
        .collect())
}

#[test]
fn ranges_exclude_live() {
    let cat = discover(&["/pool".into()], &pool()).unwrap();
    assert_eq!(ids("..", &cat).unwrap().len(), cat.snapshots.len());
    assert_eq!(
        ids("/pool/snaps@2026-11-14", &cat).unwrap(),
        ["/pool/snaps/1", "/pool/snaps/2"]
    );
    assert_eq!(
        ids("/pool@3..", &cat).unwrap(),
        ["/pool/snaps/1", "/pool/snaps/2"]
    );
    let e = ids("/pool/snaps@1h..", &cat).unwrap_err().to_string();
    assert!(
        e.contains("passed over: /pool/snaps/3 (writable snapshot of /pool/live)"),
        "{e}"
    );
    let e = ids("/pool/live..", &cat).unwrap_err();
    assert!(matches!(e, SelectorError::Live { .. }), "{e}");
}

#[test]
fn inspect_tells_live_from_snapshots() {
    let mut f = pool();
    f.subvol_of("/outside/.snapshots/7/snapshot", T0, false, None);
    f.subvol_of("/outside/copy", T0, false, Some("uuid-/pool/snaps/2"));
    let cat = discover(&["/pool".into()], &f).unwrap();
    match inspect(Path::new("/pool/live"), &cat, &f) {
        PathInfo::Live { subvol, snapshots } => {
            assert_eq!(subvol.kind, LiveKind::Live);
            assert_eq!(
                paths(snapshots.iter().map(|s| s.path.as_path())),
                ["/pool/snaps/1", "/pool/snaps/2"]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        inspect(Path::new("/pool/snaps/2"), &cat, &f),
        PathInfo::Snapshot { listed: Some(s) } if s.id == 4
    ));
    assert!(matches!(
        inspect(Path::new("/pool/live/inner"), &cat, &f),
        PathInfo::Snapshot { listed: None }
    ));
    assert_eq!(
        inspect(Path::new("/pool/a"), &cat, &f),
        PathInfo::NotSubvolume
    );
    // Outside every root: the kind comes from where it is; the origin from the catalog.
    let kind = |p: &str| match inspect(Path::new(p), &cat, &f) {
        PathInfo::Live { subvol, .. } => (subvol.kind.clone(), subvol.what()),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        kind("/outside/.snapshots/7/snapshot").0,
        LiveKind::Snapper { num: 7 }
    );
    assert_eq!(
        kind("/outside/copy"),
        (
            LiveKind::WritableSnapshot,
            "writable snapshot of /pool/snaps/2".into()
        )
    );
}

#[test]
fn json_lists_live_apart() {
    let cat = discover(&["/pool/snaps".into()], &pool()).unwrap();
    let v = to_json(&cat);
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 2);
    insta::assert_json_snapshot!(v["live"], @r#"
    [
      {
        "created": 1794657600,
        "created_utc": "2026-11-14 12:00:00",
        "kind": "writable_snapshot",
        "newest_snapshot": null,
        "parent_uuid": "uuid-/pool/live",
        "path": "/pool/snaps/3",
        "root": "/pool/snaps",
        "snapshot_count": 0,
        "uuid": "uuid-/pool/snaps/3",
        "what": "writable snapshot of subvolume uuid-/pool/live (not under the given roots)"
      }
    ]
    "#);
}

#[test]
fn nested_roots_number_by_the_first_root() {
    let f = pool();
    // Alone, /pool numbers its btrbk and plain snapshots 1..4, /pool/snaps its own two 1..2.
    let whole = discover(&["/pool".into()], &f).unwrap();
    assert_eq!(whole.snapshots[2].path, Path::new("/pool/snaps/1"));
    assert_eq!(whole.snapshots[2].id, 3);
    // Both roots, the selector's first: each snapshot once, /pool/snaps's numbering wins for its own.
    let cat = discover(&["/pool/snaps".into(), "/pool".into()], &f).unwrap();
    assert_eq!(cat.snapshots.len(), whole.snapshots.len());
    assert_eq!(cat.live.len(), whole.live.len());
    let s = resolve_in(&sel("/pool/snaps@1"), &cat, 0).unwrap();
    assert_eq!(s.path, Path::new("/pool/snaps/1"));
    assert_eq!(
        resolve_in(&sel("/pool/snaps@2"), &cat, 0).unwrap().path,
        Path::new("/pool/snaps/2")
    );
}
