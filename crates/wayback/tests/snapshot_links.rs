//! Nothing from a snapshot reaches a host path (issue 13): a bind path that is an absolute symlink, a
//! relative symlink climbing out, a symlinked parent, or a link into the live subvolume is resolved inside
//! the clone or refused (exit 2, nothing created) — the container never reads or writes the host's /root or
//! the live data — and a file in a served directory that links to a host secret is never served.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wayback_testsupport::*;

/// A snapshot of a live subvolume whose /srv/www is `link` (a symlink), and whose /root and /www hold a
/// page of their own (so links resolved inside the snapshot land there).
fn snapshot_with(pool: &BtrfsPool, live_name: &str, link: &Path) -> (PathBuf, PathBuf) {
    let live = pool.subvolume_create(live_name);
    fs::create_dir_all(live.join("srv/data")).unwrap();
    fs::write(live.join("srv/data/index.html"), "live data\n").unwrap();
    for d in ["root", "www"] {
        fs::create_dir_all(live.join(d)).unwrap();
        fs::write(
            live.join(d).join("index.html"),
            format!("snapshot's own /{d}\n"),
        )
        .unwrap();
    }
    symlink(link, live.join("srv/www")).unwrap();
    let snap = pool.snapshot_ro(live_name, &format!("snaps/{live_name}"));
    (live, snap)
}

/// `up --bind /srv/www --exec 'touch /srv/www/MARKER'`; returns the ready instance's clone and its `up`.
fn up_writing_marker(wb: &Wayback, snap: &Path, name: &str, marker: &str) -> (UpHandle, PathBuf) {
    let script = format!("touch /srv/www/{marker}; exec sleep 1000");
    let up = wb
        .up(snap)
        .name(name)
        .bind("/srv/www")
        .exec(&script)
        .start();
    let clone = PathBuf::from(up.ready["clone"].as_str().unwrap());
    (up, clone)
}

#[test]
fn absolute_relative_and_parent_links_resolve_inside_the_clone() {
    if !require_root("absolute_relative_and_parent_links_resolve_inside_the_clone") {
        return;
    }
    let pool = BtrfsPool::new();
    let wb = Wayback::new();
    // (link at /srv/www, where it must land inside the clone)
    let cases: [(&str, &str); 3] = [
        ("/root", "root"),
        ("../../../../../../../root", "root"),
        ("/www", "www"),
    ];
    for (i, (link, inside)) in cases.iter().enumerate() {
        let (live, snap) = snapshot_with(&pool, &format!("live{i}"), Path::new(link));
        let name = unique("wbtlink");
        let marker = format!("{name}-marker");
        let (up, clone) = up_writing_marker(&wb, &snap, &name, &marker);
        let in_clone = clone.join(inside).join(&marker);
        assert!(
            wait_for(Duration::from_secs(20), || in_clone.exists().then_some(())).is_some(),
            "link {link}: the marker should land inside the clone at {in_clone:?}"
        );
        assert!(
            !Path::new("/root").join(&marker).exists(),
            "link {link}: host /root written"
        );
        assert!(
            !live.join(inside).join(&marker).exists(),
            "link {link}: live written"
        );
        drop(up);
        Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    }
}

#[test]
fn a_symlinked_parent_resolves_inside_the_clone() {
    if !require_root("a_symlinked_parent_resolves_inside_the_clone") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("data/www")).unwrap();
    fs::write(live.join("data/www/index.html"), "old\n").unwrap();
    symlink("/data", live.join("srv")).unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::new();
    let name = unique("wbtlink");
    let marker = format!("{name}-marker");
    let dry = wb.up(&snap).bind("/srv/www").exec("sleep 1").dry_run();
    assert!(dry.contains("resolved inside it to /data/www"), "{dry}");
    let (up, clone) = up_writing_marker(&wb, &snap, &name, &marker);
    let in_clone = clone.join("data/www").join(&marker);
    assert!(wait_for(Duration::from_secs(20), || in_clone.exists().then_some(())).is_some());
    assert!(!live.join("data/www").join(&marker).exists());
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}

#[test]
fn links_to_host_paths_or_live_data_are_refused_before_anything_is_made() {
    if !require_root("links_to_host_paths_or_live_data_are_refused_before_anything_is_made") {
        return;
    }
    let pool = BtrfsPool::new();
    let wb = Wayback::new();
    let live_data = pool.path("live-target/srv/data");
    let host_dir = tempfile::Builder::new()
        .prefix("wbtlinkhost-")
        .tempdir()
        .unwrap();
    // An absolute link into the live subvolume, and one to a host directory the snapshot does not have.
    for (i, target) in [live_data.clone(), host_dir.path().to_path_buf()]
        .iter()
        .enumerate()
    {
        if i == 0 {
            let t = pool.subvolume_create("live-target");
            fs::create_dir_all(t.join("srv/data")).unwrap();
        }
        let (_live, snap) = snapshot_with(&pool, &format!("livex{i}"), target);
        let name = unique("wbtlink");
        let out = wb
            .up(&snap)
            .name(&name)
            .bind("/srv/www")
            .exec("touch /srv/www/x; exec sleep 1000")
            .run();
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("/srv/www is a symlink to"), "{err}");
        assert!(err.contains("followed only inside it"), "{err}");
        Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
        assert_eq!(
            fs::read_dir(target).unwrap().count(),
            0,
            "nothing written to {target:?}"
        );
    }
}

#[test]
fn a_link_to_a_host_secret_is_never_served() {
    if !require_root("a_link_to_a_host_secret_is_never_served") {
        return;
    }
    let secret_line = fs::read_to_string("/etc/shadow")
        .ok()
        .and_then(|t| t.lines().next().map(str::to_string))
        .expect("this host has /etc/shadow");
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    let html = live.join("var/www/html");
    fs::create_dir_all(&html).unwrap();
    fs::write(html.join("index.html"), "old page\n").unwrap();
    symlink("/etc/shadow", html.join("shadow")).unwrap();
    symlink("../../../../etc/shadow", html.join("shadow2")).unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::new();
    let name = unique("wbtsecret");
    let host = format!("{name}.wbt.test");
    let up = wb.up_background(&[
        snap.to_str().unwrap(),
        "--name",
        &name,
        "--profile",
        "nginx-static",
        "--host",
        &host,
    ]);
    let (code, body) = HttpGet::get_retry(
        wb.proxy_addr(),
        &host,
        "/index.html",
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!((code, body.as_str()), (200, "old page\n"));
    for path in ["/shadow", "/shadow2"] {
        let (code, body) = HttpGet::get(wb.proxy_addr(), &host, path).unwrap();
        assert!(
            !body.contains(&secret_line),
            "{path}: host secret served ({code})"
        );
        assert!(
            code == 403 || code == 404 || body.is_empty(),
            "{path}: {code} {body}"
        );
    }
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
