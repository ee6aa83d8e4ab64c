//! Boot mode: a whole-system snapshot (a debootstrapped Debian root with systemd and nginx) is booted with
//! its own init in its own cgroup, with the same network, quarantine, proxy and teardown as host mode; timers
//! are masked; the old page is served through the proxy; `down` leaves nothing (cgroups included).

use std::fs;
use std::process::Command;
use std::time::Duration;

use wayback_testsupport::*;

#[test]
fn a_debootstrapped_root_boots_and_serves_its_old_page() {
    if !require_root("a_debootstrapped_root_boots_and_serves_its_old_page") {
        return;
    }
    let pool = BtrfsPool::with_size(3 << 30);
    let root = pool.subvolume_create("osroot");
    let out = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=systemd,systemd-sysv,nginx-light",
            "bookworm",
        ])
        .arg(&root)
        .arg("http://deb.debian.org/debian")
        .output()
        .expect("run debootstrap (package debootstrap)");
    assert!(out.status.success(), "debootstrap failed\n{}", show(&out));
    fs::write(root.join("var/www/html/index.html"), "the old page\n").unwrap();
    let snap = pool.snapshot_ro("osroot", "snaps/s1");
    fs::write(root.join("var/www/html/index.html"), "the new page\n").unwrap();

    let wb = Wayback::new();
    let name = unique("wbtboot");
    let host = format!("{name}.wbt.test");
    let up = wb.up_background(&[
        snap.to_str().unwrap(),
        "--boot",
        "--port",
        "80",
        "--name",
        &name,
        "--host",
        &host,
        "--mask",
        "ssh.service",
    ]);
    let (code, body) =
        HttpGet::get_retry(wb.proxy_addr(), &host, "/", Duration::from_secs(20)).unwrap();
    assert_eq!((code, body.as_str()), (200, "the old page\n"));
    let clone = pool.clone_path(&name);
    for unit in ["apt-daily.timer", "ssh.service"] {
        let link = clone.join("etc/systemd/system").join(unit);
        assert_eq!(
            fs::read_link(&link).ok().as_deref(),
            Some(std::path::Path::new("/dev/null")),
            "{unit} masked"
        );
    }
    assert_eq!(
        fs::read_to_string(snap.join("var/www/html/index.html")).unwrap(),
        "the old page\n"
    );
    // Its root is root only in its own user namespace: no device of the host, no host sysctl.
    let uid_map = wb.run_ok(&[
        "exec",
        &name,
        "--user",
        "root",
        "--",
        "cat",
        "/proc/self/uid_map",
    ]);
    assert!(
        !uid_map.split_whitespace().eq(["0", "0", "4294967295"]),
        "a user namespace of its own: {uid_map}"
    );
    let (major, minor) = loop_numbers(&pool.loopdev);
    for (what, script) in [
        (
            "mknod of the pool's disk",
            format!("mknod /tmp/wbtdisk b {major} {minor}"),
        ),
        (
            "host sysctl",
            "echo 10 > /proc/sys/vm/swappiness".to_string(),
        ),
    ] {
        let out = wb.run(&["exec", &name, "--user", "root", "--", "sh", "-c", &script]);
        assert!(
            !out.status.success(),
            "{what} must fail inside: {}",
            show(&out)
        );
    }
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    assert!(is_readonly_subvolume(&snap));
}

/// Major and minor numbers of a block device.
fn loop_numbers(dev: &str) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let rdev = fs::metadata(dev).unwrap().rdev();
    (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev))
}
