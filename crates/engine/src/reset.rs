//! `wayback reset NAME SELECTOR`: swap a running instance to another snapshot. The instance keeps its name,
//! network, hostname, route file (so its gate and the share link's session cookie stay valid) and publishes;
//! only its clone changes and its processes are restarted on the new one.
//!
//! Planning ([`plan`]) resolves the selector and checks everything before anything changes (exit 2): a
//! single btrfs source, a read-only snapshot on the same filesystem as the clone, every bind path present
//! in it. Applying ([`apply`]) runs in the process that hosts the instance, while its supervision is
//! paused, and journals each step before it is taken, so a crash at any point leaves only journaled
//! clones that `gc` (or the next daemon) removes:
//!
//! 1. journal + create the new clone at `<clone>.next`;
//! 2. stop the container;
//! 3. journal `<clone>.prev` (the old source), rename `<clone>` to it;
//! 4. journal `<clone>` (the new source), rename `<clone>.next` to it;
//! 5. save the plan with the new source; remove `<clone>.prev`; start the container on the new clone.
//!
//! Every clone entry names the source UUID its subvolume must descend from, and teardown removes a clone
//! only when that matches, so replaying these entries newest first removes exactly what exists.

use std::path::{Path, PathBuf};
use std::process::Child;

use anyhow::{Context, Result};
use serde::Serialize;
use wayback_core::journal::{Journal, Resource};
use wayback_core::plan::{SourceFacts, SourceKind};
use wayback_core::{Config, Plan};

use crate::error::BadInput;
use crate::fault;
use crate::host::{Host, SystemHost};
use crate::progress::Progress;
use crate::state::{self, InstanceDir, Phase};
use crate::sys::inroot::Tree;
use crate::sys::{boot, btrfs, ids, nspawn};
use crate::{apply, teardown};

/// A checked reset: from which source to which, and the clone paths used on the way.
#[derive(Debug, Clone, Serialize)]
pub struct ResetPlan {
    pub name: String,
    pub from: SourceFacts,
    pub to: SourceFacts,
    /// The snapshot's date (catalog), when known.
    pub to_date: Option<i64>,
    /// The instance's clone: the same path before and after.
    pub clone: PathBuf,
    /// Where the new clone is made before the swap.
    pub next: PathBuf,
    /// Where the old clone waits for removal after the swap.
    pub prev: PathBuf,
}

/// Reset swaps what the daemon hosts: an instance a foreground `up` hosts is refused (bad input).
pub fn check_host(dir: &InstanceDir) -> Result<()> {
    match dir.owner() {
        Some(o) if o.alive() && !o.daemon => Err(BadInput::new(format!(
            "{} is hosted by a foreground `wayback up` (pid {}); reset works on instances the daemon hosts \
             (`up --detach`): `wayback down {}` and `up --detach` again",
            dir.name, o.pid, dir.name
        ))
        .into()),
        _ => Ok(()),
    }
}

/// Resolve `selector` (a path, or a selector over `snapshot_roots` and the source's filesystem) and check
/// the instance can be reset to it. Changes nothing; every refusal is bad input.
pub fn plan(cfg: &Config, plan: &Plan, selector: &str) -> Result<ResetPlan> {
    let name = &plan.name;
    if !plan.extra.is_empty() {
        return Err(BadInput::new(format!(
            "{name} is made of {} snapshots (--at or per-bind sources); reset swaps a single snapshot: \
             `wayback down {name}` and `up` again",
            plan.extra.len() + 1
        ))
        .into());
    }
    if plan.source.kind != SourceKind::Btrfs {
        return Err(BadInput::new(format!(
            "{name} runs on an overlay clone of {}; reset swaps btrfs clones only: `wayback down {name}` and `up` again",
            plan.source.path.display()
        ))
        .into());
    }
    let mut roots = cfg.snapshot_roots.clone();
    roots.push(plan.source.fs_root.clone());
    let path = crate::catalog::resolve_path(selector, &roots)?;
    let to = crate::planning::source_facts(&path, false)?;
    check_target(plan, &to)?;
    let to_date = crate::catalog::load_catalog(&roots).ok().and_then(|c| {
        c.snapshots
            .iter()
            .find(|s| s.path == to.path)
            .map(|s| s.date)
    });
    let clone = plan.clone.clone();
    let with_suffix = |s: &str| {
        let mut p = clone.clone().into_os_string();
        p.push(s);
        PathBuf::from(p)
    };
    Ok(ResetPlan {
        name: name.to_string(),
        from: plan.source.clone(),
        next: with_suffix(".next"),
        prev: with_suffix(".prev"),
        clone,
        to,
        to_date,
    })
}

fn check_target(plan: &Plan, to: &SourceFacts) -> Result<()> {
    let bad = |m: String| -> Result<()> { Err(BadInput::new(m).into()) };
    let shown = to.path.display();
    if to.kind != SourceKind::Btrfs {
        return bad(format!(
            "{shown} is not a btrfs subvolume; reset takes a btrfs snapshot"
        ));
    }
    if !to.readonly {
        return bad(format!(
            "{shown} is writable (a live subvolume, not a snapshot); reset takes a read-only snapshot"
        ));
    }
    if to.fs_root != plan.source.fs_root {
        return bad(format!(
            "{shown} is on {}, the instance's clone on {}: reset takes a snapshot of the same filesystem",
            to.fs_root.display(),
            plan.source.fs_root.display()
        ));
    }
    let tree = Tree::open(&to.path).with_context(|| format!("opening {shown}"))?;
    for b in &plan.container.binds {
        let Some(c) = b.clone.as_ref().filter(|c| c.root == plan.clone) else {
            continue;
        };
        if !tree.exists(&c.path) {
            return bad(format!(
                "{shown} has no {} (bound at {} in the instance); pick a snapshot that holds it",
                c.path.display(),
                b.dest.display()
            ));
        }
    }
    Ok(())
}

/// A reset that failed: `unchanged` when the old container still runs (the instance goes on as before),
/// else the instance cannot run and its host tears it down.
#[derive(Debug)]
pub struct Failed {
    pub error: anyhow::Error,
    pub unchanged: bool,
}

/// Reset the instance in `dir` to `rp`. Called by the process hosting it, with supervision paused. On
/// success the plan is updated and the new container (started, not yet answering) returned.
pub async fn apply(
    dir: &InstanceDir,
    plan: &mut Plan,
    rp: &ResetPlan,
    progress: &Progress,
) -> Result<Child, Failed> {
    let unchanged = |error: anyhow::Error| Failed {
        error,
        unchanged: true,
    };
    clear_stale(dir, rp).await.map_err(unchanged)?;
    let mut j = Journal::open(&dir.journal_path()).map_err(|e| unchanged(e.into()))?;
    let step = progress.step(format!(
        "cloning {} to {}",
        rp.to.path.display(),
        rp.next.display()
    ));
    if let Err(e) = new_clone(&mut j, plan, rp) {
        let (p, u) = (rp.next.clone(), rp.to.uuid.clone());
        let _ = tokio::task::spawn_blocking(move || btrfs::delete_clone(&p, &u)).await;
        return Err(unchanged(e.context("the instance runs on unchanged")));
    }
    step.done();
    swap_and_start(dir, &mut j, plan, rp, progress)
        .await
        .map_err(|error| Failed {
            error,
            unchanged: false,
        })
}

/// Steps 2 to 5: from here on the old container is gone.
async fn swap_and_start(
    dir: &InstanceDir,
    j: &mut Journal,
    plan: &mut Plan,
    rp: &ResetPlan,
    progress: &Progress,
) -> Result<Child> {
    dir.set_phase(Phase::Starting)?;
    let step = progress.step(format!("stopping container {}", plan.container.machine));
    let m = plan.container.machine.clone();
    tokio::task::spawn_blocking(move || nspawn::stop(&m, teardown::STOP_GRACE)).await??;
    fault::point("reset: stopped container");
    step.done();
    swap(j, rp)?;
    plan.source = rp.to.clone();
    plan.main_date = rp.to_date;
    state::write_json(&dir.plan_path(), &*plan)?;
    fault::point("reset: saved plan");
    let step = progress.step(format!("removing the old clone {}", rp.prev.display()));
    let (p, u) = (rp.prev.clone(), rp.from.uuid.clone());
    tokio::task::spawn_blocking(move || btrfs::delete_clone(&p, &u)).await??;
    fault::point("reset: removed old clone");
    step.done();
    let step = progress.step(format!("container {}", plan.container.machine));
    let child = crate::container::launch(dir, plan).await?;
    fault::point("reset: started container");
    let (pid, start) = SystemHost.process(&child);
    apply::note_process(j, pid, start, "systemd-nspawn")?;
    step.done();
    Ok(child)
}

/// A reset killed before it finished, and adopted since, may have left its `.next` clone (the old
/// container kept running): remove what the journal says is there, as teardown would.
async fn clear_stale(dir: &InstanceDir, rp: &ResetPlan) -> Result<()> {
    let entries = wayback_core::journal::read(&dir.journal_path())?;
    for res in wayback_core::journal::undo_order(&entries) {
        if matches!(&res, Resource::Clone { path, .. } if *path == rp.next || *path == rp.prev) {
            teardown::undo(&SystemHost, dir, &res)
                .await
                .with_context(|| format!("removing {} left by an earlier reset", res.describe()))?;
        }
    }
    Ok(())
}

/// Step 1: the new clone, journaled first; boot masks and owner changes applied to it as `up` does.
fn new_clone(j: &mut Journal, plan: &Plan, rp: &ResetPlan) -> Result<()> {
    j.record(&Resource::Clone {
        path: rp.next.clone(),
        source: rp.to.path.clone(),
        source_uuid: rp.to.uuid.clone(),
    })?;
    fault::point("reset: journaled new clone");
    btrfs::clone(&rp.to.path, &rp.next)?;
    fault::point("reset: created new clone");
    if let Some(spec) = &plan.boot {
        boot::mask_units(&rp.next, spec)
            .with_context(|| format!("masking units in {}", rp.next.display()))?;
    }
    if let Some(chown) = &plan.chown {
        for b in &plan.container.binds {
            let Some(c) = b.clone.as_ref().filter(|c| c.root == plan.clone) else {
                continue;
            };
            ids::chown_tree(&rp.next, &c.path, chown)?;
        }
    }
    Ok(())
}

/// Steps 3 and 4: the old clone moved aside and the new one put in its place, each journaled first.
fn swap(j: &mut Journal, rp: &ResetPlan) -> Result<()> {
    j.record(&Resource::Clone {
        path: rp.prev.clone(),
        source: rp.from.path.clone(),
        source_uuid: rp.from.uuid.clone(),
    })?;
    fault::point("reset: journaled old clone aside");
    rename(&rp.clone, &rp.prev)?;
    fault::point("reset: moved old clone aside");
    j.record(&Resource::Clone {
        path: rp.clone.clone(),
        source: rp.to.path.clone(),
        source_uuid: rp.to.uuid.clone(),
    })?;
    fault::point("reset: journaled new clone in place");
    rename(&rp.next, &rp.clone)?;
    fault::point("reset: new clone in place");
    Ok(())
}

/// Rename a subvolume within its directory, never over anything (`RENAME_NOREPLACE`).
fn rename(from: &Path, to: &Path) -> Result<()> {
    let dir = from.parent().context("a clone has a parent directory")?;
    let parent = std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let (Some(a), Some(b)) = (from.file_name(), to.file_name()) else {
        anyhow::bail!("{} or {} has no file name", from.display(), to.display());
    };
    nix::fcntl::renameat2(
        &parent,
        a,
        &parent,
        b,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
    .with_context(|| format!("renaming {} to {}", from.display(), to.display()))
}
