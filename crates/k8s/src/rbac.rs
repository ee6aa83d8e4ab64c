//! The narrowest RBAC rules for the controller and for people running `wayback k8s`, each with the reason
//! it is needed. `wayback k8s manifests` prints them as ClusterRoles; docs/kubernetes.md lists the same
//! table (a test keeps the two equal).

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// One rule and why it is there.
#[derive(Debug, Clone)]
pub struct Rule {
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub why: &'static str,
}

/// The controller's rules. No `update` of any child, no `list` beyond what teardown and snapshot choice
/// need, no secrets, no pods, no events.
pub const CONTROLLER: &[Rule] = &[
    Rule { group: "wayback.io", resource: "resurrections", verbs: &["list", "watch", "patch", "delete"],
        why: "watch every Resurrection (the reconcile reads no more than the watch brings); patch adds and removes the finalizer; delete when the TTL or idle time is up" },
    Rule { group: "wayback.io", resource: "resurrections/status", verbs: &["patch"],
        why: "record the chosen snapshots, skew, phase and expiry" },
    Rule { group: "wayback.io", resource: "resurrections/finalizers", verbs: &["update"],
        why: "set blockOwnerDeletion on owner references to a Resurrection (OwnerReferencesPermissionEnforcement)" },
    Rule { group: "snapshot.storage.k8s.io", resource: "volumesnapshots", verbs: &["list"],
        why: "choose, per claim, the newest ready snapshot at or before the requested time" },
    Rule { group: "", resource: "persistentvolumeclaims", verbs: &["get", "list", "create", "delete"],
        why: "get reads the live PVC's class, access modes and size (and checks ownership); create makes the clones; teardown lists them by label and deletes the ones it owns" },
    Rule { group: "apps", resource: "deployments", verbs: &["get", "create", "delete"],
        why: "get reads the live workload's pod template, the copy's readiness and owner; create and delete the copy" },
    Rule { group: "apps", resource: "statefulsets", verbs: &["get", "create", "delete"],
        why: "the same for StatefulSets" },
    Rule { group: "", resource: "services", verbs: &["get", "create", "delete"],
        why: "the copy's Service; get checks an existing object of that name is this Resurrection's before it is reused or deleted" },
    Rule { group: "networking.k8s.io", resource: "ingresses", verbs: &["get", "create", "delete"],
        why: "the copy's Ingress for its hostname (get: the same ownership check)" },
    Rule { group: "networking.k8s.io", resource: "networkpolicies", verbs: &["get", "create", "delete"],
        why: "the quarantine, made first and removed last (get: the same ownership check)" },
];

/// The rules a person needs for `wayback k8s up|ls|down|extend` (bind with a RoleBinding per namespace).
pub const USER: &[Rule] = &[
    Rule { group: "wayback.io", resource: "resurrections", verbs: &["get", "list", "create", "patch", "delete"],
        why: "up creates one and polls it until ready; ls lists; extend patches spec.expiresAt; down deletes and waits" },
    Rule { group: "snapshot.storage.k8s.io", resource: "volumesnapshots", verbs: &["list"],
        why: "up chooses snapshots before creating anything (bad input is refused with nothing made)" },
    Rule { group: "", resource: "persistentvolumeclaims", verbs: &["get"],
        why: "up shapes the clones like the live PVCs (and --dry-run prints them)" },
    Rule { group: "apps", resource: "deployments", verbs: &["get"],
        why: "up reads the live workload" },
    Rule { group: "apps", resource: "statefulsets", verbs: &["get"],
        why: "the same for StatefulSets" },
];

fn policy_rules(rules: &[Rule]) -> Vec<PolicyRule> {
    rules
        .iter()
        .map(|r| PolicyRule {
            api_groups: Some(vec![r.group.into()]),
            resources: Some(vec![r.resource.into()]),
            verbs: r
                .verbs
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
            ..Default::default()
        })
        .collect()
}

/// The metadata of a cluster object wayback manages: its name and the managed-by label.
fn managed(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(
            [(
                crate::MANAGED_BY.0.to_string(),
                crate::MANAGED_BY.1.to_string(),
            )]
            .into(),
        ),
        ..Default::default()
    }
}

/// A ClusterRole named `name` with `rules`.
pub fn cluster_role(name: &str, rules: &[Rule]) -> ClusterRole {
    ClusterRole {
        metadata: managed(name),
        rules: Some(policy_rules(rules)),
        aggregation_rule: None,
    }
}

/// Binds ClusterRole `name` to the ServiceAccount `name` in `namespace`.
pub fn binding(name: &str, namespace: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: managed(name),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(namespace.into()),
            api_group: None,
        }]),
    }
}

/// The rules as a Markdown table (the one in docs/kubernetes.md).
pub fn table(rules: &[Rule]) -> String {
    let mut out = String::from("| API group | resource | verbs | why |\n|---|---|---|---|\n");
    for r in rules {
        let group = if r.group.is_empty() {
            "(core)"
        } else {
            r.group
        };
        out.push_str(&format!(
            "| {group} | {} | {} | {} |\n",
            r.resource,
            r.verbs.join(", "),
            r.why
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/kubernetes.md lists exactly the rules the manifests grant.
    #[test]
    fn the_docs_list_the_same_rules() {
        let doc = include_str!("../../../docs/kubernetes.md");
        for (what, rules) in [("controller", CONTROLLER), ("user", USER)] {
            let t = table(rules);
            assert!(
                doc.contains(&t),
                "docs/kubernetes.md must contain the {what} table:\n{t}"
            );
        }
    }

    #[test]
    fn no_rule_reaches_secrets_pods_or_updates_children() {
        for r in CONTROLLER.iter().chain(USER) {
            assert!(
                !["secrets", "pods", "pods/exec", "nodes", "nodes/proxy"].contains(&r.resource),
                "{}",
                r.resource
            );
            assert!(
                !r.verbs.contains(&"*") && !r.verbs.contains(&"deletecollection"),
                "{}",
                r.resource
            );
            if r.resource != "resurrections/finalizers" {
                assert!(
                    !r.verbs.contains(&"update"),
                    "{} is never updated",
                    r.resource
                );
            }
        }
    }
}
