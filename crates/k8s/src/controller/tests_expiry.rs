//! Expiry: the TTL, `extend`, idle time, and the deadline bounding when a reconcile comes back.

use std::time::Duration as StdDuration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use serde_json::json;

use super::mock::{start, status, to_json, Server};
use super::tests::{facts, shop, status_patch, RES};
use crate::testutil::{now, ts, SHOP};

fn after_ttl() -> jiff::Timestamp {
    ts("2026-11-21T11:00:00Z")
}

#[tokio::test]
async fn past_its_ttl_it_deletes_itself() {
    let (task, mut s) = start(shop(true), after_ttl);
    let st = status_patch(&mut s).await;
    assert_eq!(st["phase"], "Terminating");
    assert_eq!(
        st["message"],
        "expired at 2026-11-21 11:00:00 UTC: removing everything"
    );
    let call = s
        .answer("DELETE", &format!("{RES}?"), 200, to_json(&shop(true)))
        .await;
    assert_eq!(call.body, json!({}));
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    s.done().await;
}

#[tokio::test]
async fn extended_it_lives_on_and_comes_back_at_the_new_deadline() {
    let mut r = shop(true);
    r.spec.expires_at = Some(Time(ts("2026-11-21T11:02:00Z")));
    let plan = crate::plan::build(&r, &crate::testutil::facts(SHOP, "shop"), after_ttl()).unwrap();
    let (task, mut s) = start(r, after_ttl);
    facts(&mut s, |_| true).await;
    for o in &plan.objects {
        // Everything exists already and is ours.
        let uri = Server::created_uri(o);
        s.answer(
            "POST",
            &format!("{uri}?&fieldManager=wayback"),
            409,
            status(409, "AlreadyExists", "exists"),
        )
        .await;
        s.answer(
            "GET",
            &format!("{uri}/{}", o.describe().split('/').nth(1).unwrap()),
            200,
            to_json(o),
        )
        .await;
    }
    s.answer("GET", "/apis/apps/v1/namespaces/shop/deployments/shop-wb-1", 200, json!({"metadata": {"name": "shop-wb-1"}, "spec": {"selector": {}, "template": {}}, "status": {"readyReplicas": 1}})).await;
    let st = status_patch(&mut s).await;
    assert_eq!(st["phase"], "Ready");
    assert_eq!(st["expiresAt"], "2026-11-21T11:02:00Z");
    // Ready is looked at every 5 minutes, but the deadline is in 2.
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(StdDuration::from_secs(120))
    );
    s.done().await;
}

#[tokio::test]
async fn idle_past_its_limit_it_deletes_itself() {
    let mut r = shop(true);
    r.spec.idle = Some("30m".parse().unwrap());
    r.status = Some(crate::crd::ResurrectionStatus {
        last_activity: Some(Time(ts("2026-11-20T11:29:59Z"))),
        ..Default::default()
    });
    let (task, mut s) = start(r, now);
    let st = status_patch(&mut s).await;
    assert_eq!(
        st["message"],
        "idle for 30m at 2026-11-20 11:59:59 UTC: removing everything"
    );
    assert_eq!(
        st.get("lastActivity"),
        None,
        "lastActivity is never taken over"
    );
    s.answer("DELETE", &format!("{RES}?"), 200, to_json(&shop(true)))
        .await;
    task.await.unwrap().unwrap();
    s.done().await;
}

#[test]
fn deadlines() {
    let mut r = shop(true);
    assert_eq!(
        r.deadline().unwrap(),
        (ts("2026-11-21T11:00:00Z"), "expired".to_string())
    );
    r.spec.idle = Some("2h".parse().unwrap());
    assert_eq!(
        r.deadline().unwrap(),
        (ts("2026-11-20T13:00:00Z"), "idle for 2h".to_string())
    );
    r.status = Some(crate::crd::ResurrectionStatus {
        last_activity: Some(Time(ts("2026-11-21T10:00:00Z"))),
        ..Default::default()
    });
    assert_eq!(r.deadline().unwrap().1, "expired");
    r.spec.expires_at = Some(Time(ts("2026-11-22T00:00:00Z")));
    assert_eq!(
        r.deadline().unwrap(),
        (ts("2026-11-21T12:00:00Z"), "idle for 2h".to_string())
    );
}
