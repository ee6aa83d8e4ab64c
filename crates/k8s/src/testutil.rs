//! Fixtures shared by the tests: the objects in testdata/, a Resurrection, fixed times.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{IngressFrom, Resurrection, ResurrectionSpec, WorkloadKind, WorkloadRef};
use crate::plan::Facts;
use crate::yaml::{parse_strict, Object};

pub const SHOP: &str = include_str!("../testdata/shop.yaml");
pub const DB: &str = include_str!("../testdata/db.yaml");

pub fn ts(s: &str) -> Timestamp {
    s.parse().expect("a timestamp")
}

/// "Now" in the tests: a week after the snapshots.
pub fn now() -> Timestamp {
    ts("2026-11-20T12:00:00Z")
}

pub fn objects(text: &str) -> Vec<Object> {
    parse_strict(text).expect("testdata parses strictly")
}

pub fn facts(text: &str, name: &str) -> Facts {
    Facts::from_objects(None, name, objects(text)).expect("workload in testdata")
}

pub fn spec(kind: WorkloadKind, name: &str) -> ResurrectionSpec {
    ResurrectionSpec {
        workload: WorkloadRef {
            kind,
            name: name.into(),
        },
        at: None,
        snapshots: Vec::new(),
        host: None,
        port: None,
        ttl: "24h".parse().unwrap(),
        expires_at: None,
        idle: None,
        env: Vec::new(),
        allow_dns: false,
        ingress_class: None,
        tls_issuer: None,
        ingress_from: IngressFrom::default(),
        max_skew: None,
    }
}

/// A Resurrection as the API server returns it: uid, creation time, generation.
pub fn stored(name: &str, spec: ResurrectionSpec) -> Resurrection {
    let mut r = Resurrection::new(name, spec);
    r.metadata.namespace = Some("shop".into());
    r.metadata.uid = Some("5e2b0c1d-0000-4000-8000-000000000001".into());
    r.metadata.creation_timestamp = Some(Time(ts("2026-11-20T11:00:00Z")));
    r.metadata.generation = Some(1);
    r.metadata.resource_version = Some("100".into());
    r
}
