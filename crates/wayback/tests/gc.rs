//! Crash recovery: when the foreground `up` dies without tearing down (SIGKILL), its instance is left
//! behind; `wayback gc` finds it and removes every trace.

use std::fs;
use std::time::Duration;

use wayback_testsupport::*;

#[test]
fn gc_removes_instances_whose_owner_was_killed() {
    if !require_root("gc_removes_instances_whose_owner_was_killed") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("var/www/html")).unwrap();
    fs::write(live.join("var/www/html/index.html"), "gc\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let before = tree_checksum(&snap);

    let wb = Wayback::new();
    let name = unique("wbtgc");
    let host = format!("{name}.wbt.test");
    let mut up = wb.up_background(&[
        snap.to_str().unwrap(),
        "--name",
        &name,
        "--profile",
        "nginx-static",
        "--host",
        &host,
    ]);
    let status = up.kill_hard();
    assert!(status.is_some(), "could not kill the up process");
    assert!(
        !Residue::new(&name)
            .pool(&pool)
            .wayback(&wb)
            .leftovers()
            .is_empty(),
        "a killed `up` should leave its instance behind for gc (else this test proves nothing)"
    );

    let ls = wb.run_ok(&["ls", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str(&ls).unwrap_or_else(|e| panic!("ls --json ({e}): {ls}"));
    assert!(
        v.as_array()
            .is_some_and(|a| a.iter().any(|i| i["name"] == name.as_str())),
        "ls does not list the orphaned instance {name}: {ls}"
    );

    let out = wb.run_timeout(&["gc"], Duration::from_secs(120));
    assert!(out.status.success(), "`wayback gc` failed\n{}", show(&out));
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    let ls = wb.run_ok(&["ls", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ls).unwrap();
    assert!(
        v.as_array().is_some_and(std::vec::Vec::is_empty),
        "ls after gc: {ls}"
    );
    assert!(is_readonly_subvolume(&snap));
    assert_eq!(before, tree_checksum(&snap));
}

#[test]
fn down_all_removes_every_instance() {
    if !require_root("down_all_removes_every_instance") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("var/www/html")).unwrap();
    fs::write(live.join("var/www/html/index.html"), "all\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::new();
    let names = [unique("wbtall"), unique("wbtall")];
    let mut ups: Vec<UpHandle> = names
        .iter()
        .map(|n| {
            let host = format!("{n}.wbt.test");
            wb.up_background(&[
                snap.to_str().unwrap(),
                "--name",
                n,
                "--profile",
                "nginx-static",
                "--host",
                &host,
            ])
        })
        .collect();
    for n in &names {
        let (status, body) = HttpGet::get_retry(
            wb.proxy_addr(),
            &format!("{n}.wbt.test"),
            "/",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!((status, body.as_str()), (200, "all\n"), "{n}");
    }
    let out = wb.run(&["down", "--all"]);
    assert!(
        out.status.success(),
        "`wayback down --all` failed\n{}",
        show(&out)
    );
    for up in &mut ups {
        let st = up.wait_exit(Duration::from_secs(60));
        assert!(
            st.is_some_and(|s| s.success()),
            "up exited {st:?}\n{}",
            up.describe()
        );
    }
    for n in &names {
        Residue::new(n).pool(&pool).wayback(&wb).assert_none();
    }
}
