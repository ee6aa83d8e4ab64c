//! The `Resurrection` custom resource (`wayback.io/v1alpha1`): what to bring back, from when, where to
//! serve it and until when. Its schema is generated from these types (kube's `CustomResource` derive and
//! schemars); `wayback k8s manifests` prints the CRD.
//!
//! The spec is the request; the status is what the controller made of it: the snapshots it chose (pinned
//! there, so a later reconcile never picks different ones), their skew, the phase, the expiry.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use wayback_core::Duration;

/// A live workload brought back, from VolumeSnapshots, beside the original.
// clippy reads each `printcolumn(type_ = …)` as a repeat of the same attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "wayback.io",
    version = "v1alpha1",
    kind = "Resurrection",
    namespaced,
    status = "ResurrectionStatus",
    derive = "PartialEq",
    shortname = "rez",
    category = "wayback",
    doc = "A copy of a live Deployment or StatefulSet on volumes cloned from VolumeSnapshots, quarantined, served on its own hostname, and removed with everything it made when it expires",
    printcolumn(name = "Workload", type_ = "string", json_path = ".spec.workload.name"),
    printcolumn(name = "Host", type_ = "string", json_path = ".spec.host"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Expires", type_ = "date", json_path = ".status.expiresAt"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResurrectionSpec {
    /// The live workload whose pod template and claims are copied.
    pub workload: WorkloadRef,
    /// Choose, for each claim without an explicit snapshot, the newest ready VolumeSnapshot taken at or
    /// before this time (`status.creationTime`, else the object's creation time). Unset: the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
    /// Explicit snapshots for some or all claims (they win over `at`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<SnapshotSource>,
    /// Hostname of the Ingress; without it no Ingress is made (reach it with `kubectl port-forward`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The container port the Ingress serves (number or name); needed when the template has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// Lifetime, e.g. `24h`; counted from creation unless `expiresAt` is set.
    #[schemars(with = "String")]
    pub ttl: Duration,
    /// Absolute expiry; `wayback k8s extend` moves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// Also expire after this long without activity (`status.lastActivity`, else creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub idle: Option<Duration>,
    /// Environment overrides for every container and init container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvOverride>,
    /// Allow DNS (UDP and TCP 53 to kube-system's `k8s-app: kube-dns` pods); all other egress is denied.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_dns: bool,
    /// `spec.ingressClassName` of the Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_class: Option<String>,
    /// TLS through cert-manager: the Ingress gets its annotation and a `tls` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_issuer: Option<TlsIssuer>,
    /// Where the ingress controller runs: the only pods allowed to connect to the copy.
    #[serde(default)]
    pub ingress_from: IngressFrom,
    /// Refuse (phase Failed, nothing made) when the chosen snapshots are further apart than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub max_skew: Option<Duration>,
}

/// The kinds of workload that can be copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// `claim` is cloned from `volumeSnapshot` (in the same namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotSource {
    pub claim: String,
    pub volume_snapshot: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvOverride {
    pub name: String,
    pub value: String,
}

/// A cert-manager issuer: `cert-manager.io/cluster-issuer` or `cert-manager.io/issuer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsIssuer {
    pub kind: IssuerKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum IssuerKind {
    ClusterIssuer,
    Issuer,
}

/// The ingress controller's pods: a namespace and, optionally, labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressFrom {
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
}

impl Default for IngressFrom {
    fn default() -> Self {
        IngressFrom {
            namespace: "ingress-nginx".into(),
            pod_labels: BTreeMap::new(),
        }
    }
}

/// What the controller made of the spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResurrectionStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Why the phase is what it is, naming the object and the next step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The snapshots chosen, pinned: later reconciles reuse them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<ChosenSnapshot>,
    /// Seconds between the oldest and the newest chosen snapshot (with two or more claims).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skew_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// The last time something reported use (for `spec.idle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Waiting: a snapshot is not ready yet, or the copy has no ready pod yet.
    Pending,
    /// Every object exists and the copy has a ready pod.
    Ready,
    /// The request cannot be met as it stands (see `message`); retried with backoff.
    Failed,
    /// Expired or deleted: objects are being removed.
    Terminating,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One pinned choice: `claim` of the live workload comes back from `volume_snapshot`, into `clone`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChosenSnapshot {
    pub claim: String,
    pub volume_snapshot: String,
    /// When the snapshot was taken.
    pub taken_at: Time,
    /// The name of the cloned PVC.
    pub clone: String,
}

impl Resurrection {
    /// When this resurrection expires: `spec.expiresAt`, else creation + `spec.ttl`, else (not yet
    /// created) `None`.
    pub fn expiry(&self) -> Option<jiff::Timestamp> {
        if let Some(t) = &self.spec.expires_at {
            return Some(t.0);
        }
        let created = self.metadata.creation_timestamp.as_ref()?.0;
        created.checked_add(self.spec.ttl.as_std()).ok()
    }
}

impl Resurrection {
    /// The earliest deadline, TTL expiry or idle expiry, and which it is.
    pub fn deadline(&self) -> Option<(jiff::Timestamp, String)> {
        let ttl = self.expiry().map(|t| (t, "expired".to_string()));
        let idle = self.spec.idle.and_then(|d| {
            let created = self.metadata.creation_timestamp.as_ref()?.0;
            let last = self
                .status
                .as_ref()
                .and_then(|s| s.last_activity.as_ref())
                .map(|t| t.0)
                .filter(|t| *t > created)
                .unwrap_or(created);
            Some((last.checked_add(d.as_std()).ok()?, format!("idle for {d}")))
        });
        [ttl, idle].into_iter().flatten().min_by_key(|(t, _)| *t)
    }
}
