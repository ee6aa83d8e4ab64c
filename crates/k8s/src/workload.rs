//! The live workload and its copy: which PVCs it uses, and the copy of its pod template with the claims
//! swapped for clones (host mode's "reuse the host's software": the same image, command, config maps,
//! secrets, probes and resources).
//!
//! What changes in the copy, and why:
//! - pod labels are replaced by wayback's own, so no live Service, PodDisruptionBudget or NetworkPolicy
//!   selects the copy and it never receives production traffic;
//! - one replica, `Recreate` (a cloned ReadWriteOnce volume has one writer); HPAs are not copied;
//! - the service account's token is not mounted: the copy must not act on the cluster;
//! - `--env` overrides are set on every container and init container.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::crd::{EnvOverride, WorkloadKind, WorkloadRef};
use crate::objects::{labels, meta, Owner};

/// A live Deployment or StatefulSet.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    Deployment(Deployment),
    StatefulSet(StatefulSet),
}

/// One PVC the workload uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The live PVC's name (for a StatefulSet template: replica 0's, `<template>-<set>-0`).
    pub pvc: String,
    /// The pod volume it is mounted as.
    pub volume: String,
    /// For a StatefulSet's volumeClaimTemplate: its spec (used when the live PVC cannot be read).
    pub template: Option<PersistentVolumeClaimSpec>,
}

impl Workload {
    pub fn kind(&self) -> WorkloadKind {
        match self {
            Workload::Deployment(_) => WorkloadKind::Deployment,
            Workload::StatefulSet(_) => WorkloadKind::StatefulSet,
        }
    }

    pub fn name(&self) -> &str {
        let m = match self {
            Workload::Deployment(d) => &d.metadata,
            Workload::StatefulSet(s) => &s.metadata,
        };
        m.name.as_deref().unwrap_or_default()
    }

    pub fn reference(&self) -> WorkloadRef {
        WorkloadRef {
            kind: self.kind(),
            name: self.name().into(),
        }
    }

    pub fn template(&self) -> Option<&PodTemplateSpec> {
        match self {
            Workload::Deployment(d) => d.spec.as_ref().map(|s| &s.template),
            Workload::StatefulSet(s) => s.spec.as_ref().map(|s| &s.template),
        }
    }

    /// The PVCs the workload's pods mount, in template order (claim templates first).
    pub fn claims(&self) -> Vec<Claim> {
        let mut out = Vec::new();
        if let Workload::StatefulSet(s) = self {
            let spec = s.spec.as_ref();
            for t in spec
                .and_then(|s| s.volume_claim_templates.as_ref())
                .into_iter()
                .flatten()
            {
                let vol = t.metadata.name.clone().unwrap_or_default();
                out.push(Claim {
                    pvc: format!("{vol}-{}-0", self.name()),
                    volume: vol,
                    template: t.spec.clone(),
                });
            }
        }
        let vols = self
            .template()
            .and_then(|t| t.spec.as_ref()?.volumes.as_ref());
        for v in vols.into_iter().flatten() {
            if let Some(p) = &v.persistent_volume_claim {
                out.push(Claim {
                    pvc: p.claim_name.clone(),
                    volume: v.name.clone(),
                    template: None,
                });
            }
        }
        out
    }
}

/// The pod template of the copy: wayback's labels, claims (by volume name) swapped for their clones,
/// no service account token, `env` set on every container.
pub fn copy_template(
    live: &PodTemplateSpec,
    name: &str,
    clones: &BTreeMap<String, String>,
    env: &[EnvOverride],
) -> PodTemplateSpec {
    let mut t = live.clone();
    t.metadata.get_or_insert_with(Default::default).labels = Some(labels(name));
    let spec = t.spec.get_or_insert_with(Default::default);
    spec.automount_service_account_token = Some(false);
    let vols = spec.volumes.get_or_insert_with(Vec::new);
    for v in vols.iter_mut() {
        if let (Some(p), Some(clone)) = (&mut v.persistent_volume_claim, clones.get(&v.name)) {
            p.claim_name = clone.clone();
        }
    }
    // A StatefulSet's claim templates become plain volumes on their clones.
    for (vol, clone) in clones {
        if !vols.iter().any(|v| v.name == *vol) {
            vols.push(Volume {
                name: vol.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: clone.clone(),
                    read_only: None,
                }),
                ..Default::default()
            });
        }
    }
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        set_env(c, env);
    }
    t
}

fn set_env(c: &mut Container, env: &[EnvOverride]) {
    let vars = c.env.get_or_insert_with(Vec::new);
    for o in env {
        let new = EnvVar {
            name: o.name.clone(),
            value: Some(o.value.clone()),
            value_from: None,
        };
        match vars.iter_mut().find(|v| v.name == o.name) {
            Some(v) => *v = new,
            None => vars.push(new),
        }
    }
    if vars.is_empty() {
        c.env = None;
    }
}

fn selector(name: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            crate::LABEL.to_string(),
            name.to_string(),
        )])),
        match_expressions: None,
    }
}

/// The copy: the same kind as the live workload, one replica, on the clones.
pub fn copy(live: &Workload, owner: &Owner, template: PodTemplateSpec) -> Workload {
    let name = owner.name.as_str();
    let mut m = meta(name, owner);
    m.annotations = Some(BTreeMap::from([(
        "wayback.io/copy-of".to_string(),
        live.reference().to_string(),
    )]));
    match live {
        Workload::Deployment(_) => Workload::Deployment(Deployment {
            metadata: m,
            spec: Some(DeploymentSpec {
                replicas: Some(1),
                selector: selector(name),
                strategy: Some(DeploymentStrategy {
                    type_: Some("Recreate".into()),
                    rolling_update: None,
                }),
                revision_history_limit: Some(1),
                template,
                ..Default::default()
            }),
            status: None,
        }),
        Workload::StatefulSet(s) => Workload::StatefulSet(StatefulSet {
            metadata: m,
            spec: Some(StatefulSetSpec {
                replicas: Some(1),
                selector: selector(name),
                service_name: Some(name.into()),
                pod_management_policy: s
                    .spec
                    .as_ref()
                    .and_then(|s| s.pod_management_policy.clone()),
                revision_history_limit: Some(1),
                template,
                ..Default::default()
            }),
            status: None,
        }),
    }
}
