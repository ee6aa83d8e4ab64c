//! The controller against a mocked API server: creating a resurrection's objects and reporting status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use serde_json::{json, Value};

use super::mock::{start, status, to_json, Server};
use crate::crd::{Resurrection, WorkloadKind};
use crate::testutil::{now, objects, spec, stored, ts, SHOP};
use crate::yaml::Object;

pub(super) const RES: &str = "/apis/wayback.io/v1alpha1/namespaces/shop/resurrections/shop-wb-1";

pub(super) fn shop(finalizer: bool) -> Resurrection {
    let mut s = spec(WorkloadKind::Deployment, "shop");
    s.at = Some(Time(ts("2026-11-14T23:59:59Z")));
    s.host = Some("old-shop.example.org".into());
    let mut r = stored("shop-wb-1", s);
    if finalizer {
        r.metadata.finalizers = Some(vec![crate::FINALIZER.into()]);
    }
    r
}

fn fixture(kind: &str, name: &str) -> Value {
    objects(SHOP)
        .into_iter()
        .find(|o| o.describe() == format!("{kind}/{name}"))
        .map_or_else(|| panic!("{kind}/{name} in testdata"), |o| to_json(&o))
}

fn snapshot_list(keep: impl Fn(&str) -> bool) -> Value {
    let items: Vec<Value> = objects(SHOP)
        .into_iter()
        .filter_map(|o| match o {
            Object::VolumeSnapshot(v) if keep(v.metadata.name.as_deref().unwrap_or("")) => {
                Some(to_json(&v))
            }
            _ => None,
        })
        .collect();
    json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotList", "metadata": {}, "items": items})
}

/// The reads every apply pass starts with: the workload, the snapshots, the live PVCs.
pub(super) async fn facts(s: &mut Server, keep: impl Fn(&str) -> bool) {
    s.answer(
        "GET",
        "/apis/apps/v1/namespaces/shop/deployments/shop",
        200,
        fixture("Deployment", "shop"),
    )
    .await;
    s.answer(
        "GET",
        "/apis/snapshot.storage.k8s.io/v1/namespaces/shop/volumesnapshots?",
        200,
        snapshot_list(keep),
    )
    .await;
    s.answer(
        "GET",
        "/api/v1/namespaces/shop/persistentvolumeclaims/shop-data",
        200,
        fixture("PersistentVolumeClaim", "shop-data"),
    )
    .await;
    s.answer(
        "GET",
        "/api/v1/namespaces/shop/persistentvolumeclaims/shop-uploads",
        200,
        fixture("PersistentVolumeClaim", "shop-uploads"),
    )
    .await;
}

/// The status write: server-side apply on the status subresource, forced, as wayback.
pub(super) async fn status_patch(s: &mut Server) -> Value {
    let call = s
        .answer(
            "PATCH",
            &format!("{RES}/status?&force=true&fieldManager=wayback"),
            200,
            to_json(&shop(true)),
        )
        .await;
    assert_eq!(call.content_type, "application/apply-patch+yaml");
    assert_eq!(call.body["apiVersion"], "wayback.io/v1alpha1");
    assert_eq!(call.body["kind"], "Resurrection");
    call.body["status"].clone()
}

#[tokio::test]
async fn the_finalizer_comes_first() {
    let (task, mut s) = start(shop(false), now);
    let call = s
        .answer("PATCH", &format!("{RES}?"), 200, to_json(&shop(true)))
        .await;
    assert_eq!(call.content_type, "application/json-patch+json");
    assert_eq!(
        call.body,
        json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
               {"op": "add", "path": "/metadata/finalizers", "value": ["wayback.io/teardown"]}])
    );
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    s.done().await;
}

#[tokio::test]
async fn another_finalizer_is_kept() {
    let mut r = shop(false);
    r.metadata.finalizers = Some(vec!["example.org/backup".into()]);
    let (task, mut s) = start(r, now);
    let call = s
        .answer("PATCH", &format!("{RES}?"), 200, to_json(&shop(true)))
        .await;
    assert_eq!(
        call.body,
        json!([{"op": "test", "path": "/metadata/finalizers", "value": ["example.org/backup"]},
               {"op": "add", "path": "/metadata/finalizers/-", "value": "wayback.io/teardown"}])
    );
    task.await.unwrap().unwrap();
    s.done().await;
}

#[tokio::test]
async fn creates_everything_in_order_and_pins_the_snapshots() {
    let res = shop(true);
    let plan = crate::plan::build(&res, &crate::testutil::facts(SHOP, "shop"), now()).unwrap();
    let (task, mut s) = start(res, now);
    facts(&mut s, |_| true).await;
    let uris = [
        "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies?&fieldManager=wayback",
        "/api/v1/namespaces/shop/persistentvolumeclaims?&fieldManager=wayback",
        "/api/v1/namespaces/shop/persistentvolumeclaims?&fieldManager=wayback",
        "/api/v1/namespaces/shop/services?&fieldManager=wayback",
        "/apis/networking.k8s.io/v1/namespaces/shop/ingresses?&fieldManager=wayback",
        "/apis/apps/v1/namespaces/shop/deployments?&fieldManager=wayback",
    ];
    for (uri, obj) in uris.iter().zip(&plan.objects) {
        let sent = s.created(uri).await;
        assert_eq!(sent, to_json(obj), "{} as planned", obj.describe());
    }
    let mut copy = fixture("Deployment", "shop");
    copy["metadata"]["name"] = json!("shop-wb-1");
    copy["status"] = json!({"readyReplicas": 1});
    s.answer(
        "GET",
        "/apis/apps/v1/namespaces/shop/deployments/shop-wb-1",
        200,
        copy,
    )
    .await;
    let st = status_patch(&mut s).await;
    assert_eq!(
        st,
        json!({
            "phase": "Ready",
            "snapshots": [
                {"claim": "shop-data", "volumeSnapshot": "shop-data-20261114", "takenAt": "2026-11-14T02:00:00Z", "clone": "shop-wb-1-shop-data"},
                {"claim": "shop-uploads", "volumeSnapshot": "shop-uploads-20261114", "takenAt": "2026-11-14T02:05:00Z", "clone": "shop-wb-1-shop-uploads"},
            ],
            "skewSeconds": 300,
            "expiresAt": "2026-11-21T11:00:00Z",
            "url": "http://old-shop.example.org/",
            "observedGeneration": 1,
        })
    );
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(super::RECHECK)
    );
    s.done().await;
}

/// The status of a pass that stops early, and the action: nothing is created.
async fn stops_with(res: Resurrection, keep: fn(&str) -> bool) -> (Value, Action) {
    let (task, mut s) = start(res, now);
    facts(&mut s, keep).await;
    let st = status_patch(&mut s).await;
    let action = task.await.unwrap().unwrap();
    s.done().await;
    (st, action)
}

#[tokio::test]
async fn a_snapshot_not_ready_yet_is_pending_and_creates_nothing() {
    let mut r = shop(true);
    r.spec.at = None;
    let (st, action) = stops_with(r, |n| {
        n == "shop-data-20261115" || n.starts_with("shop-uploads")
    })
    .await;
    assert_eq!(st["phase"], "Pending");
    assert_eq!(
        st["message"],
        "no snapshot of PVC shop-data at or before 2026-11-20 12:00:00 UTC is ready: shop-data-20261115 (readyToUse is not true yet); wait, or name an older one with --snapshot shop-data=NAME"
    );
    assert_eq!(st.get("snapshots"), None, "nothing pinned");
    assert_eq!(action, Action::requeue(super::PENDING_RECHECK));
}

#[tokio::test]
async fn a_missing_snapshot_fails_and_creates_nothing() {
    let (st, action) = stops_with(shop(true), |n| n.starts_with("shop-uploads")).await;
    assert_eq!(st["phase"], "Failed");
    assert_eq!(
        st["message"],
        "no VolumeSnapshot of PVC shop-data was taken at or before 2026-11-14 23:59:59 UTC (it has no VolumeSnapshot in this namespace: take one, or name one with --snapshot shop-data=NAME)"
    );
    assert_eq!(action, Action::requeue(super::FAILED_RECHECK));
}

#[tokio::test]
async fn skew_over_max_skew_fails_and_creates_nothing() {
    let mut r = shop(true);
    r.spec.max_skew = Some("1m".parse().unwrap());
    let (st, _) = stops_with(r, |_| true).await;
    assert_eq!(st["phase"], "Failed");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .starts_with("the chosen snapshots are 5m apart, more than the allowed skew (1m)"),
        "{st}"
    );
}

#[tokio::test]
async fn a_missing_workload_fails_and_keeps_what_exists() {
    let (task, mut s) = start(shop(true), now);
    s.answer(
        "GET",
        "/apis/apps/v1/namespaces/shop/deployments/shop",
        404,
        status(404, "NotFound", "deployments.apps \"shop\" not found"),
    )
    .await;
    let st = status_patch(&mut s).await;
    assert_eq!(st["phase"], "Failed");
    assert_eq!(
        st["message"],
        "Deployment/shop not found in namespace shop; objects made earlier are kept"
    );
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(super::FAILED_RECHECK)
    );
    s.done().await;
}

#[tokio::test]
async fn a_partial_failure_keeps_what_exists_and_retries_the_rest() {
    let res = shop(true);
    let plan = crate::plan::build(&res, &crate::testutil::facts(SHOP, "shop"), now()).unwrap();
    let (task, mut s) = start(res, now);
    facts(&mut s, |_| true).await;
    s.created("/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies?&fieldManager=wayback")
        .await;
    // The first clone exists from an earlier pass: reused after checking it is ours.
    let pvcs = "/api/v1/namespaces/shop/persistentvolumeclaims";
    s.answer(
        "POST",
        &format!("{pvcs}?&fieldManager=wayback"),
        409,
        status(409, "AlreadyExists", "exists"),
    )
    .await;
    s.answer(
        "GET",
        &format!("{pvcs}/shop-wb-1-shop-data"),
        200,
        to_json(&plan.objects[1]),
    )
    .await;
    // The second is refused (a quota, say): the pass stops there.
    s.answer(
        "POST",
        &format!("{pvcs}?&fieldManager=wayback"),
        403,
        status(403, "Forbidden", "exceeded quota: storage"),
    )
    .await;
    let st = status_patch(&mut s).await;
    assert_eq!(st["phase"], "Failed");
    let msg = st["message"].as_str().unwrap();
    assert!(msg.starts_with("could not create PersistentVolumeClaim/shop-wb-1-shop-uploads: PersistentVolumeClaim shop-wb-1-shop-uploads in namespace shop: "), "{msg}");
    assert!(msg.contains("exceeded quota: storage"), "{msg}");
    assert!(
        msg.ends_with(
            "the objects made so far stay (owned by this Resurrection) and the rest is retried"
        ),
        "{msg}"
    );
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(super::RETRY));
    s.done().await;
}

#[tokio::test]
async fn someone_elses_object_of_the_same_name_is_never_taken_over() {
    let (task, mut s) = start(shop(true), now);
    facts(&mut s, |_| true).await;
    let nps = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies";
    s.answer(
        "POST",
        &format!("{nps}?&fieldManager=wayback"),
        409,
        status(409, "AlreadyExists", "exists"),
    )
    .await;
    let theirs = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "shop-wb-1", "namespace": "shop", "uid": "x"}, "spec": {}});
    s.answer("GET", &format!("{nps}/shop-wb-1"), 200, theirs)
        .await;
    let st = status_patch(&mut s).await;
    assert_eq!(st["phase"], "Failed");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("an object of that name exists and is not this Resurrection's"),
        "{st}"
    );
    task.await.unwrap().unwrap();
    s.done().await;
}
