//! The objects around the copy, each built from typed k8s-openapi structs: the cloned PVCs, the Service,
//! the Ingress and the quarantine NetworkPolicy. All carry wayback's labels and are owned (controller
//! owner reference, `blockOwnerDeletion`) by their `Resurrection`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodTemplateSpec, Service, ServicePort,
    ServiceSpec, TypedLocalObjectReference, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, NetworkPolicy, NetworkPolicyEgressRule,
    NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
    ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::{IngressFrom, IssuerKind, TlsIssuer};
use crate::snapshot::VolumeSnapshot;
use crate::workload::Claim;

/// The `Resurrection` that owns every object (its uid is the API server's; a dry run uses a placeholder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

/// The uid shown in a dry run, where the `Resurrection` does not exist yet.
pub const DRY_RUN_UID: &str = "00000000-0000-0000-0000-000000000000";

/// wayback's labels: the resurrection's name and `managed-by`.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (crate::LABEL.to_string(), name.to_string()),
        (
            crate::MANAGED_BY.0.to_string(),
            crate::MANAGED_BY.1.to_string(),
        ),
    ])
}

/// Metadata of an object named `name`, labelled and owned by `owner`.
pub fn meta(name: &str, owner: &Owner) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(owner.namespace.clone()),
        labels: Some(labels(&owner.name)),
        owner_references: Some(vec![OwnerReference {
            api_version: format!("{}/v1alpha1", crate::GROUP),
            kind: "Resurrection".into(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        ..Default::default()
    }
}

/// The name of the clone of PVC `pvc`.
pub fn clone_name(owner: &str, pvc: &str) -> String {
    format!("{owner}-{pvc}")
}

/// A PVC restored from `snap`, shaped like the live PVC (access modes, class, volume mode, size), or
/// like the claim template when the live one could not be read; the size falls back to the snapshot's
/// `restoreSize`. `None` when no size is known from any of them.
pub fn clone_pvc(
    owner: &Owner,
    claim: &Claim,
    live: Option<&PersistentVolumeClaim>,
    snap: &VolumeSnapshot,
) -> Option<PersistentVolumeClaim> {
    let shape: Option<&PersistentVolumeClaimSpec> = live
        .and_then(|p| p.spec.as_ref())
        .or(claim.template.as_ref());
    let size = shape
        .and_then(|s| {
            s.resources
                .as_ref()?
                .requests
                .as_ref()?
                .get("storage")
                .cloned()
        })
        .or_else(|| snap.status.as_ref()?.restore_size.clone())?;
    let snap_name = snap.metadata.name.clone().unwrap_or_default();
    let mut m = meta(&clone_name(&owner.name, &claim.pvc), owner);
    m.annotations = Some(BTreeMap::from([
        ("wayback.io/clone-of".to_string(), claim.pvc.clone()),
        ("wayback.io/volume-snapshot".to_string(), snap_name.clone()),
    ]));
    Some(PersistentVolumeClaim {
        metadata: m,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(
                shape
                    .and_then(|s| s.access_modes.clone())
                    .unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
            ),
            storage_class_name: shape.and_then(|s| s.storage_class_name.clone()),
            volume_mode: shape.and_then(|s| s.volume_mode.clone()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), size)])),
                limits: None,
            }),
            data_source: Some(TypedLocalObjectReference {
                api_group: Some("snapshot.storage.k8s.io".into()),
                kind: "VolumeSnapshot".into(),
                name: snap_name,
            }),
            ..Default::default()
        }),
        status: None,
    })
}

/// A container port of the pod template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: Option<String>,
    pub number: i32,
    pub protocol: String,
}

impl Port {
    /// The Service port's name: the container port's, else `p<number>` (`-udp`/`-sctp` appended).
    pub fn service_name(&self) -> String {
        match (&self.name, self.protocol.as_str()) {
            (Some(n), _) => n.clone(),
            (None, "TCP") => format!("p{}", self.number),
            (None, p) => format!("p{}-{}", self.number, p.to_ascii_lowercase()),
        }
    }
}

/// The ports the template's containers declare (not init containers), each once.
pub fn template_ports(t: &PodTemplateSpec) -> Vec<Port> {
    let mut out: Vec<Port> = Vec::new();
    let containers = t.spec.iter().flat_map(|s| s.containers.iter());
    for p in containers.flat_map(|c| c.ports.iter().flatten()) {
        let port = Port {
            name: p.name.clone(),
            number: p.container_port,
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
        };
        if !out
            .iter()
            .any(|o| o.number == port.number && o.protocol == port.protocol)
        {
            out.push(port);
        }
    }
    out
}

/// A ClusterIP Service for the copy's pods, on every declared port.
pub fn service(owner: &Owner, ports: &[Port]) -> Service {
    Service {
        metadata: meta(&owner.name, owner),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([(
                crate::LABEL.to_string(),
                owner.name.clone(),
            )])),
            ports: Some(
                ports
                    .iter()
                    .map(|p| ServicePort {
                        name: Some(p.service_name()),
                        port: p.number,
                        target_port: Some(IntOrString::Int(p.number)),
                        protocol: Some(p.protocol.clone()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        status: None,
    }
}

/// What the Ingress serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressOpts<'a> {
    pub host: &'a str,
    pub port: &'a Port,
    pub class: Option<&'a str>,
    pub tls: Option<&'a TlsIssuer>,
}

/// An Ingress for `host` onto the Service's HTTP port; with an issuer, cert-manager's annotation and a
/// `tls` section (secret `<name>-tls`).
pub fn ingress(owner: &Owner, o: &IngressOpts<'_>) -> Ingress {
    let mut m = meta(&owner.name, owner);
    if let Some(i) = o.tls {
        let key = match i.kind {
            IssuerKind::ClusterIssuer => "cert-manager.io/cluster-issuer",
            IssuerKind::Issuer => "cert-manager.io/issuer",
        };
        m.annotations = Some(BTreeMap::from([(key.to_string(), i.name.clone())]));
    }
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: owner.name.clone(),
            port: Some(ServiceBackendPort {
                number: Some(o.port.number),
                name: None,
            }),
        }),
        resource: None,
    };
    Ingress {
        metadata: m,
        spec: Some(IngressSpec {
            ingress_class_name: o.class.map(Into::into),
            rules: Some(vec![IngressRule {
                host: Some(o.host.into()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend,
                    }],
                }),
            }]),
            tls: o.tls.map(|_| {
                vec![IngressTLS {
                    hosts: Some(vec![o.host.into()]),
                    secret_name: Some(format!("{}-tls", owner.name)),
                }]
            }),
            default_backend: None,
        }),
        status: None,
    }
}

fn match_labels(m: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(m),
        match_expressions: None,
    }
}

fn namespace_selector(ns: &str) -> LabelSelector {
    match_labels(BTreeMap::from([(
        "kubernetes.io/metadata.name".to_string(),
        ns.to_string(),
    )]))
}

/// The quarantine: the copy's pods may open no connection (DNS with `allow_dns`), and only the ingress
/// controller's pods may connect to them, on the served port (nobody when there is no Ingress).
pub fn network_policy(
    owner: &Owner,
    served: Option<&Port>,
    from: &IngressFrom,
    allow_dns: bool,
) -> NetworkPolicy {
    let ingress = served.map(|p| {
        vec![NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(namespace_selector(&from.namespace)),
                pod_selector: (!from.pod_labels.is_empty())
                    .then(|| match_labels(from.pod_labels.clone())),
                ip_block: None,
            }]),
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(p.number)),
                protocol: Some(p.protocol.clone()),
                end_port: None,
            }]),
        }]
    });
    let dns_port = |proto: &str| NetworkPolicyPort {
        port: Some(IntOrString::Int(53)),
        protocol: Some(proto.into()),
        end_port: None,
    };
    let egress = allow_dns.then(|| {
        vec![NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(namespace_selector("kube-system")),
                pod_selector: Some(match_labels(BTreeMap::from([(
                    "k8s-app".to_string(),
                    "kube-dns".to_string(),
                )]))),
                ip_block: None,
            }]),
            ports: Some(vec![dns_port("UDP"), dns_port("TCP")]),
        }]
    });
    NetworkPolicy {
        metadata: meta(&owner.name, owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(match_labels(BTreeMap::from([(
                crate::LABEL.to_string(),
                owner.name.clone(),
            )]))),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress,
            egress,
        }),
    }
}
