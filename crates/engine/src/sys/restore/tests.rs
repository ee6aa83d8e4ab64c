//! Tier 0 (no root): restoring out of a directory tree standing in for a snapshot, on whatever
//! filesystem the temp dir is on (a copy unless it is btrfs).

use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;
use crate::sys::copy::Stats;

const NOW: &str = "20261204T120000Z";

/// snap/: app/report (0640, old mtime), app/link -> /etc/passwd, app/dir/{a, a-link (hard), fifo}.
fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let snap = t.path().join("snap");
    let live = t.path().join("live");
    fs::create_dir_all(snap.join("app/dir")).unwrap();
    fs::create_dir_all(&live).unwrap();
    fs::write(snap.join("app/report"), "old report\n").unwrap();
    fs::set_permissions(snap.join("app/report"), fs::Permissions::from_mode(0o640)).unwrap();
    let t0 = nix::sys::time::TimeSpec::new(1_700_000_000, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &snap.join("app/report"),
        &t0,
        &t0,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
    symlink("/etc/passwd", snap.join("app/link")).unwrap();
    fs::write(snap.join("app/dir/a"), "a\n").unwrap();
    fs::hard_link(snap.join("app/dir/a"), snap.join("app/dir/a-link")).unwrap();
    nix::unistd::mkfifo(
        &snap.join("app/dir/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    (t, snap, live)
}

fn restore(
    snap: &Path,
    rel: &str,
    dest: &mut Dest,
    overwrite: bool,
) -> Result<(Placed, Stats), RestoreError> {
    let tree = Tree::open(snap).unwrap();
    let src = tree.entry(Path::new(rel)).unwrap();
    let mut c = Copier::new(false);
    let p = put(&tree, &src, dest, overwrite, NOW, &mut c)?;
    Ok((p, c.stats))
}

#[test]
fn a_file_comes_back_with_mode_and_times_and_missing_parents_are_made() {
    let (_t, snap, live) = fixture();
    let mut d = in_live(&live, Path::new("app/report")).unwrap();
    assert_eq!(d.missing.len(), 1);
    let (p, st) = restore(&snap, "app/report", &mut d, false).unwrap();
    assert!(p.kept.is_none());
    assert_eq!(st.files, 1);
    let m = fs::metadata(live.join("app/report")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o640, 1_700_000_000));
    assert_eq!(
        fs::read_to_string(live.join("app/report")).unwrap(),
        "old report\n"
    );
    // Again: refused without --overwrite; with it the current one is kept aside.
    fs::write(live.join("app/report"), "new\n").unwrap();
    let mut d = in_live(&live, Path::new("app/report")).unwrap();
    assert!(matches!(
        restore(&snap, "app/report", &mut d, false),
        Err(RestoreError::Exists { .. })
    ));
    let (p, _) = restore(&snap, "app/report", &mut d, true).unwrap();
    let kept = p.kept.unwrap();
    assert_eq!(kept, live.join(format!("app/report.wayback-{NOW}")));
    assert_eq!(fs::read_to_string(kept).unwrap(), "new\n");
    assert_eq!(
        fs::read_to_string(live.join("app/report")).unwrap(),
        "old report\n"
    );
}

#[test]
fn symlinks_stay_symlinks_and_are_never_written_through() {
    let (t, snap, live) = fixture();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::create_dir(live.join("app")).unwrap();
    // A symlink at the destination: with --overwrite it is renamed aside, its target untouched.
    fs::write(outside.join("victim"), "victim\n").unwrap();
    symlink(outside.join("victim"), live.join("app/report")).unwrap();
    let mut d = in_live(&live, Path::new("app/report")).unwrap();
    let (p, _) = restore(&snap, "app/report", &mut d, true).unwrap();
    assert!(fs::symlink_metadata(p.kept.unwrap())
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_to_string(outside.join("victim")).unwrap(),
        "victim\n"
    );
    // A symlink out of the snapshot comes back as the symlink.
    let mut d = in_live(&live, Path::new("app/link")).unwrap();
    let (_, st) = restore(&snap, "app/link", &mut d, false).unwrap();
    assert_eq!(st.symlinks, 1);
    assert_eq!(
        fs::read_link(live.join("app/link")).unwrap(),
        Path::new("/etc/passwd")
    );
    // A symlinked directory on the way in live is refused.
    symlink(&outside, live.join("app/dir")).unwrap();
    let e = in_live(&live, Path::new("app/dir/a")).unwrap_err();
    assert!(
        matches!(
            e,
            RestoreError::NotThrough {
                what: "a symlink",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
}

#[test]
fn a_tree_keeps_hard_links_and_fifos_and_leaves_no_temporary() {
    let (t, snap, _live) = fixture();
    let mut d = user(&t.path().join("copy"), "dir".as_ref()).unwrap();
    let (_, st) = restore(&snap, "app/dir", &mut d, false).unwrap();
    assert_eq!((st.dirs, st.files, st.hard_links, st.fifos), (1, 1, 1, 1));
    let copy = t.path().join("copy");
    assert_eq!(
        fs::metadata(copy.join("a")).unwrap().ino(),
        fs::metadata(copy.join("a-link")).unwrap().ino()
    );
    assert!(fs::symlink_metadata(copy.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let names: Vec<String> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("wayback-tmp")),
        "{names:?}"
    );
    // --to an existing directory means into it.
    let mut d = user(&copy, "dir".as_ref()).unwrap();
    assert_eq!(d.path, copy.join("dir"));
    restore(&snap, "app/dir", &mut d, false).unwrap();
    assert!(copy.join("dir/a").is_file());
    // A symlink to a directory as --to is an entry to replace, not a way into its target.
    let elsewhere = t.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, t.path().join("to-link")).unwrap();
    let mut d = user(&t.path().join("to-link"), "report".as_ref()).unwrap();
    assert!(matches!(
        restore(&snap, "app/report", &mut d, false),
        Err(RestoreError::Exists { .. })
    ));
    restore(&snap, "app/report", &mut d, true).unwrap();
    assert!(fs::read_dir(&elsewhere).unwrap().next().is_none());
    assert!(t.path().join("to-link").is_file());
}
