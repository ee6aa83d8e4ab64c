//! A plan's inputs without a system behind them, for tests of planning and of the engine's apply and
//! teardown order (no root, nothing read from the host): the facts of a snapper snapshot of `/persist`
//! on a host with a few users, and a request for a built-in profile with every option at its default.

use std::path::{Path, PathBuf};

use super::{Facts, PathState, SourceFacts, UpRequest};
use crate::profile::Profile;

/// The facts of `/persist/.snapshots/11921/snapshot` (btrfs, read-only); instance `postgresql-1` exists and
/// the address block `10.213.0.0/30` is taken.
pub fn facts() -> Facts {
    Facts {
        source: SourceFacts {
            path: "/persist/.snapshots/11921/snapshot".into(),
            kind: Default::default(),
            uuid: "6a1c5c7e-0000-4000-8000-000000000001".into(),
            readonly: true,
            fs_root: "/persist".into(),
        },
        existing: vec!["postgresql-1".into()],
        in_use: ["0.0.0.0/0", "10.213.0.0/30", "192.168.1.0/24"]
            .map(|n| n.parse().expect("a network"))
            .to_vec(),
        init_exe: "/usr/bin/wayback".into(),
        machined: false,
        host_paths: crate::hostpaths::HostPaths {
            binds: vec!["/etc".into()],
            symlinks: vec![],
        },
        host_masks: vec!["/etc/shadow".into()],
        users: ["postgres", "www-data", "mysql", "nextcloud"]
            .map(String::from)
            .to_vec(),
        groups: ["postgres", "www-data"].map(String::from).to_vec(),
        config_drift: vec![],
        shell: "/bin/sh".into(),
        snapshot_software: None,
        var_skeleton: vec![],
        extra_sources: vec![],
        bind_sources: vec![],
        main_date: None,
        now: 1_795_000_000,
    }
}

/// A request for `profile` on the snapshot of [`facts`]; every other field takes its default, so a new
/// optional request field does not change what tests build.
pub fn request(profile: Profile) -> UpRequest {
    let v = serde_json::json!({
        "snapshot": "/persist/.snapshots/11921/snapshot",
        "name": null, "profile": profile, "binds": [], "exec": [], "user": null, "port": null,
        "host": null, "publish": [], "ttl": null, "idle": null,
    });
    serde_json::from_value(v).expect("a request")
}

/// Every path the plan asks about exists in the snapshot, as itself.
pub fn all_exist(_: &Path, path: &Path) -> PathState {
    PathState::Present(PathBuf::from(path))
}
