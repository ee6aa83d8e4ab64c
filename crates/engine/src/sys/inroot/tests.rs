//! Tier 0: no root needed (openat2 works for any user).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;

/// A tree next to a "host" directory holding a secret that must never be reached through the tree.
fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    let host = t.path().join("host");
    fs::create_dir_all(tree.join("data/www")).unwrap();
    fs::write(tree.join("data/www/index.html"), "old page").unwrap();
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("secret"), "host secret").unwrap();
    (t, tree, host)
}

#[test]
fn symlinks_resolve_inside_the_tree_only() {
    let (_t, tree, host) = fixture();
    // Absolute link to a host path: inside the tree that path does not exist.
    symlink(&host, tree.join("abs")).unwrap();
    // Relative link climbing out: clamped at the tree's root.
    symlink("../../../../data/www", tree.join("data/up")).unwrap();
    // Symlinked parent.
    symlink("/", tree.join("srv")).unwrap();
    // A legitimate absolute link within the snapshot's own layout.
    symlink("/data/www", tree.join("www")).unwrap();
    let t = Tree::open(&tree).unwrap();

    let e = t.resolve(Path::new("/abs/secret")).unwrap_err();
    assert!(matches!(e, InRootError::Missing { .. }), "{e}");
    assert!(e.to_string().contains("is a symlink to"), "{e}");

    let up = t.resolve(Path::new("data/up/index.html")).unwrap();
    assert_eq!(up.resolved, Path::new("/data/www/index.html"));
    assert!(up.is_file());

    let parent = t.resolve(Path::new("/srv/data/www")).unwrap();
    assert_eq!(parent.resolved, Path::new("/data/www"));
    assert!(parent.is_dir());

    let www = t.resolve(Path::new("/www")).unwrap();
    assert_eq!(www.resolved, Path::new("/data/www"));
    let plain = t.resolve(Path::new("/data/www")).unwrap();
    assert_eq!(plain.resolved, Path::new("/data/www"));

    assert_eq!(
        t.read_to_string(Path::new("/www/index.html"), 100).unwrap(),
        "old page"
    );
    assert!(t.read_to_string(Path::new("/abs/secret"), 100).is_err());
}

#[test]
fn writes_stay_inside_and_special_files_are_refused() {
    let (_t, tree, host) = fixture();
    // An absolute link to a host directory: refused (it does not exist inside), nothing made on the host.
    symlink(&host, tree.join("etc")).unwrap();
    let t = Tree::open(&tree).unwrap();
    let e = t.dir(Path::new("/etc/systemd/system"), true).unwrap_err();
    assert!(matches!(e, InRootError::Missing { .. }), "{e}");
    assert!(
        !host.join("systemd").exists(),
        "nothing written on the host"
    );
    // A link inside the tree: followed inside it.
    fs::remove_file(tree.join("etc")).unwrap();
    symlink("/data", tree.join("etc")).unwrap();
    let d = t.dir(Path::new("/etc/systemd/system"), true).unwrap();
    nix::unistd::symlinkat("/dev/null", d.as_fd(), "x.timer").unwrap();
    assert!(fs::symlink_metadata(tree.join("data/systemd/system/x.timer")).is_ok());

    nix::unistd::mkfifo(
        &tree.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let e = t.read_to_string(Path::new("/fifo"), 10).unwrap_err();
    assert!(e.to_string().contains("named pipe"), "{e}");
    fs::write(tree.join("big"), "0123456789abc").unwrap();
    assert!(t.read_to_string(Path::new("/big"), 10).is_err());
    let names: Vec<_> = t
        .read_dir(Path::new("/"))
        .unwrap()
        .into_iter()
        .map(|(n, d)| (n.into_string().unwrap(), d))
        .collect();
    assert!(names.contains(&("data".into(), true)));
    assert!(
        names.contains(&("etc".into(), false)),
        "a symlink is not a directory"
    );
}

#[test]
fn loops_are_refused() {
    let (_t, tree, _host) = fixture();
    symlink("b", tree.join("a")).unwrap();
    symlink("a", tree.join("b")).unwrap();
    let t = Tree::open(&tree).unwrap();
    assert!(matches!(
        t.resolve(Path::new("/a")).unwrap_err(),
        InRootError::Loop { .. }
    ));
}
