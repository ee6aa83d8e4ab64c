//! The controller (`wayback k8s controller`): one kube-runtime Controller over every `Resurrection`.
//!
//! A reconcile, in order:
//! 1. being deleted → [`teardown`]: Ingress, Service, the copy (foreground, so its pods stop), wait
//!    until the copy is gone, the cloned PVCs, the NetworkPolicy last; then the finalizer is removed;
//! 2. no finalizer yet → add it (a JSON patch guarded by a `test` op) and wait for the change;
//! 3. past its expiry (TTL, `extend`ed or not) or idle deadline → status `Terminating`, delete it;
//! 4. otherwise → [`apply`]: read the facts, plan, create what is missing (quarantine first), pin the
//!    chosen snapshots in the status, and come back before the next deadline.
//!
//! The reconcile logic is tested against kube's mocked API (tower-test), request by request.

mod apply;
mod teardown;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use futures::StreamExt;
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::cluster::ClusterError;
use crate::crd::{Phase, Resurrection, ResurrectionStatus};

/// What a reconcile needs: the client and a clock (fixed in tests).
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub clock: fn() -> Timestamp,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("Resurrection {name}: {source}")]
    Kube {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// How often a ready resurrection is looked at again (its deadline may come sooner).
pub const RECHECK: StdDuration = StdDuration::from_secs(300);
/// How often a pending one is (a snapshot or a pod not ready yet).
pub const PENDING_RECHECK: StdDuration = StdDuration::from_secs(10);
/// After a failure that needs a person (bad request, a missing workload).
pub const FAILED_RECHECK: StdDuration = StdDuration::from_secs(300);
/// After a failed create (partial failure: what exists stays, the rest is retried).
pub const RETRY: StdDuration = StdDuration::from_secs(30);

fn kube_err(res: &Resurrection) -> impl FnOnce(kube::Error) -> Error {
    let name = res.name_any();
    move |source| Error::Kube { name, source }
}

fn api(ctx: &Context, res: &Resurrection) -> Api<Resurrection> {
    Api::namespaced(ctx.client.clone(), &res.namespace().unwrap_or_default())
}

/// Reconcile one `Resurrection`.
pub async fn reconcile(res: Arc<Resurrection>, ctx: Arc<Context>) -> Result<Action, Error> {
    let has_finalizer = res.finalizers().iter().any(|f| f == crate::FINALIZER);
    if res.metadata.deletion_timestamp.is_some() {
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        return teardown::run(&ctx, &res).await;
    }
    if !has_finalizer {
        add_finalizer(&ctx, &res).await?;
        return Ok(Action::await_change());
    }
    let now = (ctx.clock)();
    if let Some((when, why)) = res.deadline() {
        if now >= when {
            let message = format!(
                "{why} at {}: removing everything",
                crate::choose::fmt_time(when)
            );
            let mut status = res.status.clone().unwrap_or_default();
            status.phase = Some(Phase::Terminating);
            status.message = Some(message);
            set_status(&ctx, &res, status).await?;
            api(&ctx, &res)
                .delete(&res.name_any(), &Default::default())
                .await
                .map_err(kube_err(&res))?;
            return Ok(Action::await_change());
        }
    }
    apply::run(&ctx, &res, now).await
}

/// After an error the reconcile could not turn into a status: log it and retry.
pub fn error_policy(res: Arc<Resurrection>, err: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(resurrection = %res.name_any(), "reconcile failed: {err}");
    Action::requeue(RETRY)
}

/// The JSON patch kube-runtime's finalizer helper would send: guarded by a `test` of the current list.
async fn add_finalizer(ctx: &Context, res: &Resurrection) -> Result<(), Error> {
    let ops = match res.metadata.finalizers.as_deref() {
        None | Some([]) => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": res.metadata.finalizers},
            {"op": "add", "path": "/metadata/finalizers", "value": [crate::FINALIZER]},
        ]),
        Some(list) => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": list},
            {"op": "add", "path": "/metadata/finalizers/-", "value": crate::FINALIZER},
        ]),
    };
    json_patch_res(ctx, res, ops).await
}

async fn remove_finalizer(ctx: &Context, res: &Resurrection) -> Result<(), Error> {
    let Some(i) = res.finalizers().iter().position(|f| f == crate::FINALIZER) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{i}");
    let ops = json!([
        {"op": "test", "path": path, "value": crate::FINALIZER},
        {"op": "remove", "path": path},
    ]);
    json_patch_res(ctx, res, ops).await
}

async fn json_patch_res(
    ctx: &Context,
    res: &Resurrection,
    ops: serde_json::Value,
) -> Result<(), Error> {
    let patch: json_patch::Patch = serde_json::from_value(ops).expect("well-formed JSON patch");
    api(ctx, res)
        .patch(
            &res.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
        .map_err(kube_err(res))?;
    Ok(())
}

/// Write the whole status with server-side apply (fields wayback no longer sets are removed;
/// `lastActivity`, which others report, is never taken over).
async fn set_status(
    ctx: &Context,
    res: &Resurrection,
    mut status: ResurrectionStatus,
) -> Result<(), Error> {
    status.last_activity = None;
    status.observed_generation = res.metadata.generation;
    let body = json!({
        "apiVersion": format!("{}/v1alpha1", crate::GROUP),
        "kind": "Resurrection",
        "status": status,
    });
    api(ctx, res)
        .patch_status(
            &res.name_any(),
            &PatchParams::apply(crate::FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
        .map_err(kube_err(res))?;
    Ok(())
}

/// Run the controller until SIGTERM or Ctrl-C.
pub async fn run(client: Client) -> Result<(), Error> {
    let all: Api<Resurrection> = Api::all(client.clone());
    // Fail early, with the fix, when the CRD is not installed.
    all.list(&kube::api::ListParams::default().limit(1))
        .await
        .map_err(|e| Error::Cluster(crate::cluster::ClusterError::Api {
            what: "resurrections.wayback.io (install the CRD: wayback k8s manifests | kubectl apply -f -)".into(),
            ns: "(all)".into(),
            source: e,
        }))?;
    let ctx = Arc::new(Context {
        client,
        clock: Timestamp::now,
    });
    Controller::new(all, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            match r {
                Ok((obj, _)) => tracing::debug!("reconciled {obj}"),
                Err(e) => tracing::warn!("{e}"),
            }
        })
        .await;
    Ok(())
}

#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_expiry;
#[cfg(test)]
mod tests_teardown;
