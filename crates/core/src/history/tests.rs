//! Distinct versions of a file across snapshots: runs, deletions, and when a content hash is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::*;
use crate::catalog::{Snapshot, Source};

fn file(size: u64, mtime: i64, ino: u64, ctime: i64) -> Entry {
    Entry {
        kind: FileType::File,
        size,
        mtime,
        mtime_nsec: 0,
        ctime,
        ctime_nsec: 0,
        ino,
        mode: 0o644,
        uid: 0,
        gid: 0,
        target: None,
    }
}

fn link(target: &str) -> Entry {
    Entry {
        kind: FileType::Symlink,
        target: Some(target.into()),
        ..file(target.len() as u64, 1, 9, 1)
    }
}

/// The spans as (state label, first, last).
fn spans(h: &History) -> Vec<(String, usize, usize)> {
    h.spans
        .iter()
        .map(|s| {
            let l = match s.state {
                State::Present { version } => format!("v{version}"),
                State::Absent { deleted: true } => "deleted".into(),
                State::Absent { deleted: false } => "absent".into(),
            };
            (l, s.first, s.last)
        })
        .collect()
}

fn no_hash(_: usize) -> Option<Digest> {
    panic!("no hash expected")
}

#[test]
fn unchanged_inode_and_ctime_need_no_hash() {
    let a = file(10, 100, 7, 100);
    let obs = vec![None, Some(a.clone()), Some(a.clone()), Some(a), None];
    let h = group(&obs, None, &mut no_hash);
    assert_eq!(
        spans(&h),
        vec![
            ("absent".into(), 0, 0),
            ("v1".into(), 1, 3),
            ("deleted".into(), 4, 4)
        ]
    );
    assert_eq!(h.versions.len(), 1);
    assert_eq!((h.hashed, h.live), (0, Live::Unknown));
}

#[test]
fn equal_size_and_mtime_with_other_content_is_told_apart_by_hash() {
    // v1; v2 (new size); v3 same size and mtime as v2 but rewritten (new ctime); then deleted.
    let v1 = file(10, 100, 7, 100);
    let v2 = file(20, 200, 7, 200);
    let v3 = file(20, 200, 7, 300);
    let mut obs: Vec<Option<Entry>> = Vec::new();
    obs.extend(std::iter::repeat_n(Some(v1), 10));
    obs.extend(std::iter::repeat_n(Some(v2), 8));
    obs.extend(std::iter::repeat_n(Some(v3), 7));
    obs.extend(std::iter::repeat_n(None, 5));
    let mut asked = Vec::new();
    let mut hash = |i: usize| {
        asked.push(i);
        Some(if i < 18 { [2; 32] } else { [3; 32] })
    };
    let h = group(&obs, Some(None), &mut hash);
    assert_eq!(
        spans(&h),
        vec![
            ("v1".into(), 0, 9),
            ("v2".into(), 10, 17),
            ("v3".into(), 18, 24),
            ("deleted".into(), 25, 29)
        ]
    );
    // Only the one boundary that size and mtime cannot decide was hashed.
    assert_eq!(asked, vec![17, 18]);
    assert_eq!(h.hashed, 2);
    assert_eq!(h.versions[0].sha256, None);
    assert_eq!(h.versions[1].sha256.as_deref(), Some(&hex(&[2; 32])[..]));
    assert_eq!(h.versions[2].sha256.as_deref(), Some(&hex(&[3; 32])[..]));
    assert_eq!(h.live, Live::Absent);
    assert_eq!(h.version_at(12).map(|v| v.number), Some(2));
    assert_eq!(h.version_at(27), None);
}

#[test]
fn equal_hash_merges_and_a_returning_version_keeps_its_number() {
    let a = file(5, 50, 1, 50);
    let a_copy = file(5, 50, 2, 60); // copied back with the same mtime and content
    let b = file(6, 70, 1, 70);
    let obs = vec![Some(a.clone()), Some(a_copy), Some(b), Some(a)];
    let h = group(&obs, Some(Some(file(6, 70, 1, 70))), &mut |_| Some([1; 32]));
    assert_eq!(
        spans(&h),
        vec![
            ("v1".into(), 0, 1),
            ("v2".into(), 2, 2),
            ("v1".into(), 3, 3)
        ]
    );
    assert_eq!(h.versions.len(), 2);
    assert_eq!(h.runs_of(1).len(), 2);
    assert_eq!(h.live, Live::Version { version: 2 });
}

#[test]
fn unreadable_content_is_shown_apart_and_live_can_be_new() {
    let a = file(5, 50, 1, 50);
    let b = file(5, 50, 1, 51);
    let h = group(
        &[Some(a), Some(b)],
        Some(Some(file(9, 90, 1, 90))),
        &mut |_| None,
    );
    assert_eq!(h.versions.len(), 2);
    assert_eq!(h.live, Live::New);
}

#[test]
fn kinds_symlinks_and_directories() {
    let dir = Entry {
        kind: FileType::Dir,
        ..file(4096, 1, 3, 1)
    };
    let dir2 = Entry {
        mtime: 99,
        ctime: 99,
        ..dir.clone()
    };
    assert_eq!(same(&dir, &dir2), Same::Yes);
    assert_eq!(same(&link("a"), &link("a")), Same::Yes);
    assert_eq!(same(&link("a"), &link("b")), Same::No);
    assert_eq!(same(&dir, &link("a")), Same::No);
    let obs = vec![Some(link("a")), Some(dir), Some(link("a"))];
    let h = group(&obs, None, &mut no_hash);
    assert_eq!(
        spans(&h),
        vec![
            ("v1".into(), 0, 0),
            ("v2".into(), 1, 1),
            ("v1".into(), 2, 2)
        ]
    );
}

fn snapshot(id: u64) -> Snapshot {
    Snapshot {
        id,
        date: 1_793_491_200 + id as i64 * 3600,
        seq: 0,
        source: Source::Plain,
        description: None,
        readonly: true,
        path: format!("/pool/.snapshots/{id}/snapshot").into(),
        root: "/pool".into(),
        uuid: None,
        parent_uuid: None,
    }
}

#[test]
fn render_names_versions_deletion_and_restore_hint() {
    let v1 = file(10, 1_793_491_000, 7, 100);
    let v2 = file(20, 1_793_495_000, 7, 200);
    let obs = vec![Some(v1), Some(v2.clone()), Some(v2), None];
    let h = group(&obs, Some(None), &mut no_hash);
    let snaps: Vec<Snapshot> = (1..=4).map(snapshot).collect();
    let refs: Vec<&Snapshot> = snaps.iter().collect();
    let text = render("a/report.odt", "plain /pool", &refs, &h);
    assert_eq!(
        text,
        "a/report.odt: 2 versions in 4 snapshots of plain /pool\n\
         \x20 v1       #1                1  2026-11-01 01:00:00 .. 2026-11-01 01:00:00  10 bytes  mtime 2026-10-31 23:56:40\n\
         \x20 v2       #2–#3             2  2026-11-01 02:00:00 .. 2026-11-01 03:00:00  20 bytes  mtime 2026-11-01 01:03:20\n\
         \x20 deleted  #4                1  2026-11-01 04:00:00 .. 2026-11-01 04:00:00  \n\
         \x20 live: deleted (as in the newest snapshots)\n\
         \x20 newest version in a snapshot: #3  (wayback restore a/report.odt --from @3)\n"
    );
    let j = to_json("a/report.odt", "plain /pool", &refs, &h);
    assert_eq!(j["versions"][1]["first"]["id"], 2);
    assert_eq!(j["versions"][1]["last"]["id"], 3);
    assert_eq!(j["versions"][1]["count"], 2);
    assert_eq!(j["versions"][1]["type"], "file");
    assert_eq!(j["spans"][2]["state"], "absent");
    assert_eq!(j["spans"][2]["deleted"], true);
    assert_eq!(j["live"]["state"], "absent");
}

#[test]
fn deleted_lists_paths_gone_from_live_with_their_last_snapshot() {
    let mut s1 = BTreeMap::new();
    s1.insert(PathBuf::from("d/a"), file(1, 1, 1, 1));
    s1.insert(PathBuf::from("d/keep"), file(1, 1, 2, 1));
    let mut s2 = s1.clone();
    s2.insert(PathBuf::from("d/a"), file(2, 2, 1, 2));
    s2.insert(
        PathBuf::from("d/sub"),
        Entry {
            kind: FileType::Dir,
            ..file(0, 0, 3, 0)
        },
    );
    s2.insert(PathBuf::from("d/sub/x"), file(3, 3, 4, 3));
    let live: BTreeSet<PathBuf> = [PathBuf::from("d/keep")].into();
    let d = deleted(&[s1, s2, BTreeMap::new()], &live);
    let paths: Vec<_> = d.iter().map(|d| d.path.to_str().unwrap()).collect();
    assert_eq!(paths, vec!["d/a", "d/sub", "d/sub/x"]);
    assert_eq!(
        (d[0].first, d[0].last, d[0].snapshots, d[0].entry.size),
        (0, 1, 2, 2)
    );
    assert!(!d[1].under_deleted_dir && d[2].under_deleted_dir);
}
