//! A scripted API server for the reconcile tests (kube.rs's "controllers/testing" pattern): the
//! client talks to a tower-test mock; the test answers each request in turn and asserts its method, its
//! path and query, and its body. Whatever the reconcile sends that the script does not expect fails the
//! test, and so does a request the script expects that never comes.

use std::sync::Arc;

use http::{Request, Response};
use jiff::Timestamp;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::Client;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle};

use super::{reconcile, Context, Error};
use crate::crd::Resurrection;

/// One request the controller sent.
#[derive(Debug)]
pub struct Call {
    pub method: String,
    /// Path and query, e.g. `/apis/apps/v1/namespaces/shop/deployments/shop`.
    pub uri: String,
    pub content_type: String,
    pub body: Value,
}

pub struct Server(Handle<Request<Body>, Response<Body>>);

/// Start `reconcile` on `res` against a fresh mock server, with the clock at `now`.
pub fn start(
    res: Resurrection,
    now: fn() -> Timestamp,
) -> (JoinHandle<Result<Action, Error>>, Server) {
    let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let ctx = Arc::new(Context {
        client: Client::new(svc, "shop"),
        clock: now,
    });
    (tokio::spawn(reconcile(Arc::new(res), ctx)), Server(handle))
}

/// The Status body the API server sends with an error.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

pub fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("serializable")
}

impl Server {
    /// Expect `method` on `uri` next; answer `code` with `reply`; return what was sent.
    pub async fn answer(&mut self, method: &str, uri: &str, code: u16, reply: Value) -> Call {
        let (req, send) = self.0.next_request().await.unwrap_or_else(|| {
            panic!("expected {method} {uri}, but the reconcile sent nothing more")
        });
        let call = Call {
            method: req.method().to_string(),
            uri: req.uri().to_string(),
            content_type: req
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap_or_default().to_string())
                .unwrap_or_default(),
            body: {
                let bytes = req.into_body().collect_bytes().await.expect("request body");
                if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).expect("a JSON body")
                }
            },
        };
        assert_eq!(
            (call.method.as_str(), call.uri.as_str()),
            (method, uri),
            "unexpected request: {call:#?}"
        );
        let resp = Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&reply).expect("JSON")))
            .expect("response");
        send.send_response(resp);
        call
    }

    /// Answer a create by echoing the object (201), and return it.
    pub async fn created(&mut self, uri: &str) -> Value {
        let (req, send) = self.0.next_request().await.expect("a create");
        assert_eq!(req.method().as_str(), "POST", "expected a create on {uri}");
        assert_eq!(req.uri().to_string(), uri);
        let bytes = req.into_body().collect_bytes().await.expect("body");
        let body: Value = serde_json::from_slice(&bytes).expect("JSON");
        let mut echo = body.clone();
        echo["metadata"]["uid"] = json!(format!(
            "uid-of-{}",
            body["metadata"]["name"].as_str().unwrap_or("?")
        ));
        send.send_response(
            Response::builder()
                .status(201)
                .body(Body::from(serde_json::to_vec(&echo).expect("JSON")))
                .expect("response"),
        );
        body
    }

    /// The collection path an object is created under.
    pub fn created_uri(o: &crate::yaml::Object) -> String {
        use crate::yaml::Object as O;
        let p = match o {
            O::NetworkPolicy(_) => "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies",
            O::Pvc(_) => "/api/v1/namespaces/shop/persistentvolumeclaims",
            O::Service(_) => "/api/v1/namespaces/shop/services",
            O::Ingress(_) => "/apis/networking.k8s.io/v1/namespaces/shop/ingresses",
            O::Deployment(_) => "/apis/apps/v1/namespaces/shop/deployments",
            O::StatefulSet(_) => "/apis/apps/v1/namespaces/shop/statefulsets",
            other => panic!("{} is not a child", other.describe()),
        };
        p.to_string()
    }

    /// Expect no further request: the reconcile's client is gone once the task has finished.
    pub async fn done(mut self) {
        if let Some((req, _)) = self.0.next_request().await {
            panic!("unexpected extra request: {} {}", req.method(), req.uri());
        }
    }
}
