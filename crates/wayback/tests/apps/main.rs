//! `up --unit` on real Debian services with nothing else known (issue 12, tier 1): the host's own
//! `redis-server.service` and `mosquitto.service` and their Debian configuration bring the service back from
//! a btrfs snapshot, with no `--bind`, no profile and no knowledge of where the apps keep their state.
//!
//! # The layout
//!
//! A loop-backed btrfs pool holds `live`, a writable subvolume standing for the live system's root `/` (a
//! server whose root filesystem is a btrfs subvolume), and `snaps/1`, a read-only snapshot of it: the
//! service's state is at the same path in the snapshot as on the live system (`snaps/1/var/lib/redis` is
//! `/var/lib/redis` of that moment), as in any whole-root snapshot (snapper, btrbk, by hand). Only the
//! service's directories are populated.
//!
//! # The live servers
//!
//! systemd is not PID 1 here, so each live server is started by hand as its unit would (the unit's
//! `ExecStart=`, its user, its `UMask=`), by [`LiveServer`]: `unshare --mount --net --propagation private`
//! gives it a mount namespace of its own, in which the live root's state and log directories are bound over
//! the host's (`live/var/lib/redis` over /var/lib/redis: the host's real /var/lib/redis and /var/log/redis
//! are never touched) and a tmpfs is mounted over /run (its PID file directory), and a network namespace of
//! its own, where it listens on its standard port without clashing with anything; the test talks to it with
//! `nsenter --net`. Both namespaces end with the server, which the test stops by its PID (our child). The
//! namespace first detaches its copies of other programs' mounts (network namespace files, other tests'
//! pools under the temp dir) so as not to keep them alive while it runs; the host's mounts are not affected.
//!
//! # Mosquitto and the host's /etc
//!
//! Mosquitto keeps its password file in /etc/mosquitto, and tests must not edit the host's /etc. The
//! mosquitto test therefore re-executes itself (filtered to that one test) under `unshare --mount
//! --propagation private`, as `nixos_layout.rs` does, and that inner run binds the live root's
//! `etc/mosquitto` (Debian's mosquitto.conf, plus `conf.d/local.conf` with a listener, `password_file` and
//! `allow_anonymous false`, plus the password file made by `mosquitto_passwd`) over /etc/mosquitto: in
//! that namespace /etc/mosquitto *is* the live root's, as on a server whose root is the live subvolume. The
//! live broker and `wayback up` both run there (wayback builds its container from the caller's namespace,
//! so the instance sees that /etc). The old password then comes from the snapshot's `etc/mosquitto/passwd`
//! through configuration drift: the plan lists it as differing from the host's, `--bind-config` uses it.
//! The outer run checks from the host's namespace that nothing of the inner run is left (instances, loop
//! device, the live broker's namespaces) and that the host's /etc/mosquitto is unchanged.
//!
//! Files: `live.rs` (the live servers and their namespaces), `redis.rs` (Redis, and `--unit` refused on a
//! snapshot without its state), `mosquitto.rs` (the inner and outer runs), this file (the tests and what
//! they share).
//!
//! Needs root (skips with a message otherwise; fails under CI=true), redis-server, mosquitto,
//! mosquitto-clients, util-linux's `unshare`/`nsenter`/`setpriv` (scripts/packages.sh). Only loopback traffic
//! and namespaces the test made; names start with `wbt`.

mod live;
mod mosquitto;
mod redis;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use wayback_testsupport::*;

#[test]
fn redis_server_from_its_unit_serves_the_snapshots_keys() {
    if require_root("redis_server_from_its_unit_serves_the_snapshots_keys") {
        redis::serves_the_snapshots_keys();
    }
}

#[test]
fn unit_without_its_state_in_the_snapshot_is_refused_naming_the_candidates() {
    if require_root("unit_without_its_state_in_the_snapshot_is_refused_naming_the_candidates") {
        redis::refused_without_its_state();
    }
}

#[test]
fn mosquitto_serves_the_old_retained_message_and_password() {
    if !require_root(mosquitto::MOSQUITTO_TEST) {
        return;
    }
    if std::env::var_os(mosquitto::INNER_ENV).is_some() {
        mosquitto::inner();
    } else {
        mosquitto::outer();
    }
}

// ---------------------------------------------------------------------------------------------------------
// Shared by the apps' tests
// ---------------------------------------------------------------------------------------------------------

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `mkdir -p` and set owner and mode (`chown` by name: the host's users, as the package made them).
pub fn make_dir(p: &Path, owner: &str, mode: u32) {
    fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir -p {}: {e}", p.display()));
    cmd_ok("chown", &[owner, path_str(p)]);
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// The 1-based number of the first line of `file` (the host's) whose words start with `words`.
pub fn line_of(file: &str, words: &str) -> usize {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file}: {e}"));
    text.lines()
        .position(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .starts_with(words)
        })
        .map_or_else(|| panic!("{file} has no line `{words}`"), |i| i + 1)
}

/// The plan as `--dry-run` prints it; nothing may be created.
#[track_caller]
pub fn dry_run(wb: &Wayback, pool: &BtrfsPool, args: &[&str]) -> (String, String) {
    let mut full = vec!["up"];
    full.extend_from_slice(args);
    full.push("--dry-run");
    let out = wb.run(&full);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        pool.subvolumes().len(),
        pool.own_subvolumes().len(),
        "a dry run created a subvolume: {:?}",
        pool.subvolumes()
    );
    assert!(
        fs::read_dir(wb.state_dir().join("instances")).map_or(true, |mut d| d.next().is_none()),
        "a dry run registered an instance"
    );
    (
        stdout(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
pub fn assert_has(text: &str, part: &str, what: &str) {
    assert!(
        text.contains(part),
        "{what}: expected\n  {part}\nin\n{text}"
    );
}

/// Drop the pool and check that its loop device is detached.
#[track_caller]
pub fn assert_pool_gone(pool: BtrfsPool) {
    let id = pool.id.clone();
    drop(pool);
    let left = loop_devices_with(&id);
    assert!(
        left.is_empty(),
        "the pool's loop device is still attached: {left:?}"
    );
}
