//! Non-btrfs sources: a read-only directory (here a read-only bind mount of a plain directory, standing for
//! a mounted restic/borg backup or a ZFS/LVM snapshot) is resurrected through an overlayfs clone: the old
//! data is served, writes land in the overlay's upper layer, the source stays byte-identical, and teardown
//! leaves no mount behind.

use std::fs;
use std::process::Command;
use std::time::Duration;

use wayback_testsupport::*;

/// A read-only bind mount of `src` at `dst`; unmounted on drop.
struct RoMount(std::path::PathBuf);
impl RoMount {
    fn new(src: &std::path::Path, dst: &std::path::Path) -> RoMount {
        fs::create_dir_all(dst).unwrap();
        cmd_ok(
            "mount",
            &["--bind", src.to_str().unwrap(), dst.to_str().unwrap()],
        );
        let m = RoMount(dst.into());
        cmd_ok("mount", &["-o", "remount,bind,ro", dst.to_str().unwrap()]);
        m
    }
}
impl Drop for RoMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

#[test]
fn read_only_directory_is_served_through_an_overlay() {
    if !require_root("read_only_directory_is_served_through_an_overlay") {
        return;
    }
    let wb = Wayback::new();
    let src = wb.tmp().join("wbtovsrc");
    fs::create_dir_all(src.join("var/www/html")).unwrap();
    fs::write(src.join("var/www/html/index.html"), "from the backup\n").unwrap();
    let ro = RoMount::new(&src, &wb.tmp().join("wbtovro"));
    let before = tree_manifest(&ro.0);
    let name = unique("wbtov");
    let host = format!("{name}.wbt.test");

    let plan = wb.run_ok(&[
        "up",
        ro.0.to_str().unwrap(),
        "--name",
        &name,
        "--profile",
        "nginx-static",
        "--dry-run",
    ]);
    assert!(plan.contains("overlayfs"), "{plan}");
    let up = wb.up_background(&[
        ro.0.to_str().unwrap(),
        "--name",
        &name,
        "--profile",
        "nginx-static",
        "--host",
        &host,
    ]);
    let (code, body) =
        HttpGet::get_retry(wb.proxy_addr(), &host, "/", Duration::from_secs(10)).unwrap();
    assert_eq!((code, body.as_str()), (200, "from the backup\n"));
    // nginx writes its logs outside the binds; write into the bound path through the instance to prove
    // writes stay in the overlay: the container's view is writable, the source is not touched.
    let merged = wb
        .state_dir()
        .join("instances")
        .join(&name)
        .join("overlay/merged/var/www/html");
    fs::write(merged.join("new.txt"), "written in the clone\n").unwrap();
    let (code, _) =
        HttpGet::get_retry(wb.proxy_addr(), &host, "/new.txt", Duration::from_secs(5)).unwrap();
    assert_eq!(code, 200);
    assert!(
        !src.join("var/www/html/new.txt").exists(),
        "a write reached the source"
    );
    drop(up);

    assert_eq!(tree_manifest(&ro.0), before, "the source changed");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!("{name}/overlay")),
        "overlay still mounted"
    );
    Residue::new(&name).wayback(&wb).assert_none();
}

#[test]
fn writable_non_subvolume_directory_needs_overlay_flag() {
    if !require_root("writable_non_subvolume_directory_needs_overlay_flag") {
        return;
    }
    let wb = Wayback::new();
    let src = wb.tmp().join("wbtovrw");
    fs::create_dir_all(src.join("srv")).unwrap();
    let out = wb.run(&["up", src.to_str().unwrap(), "--exec", "true", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(show(&out).contains("--overlay"), "{}", show(&out));
    let out = wb.run(&[
        "up",
        src.to_str().unwrap(),
        "--exec",
        "true",
        "--bind",
        "/srv",
        "--dry-run",
        "--overlay",
    ]);
    assert!(out.status.success(), "{}", show(&out));
}
