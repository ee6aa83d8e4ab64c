//! The objects of a resurrection planned from a Deployment and a StatefulSet (golden tests).

use super::*;
use crate::crd::{EnvOverride, IssuerKind, TlsIssuer};
use crate::testutil::{facts, now, spec, stored, ts, DB, SHOP};
use crate::yaml::to_yaml;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn shop_spec() -> crate::crd::ResurrectionSpec {
    let mut s = spec(WorkloadKind::Deployment, "shop");
    s.at = Some(Time(ts("2026-11-14T23:59:59Z")));
    s.host = Some("old-shop.example.org".into());
    s.env = vec![
        EnvOverride {
            name: "SHOP_MODE".into(),
            value: "maintenance".into(),
        },
        EnvOverride {
            name: "MAIL_DISABLED".into(),
            value: "1".into(),
        },
    ];
    s.allow_dns = true;
    s.ingress_class = Some("nginx".into());
    s.tls_issuer = Some(TlsIssuer {
        kind: IssuerKind::ClusterIssuer,
        name: "letsencrypt".into(),
    });
    s
}

#[test]
fn golden_shop_deployment() {
    let plan = build(
        &stored("shop-wb-1", shop_spec()),
        &facts(SHOP, "shop"),
        now(),
    )
    .unwrap();
    assert_eq!(plan.skew, Some(300));
    assert_eq!(plan.url.as_deref(), Some("https://old-shop.example.org/"));
    let kinds: Vec<String> = plan.objects.iter().map(Object::describe).collect();
    assert_eq!(
        kinds,
        [
            "NetworkPolicy/shop-wb-1",
            "PersistentVolumeClaim/shop-wb-1-shop-data",
            "PersistentVolumeClaim/shop-wb-1-shop-uploads",
            "Service/shop-wb-1",
            "Ingress/shop-wb-1",
            "Deployment/shop-wb-1",
        ]
    );
    insta::assert_snapshot!("shop", to_yaml(&plan.objects).unwrap());
}

#[test]
fn golden_statefulset_without_host() {
    let s = spec(WorkloadKind::StatefulSet, "db");
    let plan = build(&stored("db-wb-1", s), &facts(DB, "db"), now()).unwrap();
    // The live PVC data-db-0 is not in the file: the clone is shaped after the claim template.
    assert_eq!(
        plan.notes,
        ["PVC data-db-0 could not be read: its clone is shaped after its claim template"]
    );
    assert_eq!(plan.url, None);
    insta::assert_snapshot!("db", to_yaml(&plan.objects).unwrap());
}

#[test]
fn pinned_status_wins_over_time() {
    let mut r = stored("shop-wb-1", shop_spec());
    r.status = Some(crate::crd::ResurrectionStatus {
        snapshots: vec![crate::crd::ChosenSnapshot {
            claim: "shop-data".into(),
            volume_snapshot: "shop-data-20261113".into(),
            taken_at: Time(ts("2026-11-13T02:00:00Z")),
            clone: "shop-wb-1-shop-data".into(),
        }],
        ..Default::default()
    });
    let plan = build(&r, &facts(SHOP, "shop"), now()).unwrap();
    assert_eq!(plan.choices[0].snapshot, "shop-data-20261113");
}

#[test]
fn skew_over_max_is_refused() {
    let mut s = shop_spec();
    s.at = None; // now: data from the 14th (the 15th is not ready), uploads from the 15th
    s.max_skew = Some("15m".parse().unwrap());
    let e = build(&stored("shop-wb-1", s), &facts(SHOP, "shop"), now()).unwrap_err();
    assert_eq!(e.to_string(), "the chosen snapshots are 1d5m apart, more than the allowed skew (15m); pick a moment they share (--at), name the snapshots (--snapshot), or drop --strict-consistency");
}

#[test]
fn ports() {
    let http = Port {
        name: Some("http".into()),
        number: 8080,
        protocol: "TCP".into(),
    };
    let metrics = Port {
        name: Some("metrics".into()),
        number: 9090,
        protocol: "TCP".into(),
    };
    let both = [http.clone(), metrics.clone()];
    assert_eq!(served_port(&both, None).unwrap(), http);
    assert_eq!(served_port(&both, Some("metrics")).unwrap(), metrics);
    assert_eq!(served_port(&both, Some("3000")).unwrap().number, 3000);
    let e = served_port(&both, Some("web")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the pod template has no port named \"web\" (its TCP ports: 8080 (http), 9090 (metrics))"
    );
    let e = served_port(
        &[
            metrics.clone(),
            Port {
                name: None,
                number: 1,
                protocol: "TCP".into(),
            },
        ],
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("pass --port"), "{e}");
    assert!(served_port(&[], None)
        .unwrap_err()
        .to_string()
        .contains("declares no TCP container port"));
}

#[test]
fn a_workload_without_claims_has_nothing_to_bring_back() {
    let mut f = facts(SHOP, "shop");
    if let Workload::Deployment(d) = &mut f.workload {
        let vols = d
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .volumes
            .as_mut()
            .unwrap();
        vols.retain(|v| v.persistent_volume_claim.is_none());
    }
    let e = build(&stored("x", shop_spec()), &f, now()).unwrap_err();
    assert_eq!(e.to_string(), "Deployment/shop mounts no PersistentVolumeClaim: there is nothing to bring back from a snapshot");
}
