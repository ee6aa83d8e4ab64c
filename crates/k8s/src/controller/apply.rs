//! The apply half of a reconcile: facts → plan → create what is missing → status.
//!
//! Nothing is ever updated in place: objects that exist are left as they are (the copy keeps the pod
//! template it was made with even when the live workload changes), missing ones are created in plan
//! order. A create that fails stops the pass: what exists stays (owned, so it goes with the
//! Resurrection), the status names the object and the API's answer, and the pass is retried.

use std::time::Duration as StdDuration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::ResourceExt;

use super::{set_status, Context, Error, FAILED_RECHECK, PENDING_RECHECK, RECHECK, RETRY};
use crate::cluster::{self, ClusterError};
use crate::crd::{ChosenSnapshot, Phase, Resurrection, ResurrectionStatus};
use crate::plan::{self, Plan};

/// Requeue after `d`, but no later than the resurrection's deadline.
fn until(res: &Resurrection, now: Timestamp, d: StdDuration) -> Action {
    // A deadline already passed (it is checked before this pass) counts as "now".
    let left = res.deadline().map_or(d, |(t, _)| {
        StdDuration::try_from(t.duration_since(now)).unwrap_or_default()
    });
    Action::requeue(d.min(left).max(StdDuration::from_secs(1)))
}

/// Keep the pinned choices and the rest; set phase and message.
fn status_with(res: &Resurrection, phase: Phase, message: String) -> ResurrectionStatus {
    let mut s = res.status.clone().unwrap_or_default();
    s.phase = Some(phase);
    s.message = Some(message);
    s.expires_at = res.expiry().map(Time);
    s
}

async fn stop(
    ctx: &Context,
    res: &Resurrection,
    phase: Phase,
    message: String,
    after: StdDuration,
    now: Timestamp,
) -> Result<Action, Error> {
    tracing::info!(resurrection = %res.name_any(), "{phase}: {message}");
    set_status(ctx, res, status_with(res, phase, message)).await?;
    Ok(until(res, now, after))
}

pub(super) async fn run(
    ctx: &Context,
    res: &Resurrection,
    now: Timestamp,
) -> Result<Action, Error> {
    let ns = res.namespace().unwrap_or_default();
    let facts = match cluster::read_facts(&ctx.client, &ns, &res.spec.workload).await {
        Ok(f) => f,
        Err(e @ ClusterError::NotFound { .. }) => {
            let msg = format!("{e}; objects made earlier are kept");
            return stop(ctx, res, Phase::Failed, msg, FAILED_RECHECK, now).await;
        }
        Err(e) => return Err(e.into()),
    };
    let plan = match plan::build(res, &facts, now) {
        Ok(p) => p,
        Err(e) if e.is_transient() => {
            return stop(
                ctx,
                res,
                Phase::Pending,
                e.to_string(),
                PENDING_RECHECK,
                now,
            )
            .await
        }
        Err(e) => return stop(ctx, res, Phase::Failed, e.to_string(), FAILED_RECHECK, now).await,
    };
    for o in &plan.objects {
        match cluster::create(&ctx.client, &ns, o).await {
            Ok(true) => tracing::info!(resurrection = %res.name_any(), "created {}", o.describe()),
            Ok(false) => {}
            Err(e) => {
                let msg = format!(
                    "could not create {}: {e}; the objects made so far stay (owned by this Resurrection) and the rest is retried",
                    o.describe()
                );
                return stop(ctx, res, Phase::Failed, msg, RETRY, now).await;
            }
        }
    }
    let ready =
        cluster::copy_state(&ctx.client, &ns, facts.workload.kind(), &plan.owner.name).await?;
    let ready = ready == Some(true);
    set_status(ctx, res, made(res, &plan, ready)).await?;
    Ok(until(
        res,
        now,
        if ready { RECHECK } else { PENDING_RECHECK },
    ))
}

/// The status after every object exists: the choices pinned, the skew, and whether the copy is ready.
fn made(res: &Resurrection, plan: &Plan, ready: bool) -> ResurrectionStatus {
    let mut notes = plan.notes.clone();
    if !ready {
        notes.insert(0, format!("waiting for a ready pod of {}", plan.owner.name));
    }
    ResurrectionStatus {
        phase: Some(if ready { Phase::Ready } else { Phase::Pending }),
        message: (!notes.is_empty()).then(|| notes.join("; ")),
        snapshots: plan
            .choices
            .iter()
            .map(|c| ChosenSnapshot {
                claim: c.claim.clone(),
                volume_snapshot: c.snapshot.clone(),
                taken_at: Time(c.taken_at),
                clone: crate::objects::clone_name(&plan.owner.name, &c.claim),
            })
            .collect(),
        skew_seconds: plan.skew,
        expires_at: res.expiry().map(Time),
        last_activity: None,
        url: plan.url.clone(),
        observed_generation: None,
    }
}
