//! The container of a plan: the systemd-nspawn spec in host mode (the host's software read-only, the
//! clone's binds, confinement, masked secrets), with the snapshot's own software (`--software snapshot`:
//! a root laid out from the snapshot, the init through the host's loader), or boot mode (the clone is the
//! whole root).

use std::path::Path;

use super::binds::Layout;
use super::{Facts, UpRequest};
use crate::config::Config;
use crate::drift::Software;
use crate::names::InstanceName;
use crate::nspawn::{
    CloneData, ContainerSpec, MountBind, SnapshotRoot, BOOT_MODE_DROPPED, HOST_MODE_DROPPED,
};

pub(super) fn spec(
    req: &UpRequest,
    facts: &Facts,
    cfg: &Config,
    name: &InstanceName,
    layout: &Layout,
    netns_path: &Path,
) -> ContainerSpec {
    let dropped = if req.boot {
        BOOT_MODE_DROPPED
    } else {
        HOST_MODE_DROPPED
    };
    let snapshot = facts
        .snapshot_software
        .as_ref()
        .filter(|_| req.software == Some(Software::Snapshot) && !req.boot);
    ContainerSpec {
        machine: name.machine(),
        netns_path: netns_path.to_path_buf(),
        host_ro: if req.boot {
            Vec::new()
        } else {
            facts.host_paths.binds.clone()
        },
        binds: layout.mounts.clone(),
        // wayback's own binary, mounted there in the launch namespace (`sys::launchns`): the container runs
        // the init of the wayback that starts it, even after the file on disk was replaced.
        init_exe: cfg.instance_dir(name.as_str()).join("wayback-init"),
        spec_file: cfg.instance_dir(name.as_str()).join("init.json"),
        state_file: (!req.boot).then(|| cfg.instance_dir(name.as_str()).join("init-state")),
        register: facts.machined,
        boot_root: req.boot.then(|| layout.clone.clone()),
        drop_capabilities: dropped
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        no_new_privileges: !req.boot,
        inaccessible: if req.boot {
            Vec::new()
        } else {
            facts.host_masks.clone()
        },
        snapshot_root: snapshot.map(|s| {
            let dir = cfg.instance_dir(name.as_str()).join("root");
            SnapshotRoot {
                binds: s
                    .dirs
                    .iter()
                    .map(|d| MountBind {
                        source: dir.join(d.strip_prefix("/").unwrap_or(d)),
                        dest: d.clone(),
                        readonly: true,
                        clone: Some(CloneData {
                            root: layout.clone.clone(),
                            path: d.clone(),
                            resolved: d.clone(),
                        }),
                        reason: Some("the snapshot's own software (--software snapshot)".into()),
                    })
                    .collect(),
                links: s.links.clone(),
                dir,
            }
        }),
        init_libs: snapshot.map(|s| s.init_libs.clone()).unwrap_or_default(),
    }
}
