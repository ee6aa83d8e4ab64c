//! Every object wayback prints or creates, as one typed enum; YAML out (multi-document, from the typed
//! structs, with serde-saphyr) and back in, strictly: a field the typed struct does not know is an error
//! (k8s-openapi itself skips unknown fields, so [`serde_ignored`] reports every skipped one).

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::crd::Resurrection;
use crate::snapshot::VolumeSnapshot;
use crate::workload::Workload;

/// One Kubernetes object of a known kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    Resurrection(Box<Resurrection>),
    NetworkPolicy(Box<NetworkPolicy>),
    Pvc(Box<PersistentVolumeClaim>),
    Service(Box<Service>),
    Ingress(Box<Ingress>),
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
    VolumeSnapshot(Box<VolumeSnapshot>),
    Crd(Box<CustomResourceDefinition>),
    Namespace(Box<Namespace>),
    ServiceAccount(Box<ServiceAccount>),
    ClusterRole(Box<ClusterRole>),
    ClusterRoleBinding(Box<ClusterRoleBinding>),
}

impl From<Workload> for Object {
    fn from(w: Workload) -> Object {
        match w {
            Workload::Deployment(d) => Object::Deployment(Box::new(d)),
            Workload::StatefulSet(s) => Object::StatefulSet(Box::new(s)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("YAML document {doc}: {msg}")]
    Syntax { doc: usize, msg: String },
    #[error(
        "YAML document {doc}: wayback does not handle apiVersion {api_version:?} kind {kind:?}"
    )]
    Kind {
        doc: usize,
        api_version: String,
        kind: String,
    },
    #[error("YAML document {doc} ({kind}): unknown field(s) {}", .paths.join(", "))]
    Unknown {
        doc: usize,
        kind: String,
        paths: Vec<String>,
    },
    #[error("cannot print YAML: {0}")]
    Serialize(String),
}

/// The objects as YAML documents separated by `---`.
pub fn to_yaml(objects: &[Object]) -> Result<String, YamlError> {
    let mut out = String::new();
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let doc = serde_saphyr::to_string(o).map_err(|e| YamlError::Serialize(e.to_string()))?;
        out.push_str(&doc);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

/// Split a multi-document stream at lines that are exactly `---` (documents that are only whitespace
/// or comments are skipped).
fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else {
            let d = docs.last_mut().expect("never empty");
            d.push_str(line);
            d.push('\n');
        }
    }
    docs.retain(|d| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

/// A parse error with its line and column but without the parser's source snippet: the file may be
/// anything (`k8s up --from ~/.pgpass`), and its content must not be echoed.
fn syntax(doc: usize, e: &serde_saphyr::Error) -> YamlError {
    YamlError::Syntax {
        doc,
        msg: e.without_snippet().to_string(),
    }
}

fn strict<T: DeserializeOwned>(doc: usize, kind: &str, text: &str) -> Result<T, YamlError> {
    let mut unknown = Vec::new();
    let value: T = serde_saphyr::with_deserializer_from_str(text, |de| {
        // serde_ignored writes `?` for each Option level: drop them for readable paths.
        serde_ignored::deserialize(de, |path| unknown.push(path.to_string().replace("?.", "")))
    })
    .map_err(|e| syntax(doc, &e))?;
    // kube's derived resources skip the top-level apiVersion and kind: both were matched already.
    unknown.retain(|p| p != "apiVersion" && p != "kind");
    if !unknown.is_empty() {
        return Err(YamlError::Unknown {
            doc,
            kind: kind.into(),
            paths: unknown,
        });
    }
    Ok(value)
}

/// Parse YAML documents back into typed objects, rejecting unknown kinds and unknown fields.
pub fn parse_strict(text: &str) -> Result<Vec<Object>, YamlError> {
    let mut out = Vec::new();
    for (i, d) in documents(text).iter().enumerate() {
        let doc = i + 1;
        let tm: TypeMeta = serde_saphyr::from_str(d).map_err(|e| syntax(doc, &e))?;
        let k = tm.kind.as_str();
        let o = match (tm.api_version.as_str(), k) {
            ("wayback.io/v1alpha1", "Resurrection") => Object::Resurrection(strict(doc, k, d)?),
            ("networking.k8s.io/v1", "NetworkPolicy") => Object::NetworkPolicy(strict(doc, k, d)?),
            ("networking.k8s.io/v1", "Ingress") => Object::Ingress(strict(doc, k, d)?),
            ("v1", "PersistentVolumeClaim") => Object::Pvc(strict(doc, k, d)?),
            ("v1", "Service") => Object::Service(strict(doc, k, d)?),
            ("v1", "Namespace") => Object::Namespace(strict(doc, k, d)?),
            ("v1", "ServiceAccount") => Object::ServiceAccount(strict(doc, k, d)?),
            ("apps/v1", "Deployment") => Object::Deployment(strict(doc, k, d)?),
            ("apps/v1", "StatefulSet") => Object::StatefulSet(strict(doc, k, d)?),
            ("snapshot.storage.k8s.io/v1", "VolumeSnapshot") => {
                Object::VolumeSnapshot(strict(doc, k, d)?)
            }
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
                Object::Crd(strict(doc, k, d)?)
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                Object::ClusterRole(strict(doc, k, d)?)
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                Object::ClusterRoleBinding(strict(doc, k, d)?)
            }
            (a, k) => {
                return Err(YamlError::Kind {
                    doc,
                    api_version: a.into(),
                    kind: k.into(),
                })
            }
        };
        out.push(o);
    }
    Ok(out)
}

impl Object {
    /// `Kind/name`, for progress and messages.
    pub fn describe(&self) -> String {
        let (kind, m) = match self {
            Object::Resurrection(o) => ("Resurrection", &o.metadata),
            Object::NetworkPolicy(o) => ("NetworkPolicy", &o.metadata),
            Object::Pvc(o) => ("PersistentVolumeClaim", &o.metadata),
            Object::Service(o) => ("Service", &o.metadata),
            Object::Ingress(o) => ("Ingress", &o.metadata),
            Object::Deployment(o) => ("Deployment", &o.metadata),
            Object::StatefulSet(o) => ("StatefulSet", &o.metadata),
            Object::VolumeSnapshot(o) => ("VolumeSnapshot", &o.metadata),
            Object::Crd(o) => ("CustomResourceDefinition", &o.metadata),
            Object::Namespace(o) => ("Namespace", &o.metadata),
            Object::ServiceAccount(o) => ("ServiceAccount", &o.metadata),
            Object::ClusterRole(o) => ("ClusterRole", &o.metadata),
            Object::ClusterRoleBinding(o) => ("ClusterRoleBinding", &o.metadata),
        };
        format!("{kind}/{}", m.name.as_deref().unwrap_or("?"))
    }
}

#[cfg(test)]
mod tests;
