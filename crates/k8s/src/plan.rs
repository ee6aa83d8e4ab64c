//! Request + facts read from the cluster → the objects of one resurrection (pure; golden-tested).
//!
//! The same function serves `wayback k8s up` (to refuse bad input before anything is made, and for
//! `--dry-run`) and the controller (which creates what it returns, in order: the quarantine first, the
//! copy last, so no pod of the copy runs before its NetworkPolicy exists).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use wayback_core::Duration;

use crate::choose::{self, Choice, ChoiceError};
use crate::crd::{Resurrection, SnapshotSource, WorkloadKind};
use crate::objects::{self, IngressOpts, Owner, Port};
use crate::snapshot::VolumeSnapshot;
use crate::workload::{self, Workload};

pub use crate::yaml::Object;

/// What was read from the cluster for one resurrection.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The live workload `spec.workload` names.
    pub workload: Workload,
    /// The live PVCs that could be read, by name (a missing one falls back to its template or snapshot).
    pub pvcs: BTreeMap<String, PersistentVolumeClaim>,
    /// Every VolumeSnapshot of the namespace.
    pub snapshots: Vec<VolumeSnapshot>,
}

impl Facts {
    /// Facts from objects read from a file (`--from`): the workload named `name` (of `kind`, if given),
    /// the PVCs and VolumeSnapshots among them.
    pub fn from_objects(
        kind: Option<WorkloadKind>,
        name: &str,
        objects: Vec<Object>,
    ) -> Result<Facts, String> {
        let mut workloads = Vec::new();
        let mut pvcs = BTreeMap::new();
        let mut snapshots = Vec::new();
        for o in objects {
            match o {
                Object::Deployment(d) => workloads.push(Workload::Deployment(*d)),
                Object::StatefulSet(s) => workloads.push(Workload::StatefulSet(*s)),
                Object::Pvc(p) => {
                    pvcs.insert(p.metadata.name.clone().unwrap_or_default(), *p);
                }
                Object::VolumeSnapshot(v) => snapshots.push(*v),
                _ => {}
            }
        }
        workloads.retain(|w| w.name() == name && kind.is_none_or(|k| w.kind() == k));
        match workloads.len() {
            1 => Ok(Facts {
                workload: workloads.remove(0),
                pvcs,
                snapshots,
            }),
            0 => Err(format!("the file has no Deployment or StatefulSet named {name}")),
            _ => Err(format!("the file has both a Deployment and a StatefulSet named {name}: write deployment/{name} or statefulset/{name}")),
        }
    }
}

/// The objects of one resurrection, in creation order, and how the snapshots were chosen.
#[derive(Debug, Clone)]
pub struct Plan {
    pub owner: Owner,
    pub choices: Vec<Choice>,
    /// Seconds between the oldest and the newest chosen snapshot.
    pub skew: Option<i64>,
    /// Things the user should know (snapshots passed over, fallbacks).
    pub notes: Vec<String>,
    pub objects: Vec<Object>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error(transparent)]
    Choice(#[from] ChoiceError),
    #[error("{workload} mounts no PersistentVolumeClaim: there is nothing to bring back from a snapshot")]
    NoClaims { workload: String },
    #[error("{workload} has no pod template")]
    NoTemplate { workload: String },
    #[error("the size of PVC {claim} is unknown (the PVC is gone and snapshot {snapshot} has no restoreSize)")]
    NoSize { claim: String, snapshot: String },
    #[error("the chosen snapshots are {skew} apart, more than the allowed skew ({max}); pick a moment they share (--at), name the snapshots (--snapshot), or drop --strict-consistency")]
    Skew { skew: Duration, max: Duration },
    #[error("{0}")]
    Port(String),
    #[error("the clone of PVC {claim} would be named {name}, longer than 253 characters: pick a shorter resurrection name")]
    Name { claim: String, name: String },
}

impl PlanError {
    /// Whether waiting can fix it (a snapshot not ready yet).
    pub fn is_transient(&self) -> bool {
        matches!(self, PlanError::Choice(c) if c.is_transient())
    }
}

/// The port the Ingress serves: `--port` (a number, or a declared port's name), else the only declared
/// TCP port, else the one named `http`.
pub fn served_port(ports: &[Port], wanted: Option<&str>) -> Result<Port, PlanError> {
    let tcp: Vec<&Port> = ports.iter().filter(|p| p.protocol == "TCP").collect();
    let listing = || {
        let names: Vec<String> = tcp
            .iter()
            .map(|p| match &p.name {
                Some(n) => format!("{} ({n})", p.number),
                None => p.number.to_string(),
            })
            .collect();
        if names.is_empty() {
            "it declares no TCP container port".to_string()
        } else {
            format!("its TCP ports: {}", names.join(", "))
        }
    };
    match wanted {
        Some(w) => match w.parse::<i32>() {
            Ok(n) => Ok(tcp
                .iter()
                .find(|p| p.number == n)
                .map(|p| (*p).clone())
                .unwrap_or(Port {
                    name: None,
                    number: n,
                    protocol: "TCP".into(),
                })),
            Err(_) => tcp
                .iter()
                .find(|p| p.name.as_deref() == Some(w))
                .map(|p| (*p).clone())
                .ok_or_else(|| {
                    PlanError::Port(format!(
                        "the pod template has no port named {w:?} ({})",
                        listing()
                    ))
                }),
        },
        None => match tcp.as_slice() {
            [one] => Ok((*one).clone()),
            many => many
                .iter()
                .find(|p| p.name.as_deref() == Some("http"))
                .map(|p| (*p).clone())
                .ok_or_else(|| {
                    PlanError::Port(format!(
                        "which port does --host serve? pass --port ({})",
                        listing()
                    ))
                }),
        },
    }
}

/// Build the plan of `res` (name, namespace, uid, spec, pinned status) from `facts`.
pub fn build(res: &Resurrection, facts: &Facts, now: Timestamp) -> Result<Plan, PlanError> {
    let spec = &res.spec;
    let owner = Owner {
        name: res.metadata.name.clone().unwrap_or_default(),
        namespace: res.metadata.namespace.clone().unwrap_or_default(),
        uid: res
            .metadata
            .uid
            .clone()
            .unwrap_or_else(|| objects::DRY_RUN_UID.into()),
    };
    let wl = facts.workload.reference().to_string();
    let template = facts
        .workload
        .template()
        .ok_or_else(|| PlanError::NoTemplate {
            workload: wl.clone(),
        })?;
    let claims = facts.workload.claims();
    if claims.is_empty() {
        return Err(PlanError::NoClaims { workload: wl });
    }
    // Choices pinned in the status win: a later reconcile never picks different snapshots.
    let pinned: Vec<SnapshotSource> = res
        .status
        .iter()
        .flat_map(|s| &s.snapshots)
        .map(|c| SnapshotSource {
            claim: c.claim.clone(),
            volume_snapshot: c.volume_snapshot.clone(),
        })
        .collect();
    let explicit = if pinned.is_empty() {
        &spec.snapshots
    } else {
        &pinned
    };
    let names: Vec<String> = claims.iter().map(|c| c.pvc.clone()).collect();
    let at = spec.at.as_ref().map_or(now, |t| t.0);
    let choices = choose::choose(&names, explicit, at, &facts.snapshots)?;
    let skew = choose::skew(&choices);
    if let (Some(sk), Some(max)) = (skew, spec.max_skew) {
        if sk > max.as_secs() as i64 {
            return Err(PlanError::Skew {
                skew: Duration(sk as u64),
                max,
            });
        }
    }
    let mut notes = Vec::new();
    let mut pvcs = Vec::new();
    let mut clones = BTreeMap::new();
    for (claim, choice) in claims.iter().zip(&choices) {
        for (n, why) in &choice.passed_over {
            notes.push(format!("passed over {n} for PVC {} ({why})", claim.pvc));
        }
        let snap = facts
            .snapshots
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(&choice.snapshot))
            .expect("chosen from these snapshots");
        let live = facts.pvcs.get(&claim.pvc);
        if live.is_none() {
            notes.push(format!(
                "PVC {} could not be read: its clone is shaped after its {}",
                claim.pvc,
                if claim.template.is_some() {
                    "claim template"
                } else {
                    "snapshot (default storage class)"
                }
            ));
        }
        let pvc =
            objects::clone_pvc(&owner, claim, live, snap).ok_or_else(|| PlanError::NoSize {
                claim: claim.pvc.clone(),
                snapshot: choice.snapshot.clone(),
            })?;
        let clone = objects::clone_name(&owner.name, &claim.pvc);
        if clone.len() > 253 {
            return Err(PlanError::Name {
                claim: claim.pvc.clone(),
                name: clone,
            });
        }
        clones.insert(claim.volume.clone(), clone);
        pvcs.push(Object::Pvc(Box::new(pvc)));
    }
    let mut ports = objects::template_ports(template);
    let served = match &spec.host {
        Some(_) => Some(served_port(&ports, spec.port.as_deref())?),
        None => None,
    };
    if let Some(p) = &served {
        if !ports
            .iter()
            .any(|q| q.number == p.number && q.protocol == p.protocol)
        {
            ports.push(p.clone());
        }
    }
    let mut objects = vec![Object::NetworkPolicy(Box::new(objects::network_policy(
        &owner,
        served.as_ref(),
        &spec.ingress_from,
        spec.allow_dns,
    )))];
    objects.extend(pvcs);
    if !ports.is_empty() {
        objects.push(Object::Service(Box::new(objects::service(&owner, &ports))));
    }
    if let (Some(host), Some(port)) = (&spec.host, &served) {
        objects.push(Object::Ingress(Box::new(objects::ingress(
            &owner,
            &IngressOpts {
                host,
                port,
                class: spec.ingress_class.as_deref(),
                tls: spec.tls_issuer.as_ref(),
            },
        ))));
    }
    let tpl = workload::copy_template(template, &owner.name, &clones, &spec.env);
    objects.push(workload::copy(&facts.workload, &owner, tpl).into());
    let url = spec.host.as_ref().map(|h| {
        let scheme = if spec.tls_issuer.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{h}/")
    });
    Ok(Plan {
        owner,
        choices,
        skew,
        notes,
        objects,
        url,
    })
}

#[cfg(test)]
mod tests;
