//! Teardown: replay an instance's journal backwards, one undo step per resource, each succeeding when its
//! object is already gone — the one mechanism behind `down`, TTL and idle expiry, rollback of a failed `up`,
//! a restarted daemon's recovery and `gc`. The objects are undone by a [`Host`] ([`SystemHost`]: the module
//! that owns each kind); this module owns the order, the checks of what a journal names and the reporting. What a journal names is not trusted:
//! a route file is removed only from the routes directory and only when it names this instance, the clone
//! directory only when wayback marked it and it is empty, the instance directory only when it carries its
//! marker; what is left is reported as left, never as removed.

use std::fs;
use std::io;
use std::time::{Duration, Instant};

use anyhow::Result;
use wayback_core::journal::{self, Resource};

use crate::fault;
use crate::host::{Host, SystemHost};
pub use crate::host::{Undone, STOP_GRACE};
use crate::progress::Progress;
use crate::state::InstanceDir;

/// What a teardown did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Teardown {
    pub removed: Vec<String>,
    /// Things the journal names that were left in place on purpose (another instance's route file, a clone
    /// directory that still holds other clones), each with the reason.
    pub left: Vec<String>,
    pub errors: Vec<String>,
}

/// Undo every journaled resource, newest first; keep going past failures and report them all. The
/// instance directory is removed only when everything else is gone, so a failed teardown can be retried.
pub async fn teardown(dir: &InstanceDir, progress: &Progress) -> Teardown {
    teardown_with(&SystemHost, dir, progress).await
}

/// [`teardown`] through `host`.
pub async fn teardown_with<H: Host>(host: &H, dir: &InstanceDir, progress: &Progress) -> Teardown {
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
    let order = journal::undo_order(&entries);
    run_batches(host, dir, &order, &mut report, progress).await;
    if report.errors.is_empty() {
        if let Err(e) = dir.remove() {
            report.errors.push(e.to_string());
        }
    }
    report
}

/// One undo step, timed: (what it undid, the outcome, how long it took).
type Step = (String, Result<Undone>, Duration);

async fn timed_undo<H: Host>(host: &H, dir: &InstanceDir, res: &Resource) -> Step {
    let t = Instant::now();
    let done = undo(host, dir, res).await;
    (res.describe(), done, t.elapsed())
}

/// Undo `order` in [`batches`]: one batch after the other, the steps of a batch at once; each batch
/// reported when it is done.
async fn run_batches<H: Host>(
    host: &H,
    dir: &InstanceDir,
    order: &[Resource],
    report: &mut Teardown,
    progress: &Progress,
) {
    for batch in batches(order) {
        let steps = batch.iter().map(|res| timed_undo(host, dir, res));
        for (what, done, took) in futures::future::join_all(steps).await {
            report_step(report, progress, what, done, took);
        }
    }
}

/// Split the undo order into batches run one after the other; the steps of one batch run at once. Only
/// consecutive network and storage objects share a batch (veth, quarantine, netns, clone, overlay): they
/// come after every process is stopped and none needs another gone first. Everything else is alone.
fn batches(order: &[Resource]) -> Vec<&[Resource]> {
    let independent = |r: &Resource| {
        matches!(
            r,
            Resource::Veth { .. }
                | Resource::Quarantine { .. }
                | Resource::Netns { .. }
                | Resource::Clone { .. }
                | Resource::Overlay { .. }
        )
    };
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=order.len() {
        if i == order.len() || !(independent(&order[i - 1]) && independent(&order[i])) {
            out.push(&order[start..i]);
            start = i;
        }
    }
    out
}

/// Note one step's outcome (with how long it took) and add it to the report.
fn report_step(
    report: &mut Teardown,
    progress: &Progress,
    what: String,
    done: Result<Undone>,
    took: Duration,
) {
    if done.is_ok() {
        fault::point("undone");
    }
    match done {
        Ok(Undone::Removed) => {
            progress.note(format!("removed {what} ({} ms)", took.as_millis()));
            report.removed.push(what);
        }
        Ok(Undone::Gone(message)) => progress.note(message),
        Ok(Undone::Left(message)) => {
            progress.note(message.clone());
            report.left.push(message);
        }
        Err(e) => report.errors.push(format!("{what}: {e:#}")),
    }
}

/// Undo one resource of `dir`'s instance through `host`; a kernel object the journal names under another
/// instance's name is left alone. Already gone is success.
pub async fn undo<H: Host>(host: &H, dir: &InstanceDir, res: &Resource) -> Result<Undone> {
    if let Some(why) = not_this_instance(dir, res) {
        return Ok(Undone::Left(format!("left {}: {why}", res.describe())));
    }
    host.undo(dir, res).await
}

/// Kernel objects are named after their instance: one a journal names under another name is not touched.
fn not_this_instance(dir: &InstanceDir, res: &Resource) -> Option<String> {
    let n = &dir.name;
    let ours = match res {
        Resource::Netns { path } => *path == std::path::Path::new("/run/netns").join(n.netns()),
        Resource::Veth { host_if } => *host_if == n.host_if(),
        Resource::Quarantine { instance, .. } => instance == n.as_str(),
        Resource::Container { machine } => *machine == n.machine(),
        _ => true,
    };
    (!ours).then(|| format!("the journal of {n} names another instance's object"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_consecutive_network_and_storage_steps_share_a_batch() {
        let netns = || Resource::Netns {
            path: "/run/netns/wb-a".into(),
        };
        let veth = || Resource::Veth {
            host_if: "wb-a".into(),
        };
        let order = vec![
            Resource::Container {
                machine: "wb-a".into(),
            },
            veth(),
            netns(),
            Resource::Dir {
                path: "/x/.wayback".into(),
            },
            netns(),
        ];
        let sizes: Vec<usize> = batches(&order).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![1, 2, 1, 1]);
        assert!(batches(&[]).is_empty());
    }
}
