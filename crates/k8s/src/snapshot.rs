//! `VolumeSnapshot` (`snapshot.storage.k8s.io/v1`), which k8s-openapi does not have (it is the CSI
//! external-snapshotter's CRD). Only the fields wayback reads are declared; the derive makes it a typed
//! resource for `Api<VolumeSnapshot>` (its schema is the snapshotter's, so none is generated here).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The spec of a VolumeSnapshot: what it was taken of.
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[kube(
    group = "snapshot.storage.k8s.io",
    version = "v1",
    kind = "VolumeSnapshot",
    namespaced,
    status = "VolumeSnapshotStatus",
    derive = "PartialEq",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotSpec {
    pub source: VolumeSnapshotSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_class_name: Option<String>,
}

/// Exactly one of the two is set: a snapshot of a PVC, or a pre-provisioned one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_content_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_volume_snapshot_content_name: Option<String>,
    /// When the storage system cut the snapshot (the point in time it holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_to_use: Option<bool>,
    /// The minimum size of a volume restored from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<VolumeSnapshotError>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VolumeSnapshotError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

impl VolumeSnapshot {
    /// The name of the PVC it was taken of (`None` for a pre-provisioned snapshot).
    pub fn claim(&self) -> Option<&str> {
        self.spec.source.persistent_volume_claim_name.as_deref()
    }

    /// When it was taken: `status.creationTime`, else the object's creation.
    pub fn taken_at(&self) -> Option<jiff::Timestamp> {
        self.status
            .as_ref()
            .and_then(|s| s.creation_time.as_ref())
            .or(self.metadata.creation_timestamp.as_ref())
            .map(|t| t.0)
    }

    /// Ready to restore from: `readyToUse`, no error, not being deleted.
    pub fn is_ready(&self) -> bool {
        let st = self.status.as_ref();
        st.and_then(|s| s.ready_to_use) == Some(true)
            && st.and_then(|s| s.error.as_ref()).is_none()
            && self.metadata.deletion_timestamp.is_none()
    }

    /// Why it is not ready, for messages.
    pub fn not_ready_reason(&self) -> String {
        if self.metadata.deletion_timestamp.is_some() {
            return "being deleted".into();
        }
        match self.status.as_ref() {
            None => "no status yet (the snapshot controller has not seen it)".into(),
            Some(s) => match &s.error {
                Some(e) => format!("error: {}", e.message.as_deref().unwrap_or("(no message)")),
                None => "readyToUse is not true yet".into(),
            },
        }
    }
}
