//! `wayback k8s manifests`: everything the cluster needs, generated from the same types the CLI and the
//! controller use: the CRD, a namespace, the controller's ServiceAccount, ClusterRole (the narrowest
//! rules, [`crate::rbac`]) and binding, a `wayback-user` ClusterRole for people, and the controller's
//! Deployment (one replica, non-root, read-only root, no capabilities, no service links).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, Namespace, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::CustomResourceExt;

use crate::crd::Resurrection;
use crate::rbac;
use crate::yaml::Object;

/// The controller's name: its Deployment, ServiceAccount, ClusterRole and binding.
pub const CONTROLLER: &str = "wayback-controller";
/// The ClusterRole for people running `wayback k8s`.
pub const USER_ROLE: &str = "wayback-user";

/// Where and what to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub namespace: String,
    pub image: String,
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        labels: Some(app_labels()),
        ..Default::default()
    }
}

fn app_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), CONTROLLER.to_string()),
        (
            crate::MANAGED_BY.0.to_string(),
            crate::MANAGED_BY.1.to_string(),
        ),
    ])
}

fn container(image: &str) -> Container {
    let q = |s: &str| Quantity(s.into());
    Container {
        name: "controller".into(),
        image: Some(image.into()),
        args: Some(vec!["k8s".into(), "controller".into()]),
        env: Some(vec![k8s_openapi::api::core::v1::EnvVar {
            name: "WAYBACK_LOG".into(),
            value: Some("info".into()),
            value_from: None,
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), q("10m")),
                ("memory".into(), q("32Mi")),
            ])),
            limits: Some(BTreeMap::from([("memory".into(), q("128Mi"))])),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The controller's Deployment: one replica (reconciles are idempotent, but one writer keeps status
/// messages coherent), replaced rather than rolled.
pub fn controller_deployment(o: &Options) -> Deployment {
    Deployment {
        metadata: meta(CONTROLLER, Some(&o.namespace)),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(app_labels()),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                rolling_update: None,
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(app_labels()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(CONTROLLER.into()),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        run_as_group: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container(&o.image)],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// Every manifest, in the order `kubectl apply -f -` needs them.
pub fn all(o: &Options) -> Vec<Object> {
    vec![
        Object::Crd(Box::new(Resurrection::crd())),
        Object::Namespace(Box::new(Namespace {
            metadata: meta(&o.namespace, None),
            ..Default::default()
        })),
        Object::ServiceAccount(Box::new(ServiceAccount {
            metadata: meta(CONTROLLER, Some(&o.namespace)),
            ..Default::default()
        })),
        Object::ClusterRole(Box::new(rbac::cluster_role(CONTROLLER, rbac::CONTROLLER))),
        Object::ClusterRoleBinding(Box::new(rbac::binding(CONTROLLER, &o.namespace))),
        Object::ClusterRole(Box::new(rbac::cluster_role(USER_ROLE, rbac::USER))),
        Object::Deployment(Box::new(controller_deployment(o))),
    ]
}
