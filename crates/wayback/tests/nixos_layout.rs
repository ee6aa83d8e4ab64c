//! Host mode on a NixOS-like host (issue 9, tier 1): the host's software lives only in /nix/store, /etc
//! entries are symlinks into the store, the unit file is a store link written the way NixOS writes units, and
//! `wayback profile from-units` + `wayback up --profile` (and `up --unit`) run that service on a snapshot's
//! state and serve its old data through the proxy by Host header.
//!
//! # The layout the test builds
//!
//! - `/nix/store/<hash>-glibc-2.36/lib`: the dynamic loader, libc and libresolv, copied from the host;
//! - `/nix/store/<hash>-busybox-1.35.0/bin/busybox`: Debian's busybox with its ELF interpreter and RUNPATH
//!   rewritten (patchelf) to that store glibc, as Nix builds binaries: it cannot start unless the container
//!   sees /nix; `bin/sh` links to it;
//! - `/nix/store/<hash>-wbtnix-coreutils/bin/{ls,cat,…}`: links to busybox, the unit's `PATH`;
//! - `/nix/store/<hash>-nixos-system-wbtnix-24.05` (with `sw/` → a system-path), the target of
//!   `/run/current-system` and `/run/booted-system`; `/run/wrappers/bin/wbtnix-wrapped`, a setuid file;
//! - `/nix/store/<hash>-etc/etc` (NixOS's /etc/static), with `wbtnix-httpd.conf` → a store file and
//!   `systemd/system/wbtnix-httpd.service` → `/nix/store/<hash>-unit-wbtnix-httpd.service/…`, plus a
//!   drop-in directory; on /etc, `/etc/wbtnix-static` → that store /etc, and `/etc/wbtnix-httpd.conf`,
//!   `/etc/systemd/system/wbtnix-httpd.service` and `…service.d` → through `/etc/wbtnix-static`: three hops
//!   from /etc to the store, as on NixOS (`/etc/static` itself is left alone: a NixOS host has one);
//! - the unit: `ExecStart=/nix/store/<hash>-busybox-1.35.0/bin/busybox httpd -f -p 8080 -h
//!   /var/lib/wbtnix/www -c /etc/wbtnix-httpd.conf`, `ExecStartPre=` a NixOS-style `unit-script-…-pre-start`
//!   store script (`#!…/bin/sh -e`) that finds its tools only through `Environment="PATH=/nix/store/…"`,
//!   `User=`/`Group=wbtnix` with a static uid added to /etc/passwd and /etc/group (NixOS's `ids.uids`);
//! - a btrfs snapshot (loop-backed pool) whose `/var/lib/wbtnix/www` holds files deleted or changed live
//!   afterwards, owned by that uid.
//!
//! The pre-start script writes what it sees into the served directory (`prestart.txt`: which `ls` PATH finds,
//! the first line of the config through /etc's links, /run/current-system's version, the wrapper's setuid
//! mode, its uid, a variable from the drop-in), and `httpd.conf` maps `.wbt` to `text/x-wbtnix`, so each
//! HTTP answer proves a part of host mode on NixOS: store binaries and libraries run, /etc links resolve,
//! the recreated /run/current-system link and the bound /run/wrappers are there, and the unit's PATH,
//! user and drop-in were honoured.
//!
//! A negative control runs the same profile with `up --no-host-path /nix`: the pre-start script is then "not
//! found" and `up` fails and rolls back without residue, so it is the host's /nix that makes the rest work.
//!
//! # How the host's /nix, /etc and /run stay untouched
//!
//! This machine has Debian's nix-bin, so /nix exists and is not the test's; /etc and /run are the host's.
//! The test never writes to any of them. The `#[test]` function (the *outer* run) re-executes its own test
//! binary, filtered to this one test, under `unshare --mount --propagation private` with
//! `WBT_NIXOS_LAYOUT_INNER` set to the outer run's mount namespace. That *inner* run lives in a private copy
//! of the mount table. It refuses to do anything unless its mount namespace differs from the outer run's
//! (and from PID 1's, where that can be read) and no mount in it propagates (`shared:`) to another
//! namespace. It detaches its copies of other programs' `/run/netns/*` mounts (so as not to keep their
//! network namespaces alive; the host's mounts are not affected), then mounts three overlays:
//!
//! - /nix: the host's /nix below, read-only and unchanged, the test's store paths in the upper layer (an
//!   overlay rather than an empty tmpfs so that binaries that themselves live in the store, such as a
//!   `wayback` built on a NixOS machine, still run);
//! - /etc: the host's /etc below; the /etc links and the passwd/group lines above;
//! - /run: the host's /run below; /run/current-system, /run/booted-system (replacing a NixOS host's own in
//!   the overlay only) and /run/wrappers above.
//!
//! The upper layers live on a tmpfs mounted on a scratch directory, so not one byte of the layout reaches a
//! disk; everything vanishes with the namespace, and a guard also unmounts it all when the inner run ends,
//! panicking or not. When /nix does not exist at all, the outer run creates the empty directory as a mount
//! point and removes it afterwards (it refuses if /nix is a symlink or not a directory).
//!
//! Everything wayback does runs inside that namespace too: `profile from-units`, `up` (its netns bind mount
//! `/run/netns/wb-NAME`, and the shared `/run/netns` mount it makes, are on the /run overlay, so they exist
//! only in the namespace, like the systemd-nspawn container that inherits the namespace's /nix, /etc and
//! /run), `down`, and the residue check ([`Residue`]: mounts, netns, veth, processes, clone, state files,
//! nftables, cgroups). Network objects (veth, nftables, the netns itself) are not mount-namespaced: the
//! outer run checks again, from the host's namespace, that the instances left nothing behind, that the inner
//! run's loop device and temp dirs are gone, and that /nix, /etc and /run hold nothing of the test. It also
//! requires the inner run's final marker line, so an inner run that ran no test cannot pass.
//!
//! Needs root (skips with a message otherwise; fails under CI=true), `unshare` (util-linux), `busybox` and
//! `patchelf` (scripts/packages.sh). Only loopback traffic; names start with `wbt`.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use wayback_testsupport::*;

const TEST: &str = "nixos_layout_serves_old_data_from_store_paths";
const INNER_ENV: &str = "WBT_NIXOS_LAYOUT_INNER";
/// Printed by the inner run: its instances and pool, then that it finished.
const MARK_INSTANCE: &str = "WBTNIX-INSTANCE ";
const MARK_POOL: &str = "WBTNIX-POOL ";
const MARK_DONE: &str = "WBTNIX-INNER-DONE";

const OLD_WBT: &str = "old data, deleted live since the snapshot\n";
const OLD_INDEX: &str = "<h1>wbtnix: the snapshot's index</h1>\n";

#[test]
fn nixos_layout_serves_old_data_from_store_paths() {
    if !require_root(TEST) {
        return;
    }
    if std::env::var_os(INNER_ENV).is_some() {
        inner::run();
    } else {
        outer();
    }
}

// ---------------------------------------------------------------------------------------------------------
// Outer run: in the host's mount namespace; starts the inner run and checks the host afterwards.
// ---------------------------------------------------------------------------------------------------------

/// The empty /nix mount point the outer run created (when the host has no /nix): removed afterwards.
struct CreatedMountPoint(Option<PathBuf>);

impl Drop for CreatedMountPoint {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            // rmdir only: if anything appeared in it meanwhile, it is not ours to delete.
            if let Err(e) = fs::remove_dir(&p) {
                eprintln!(
                    "cleanup: cannot remove {} (created by this test): {e}",
                    p.display()
                );
            }
        }
    }
}

/// What of the host the test must leave as it found it: names only (a real store may be huge).
#[derive(Debug, PartialEq, Eq)]
struct HostView {
    nix_top: BTreeSet<String>,
    etc_wbtnix: BTreeSet<String>,
    run_nixos: Vec<(String, bool)>,
    passwd_wbtnix: bool,
}

fn host_view() -> HostView {
    let etc_wbtnix = ["/etc", "/etc/systemd/system"]
        .iter()
        .flat_map(|d| {
            entry_names(Path::new(d))
                .into_iter()
                .map(move |n| format!("{d}/{n}"))
        })
        .filter(|p| p.contains("wbtnix"))
        .collect();
    HostView {
        nix_top: entry_names(Path::new("/nix")),
        etc_wbtnix,
        run_nixos: ["/run/current-system", "/run/booted-system", "/run/wrappers"]
            .iter()
            .map(|p| (p.to_string(), fs::symlink_metadata(p).is_ok()))
            .collect(),
        passwd_wbtnix: fs::read_to_string("/etc/passwd")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("wbtnix:")),
    }
}

fn outer() {
    for (tool, package) in [
        ("unshare", "util-linux"),
        ("busybox", "busybox"),
        ("patchelf", "patchelf"),
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{TEST} needs `{tool}` (Debian package {package}; scripts/packages.sh installs it)"
        );
    }
    let created = match fs::symlink_metadata("/nix") {
        Ok(m) if m.file_type().is_symlink() => panic!(
            "/nix is a symlink on this host; {TEST} mounts a private store over /nix and needs a directory there"
        ),
        Ok(m) if m.is_dir() => CreatedMountPoint(None),
        Ok(_) => panic!("/nix exists and is not a directory; {TEST} refuses to run"),
        Err(_) => {
            fs::create_dir("/nix").expect("create the empty mount point /nix");
            fs::set_permissions("/nix", fs::Permissions::from_mode(0o755)).unwrap();
            CreatedMountPoint(Some("/nix".into()))
        }
    };
    let before = host_view();
    assert!(
        !before.passwd_wbtnix && before.etc_wbtnix.is_empty(),
        "the host already has wbtnix entries in /etc ({before:?}); they are not this test's"
    );

    let exe = std::env::current_exe().expect("the test binary");
    // The inner run checks that its mount namespace is not this one.
    let my_ns = fs::read_link("/proc/self/ns/mnt").expect("readlink /proc/self/ns/mnt");
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "--"])
        .arg(&exe)
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER_ENV, &my_ns);
    let result = output_timeout(&mut c, Duration::from_secs(900));
    let (ok, stdout, stderr) = match &result {
        Ok(out) => (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        Err(e) => (false, e.clone(), String::new()),
    };
    eprintln!(
        "--- inner run (private mount namespace) ---\n{stdout}\n{stderr}\n--- end of inner run ---"
    );

    // From the host's namespace: what the inner run's instances and pool could have left behind.
    let text = format!("{stdout}\n{stderr}");
    let marked = |mark: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(mark).map(|s| s.trim().to_string()))
            .collect()
    };
    let mut left = Vec::new();
    for name in marked(MARK_INSTANCE) {
        left.extend(Residue::new(&name).leftovers());
    }
    for id in marked(MARK_POOL) {
        let loops = cmd(
            "losetup",
            &["--list", "--noheadings", "--output", "NAME,BACK-FILE"],
        );
        for l in String::from_utf8_lossy(&loops.stdout).lines() {
            if l.contains(&id) {
                left.push(format!("loop device of the inner run's pool: {l}"));
            }
        }
        for n in entry_names(&std::env::temp_dir()) {
            if n.starts_with(&format!("{id}-")) {
                left.push(format!("temp dir of the inner run's pool: {n}"));
            }
        }
    }
    let after = host_view();
    if after != before {
        left.push(format!(
            "host /nix, /etc or /run changed:\n  before {before:?}\n  after  {after:?}"
        ));
    }
    let store: Vec<String> = entry_names(Path::new("/nix/store"))
        .into_iter()
        .filter(|n| n.contains("wbtnix") || n.contains("busybox-1.35.0"))
        .collect();
    if !store.is_empty() {
        left.push(format!("the host's /nix/store holds test paths: {store:?}"));
    }
    assert!(ok, "the inner run failed (its output is above)");
    assert!(
        text.contains(MARK_DONE),
        "the inner run did not run the scenario to its end (its output is above)"
    );
    assert!(
        left.is_empty(),
        "left behind on the host:\n  {}",
        left.join("\n  ")
    );
    let host_had_nix = created.0.is_none();
    drop(created);
    if host_had_nix {
        assert!(Path::new("/nix").is_dir(), "the host's /nix is gone");
    } else {
        assert!(
            fs::symlink_metadata("/nix").is_err(),
            "the /nix mount point this test created is still there"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// Inner run: in a private mount namespace.
// ---------------------------------------------------------------------------------------------------------

mod inner {
    use super::*;

    /// Refuse to go on unless this process has a mount namespace of its own (not the outer run's, whose
    /// namespace the outer run passes in `INNER_ENV`, nor PID 1's where that can be read) that shares nothing.
    fn assert_private_mount_namespace() {
        let mine = fs::read_link("/proc/self/ns/mnt").expect("readlink /proc/self/ns/mnt");
        let outer = std::env::var(INNER_ENV).unwrap_or_default();
        assert!(
            outer.starts_with("mnt:") && Path::new(&outer) != mine,
            "{INNER_ENV}={outer:?}, and this process is in mount namespace {}: not a private one; refusing to mount over /nix, /etc and /run",
            mine.display()
        );
        if let Ok(init) = fs::read_link("/proc/1/ns/mnt") {
            assert_ne!(
                mine, init,
                "this process shares PID 1's mount namespace; refusing"
            );
        }
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let shared: Vec<&str> = mi.lines().filter(|l| l.contains(" shared:")).collect();
        assert!(
            shared.is_empty(),
            "mounts in this namespace would propagate to others; refusing:\n{}",
            shared.join("\n")
        );
    }

    /// The namespace started as a copy of the host's mount table, including other programs' network
    /// namespace files (`/run/netns/NAME` nsfs mounts). This copy would keep those namespaces alive after
    /// their owners delete them; detach the copies (in this namespace only: the host's mounts are not
    /// affected). The /run overlay hides them anyway.
    fn release_foreign_netns_mounts() {
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut points: Vec<&str> = mi
            .lines()
            .filter(|l| {
                l.split(" - ")
                    .nth(1)
                    .is_some_and(|t| t.starts_with("nsfs "))
            })
            .filter_map(|l| l.split(' ').nth(4))
            .collect();
        points.reverse();
        for p in points {
            let _ = Command::new("umount").args(["-l", p]).status();
        }
    }

    /// The private overlays over /nix, /etc and /run (and the tmpfs holding their upper layers).
    /// Drop unmounts them, newest first; the namespace would drop them anyway when the inner run exits.
    pub struct Layout {
        scratch: tempfile::TempDir,
        scratch_mounted: bool,
        mounted: Vec<PathBuf>,
    }

    impl Layout {
        fn new() -> Layout {
            let scratch = tempfile::Builder::new()
                .prefix(&format!("wbtnix{}-scratch-", std::process::id()))
                .tempdir()
                .expect("scratch dir");
            cmd_ok(
                "mount",
                &[
                    "-t",
                    "tmpfs",
                    "-o",
                    "mode=0755",
                    "wbtnix-scratch",
                    path_str(scratch.path()),
                ],
            );
            Layout {
                scratch,
                scratch_mounted: true,
                mounted: Vec::new(),
            }
        }

        /// `at` becomes an overlay: the host's directory below, a tmpfs layer above.
        fn overlay(&mut self, at: &str) {
            let key = at.trim_start_matches('/').replace('/', "-");
            let upper = self.scratch.path().join(format!("{key}-upper"));
            let work = self.scratch.path().join(format!("{key}-work"));
            fs::create_dir_all(&upper).unwrap();
            fs::create_dir_all(&work).unwrap();
            fs::set_permissions(&upper, fs::metadata(at).unwrap().permissions()).unwrap();
            let opts = format!(
                "lowerdir={at},upperdir={},workdir={}",
                upper.display(),
                work.display()
            );
            cmd_ok(
                "mount",
                &["-t", "overlay", "-o", &opts, "wbtnix-overlay", at],
            );
            self.mounted.push(at.into());
        }
    }

    impl Drop for Layout {
        fn drop(&mut self) {
            // Recursive: wayback makes /run/netns (on the /run overlay) a mount point of its own.
            for m in self.mounted.drain(..).rev() {
                let ok = Command::new("umount")
                    .arg("--recursive")
                    .arg(&m)
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    eprintln!("cleanup: lazy unmount of {}", m.display());
                    let _ = Command::new("umount").arg("-l").arg(&m).status();
                }
            }
            if self.scratch_mounted {
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(self.scratch.path())
                    .status();
                self.scratch_mounted = false;
            }
        }
    }

    /// A Nix-looking store hash (32 characters of Nix's base-32 alphabet), unique to this run and `name`.
    fn hash(name: &str) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
        let mut out = String::new();
        let mut state: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(std::process::id());
        for round in 0u8.. {
            for b in name.bytes().chain([round]) {
                state ^= u64::from(b);
                state = state.wrapping_mul(0x0000_0100_0000_01b3);
            }
            let mut s = state;
            for _ in 0..12 {
                out.push(ALPHABET[(s & 31) as usize] as char);
                s >>= 5;
            }
            if out.len() >= 32 {
                break;
            }
        }
        out.truncate(32);
        out
    }

    fn store(name: &str) -> PathBuf {
        PathBuf::from(format!("/nix/store/{}-{name}", hash(name)))
    }

    fn write(path: &Path, text: &str, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn link(target: &Path, at: &Path) {
        fs::create_dir_all(at.parent().unwrap()).unwrap();
        symlink(target, at)
            .unwrap_or_else(|e| panic!("ln -s {} {}: {e}", target.display(), at.display()));
    }

    /// The store paths of the NixOS-like host; returns the unit's main store paths for the assertions.
    struct Store {
        busybox: PathBuf,
        coreutils: PathBuf,
        unit: PathBuf,
        pre_start: PathBuf,
        system_version: String,
    }

    fn busybox_host() -> PathBuf {
        let out = cmd_ok("sh", &["-c", "command -v busybox"]);
        fs::canonicalize(out.trim()).expect("busybox path")
    }

    /// Copy busybox and the libraries `ldd` names into the store, and point the copy at them.
    fn build_store(uid: u32) -> Store {
        let glibc = store("glibc-2.36").join("lib");
        let busybox_dir = store("busybox-1.35.0");
        let busybox = busybox_dir.join("bin/busybox");
        let host_bb = busybox_host();
        fs::create_dir_all(&glibc).unwrap();
        let interp = cmd_ok("patchelf", &["--print-interpreter", path_str(&host_bb)])
            .trim()
            .to_string();
        let interp_name = Path::new(&interp).file_name().unwrap().to_owned();
        fs::copy(&interp, glibc.join(&interp_name)).unwrap();
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`
        for line in cmd_ok("ldd", &[path_str(&host_bb)]).lines() {
            if let Some((soname, rest)) = line.trim().split_once(" => ") {
                let file = rest.split_whitespace().next().unwrap_or("");
                if file.starts_with('/') {
                    fs::copy(file, glibc.join(soname.trim()))
                        .unwrap_or_else(|e| panic!("copy {file}: {e}"));
                }
            }
        }
        fs::create_dir_all(busybox.parent().unwrap()).unwrap();
        fs::copy(&host_bb, &busybox).unwrap();
        cmd_ok(
            "patchelf",
            &[
                "--set-interpreter",
                path_str(&glibc.join(&interp_name)),
                "--set-rpath",
                path_str(&glibc),
                path_str(&busybox),
            ],
        );
        fs::set_permissions(&busybox, fs::Permissions::from_mode(0o555)).unwrap();
        link(&busybox, &busybox_dir.join("bin/sh"));
        // It runs from the store, with the store's libc.
        let bb_ldd = cmd_ok("ldd", &[path_str(&busybox)]);
        assert!(
            bb_ldd.contains(path_str(&glibc)),
            "the store busybox does not use the store glibc:\n{bb_ldd}"
        );

        let coreutils = store("wbtnix-coreutils");
        let system_path = store("system-path");
        for tool in ["ls", "cat", "head", "cut", "id", "readlink"] {
            link(&busybox, &coreutils.join("bin").join(tool));
            link(&busybox, &system_path.join("bin").join(tool));
        }
        let system = store("nixos-system-wbtnix-24.05");
        let system_version = format!("24.05.{}", &hash("version")[..8]);
        write(&system.join("nixos-version"), &system_version, 0o444);
        link(&system_path, &system.join("sw"));

        let conf = store("wbtnix-httpd.conf");
        write(
            &conf,
            "# wbtnix httpd.conf, from the store\n.wbt:text/x-wbtnix\n",
            0o444,
        );
        let etc = store("etc").join("etc");
        link(&conf, &etc.join("wbtnix-httpd.conf"));

        let pre_start =
            store("unit-script-wbtnix-httpd-pre-start").join("bin/wbtnix-httpd-pre-start");
        write(
            &pre_start,
            &format!(
                r#"#!{sh} -e
# What NixOS makes of `systemd.services.wbtnix-httpd.preStart`: a store script that finds its tools
# only through the unit's PATH.
out=/var/lib/wbtnix/www/prestart.txt
{{
  echo "ls=$(command -v ls)"
  echo "conf=$(head -n 1 /etc/wbtnix-httpd.conf)"
  echo "system=$(cat /run/current-system/nixos-version)"
  echo "booted=$(readlink /run/booted-system)"
  echo "sw=$(readlink /run/current-system/sw)"
  echo "wrapper=$(ls -ln /run/wrappers/bin/wbtnix-wrapped | cut -c1-10)"
  echo "uid=$(id -u)"
  echo "from=$WBTNIX_FROM"
}} > "$out"
"#,
                sh = busybox_dir.join("bin/sh").display()
            ),
            0o555,
        );

        let unit_dir = store("unit-wbtnix-httpd.service");
        let unit = unit_dir.join("wbtnix-httpd.service");
        // As NixOS writes units: Environment= as JSON strings, keys in alphabetical order, X- keys.
        write(
            &unit,
            &format!(
                r#"[Unit]
After=network.target
Description=wbtnix: busybox httpd, a NixOS-style unit
X-Restart-Triggers={conf}

[Service]
Environment="PATH={coreutils}/bin"
X-StopIfChanged=false
ExecStart={busybox} httpd -f -p 8080 -h /var/lib/wbtnix/www -c /etc/wbtnix-httpd.conf
ExecStartPre={pre_start}
Group=wbtnix
Restart=always
User=wbtnix

[Install]
WantedBy=multi-user.target
"#,
                conf = conf.display(),
                coreutils = coreutils.display(),
                busybox = busybox.display(),
                pre_start = pre_start.display(),
            ),
            0o444,
        );
        link(&unit, &etc.join("systemd/system/wbtnix-httpd.service"));
        let overrides = store("wbtnix-httpd-overrides.conf");
        write(
            &overrides,
            "[Service]\nEnvironment=\"WBTNIX_FROM=the drop-in in the store\"\n",
            0o444,
        );
        link(
            &overrides,
            &etc.join("systemd/system/wbtnix-httpd.service.d/overrides.conf"),
        );

        for d in ["db", "gcroots", "profiles"] {
            fs::create_dir_all(Path::new("/nix/var/nix").join(d)).unwrap();
        }

        // /etc: links into the store, three hops as on NixOS; the static user.
        link(&etc, Path::new("/etc/wbtnix-static"));
        link(
            Path::new("/etc/wbtnix-static/wbtnix-httpd.conf"),
            Path::new("/etc/wbtnix-httpd.conf"),
        );
        link(
            Path::new("/etc/wbtnix-static/systemd/system/wbtnix-httpd.service"),
            Path::new("/etc/systemd/system/wbtnix-httpd.service"),
        );
        link(
            Path::new("/etc/wbtnix-static/systemd/system/wbtnix-httpd.service.d"),
            Path::new("/etc/systemd/system/wbtnix-httpd.service.d"),
        );
        let append = |file: &str, line: String| {
            let mut text = fs::read_to_string(file).unwrap();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&line);
            fs::write(file, text).unwrap();
        };
        append(
            "/etc/passwd",
            format!("wbtnix:x:{uid}:{uid}:wbtnix (static uid):/var/lib/wbtnix:/run/current-system/sw/bin/nologin\n"),
        );
        append("/etc/group", format!("wbtnix:x:{uid}:\n"));

        // /run: the running system and the setuid wrappers (on a NixOS host, the overlay hides its own links).
        for l in ["/run/current-system", "/run/booted-system"] {
            let _ = fs::remove_file(l);
            link(&system, Path::new(l));
        }
        let wrapped = Path::new("/run/wrappers/bin/wbtnix-wrapped");
        fs::create_dir_all(wrapped.parent().unwrap()).unwrap();
        fs::copy(&busybox, wrapped).unwrap();
        fs::set_permissions(wrapped, fs::Permissions::from_mode(0o4555)).unwrap();

        Store {
            busybox,
            coreutils,
            unit,
            pre_start,
            system_version,
        }
    }

    /// A uid (= gid) that neither /etc/passwd nor /etc/group uses.
    fn free_id() -> u32 {
        let used = |file: &str| -> BTreeSet<u32> {
            fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split(':').nth(2)?.parse().ok())
                .collect()
        };
        let (users, groups) = (used("/etc/passwd"), used("/etc/group"));
        (61500..62500)
            .find(|id| !users.contains(id) && !groups.contains(id))
            .expect("a free uid in 61500..62500")
    }

    pub fn run() {
        assert_private_mount_namespace();
        release_foreign_netns_mounts();
        assert!(
            Path::new("/nix").is_dir(),
            "/nix must be a directory (the outer run makes the mount point)"
        );
        // Declared first, dropped last: wayback's teardown (netns files on the /run overlay) needs it.
        let mut layout = Layout::new();
        layout.overlay("/nix");
        layout.overlay("/etc");
        layout.overlay("/run");
        let uid = free_id();
        let st = build_store(uid);
        eprintln!(
            "layout: store busybox {}, unit {}, uid {uid}",
            st.busybox.display(),
            st.unit.display()
        );

        // The snapshot: state owned by the static uid; deleted and changed live afterwards.
        let pool = BtrfsPool::new();
        println!("{MARK_POOL}{}", pool.id);
        let live = pool.subvolume_create("live");
        let www = live.join("var/lib/wbtnix/www");
        fs::create_dir_all(&www).unwrap();
        fs::write(www.join("index.html"), OLD_INDEX).unwrap();
        fs::write(www.join("old.wbt"), OLD_WBT).unwrap();
        cmd_ok(
            "chown",
            &[
                "-R",
                &format!("{uid}:{uid}"),
                path_str(&live.join("var/lib/wbtnix")),
            ],
        );
        let snap = pool.snapshot_ro("live", "snaps/1");
        let snap_before = tree_manifest(&snap);
        fs::remove_file(www.join("old.wbt")).unwrap();
        fs::write(www.join("index.html"), "<h1>live, changed</h1>\n").unwrap();
        let snap_s = path_str(&snap).to_string();

        let wb = Wayback::new();

        // The profile from the NixOS-style unit.
        let out = wb.run(&["profile", "from-units", "wbtnix-httpd", "--port", "8080"]);
        assert!(
            out.status.success(),
            "profile from-units failed\n{}",
            show(&out)
        );
        let toml = String::from_utf8_lossy(&out.stdout).into_owned();
        let profile = wayback_core::Profile::parse(&toml, "from-units output")
            .unwrap_or_else(|e| panic!("the generated profile does not parse: {e}\n{toml}"));
        let reports = String::from_utf8_lossy(&out.stderr);
        assert_eq!(profile.processes.len(), 1, "{toml}");
        let p = &profile.processes[0];
        assert_eq!(p.user.as_deref(), Some("wbtnix"), "{toml}");
        assert_eq!(
            p.env.get("PATH").map(String::as_str),
            Some(format!("{}/bin", st.coreutils.display()).as_str()),
            "{toml}"
        );
        assert_eq!(
            p.env.get("WBTNIX_FROM").map(String::as_str),
            Some("the drop-in in the store"),
            "{toml}"
        );
        let shell = p
            .shell
            .as_deref()
            .unwrap_or_else(|| panic!("ExecStartPre= needs a wrapper: {toml}"));
        assert!(shell.contains(path_str(&st.pre_start)), "{shell}");
        assert!(
            shell.contains(&format!(
                "exec {} httpd -f -p 8080 -h /var/lib/wbtnix/www -c /etc/wbtnix-httpd.conf",
                st.busybox.display()
            )),
            "{shell}"
        );
        assert_eq!(profile.http_port, Some(8080));
        assert!(
            reports.contains(&format!("is a link to {}", st.unit.display())),
            "no note of the unit's store link:\n{reports}"
        );
        assert!(reports.contains("Restart=always"), "{reports}");
        let file = wb.tmp().join("wbtnix-httpd.toml");
        fs::write(&file, &toml).unwrap();
        let file_s = path_str(&file).to_string();

        // The plan shows the NixOS host paths.
        let dry_name = unique("wbtnix");
        let out = wb.run(&[
            "up",
            &snap_s,
            "--name",
            &dry_name,
            "--profile",
            &file_s,
            "--bind",
            "/var/lib/wbtnix",
            "--dry-run",
        ]);
        assert!(out.status.success(), "up --dry-run failed\n{}", show(&out));
        let plan = String::from_utf8_lossy(&out.stdout);
        for want in [
            "--bind-ro=/nix",
            "--bind-ro=/etc",
            "--bind-ro=/run/wrappers",
        ] {
            assert!(plan.contains(want), "the plan lacks {want}:\n{plan}");
        }
        // (The text does not show the recreated links; the JSON plan does.)
        let out = wb.run(&[
            "up",
            &snap_s,
            "--name",
            &dry_name,
            "--profile",
            &file_s,
            "--bind",
            "/var/lib/wbtnix",
            "--dry-run",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "up --dry-run --json failed\n{}",
            show(&out)
        );
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let system = store("nixos-system-wbtnix-24.05");
        for link in ["/run/current-system", "/run/booted-system"] {
            assert!(
                plan["init"]["symlinks"]
                    .as_array()
                    .is_some_and(|l| l.contains(&serde_json::json!([link, path_str(&system)]))),
                "the plan does not recreate {link} -> {}: {}",
                system.display(),
                plan["init"]
            );
        }

        // Without the host's /nix, nothing of the service can start: its binaries, its libraries and even the
        // shell running its pre-start script are in the store. `up` fails and rolls back without residue.
        let name = unique("wbtnix");
        println!("{MARK_INSTANCE}{name}");
        let out = wb.run(&[
            "up",
            &snap_s,
            "--name",
            &name,
            "--profile",
            &file_s,
            "--bind",
            "/var/lib/wbtnix",
            "--no-host-path",
            "/nix",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("wbtnix-httpd-pre-start"),
            "up --no-host-path /nix must fail to start the store's programs\n{}",
            show(&out)
        );
        Residue::new(&name).pool(&pool).wayback(&wb).assert_none();

        let runs: [(&str, Vec<&str>); 2] = [
            ("--profile FILE", vec!["--profile", &file_s]),
            ("--unit", vec!["--unit", "wbtnix-httpd", "--port", "8080"]),
        ];
        for (how, extra) in runs {
            let name = unique("wbtnix");
            println!("{MARK_INSTANCE}{name}");
            let host = format!("{name}.wbt.test");
            let mut args = vec![
                snap_s.as_str(),
                "--name",
                &name,
                "--bind",
                "/var/lib/wbtnix",
                "--host",
                &host,
            ];
            args.extend(extra);
            let mut up = wb.up_background(&args);
            let proxy = wb.proxy_addr();
            let get = |path: &str| {
                HttpGet::get_full(proxy, &host, path)
                    .unwrap_or_else(|e| panic!("{how}: GET {path} via the proxy: {e}"))
            };
            let (code, headers, body) = get("/old.wbt");
            let ctype = headers
                .iter()
                .find(|(k, _)| k == "content-type")
                .map(|(_, v)| v.as_str());
            assert_eq!(
                (code, String::from_utf8_lossy(&body).as_ref(), ctype),
                (200, OLD_WBT, Some("text/x-wbtnix")),
                "{how}: the deleted file, typed by the config read through /etc's store links\n{}",
                up.describe()
            );
            let (code, _, body) = get("/index.html");
            assert_eq!(
                (code, String::from_utf8_lossy(&body).as_ref()),
                (200, OLD_INDEX),
                "{how}"
            );
            let (code, _, body) = get("/prestart.txt");
            let seen = String::from_utf8_lossy(&body).into_owned();
            let expected = format!(
                "ls={}/bin/ls\nconf=# wbtnix httpd.conf, from the store\nsystem={}\nbooted={}\nsw={}\n\
                 wrapper=-r-sr-xr-x\nuid={uid}\nfrom=the drop-in in the store\n",
                st.coreutils.display(),
                st.system_version,
                store("nixos-system-wbtnix-24.05").display(),
                store("system-path").display(),
            );
            assert_eq!(
                (code, seen.as_str()),
                (200, expected.as_str()),
                "{how}: what the pre-start script saw\n{}",
                up.describe()
            );
            // Unknown hosts reach nothing.
            let (code, _, _) =
                HttpGet::get_full(proxy, "wbtnix-nobody.wbt.test", "/old.wbt").unwrap();
            assert_eq!(code, 404, "{how}");

            drop(up);
            Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
            eprintln!("{how}: served the snapshot's data, removed without residue");
        }
        let diff = manifest_diff(&snap_before, &tree_manifest(&snap));
        assert!(
            diff.is_empty(),
            "the snapshot changed:\n{}",
            diff.join("\n")
        );
        drop(wb);
        drop(pool);
        drop(layout);
        println!("{MARK_DONE}");
    }
}
