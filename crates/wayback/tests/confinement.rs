//! Host-mode confinement (issue 13): root inside a host-mode container cannot change a host mount, write a
//! host file, make a device node of the host's disk, open files by handle, or read the host's secrets —
//! and the services still run (the e2e tests cover PostgreSQL, nginx, MediaWiki and boot mode).
//!
//! The container runs a script as root that tries each escape and writes one line per attempt into its
//! bind (the clone): `ok NAME` when refused, `ESCAPED NAME: ...` when it worked.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use wayback_testsupport::*;

/// Each attempt must fail inside the container. `$M` is a marker name unique to the test run.
const ATTEMPTS: &str = r#"
out=/srv/data/results
try() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "ESCAPED $name" >> $out; else echo "ok $name" >> $out; fi; }
try remount-etc mount -o remount,bind,rw /etc
try remount-usr mount -o remount,bind,rw /usr
try remount-bind mount -o remount,bind,ro /srv/data
try unmask-shadow umount /etc/shadow
try mount-tmpfs mount -t tmpfs none /mnt
try unshare-mount unshare -m true
try write-etc sh -c "echo x > /etc/$M"
try write-usr sh -c "echo x > /usr/$M"
try mknod-disk mknod /tmp/$M-disk b $DISK_MAJOR $DISK_MINOR
try write-proc-sys sh -c "echo wbt > /proc/sys/kernel/hostname"
try write-sysrq sh -c "echo h > /proc/sysrq-trigger"
try by-handle python3 /srv/data/by_handle.py
if grep -q '^root:' /etc/shadow 2>/dev/null; then echo "ESCAPED read-shadow" >> $out; else echo "ok read-shadow" >> $out; fi
if ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1 && cat /etc/ssh/ssh_host_*_key 2>/dev/null | grep -q PRIVATE; then echo "ESCAPED read-ssh-key" >> $out; else echo "ok read-ssh-key" >> $out; fi
echo done >> $out
exec sleep 1000
"#;

/// open_by_handle_at on a file of the bind's filesystem: needs CAP_DAC_READ_SEARCH.
const BY_HANDLE: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class FH(ctypes.Structure):
    _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int), ("h", ctypes.c_ubyte * 128)]
fh = FH(); fh.bytes = 128; mnt = ctypes.c_int()
if libc.name_to_handle_at(-100, b"/srv/data/by_handle.py", ctypes.byref(fh), ctypes.byref(mnt), 0) != 0:
    sys.exit(1)
dirfd = os.open("/srv/data", os.O_RDONLY)
fd = libc.open_by_handle_at(dirfd, ctypes.byref(fh), os.O_RDONLY)
sys.exit(0 if fd >= 0 else 1)
"#;

#[test]
fn root_in_a_host_mode_container_cannot_change_the_host() {
    if !require_root("root_in_a_host_mode_container_cannot_change_the_host") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/data")).unwrap();
    fs::write(live.join("srv/data/by_handle.py"), BY_HANDLE).unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::new();
    let name = unique("wbtconf");
    let marker = format!("{name}-marker");
    let disk = fs::metadata("/").unwrap().dev();
    let (major, minor) = (nix::sys::stat::major(disk), nix::sys::stat::minor(disk));
    let script = format!("M={marker}; DISK_MAJOR={major}; DISK_MINOR={minor}\n{ATTEMPTS}");
    let etc_before = fs::read_dir("/etc").unwrap().count();

    let up = wb.up_background(&[
        snap.to_str().unwrap(),
        "--name",
        &name,
        "--bind",
        "/srv/data",
        "--exec",
        &script,
    ]);
    let clone = up.ready["clone"].as_str().unwrap().to_string();
    let results = Path::new(&clone).join("srv/data/results");
    let text = wait_for(Duration::from_secs(60), || {
        let t = fs::read_to_string(&results).ok()?;
        t.contains("done").then_some(t)
    })
    .unwrap_or_else(|| panic!("no results from the container in {results:?}"));
    eprintln!("{text}");
    for line in text.lines().filter(|l| *l != "done") {
        assert!(
            line.starts_with("ok "),
            "from inside the container: {line}\n{text}"
        );
    }
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        14,
        "{text}"
    );
    assert!(!Path::new("/etc").join(&marker).exists());
    assert!(!Path::new("/usr").join(&marker).exists());
    assert_eq!(fs::read_dir("/etc").unwrap().count(), etc_before);
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}

#[test]
fn the_dry_run_says_how_the_container_is_confined() {
    if !require_root("the_dry_run_says_how_the_container_is_confined") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/data")).unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::new();
    let snap = snap.to_str().unwrap();
    let args = [
        "up",
        snap,
        "--bind",
        "/srv/data",
        "--exec",
        "sleep 1",
        "--dry-run",
    ];
    let out = wb.run_ok(&args);
    assert!(out.contains("confined without CAP_SYS_ADMIN"), "{out}");
    assert!(out.contains("--drop-capability=CAP_SYS_ADMIN"), "{out}");
    assert!(out.contains("--no-new-privileges=yes"), "{out}");
    assert!(out.contains("runs as root inside the container"), "{out}");
    let masked = |out: &str| -> Vec<String> {
        out.lines()
            .find_map(|l| l.trim_start().strip_prefix("masked"))
            .map(|l| {
                l.split(" (")
                    .next()
                    .unwrap_or("")
                    .split(", ")
                    .map(|p| p.trim().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    if Path::new("/etc/shadow").exists() {
        assert!(masked(&out).contains(&"/etc/shadow".to_string()), "{out}");
        let mut unmasked = args.to_vec();
        unmasked.extend(["--unmask", "/etc/shadow"]);
        let out = wb.run_ok(&unmasked);
        assert!(!masked(&out).contains(&"/etc/shadow".to_string()), "{out}");
        assert!(masked(&out).contains(&"/etc/gshadow".to_string()), "{out}");
    }
}

/// `--host-path` below the top level (issue 13): shown read-only inside, at the same path.
#[test]
fn host_paths_at_any_depth_are_visible_read_only() {
    if !require_root("host_paths_at_any_depth_are_visible_read_only") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/data")).unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    // A host directory two levels down, made (and removed) by this test.
    let tool = tempfile::Builder::new()
        .prefix("wbthostpath-")
        .tempdir_in("/srv")
        .unwrap();
    let deep = tool.path().join("bin/tool");
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("version"), "tool 1.0\n").unwrap();
    let wb = Wayback::new();
    let name = unique("wbthp");
    let up = wb
        .up(&snap)
        .name(&name)
        .bind("/srv/data")
        .exec("exec sleep 1000")
        .arg(["--host-path", deep.to_str().unwrap()])
        .start();
    let file = deep.join("version");
    let read = wb.run(&["exec", &name, "--", "cat", file.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&read.stdout),
        "tool 1.0\n",
        "{}",
        show(&read)
    );
    let write = wb.run(&[
        "exec",
        &name,
        "--",
        "sh",
        "-c",
        &format!("echo x > {}/new", deep.display()),
    ]);
    assert!(!write.status.success(), "read-only: {}", show(&write));
    assert!(!deep.join("new").exists());
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
