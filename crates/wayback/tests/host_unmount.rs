//! Host filesystems are not held (issue 12, item 8). A running instance's container is launched from a mount
//! namespace that keeps only what it shows (sys/launchns.rs), so:
//! - an ext4 on a loop device, mounted on the host before the instance starts, can be unmounted on the host
//!   while the instance runs, and its loop device then really detaches (nothing keeps the filesystem alive);
//! - one instance does not keep another's network namespace: after `down`, no process anywhere holds that
//!   namespace (by inode: no /proc/*/ns/net link, no mount in any /proc/*/mountinfo), `ip netns` does not
//!   list it and its veth goes, while the instances started before and after it keep running.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wayback_testsupport::*;

/// An ext4 filesystem on a loop device, mounted in a temp dir; unmounted and detached on drop.
struct Ext4 {
    _dir: tempfile::TempDir,
    image: PathBuf,
    loopdev: String,
    mount: PathBuf,
}

impl Ext4 {
    fn new() -> Ext4 {
        let dir = tempfile::Builder::new()
            .prefix(&unique("wbtext4"))
            .tempdir()
            .unwrap();
        let image = dir.path().join("wbt-ext4.img");
        fs::File::create(&image).unwrap().set_len(64 << 20).unwrap();
        cmd_ok("mkfs.ext4", &["-q", "-F", path_str(&image)]);
        let loopdev = cmd_ok("losetup", &["--find", "--show", path_str(&image)])
            .trim()
            .to_string();
        let mount = dir.path().join("mnt");
        fs::create_dir(&mount).unwrap();
        cmd_ok("mount", &[&loopdev, path_str(&mount)]);
        fs::write(mount.join("backup.txt"), "on the host's ext4\n").unwrap();
        Ext4 {
            _dir: dir,
            image,
            loopdev,
            mount,
        }
    }

    /// The loop device is bound to our image.
    fn attached(&self) -> bool {
        let backing = Path::new("/sys/block")
            .join(self.loopdev.trim_start_matches("/dev/"))
            .join("loop/backing_file");
        fs::read_to_string(backing).is_ok_and(|b| b.trim() == path_str(&self.image))
    }

    fn mounted(&self) -> bool {
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(path_str(&self.mount)))
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        if self.mounted() {
            let _ = cmd("umount", &["-l", path_str(&self.mount)]);
        }
        if self.attached() {
            let _ = cmd("losetup", &["-d", &self.loopdev]);
        }
    }
}

/// Every mountinfo line of every process that names `needle` ("pid: line").
fn mounts_naming(needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(mi) = fs::read_to_string(e.path().join("mountinfo")) else {
            continue;
        };
        hits.extend(
            mi.lines()
                .filter(|l| l.contains(needle))
                .map(|l| format!("{pid}: {l}")),
        );
    }
    hits
}

/// Processes whose network namespace is `net:[ino]`.
fn processes_in_netns(ino: u64) -> Vec<String> {
    let want = format!("net:[{ino}]");
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            fs::read_link(e.path().join("ns/net"))
                .is_ok_and(|l| l.to_string_lossy() == want.as_str())
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn start(wb: &Wayback, snap: &Path, name: &str) -> UpHandle {
    wb.up_background(&[
        path_str(snap),
        "--name",
        name,
        "--bind",
        "/srv/data",
        "--exec",
        "exec sleep 100000",
    ])
}

fn assert_running(wb: &Wayback, name: &str) {
    let out = wb.run(&["exec", name, "--", "cat", "/srv/data/f"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "data\n",
        "{name} should still run\n{}",
        show(&out)
    );
}

#[test]
fn a_host_filesystem_unmounted_while_an_instance_runs_is_released() {
    if !require_root("a_host_filesystem_unmounted_while_an_instance_runs_is_released") {
        return;
    }
    let ext4 = Ext4::new();
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/data")).unwrap();
    fs::write(live.join("srv/data/f"), "data\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::new();
    let name = unique("wbthu");
    let up = start(&wb, &snap, &name);

    // The container's launch namespace was copied from the host's while the ext4 was mounted.
    let out = cmd("umount", &[path_str(&ext4.mount)]);
    assert!(
        out.status.success(),
        "the host's ext4 must not be busy\n{}",
        show(&out)
    );
    cmd_ok("losetup", &["-d", &ext4.loopdev]);
    let released = wait_for(Duration::from_secs(10), || (!ext4.attached()).then_some(()));
    assert!(
        released.is_some(),
        "{} is still attached to {} after the host unmounted it; held by:\n{}",
        ext4.loopdev,
        ext4.image.display(),
        mounts_naming(&ext4.loopdev).join("\n")
    );
    assert!(loop_devices_with(path_str(&ext4.image)).is_empty());
    assert!(mounts_naming(&ext4.loopdev).is_empty());
    assert_running(&wb, &name);

    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}

#[test]
fn an_instance_does_not_keep_another_instances_network_namespace() {
    if !require_root("an_instance_does_not_keep_another_instances_network_namespace") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/data")).unwrap();
    fs::write(live.join("srv/data/f"), "data\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::new();
    // Started before (its launch namespace receives the later netns mount) and after (it copies it).
    let names = [unique("wbtnsa"), unique("wbtnsb"), unique("wbtnsc")];
    let ups: Vec<UpHandle> = names.iter().map(|n| start(&wb, &snap, n)).collect();
    let gone = &names[1];
    let netns = Path::new("/run/netns").join(format!("wb-{gone}"));
    let ino = fs::metadata(&netns).unwrap().ino();
    assert!(
        !processes_in_netns(ino).is_empty(),
        "the instance runs in its netns"
    );
    let host_if = Residue::new(gone).host_if_candidates()[0].clone();

    wb.run_ok(&["down", gone]);
    assert!(!netns.exists(), "{} is still there", netns.display());
    let nsfs = format!("net:[{ino}]");
    assert!(
        mounts_naming(&nsfs).is_empty(),
        "the netns of {gone} is still mounted:\n{}",
        mounts_naming(&nsfs).join("\n")
    );
    assert!(
        processes_in_netns(ino).is_empty(),
        "processes still in the netns of {gone}: {:?}",
        processes_in_netns(ino)
    );
    let listed = cmd_ok("ip", &["netns", "list"]);
    assert!(!listed.contains(&format!("wb-{gone}")), "{listed}");
    // Deleting a namespace removes its veth pair asynchronously: the link goes once nothing holds it.
    let veth_gone = wait_for(Duration::from_secs(30), || {
        (!cmd("ip", &["link", "show", &host_if]).status.success()).then_some(())
    });
    assert!(
        veth_gone.is_some(),
        "veth {host_if} of {gone} is still there"
    );
    // (Without the pool: the other instances' clones are in it, rightly.)
    Residue::new(gone).wayback(&wb).assert_none();
    assert_running(&wb, &names[0]);
    assert_running(&wb, &names[2]);

    drop(ups);
    for n in &names {
        Residue::new(n).pool(&pool).wayback(&wb).assert_none();
    }
}
