//! Reads and writes through the Kubernetes API (kube-rs), shared by the CLI and the controller. No
//! decisions are made here: facts go to [`crate::plan`], objects come from it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions, PropagationPolicy};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::crd::{WorkloadKind, WorkloadRef};
use crate::plan::Facts;
use crate::snapshot::VolumeSnapshot;
use crate::workload::Workload;
use crate::yaml::Object;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{what} not found in namespace {ns}")]
    NotFound { what: String, ns: String },
    #[error("{what} in namespace {ns}: {source}")]
    Api {
        what: String,
        ns: String,
        #[source]
        source: kube::Error,
    },
    #[error("{what} in namespace {ns} is not one wayback can handle: {why}")]
    Unsupported {
        what: String,
        ns: String,
        why: String,
    },
}

impl ClusterError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClusterError::NotFound { .. })
    }
}

/// Whether an API error is a 404.
pub fn is_404(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether an API error is a 409 (already exists, or a conflicting change).
pub fn is_409(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn api_err(what: &str, ns: &str) -> impl FnOnce(kube::Error) -> ClusterError {
    let (what, ns) = (what.to_string(), ns.to_string());
    move |e| {
        if is_404(&e) {
            ClusterError::NotFound { what, ns }
        } else {
            ClusterError::Api {
                what,
                ns,
                source: e,
            }
        }
    }
}

/// Read the live workload `r` names.
pub async fn read_workload(
    client: &Client,
    ns: &str,
    r: &WorkloadRef,
) -> Result<Workload, ClusterError> {
    let what = r.to_string();
    match r.kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), ns)
            .get(&r.name)
            .await
            .map(Workload::Deployment),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), ns)
            .get(&r.name)
            .await
            .map(Workload::StatefulSet),
    }
    .map_err(api_err(&what, ns))
}

/// A bare workload name: the Deployment of that name, else the StatefulSet; both is ambiguous.
pub async fn find_workload(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<WorkloadRef, ClusterError> {
    let mut found = Vec::new();
    for kind in [WorkloadKind::Deployment, WorkloadKind::StatefulSet] {
        let r = WorkloadRef {
            kind,
            name: name.into(),
        };
        match read_workload(client, ns, &r).await {
            Ok(_) => found.push(r),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(ClusterError::NotFound {
            what: format!("no Deployment or StatefulSet {name}"),
            ns: ns.into(),
        }),
        _ => Err(ClusterError::Unsupported {
            what: name.into(),
            ns: ns.into(),
            why: "both a Deployment and a StatefulSet have this name: write deployment/NAME or statefulset/NAME".into(),
        }),
    }
}

/// Everything [`crate::plan::build`] needs: the workload, every VolumeSnapshot of the namespace, and
/// each claimed PVC that still exists.
pub async fn read_facts(client: &Client, ns: &str, r: &WorkloadRef) -> Result<Facts, ClusterError> {
    let workload = read_workload(client, ns, r).await?;
    let snapshots = Api::<VolumeSnapshot>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(api_err(
            "VolumeSnapshots (is the CSI snapshot CRD installed?)",
            ns,
        ))?
        .items;
    let pvcs_api = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns);
    let mut pvcs = BTreeMap::new();
    for c in workload.claims() {
        match pvcs_api.get_opt(&c.pvc).await {
            Ok(Some(p)) => {
                pvcs.insert(c.pvc.clone(), p);
            }
            Ok(None) => {}
            Err(e) => return Err(api_err(&format!("PersistentVolumeClaim {}", c.pvc), ns)(e)),
        }
    }
    Ok(Facts {
        workload,
        pvcs,
        snapshots,
    })
}

/// The bounds of the namespaced, typed objects wayback creates and deletes.
pub trait Child:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
{
}
impl<K> Child for K where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
{
}

/// Whether `obj` carries an owner reference to the Resurrection with uid `owner_uid`.
pub fn owned_by<K: Resource>(obj: &K, owner_uid: &str) -> bool {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Resurrection" && o.uid == owner_uid)
}

fn owner_uid<K: Resource>(obj: &K) -> String {
    let refs = obj.meta().owner_references.iter().flatten();
    refs.filter(|o| o.kind == "Resurrection")
        .map(|o| o.uid.clone())
        .next()
        .unwrap_or_default()
}

async fn create_one<K: Child>(client: &Client, ns: &str, obj: &K) -> Result<bool, ClusterError> {
    let pp = PostParams {
        dry_run: false,
        field_manager: Some(crate::FIELD_MANAGER.into()),
    };
    let api = Api::<K>::namespaced(client.clone(), ns);
    let name = obj.meta().name.clone().unwrap_or_default();
    let what = format!("{} {name}", K::kind(&()));
    match api.create(&pp, obj).await {
        Ok(_) => Ok(true),
        Err(e) if is_409(&e) => {
            // Made by an earlier pass, or someone else's object of the same name?
            let uid = owner_uid(obj);
            match api.get_opt(&name).await.map_err(api_err(&what, ns))? {
                Some(existing) if owned_by(&existing, &uid) => Ok(false),
                _ => Err(ClusterError::Unsupported {
                    what,
                    ns: ns.into(),
                    why: "an object of that name exists and is not this Resurrection's; pick another name".into(),
                }),
            }
        }
        Err(e) => Err(ClusterError::Api {
            what,
            ns: ns.into(),
            source: e,
        }),
    }
}

/// Create one child object; `Ok(false)` when this Resurrection made it already (a reconcile after a
/// partial failure); an error when another object of that name is in the way.
pub async fn create(client: &Client, ns: &str, obj: &Object) -> Result<bool, ClusterError> {
    match obj {
        Object::NetworkPolicy(o) => create_one::<NetworkPolicy>(client, ns, o).await,
        Object::Pvc(o) => create_one::<PersistentVolumeClaim>(client, ns, o).await,
        Object::Service(o) => create_one::<Service>(client, ns, o).await,
        Object::Ingress(o) => create_one::<Ingress>(client, ns, o).await,
        Object::Deployment(o) => create_one::<Deployment>(client, ns, o).await,
        Object::StatefulSet(o) => create_one::<StatefulSet>(client, ns, o).await,
        other => Err(ClusterError::Unsupported {
            what: other.describe(),
            ns: ns.into(),
            why: "not a child of a resurrection".into(),
        }),
    }
}

/// What [`delete_owned`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing of that name.
    Absent,
    /// An object of that name that this Resurrection does not own: left alone.
    NotOurs,
    /// Ours; a (foreground) delete was sent. It may take a while to go.
    Deleting,
}

/// Delete `name` of kind `K` if the Resurrection `owner_uid` owns it, with its uid as precondition (so a
/// replacement made in between is never hit) and foreground propagation (its pods go first).
pub async fn delete_owned<K: Child>(
    client: &Client,
    ns: &str,
    name: &str,
    owner_uid: &str,
) -> Result<Found, ClusterError> {
    let api = Api::<K>::namespaced(client.clone(), ns);
    let what = format!("{} {name}", K::kind(&()));
    let Some(obj) = api.get_opt(name).await.map_err(api_err(&what, ns))? else {
        return Ok(Found::Absent);
    };
    if !owned_by(&obj, owner_uid) {
        tracing::warn!("{what} in {ns} is not owned by this Resurrection: left alone");
        return Ok(Found::NotOurs);
    }
    delete_exact(client, ns, &obj).await
}

/// Delete exactly `obj` (its uid as precondition), foreground.
pub async fn delete_exact<K: Child>(
    client: &Client,
    ns: &str,
    obj: &K,
) -> Result<Found, ClusterError> {
    let name = obj.meta().name.clone().unwrap_or_default();
    let what = format!("{} {name}", K::kind(&()));
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: obj.meta().uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    match Api::<K>::namespaced(client.clone(), ns)
        .delete(&name, &dp)
        .await
    {
        Ok(_) => Ok(Found::Deleting),
        Err(e) if is_404(&e) => Ok(Found::Absent),
        Err(e) => Err(ClusterError::Api {
            what,
            ns: ns.into(),
            source: e,
        }),
    }
}

/// Whether the copy (a Deployment or StatefulSet named `name`) exists, and whether a replica is ready.
pub async fn copy_state(
    client: &Client,
    ns: &str,
    kind: WorkloadKind,
    name: &str,
) -> Result<Option<bool>, ClusterError> {
    let what = format!("{kind} {name}");
    let ready = |r: Option<i32>| r.unwrap_or(0) >= 1;
    match kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await
            .map(|d| d.map(|d| ready(d.status.and_then(|s| s.ready_replicas)))),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await
            .map(|d| d.map(|d| ready(d.status.and_then(|s| s.ready_replicas)))),
    }
    .map_err(|e| ClusterError::Api {
        what,
        ns: ns.into(),
        source: e,
    })
}
