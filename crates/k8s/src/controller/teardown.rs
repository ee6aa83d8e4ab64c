//! The cleanup half: what the finalizer waits for. The order mirrors host mode's teardown: first what
//! lets traffic in (Ingress, Service), then the copy (foreground deletion, so its pods stop first), and
//! only once the copy is gone its volumes and, last, the quarantine, so no pod of the copy ever runs
//! without its NetworkPolicy. Each delete of a missing object succeeds; the finalizer goes only when
//! everything is gone. Owner references would remove the same objects, but without this order.

use std::time::Duration as StdDuration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::{remove_finalizer, set_status, Context, Error};
use crate::cluster::{self, ClusterError, Found};
use crate::crd::{Phase, Resurrection, WorkloadKind};

/// How often teardown looks again while the copy's pods stop.
pub const WAIT: StdDuration = StdDuration::from_secs(5);

pub(super) async fn run(ctx: &Context, res: &Resurrection) -> Result<Action, Error> {
    let ns = res.namespace().unwrap_or_default();
    let name = res.name_any();
    let uid = res.metadata.uid.clone().unwrap_or_default();
    let c = &ctx.client;
    cluster::delete_owned::<Ingress>(c, &ns, &name, &uid).await?;
    cluster::delete_owned::<Service>(c, &ns, &name, &uid).await?;
    let kind = res.spec.workload.kind;
    let copy = match kind {
        WorkloadKind::Deployment => {
            cluster::delete_owned::<Deployment>(c, &ns, &name, &uid).await?
        }
        WorkloadKind::StatefulSet => {
            cluster::delete_owned::<StatefulSet>(c, &ns, &name, &uid).await?
        }
    };
    if copy == Found::Deleting {
        let msg = format!("waiting for the pods of {kind} {name} to stop");
        let mut status = res.status.clone().unwrap_or_default();
        if status.message.as_deref() != Some(msg.as_str())
            || status.phase != Some(Phase::Terminating)
        {
            status.phase = Some(Phase::Terminating);
            status.message = Some(msg);
            set_status(ctx, res, status).await?;
        }
        return Ok(Action::requeue(WAIT));
    }
    let lp = ListParams::default().labels(&format!("{}={name}", crate::LABEL));
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(c.clone(), &ns)
        .list(&lp)
        .await
        .map_err(|e| ClusterError::Api {
            what: format!("PersistentVolumeClaims labelled {}={name}", crate::LABEL),
            ns: ns.clone(),
            source: e,
        })?;
    // Only clones this resurrection owns (a label alone can be copied onto anything).
    for p in pvcs.items.iter().filter(|p| cluster::owned_by(*p, &uid)) {
        cluster::delete_exact(c, &ns, p).await?;
    }
    cluster::delete_owned::<NetworkPolicy>(c, &ns, &name, &uid).await?;
    remove_finalizer(ctx, res).await?;
    tracing::info!(resurrection = %name, namespace = %ns, "removed");
    Ok(Action::await_change())
}
