//! An instance's container: systemd-nspawn started from its own launch namespace (`sys::launchns`), with
//! the clone's bind paths mounted from what they resolve to inside the clone and no host mount it does not
//! need, and the container's own cgroups. Started by `up` (through [`crate::host::SystemHost`]) and by a
//! restart of a crashed container; stopped by teardown (`sys::nspawn`).

use std::path::Path;
use std::process::Child;

use anyhow::{Context, Result};
use wayback_core::Plan;

use crate::state::InstanceDir;
use crate::sys::launchns::{self, JoinNetns, Keep, Masks, RootFs, Stage};
use crate::sys::{boot, nspawn};

/// Start the container: systemd-nspawn from its own launch namespace (`sys::launchns`), where the clone's
/// bind paths are mounted from what they resolve to inside the clone, and no host mount it does not need is
/// kept. Used for the first start and for restarts.
pub async fn launch(dir: &InstanceDir, plan: &Plan) -> Result<Child> {
    if let Some(state) = &plan.container.state_file {
        // Empty until the init reports (also on a restart).
        std::fs::write(state, "").with_context(|| format!("writing {}", state.display()))?;
    }
    let root = plan.container.snapshot_root.as_ref();
    let stages: Vec<Stage> = root
        .iter()
        .flat_map(|r| &r.binds)
        .chain(&plan.container.binds)
        .filter_map(|b| {
            let c = b.clone.as_ref()?;
            Some(Stage {
                clone: c.root.clone(),
                path: c.path.clone(),
                at: b.source.clone(),
                readonly: b.readonly,
            })
        })
        .collect();
    let keep = launch_keep(dir, plan);
    let masks = Masks {
        paths: plan.container.inaccessible.clone(),
        empty: dir.path.join("masked"),
    };
    let (argv, log, cgroups) = (plan.container.argv(), dir.log_path(), cgroups(plan));
    let join = plan
        .container
        .joins_netns()
        .then(|| JoinNetns(plan.netns_path.clone()));
    let root = root.map(|r| RootFs {
        dir: r.dir.clone(),
        links: r.links.clone(),
    });
    let launch = launchns::Launch {
        root,
        stages,
        masks,
        keep,
        netns: join,
        netns_file: plan.netns_path.clone(),
        init_at: plan.container.init_exe.clone(),
    };
    let child = tokio::task::spawn_blocking(move || {
        launchns::launch(launch, move || nspawn::launch(&argv, &log, &cgroups))
    })
    .await??;
    Ok(child)
}

/// What the launch namespace keeps of the host's mounts: what the container shows (/usr, host paths), what
/// nspawn itself uses (/proc, /sys, /dev, /tmp, /run), and the mounts holding the instance's own files (its
/// network namespace is mounted again by `sys::launchns` itself).
fn launch_keep(dir: &InstanceDir, plan: &Plan) -> Keep {
    let c = &plan.container;
    let trees = ["/usr", "/proc", "/sys", "/dev"]
        .iter()
        .map(std::path::PathBuf::from)
        .chain(c.host_ro.iter().cloned())
        .collect();
    let paths = [
        dir.path.clone(),
        c.init_exe.clone(),
        c.spec_file.clone(),
        "/tmp".into(),
        "/run".into(),
        plan.clone.clone(),
    ]
    .into_iter()
    .chain(plan.extra.iter().map(|e| e.clone.clone()))
    .chain(c.boot_root.clone())
    // The host's loader and libraries wayback's init runs with (snapshot software).
    .chain(c.init_libs.iter().map(|l| l.path.clone()))
    .collect();
    Keep { trees, paths }
}

/// The container's own cgroups (none when systemd-machined registers it): without them every container
/// of one wayback process would share nspawn's `payload` cgroup, and one could see and kill another's
/// processes through it.
pub fn cgroups(plan: &Plan) -> Vec<std::path::PathBuf> {
    if plan.container.register {
        return Vec::new();
    }
    boot::cgroup_paths(Path::new("/sys/fs/cgroup"), &plan.container.machine)
}
