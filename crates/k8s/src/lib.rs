//! wayback on Kubernetes: the same resurrection as on a host, made of cluster objects.
//!
//! | host mode | Kubernetes |
//! |---|---|
//! | writable btrfs clone of a snapshot | a PVC with `dataSource: VolumeSnapshot` per claim of the workload |
//! | host mode (the host's software) | a copy of the live workload's pod template, claims swapped, replicas 1 |
//! | proxy + hostname | a Service and an Ingress for `--host` |
//! | nftables quarantine | a NetworkPolicy: no egress (DNS with `--allow-dns`), ingress only from the ingress controller |
//! | journal, teardown, TTL | a `Resurrection` object owning everything, and a controller with a finalizer |
//!
//! Pure logic (validation, snapshot choice, object generation, manifests, YAML) needs no cluster and is
//! most of this crate; [`cluster`] reads and writes through the API, and [`controller`] reconciles
//! `Resurrection` objects. Types come from k8s-openapi (feature `v1_35`); `VolumeSnapshot` is defined
//! here ([`snapshot`]) with only the fields wayback reads.

pub mod choose;
pub mod cluster;
pub mod controller;
pub mod crd;
pub mod manifests;
pub mod objects;
pub mod ops;
pub mod plan;
pub mod rbac;
pub mod snapshot;
pub mod validate;
pub mod workload;
pub mod yaml;

#[cfg(test)]
mod testutil;

pub use {jiff, k8s_openapi, kube};

pub use crd::{Resurrection, ResurrectionSpec, ResurrectionStatus};
pub use plan::{Facts, Plan, PlanError};
pub use snapshot::VolumeSnapshot;

/// The API group of wayback's own resource.
pub const GROUP: &str = "wayback.io";
/// The finalizer the controller keeps on every `Resurrection` until its objects are gone.
pub const FINALIZER: &str = "wayback.io/teardown";
/// The label every object of a resurrection carries (value: the resurrection's name). Pods are selected
/// by it alone, so no live Service ever selects a resurrected pod.
pub const LABEL: &str = "wayback.io/resurrection";
/// `app.kubernetes.io/managed-by: wayback` on everything wayback makes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "wayback");
/// The field manager name wayback writes with.
pub const FIELD_MANAGER: &str = "wayback";
