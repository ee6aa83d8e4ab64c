//! The seam between the engine's order of things and the kernel: a [`Host`] creates each step of `up`
//! ([`crate::steps::Create`]) and undoes each journaled [`Resource`]. [`crate::apply`] and
//! [`crate::teardown`] only decide the order, journal and report; [`SystemHost`] does the real work through
//! the module that owns each kind of object (`sys::btrfs`, `sys::overlay`, `sys::owned_dir`, `sys::boot`,
//! `wayback-net`'s netns, nft and veth, [`crate::container`], the host-proxy drivers).
//!
//! Tests put a recording fake in its place (host/fake.rs) to check, without root, that every object is
//! journaled before it is made, that a failure at any step rolls back everything journaled, and that
//! teardown undoes in reverse order.

use std::future::Future;
use std::process::Child;

use anyhow::{Context, Result};
use wayback_core::journal::Resource;
use wayback_core::Plan;
use wayback_net::{netns, nft, veth};

use crate::drivers;
use crate::progress::Progress;
use crate::state::{InstanceDir, RouteRemoval};
use crate::steps::Create;
use crate::sys::{boot, btrfs, ids, nspawn, overlay, owned_dir};

/// How long a container gets to stop in order before it is killed.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// What one undo step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undone {
    /// Removed (or, for objects that cannot tell, already gone).
    Removed,
    /// It was already gone (the message says what).
    Gone(String),
    /// Left in place on purpose (the message says what and why).
    Left(String),
}

/// Creates and undoes the objects of instances.
pub trait Host: Sync {
    /// The started container's process.
    type Child: Send;

    /// Perform one create step of `up` for `plan`; [`Create::Container`] returns the container's process.
    fn create(
        &self,
        dir: &InstanceDir,
        plan: &Plan,
        step: &Create,
        progress: &Progress,
    ) -> impl Future<Output = Result<Option<Self::Child>>> + Send;

    /// The PID and start time of a started container, for its journal entry.
    fn process(&self, child: &Self::Child) -> (i32, u64);

    /// Undo one journaled resource of `dir`'s instance. Already gone is success.
    fn undo(
        &self,
        dir: &InstanceDir,
        res: &Resource,
    ) -> impl Future<Output = Result<Undone>> + Send;
}

/// The real host: this machine's kernel, nspawn and host proxy.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemHost;

impl Host for SystemHost {
    type Child = Child;

    async fn create(
        &self,
        dir: &InstanceDir,
        plan: &Plan,
        step: &Create,
        progress: &Progress,
    ) -> Result<Option<Child>> {
        match step {
            Create::Container => return Ok(Some(crate::container::launch(dir, plan).await?)),
            Create::Chown => chown(plan, progress)?,
            Create::MaskUnits => mask_units(plan, progress)?,
            other => create_object(other).await?,
        }
        Ok(None)
    }

    fn process(&self, child: &Child) -> (i32, u64) {
        let pid = child.id() as i32;
        (pid, crate::state::process_start_time(pid).unwrap_or(0))
    }

    async fn undo(&self, dir: &InstanceDir, res: &Resource) -> Result<Undone> {
        match res {
            Resource::Route { file, host } => Ok(match dir.remove_route(file)? {
                RouteRemoval::Removed => Undone::Removed,
                RouteRemoval::Gone => {
                    Undone::Gone(format!("route {host}: {} was already gone", file.display()))
                }
                RouteRemoval::Left(why) => {
                    Undone::Left(format!("left route file {}: {why}", file.display()))
                }
            }),
            Resource::Dir { path } => {
                let p = path.clone();
                let r = tokio::task::spawn_blocking(move || owned_dir::remove_if_unused(&p))
                    .await?
                    .with_context(|| format!("removing {}", path.display()))?;
                Ok(match r {
                    owned_dir::Removal::Removed => Undone::Removed,
                    owned_dir::Removal::Gone => Undone::Gone(r.describe(path)),
                    owned_dir::Removal::NotEmpty | owned_dir::Removal::NotOurs => {
                        Undone::Left(r.describe(path))
                    }
                })
            }
            other => {
                undo_object(other).await?;
                Ok(Undone::Removed)
            }
        }
    }
}

/// Create one kernel object.
async fn create_object(step: &Create) -> Result<()> {
    match step {
        Create::CloneDir(dir) => owned_dir::create(dir).with_context(|| {
            format!(
                "cannot create clone directory {} (is the snapshot's filesystem mounted read-only? set clone_dir in the config)",
                dir.display()
            )
        })?,
        Create::Clone { source, clone } => btrfs::clone(source, clone)?,
        Create::Overlay { lower, merged } => overlay::mount_clone(lower, merged)?,
        Create::Netns { dir, name } => {
            let (d, n) = (dir.clone(), name.clone());
            tokio::task::spawn_blocking(move || netns::create(&d, &n)).await??;
        }
        Create::Quarantine(q) => {
            let q = q.clone();
            tokio::task::spawn_blocking(move || nft::apply(&q)).await??;
        }
        Create::Veth(spec) => veth::create(spec).await?,
        Create::LogDirs(dirs) => {
            for d in dirs {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            }
        }
        Create::Cgroups(paths) => {
            boot::create_cgroups(paths).context("creating the container's cgroups")?;
        }
        Create::Container | Create::Chown | Create::MaskUnits => {}
    }
    Ok(())
}

/// `--chown`: owners in the clones' bind paths.
fn chown(plan: &Plan, progress: &Progress) -> Result<()> {
    let Some(chown) = &plan.chown else {
        return Ok(());
    };
    for b in &plan.container.binds {
        let Some(data) = &b.clone else { continue };
        let n = ids::chown_tree(&data.root, &data.path, chown)?;
        progress.note(format!("{}: {n} entries", b.dest.display()));
    }
    Ok(())
}

/// Boot mode: mask the units the snapshot's system must not start (timers, mail, …) in the clone.
fn mask_units(plan: &Plan, progress: &Progress) -> Result<()> {
    let Some(spec) = &plan.boot else {
        return Ok(());
    };
    let masked = boot::mask_units(&plan.clone, spec)
        .with_context(|| format!("masking units in {}", plan.clone.display()))?;
    progress.note(format!(
        "masked {} units in the clone ({})",
        masked.len(),
        masked.join(", ")
    ));
    Ok(())
}

/// Undo a kernel object, a process or a host-proxy route. Already gone is success.
async fn undo_object(res: &Resource) -> Result<()> {
    match res {
        Resource::Route { .. } | Resource::Dir { .. } => Ok(()),
        Resource::HostProxy { handle, .. } => {
            let h = handle.clone();
            tokio::task::spawn_blocking(move || drivers::unpublish(&h)).await??;
            Ok(())
        }
        Resource::Container { machine } => {
            let m = machine.clone();
            tokio::task::spawn_blocking(move || nspawn::stop(&m, STOP_GRACE)).await??;
            Ok(())
        }
        Resource::Process {
            pid, start_time, ..
        } => {
            let (p, t) = (*pid, *start_time);
            tokio::task::spawn_blocking(move || nspawn::stop_pid(p, t, STOP_GRACE)).await??;
            Ok(())
        }
        Resource::Veth { host_if } => Ok(veth::delete(host_if).await?),
        Resource::Quarantine {
            instance,
            host_if,
            layout,
        } => {
            let (i, h, l) = (instance.clone(), host_if.clone(), *layout);
            tokio::task::spawn_blocking(move || nft::remove(&i, &h, l)).await??;
            Ok(())
        }
        Resource::Overlay { merged } => Ok(overlay::unmount_clone(merged)?),
        Resource::Netns { path } => Ok(netns::delete(path)?),
        Resource::Clone {
            path, source_uuid, ..
        } => {
            let (p, u) = (path.clone(), source_uuid.clone());
            tokio::task::spawn_blocking(move || btrfs::delete_clone(&p, &u)).await??;
            Ok(())
        }
        Resource::Cgroup { paths } => {
            let p = paths.clone();
            tokio::task::spawn_blocking(move || boot::remove_cgroups(&p)).await??;
            Ok(())
        }
    }
}

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
