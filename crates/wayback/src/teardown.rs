//! Teardown: replay an instance's journal backwards, one undo step per resource, each succeeding when its
//! object is already gone — the one mechanism behind `down`, TTL and idle expiry, rollback of a failed `up`,
//! a restarted daemon's recovery and `gc`. The kernel objects are handled by `sys::*`, `wayback-net` and the
//! host-proxy drivers; this module owns the order and the reporting.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wayback_core::journal::{self, Resource};
use wayback_net::nft;
use wayback_net::{netns, veth};

use crate::drivers::{self, DriverHandle};
use crate::fault;
use crate::progress::Progress;
use crate::state::InstanceDir;
use crate::sys::{boot, btrfs, nspawn, overlay, owned_dir};

/// How long a container gets to stop in order before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// What a teardown did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Teardown {
    pub removed: Vec<String>,
    pub errors: Vec<String>,
}

/// Undo every journaled resource, newest first; keep going past failures and report them all. The
/// instance directory is removed only when everything else is gone, so a failed teardown can be retried.
pub async fn teardown(dir: &InstanceDir, progress: &Progress) -> Teardown {
    let mut report = Teardown::default();
    // One teardown of an instance at a time (a restarted daemon's recovery and a `down` may meet): the
    // second waits, and finds the work done.
    let lock_path = dir.path.join("teardown.lock");
    let shown = lock_path.display().to_string();
    let lock = tokio::task::spawn_blocking(move || -> io::Result<_> {
        let f = fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e.into())
    })
    .await;
    let _lock = match lock {
        // The other teardown finished first and removed the directory: nothing left to do.
        _ if !dir.path.exists() => return report,
        Ok(Ok(l)) => l,
        Ok(Err(e)) => {
            report.errors.push(format!("cannot lock {shown}: {e}"));
            return report;
        }
        Err(e) => {
            report.errors.push(format!("cannot lock {shown}: {e}"));
            return report;
        }
    };
    let entries = match journal::read(&dir.journal_path()) {
        Ok(e) => e,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    for res in journal::undo_order(&entries) {
        let what = res.describe();
        let t = Instant::now();
        match undo(&res).await {
            Ok(()) => {
                fault::point("undone");
                progress.note(format!("removed {what} ({} ms)", t.elapsed().as_millis()));
                report.removed.push(what);
            }
            Err(e) => report.errors.push(format!("{what}: {e:#}")),
        }
    }
    if report.errors.is_empty() {
        if let Err(e) = dir.remove() {
            report.errors.push(e.to_string());
        }
    }
    report
}

/// Undo one resource. Already gone is success.
pub async fn undo(res: &Resource) -> Result<()> {
    match res {
        Resource::Route { file, .. } => remove_file(file),
        Resource::HostProxy { handle, .. } => {
            let h: DriverHandle =
                serde_json::from_value(handle.clone()).context("reading the host proxy handle")?;
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
        Resource::Quarantine { instance, .. } => {
            let i = instance.clone();
            tokio::task::spawn_blocking(move || nft::remove(&i)).await??;
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
        Resource::Dir { path } => owned_dir::remove_if_unused(path)
            .with_context(|| format!("removing {}", path.display())),
    }
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}
