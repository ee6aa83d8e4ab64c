//! Strict YAML: golden manifests, unknown fields refused, errors that never echo the file.

use super::*;
use crate::crd::{EnvOverride, WorkloadKind};
use crate::manifests::{self, Options};
use crate::testutil::{facts, now, spec, stored, DB, SHOP};

fn every_object() -> Vec<Object> {
    let mut s = spec(WorkloadKind::Deployment, "shop");
    s.host = Some("old-shop.example.org".into());
    s.allow_dns = true;
    // Values YAML would read as something else when printed bare.
    s.env = [
        "1",
        "true",
        "on",
        "yes",
        "null",
        "~",
        "0x10",
        "1e3",
        "-",
        "2026-11-14",
        "",
        " x",
        "a: b",
        "#c",
    ]
    .iter()
    .enumerate()
    .map(|(i, v)| EnvOverride {
        name: format!("V{i}"),
        value: v.to_string(),
    })
    .collect();
    let res = stored("shop-wb-1", s);
    let mut out = vec![Object::Resurrection(Box::new(res.clone()))];
    out.extend(
        crate::plan::build(&res, &facts(SHOP, "shop"), now())
            .unwrap()
            .objects,
    );
    let db = stored("db-wb-1", spec(WorkloadKind::StatefulSet, "db"));
    out.extend(
        crate::plan::build(&db, &facts(DB, "db"), now())
            .unwrap()
            .objects,
    );
    out.extend(manifests::all(&Options {
        namespace: "wayback-system".into(),
        image: "wayback:0.1.0".into(),
    }));
    out.extend(crate::testutil::objects(SHOP));
    out
}

#[test]
fn generated_yaml_parses_back_into_the_same_typed_objects() {
    let objects = every_object();
    let text = to_yaml(&objects).unwrap();
    let back = parse_strict(&text).unwrap();
    assert_eq!(back.len(), objects.len());
    for (a, b) in objects.iter().zip(&back) {
        assert_eq!(a, b, "{} changed in the round trip", a.describe());
    }
}

#[test]
fn unknown_fields_are_rejected_at_any_depth() {
    let text = to_yaml(&every_object()).unwrap();
    for (needle, injected, path) in [
        (
            "kind: NetworkPolicy\n",
            "kind: NetworkPolicy\nbogus: 1\n",
            "bogus",
        ),
        (
            "  policyTypes:\n",
            "  polcyTypes: []\n  policyTypes:\n",
            "spec.polcyTypes",
        ),
        (
            "      - name: data\n",
            "      - name: data\n        hostPth: {}\n",
            "spec.template.spec.volumes.0.hostPth",
        ),
        ("  workload:\n", "  workload:\n    namespace: other\n", ""),
    ] {
        let bad = text.replacen(needle, injected, 1);
        assert_ne!(bad, text, "{needle:?} not found");
        let e = parse_strict(&bad).unwrap_err();
        match (&e, path) {
            // The Resurrection's own spec denies unknown fields itself (a serde error).
            (YamlError::Syntax { .. }, "") => assert!(e.to_string().contains("namespace"), "{e}"),
            (YamlError::Unknown { paths, .. }, p) => assert_eq!(paths, &[p.to_string()], "{e}"),
            _ => panic!("{needle:?}: unexpected {e}"),
        }
    }
}

#[test]
fn unknown_kinds_and_versions_are_rejected() {
    let e = parse_strict("apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "YAML document 1: wayback does not handle apiVersion \"v1\" kind \"Secret\""
    );
    let e = parse_strict("apiVersion: extensions/v1beta1\nkind: Ingress\n").unwrap_err();
    assert!(matches!(e, YamlError::Kind { .. }), "{e}");
}

#[test]
fn comments_and_empty_documents_are_skipped() {
    let text = "# header\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n# only a comment\n";
    let back = parse_strict(text).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].describe(), "Namespace/a");
}

#[test]
fn golden_manifests() {
    let m = manifests::all(&Options {
        namespace: "wayback-system".into(),
        image: "registry.example.org/wayback:0.1.0".into(),
    });
    insta::assert_snapshot!("manifests", to_yaml(&m).unwrap());
}

#[test]
fn errors_never_echo_the_file() {
    for text in [
        "*:*:*:postgres:wbtSECRET1\n",
        "DB_PASSWORD=\"wbtSECRET2\"\n",
        "-----BEGIN PRIVATE KEY-----\nMIIEvwbtSECRET3\n-----END PRIVATE KEY-----\n",
        "[client]\npassword=wbtSECRET4\n",
        "machine example.org login admin password wbtSECRET5\n",
    ] {
        let e = parse_strict(text).unwrap_err().to_string();
        assert!(!e.contains("wbtSECRET"), "{text:?}: {e}");
        assert!(e.contains("line 1"), "the error still says where: {e}");
    }
}
