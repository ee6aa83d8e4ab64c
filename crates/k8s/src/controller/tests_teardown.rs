//! Teardown, request by request: ordered deletes of owned objects only, waiting for the copy's pods,
//! and the finalizer removed last.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use serde_json::{json, Value};

use super::mock::{start, status, to_json, Server};
use super::tests::{shop, status_patch, RES};
use crate::crd::Resurrection;
use crate::testutil::{now, ts};

const UID: &str = "5e2b0c1d-0000-4000-8000-000000000001";

fn deleting() -> Resurrection {
    let mut r = shop(true);
    r.metadata.deletion_timestamp = Some(Time(ts("2026-11-20T11:59:00Z")));
    r
}

fn owned(api_version: &str, kind: &str, name: &str, owner_uid: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {
        "name": name, "namespace": "shop", "uid": format!("uid-of-{name}"),
        "labels": {"wayback.io/resurrection": "shop-wb-1"},
        "ownerReferences": [{"apiVersion": "wayback.io/v1alpha1", "kind": "Resurrection", "name": "shop-wb-1",
                             "uid": owner_uid, "controller": true, "blockOwnerDeletion": true}]}})
}

fn not_found() -> Value {
    status(404, "NotFound", "not found")
}

/// Expect the GET of an owned object, then its delete: foreground, with its uid as precondition.
async fn deletes(s: &mut Server, path: &str, api_version: &str, kind: &str, name: &str) {
    s.answer(
        "GET",
        &format!("{path}/{name}"),
        200,
        owned(api_version, kind, name, UID),
    )
    .await;
    let call = s
        .answer("DELETE", &format!("{path}/{name}?"), 200, json!({}))
        .await;
    assert_eq!(
        call.body,
        json!({"propagationPolicy": "Foreground", "preconditions": {"uid": format!("uid-of-{name}")}})
    );
}

const ING: &str = "/apis/networking.k8s.io/v1/namespaces/shop/ingresses";
const SVC: &str = "/api/v1/namespaces/shop/services";
const DEP: &str = "/apis/apps/v1/namespaces/shop/deployments";
const PVC: &str = "/api/v1/namespaces/shop/persistentvolumeclaims";
const NP: &str = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies";

#[tokio::test]
async fn first_pass_stops_traffic_and_the_copy_then_waits_for_its_pods() {
    let (task, mut s) = start(deleting(), now);
    deletes(&mut s, ING, "networking.k8s.io/v1", "Ingress", "shop-wb-1").await;
    s.answer("GET", &format!("{SVC}/shop-wb-1"), 404, not_found())
        .await;
    deletes(&mut s, DEP, "apps/v1", "Deployment", "shop-wb-1").await;
    let st = status_patch(&mut s).await;
    assert_eq!(st["phase"], "Terminating");
    assert_eq!(
        st["message"],
        "waiting for the pods of Deployment shop-wb-1 to stop"
    );
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(super::teardown::WAIT)
    );
    s.done().await;
}

#[tokio::test]
async fn last_pass_removes_owned_clones_then_the_quarantine_then_the_finalizer() {
    let mut r = deleting();
    r.metadata.finalizers = Some(vec!["example.org/backup".into(), crate::FINALIZER.into()]);
    let (task, mut s) = start(r, now);
    for p in [ING, SVC, DEP] {
        s.answer("GET", &format!("{p}/shop-wb-1"), 404, not_found())
            .await;
    }
    // Two PVCs carry the label; only the one this Resurrection owns is deleted.
    let list = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaimList", "metadata": {}, "items": [
        owned("v1", "PersistentVolumeClaim", "shop-wb-1-shop-data", UID),
        owned("v1", "PersistentVolumeClaim", "copied-label", "someone-else"),
    ]});
    s.answer(
        "GET",
        &format!("{PVC}?&labelSelector=wayback.io%2Fresurrection%3Dshop-wb-1"),
        200,
        list,
    )
    .await;
    let call = s
        .answer(
            "DELETE",
            &format!("{PVC}/shop-wb-1-shop-data?"),
            200,
            json!({}),
        )
        .await;
    assert_eq!(
        call.body["preconditions"]["uid"],
        "uid-of-shop-wb-1-shop-data"
    );
    deletes(
        &mut s,
        NP,
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "shop-wb-1",
    )
    .await;
    let call = s
        .answer("PATCH", &format!("{RES}?"), 200, to_json(&shop(true)))
        .await;
    assert_eq!(call.content_type, "application/json-patch+json");
    assert_eq!(
        call.body,
        json!([{"op": "test", "path": "/metadata/finalizers/1", "value": "wayback.io/teardown"},
               {"op": "remove", "path": "/metadata/finalizers/1"}])
    );
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    s.done().await;
}

#[tokio::test]
async fn objects_it_does_not_own_are_left_alone() {
    let (task, mut s) = start(deleting(), now);
    s.answer(
        "GET",
        &format!("{ING}/shop-wb-1"),
        200,
        owned(
            "networking.k8s.io/v1",
            "Ingress",
            "shop-wb-1",
            "someone-else",
        ),
    )
    .await;
    s.answer(
        "GET",
        &format!("{SVC}/shop-wb-1"),
        200,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop-wb-1"}}),
    )
    .await;
    s.answer("GET", &format!("{DEP}/shop-wb-1"), 404, not_found())
        .await;
    let empty = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaimList", "metadata": {}, "items": []});
    s.answer(
        "GET",
        &format!("{PVC}?&labelSelector=wayback.io%2Fresurrection%3Dshop-wb-1"),
        200,
        empty,
    )
    .await;
    s.answer("GET", &format!("{NP}/shop-wb-1"), 404, not_found())
        .await;
    s.answer("PATCH", &format!("{RES}?"), 200, to_json(&shop(true)))
        .await;
    task.await.unwrap().unwrap();
    s.done().await;
}

#[tokio::test]
async fn a_failed_delete_keeps_the_finalizer() {
    let (task, mut s) = start(deleting(), now);
    s.answer(
        "GET",
        &format!("{ING}/shop-wb-1"),
        200,
        owned("networking.k8s.io/v1", "Ingress", "shop-wb-1", UID),
    )
    .await;
    s.answer(
        "DELETE",
        &format!("{ING}/shop-wb-1?"),
        403,
        status(403, "Forbidden", "no"),
    )
    .await;
    let err = task.await.unwrap().unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Ingress shop-wb-1 in namespace shop: "),
        "{err}"
    );
    s.done().await;
}

#[tokio::test]
async fn deleted_without_its_finalizer_there_is_nothing_to_do() {
    let mut r = deleting();
    r.metadata.finalizers = None;
    let (task, s) = start(r, now);
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    s.done().await;
}
