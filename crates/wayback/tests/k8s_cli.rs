//! `wayback k8s` without a cluster (none can run on the test machines): `up --dry-run --from FILE`
//! prints every object as YAML that parses back strictly into the typed structs, bad input exits 2,
//! `manifests` parses back too, and commands that need the API fail with exit 1 and say why.

use std::path::PathBuf;
use std::process::{Command, Output};

use wayback_k8s::yaml::{parse_strict, Object};

fn testdata(f: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "k8s", "testdata", f]
        .iter()
        .collect();
    p.to_str().unwrap().to_string()
}

fn wayback(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "").unwrap();
    Command::new(env!("CARGO_BIN_EXE_wayback"))
        .args(args)
        .env("WAYBACK_CONFIG", &cfg)
        .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn dry_run_from_a_file_prints_every_object_and_it_parses_back_strictly() {
    let shop = testdata("shop.yaml");
    let out = wayback(&[
        "k8s",
        "up",
        "shop",
        "-n",
        "shop",
        "--from",
        &shop,
        "--dry-run",
        "--at",
        "2026-11-14T10:00",
        "--host",
        "old-shop.example.org",
        "--env",
        "SHOP_MODE=maintenance",
        "--allow-dns",
        "--tls-issuer",
        "letsencrypt",
        "--ttl",
        "4h",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let objects = parse_strict(&text(&out.stdout)).unwrap();
    let kinds: Vec<String> = objects.iter().map(Object::describe).collect();
    assert_eq!(
        kinds,
        [
            "Resurrection/shop-wb-1",
            "NetworkPolicy/shop-wb-1",
            "PersistentVolumeClaim/shop-wb-1-shop-data",
            "PersistentVolumeClaim/shop-wb-1-shop-uploads",
            "Service/shop-wb-1",
            "Ingress/shop-wb-1",
            "Deployment/shop-wb-1",
        ]
    );
    let Object::Resurrection(r) = &objects[0] else {
        unreachable!()
    };
    // The choice is pinned in the spec the controller gets.
    let pins: Vec<(&str, &str)> = r
        .spec
        .snapshots
        .iter()
        .map(|s| (s.claim.as_str(), s.volume_snapshot.as_str()))
        .collect();
    assert_eq!(
        pins,
        [
            ("shop-data", "shop-data-20261114"),
            ("shop-uploads", "shop-uploads-20261114")
        ]
    );
    assert_eq!(r.spec.ttl.to_string(), "4h");
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "PVC shop-data <- VolumeSnapshot shop-data-20261114 (taken 2026-11-14 02:00:00 UTC"
        ),
        "{err}"
    );
    assert!(err.contains("skew 5m"), "{err}");
}

#[test]
fn bad_input_exits_2_and_names_the_problem() {
    let shop = testdata("shop.yaml");
    let base = [
        "k8s",
        "up",
        "shop",
        "-n",
        "shop",
        "--from",
        shop.as_str(),
        "--dry-run",
    ];
    for (extra, expect) in [
        (
            &["--at", "2026-11-01"][..],
            "no VolumeSnapshot of PVC shop-data was taken at or before 2026-11-01 23:59:59 UTC",
        ),
        (
            &["--at", "last tuesday"][..],
            "invalid time \"last tuesday\"",
        ),
        (&["--host", "shop"][..], "invalid hostname \"shop\""),
        (
            &["--snapshot", "shop-data=nope"][..],
            "VolumeSnapshot nope (for PVC shop-data) does not exist",
        ),
        (
            &["--snapshot", "shop-data=shop-data-20261115"][..],
            "is not ready: readyToUse is not true yet",
        ),
        (
            &["--host", "a.example.org", "--port", "web"][..],
            "no port named \"web\"",
        ),
        (&["--strict-consistency"][..], "1d5m apart"),
        (&["--name", "Shop"][..], "invalid name \"Shop\""),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let out = wayback(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{extra:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(expect),
            "{extra:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{extra:?} printed objects");
    }
    let out = wayback(&["k8s", "up", "nope", "--from", &shop, "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no Deployment or StatefulSet named nope"));
    let out = wayback(&["k8s", "up", "shop", "--from", &shop]);
    assert_eq!(out.status.code(), Some(2), "--from needs --dry-run");
}

#[test]
fn a_statefulset_dry_run() {
    let out = wayback(&[
        "k8s",
        "up",
        "sts/db",
        "--from",
        &testdata("db.yaml"),
        "--dry-run",
        "--name",
        "db-old",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let kinds: Vec<String> = parse_strict(&text(&out.stdout))
        .unwrap()
        .iter()
        .map(Object::describe)
        .collect();
    assert_eq!(kinds.last().map(String::as_str), Some("StatefulSet/db-old"));
    assert!(
        !kinds.iter().any(|k| k.starts_with("Ingress")),
        "no --host, no Ingress"
    );
}

#[test]
fn manifests_parse_back_strictly() {
    let out = wayback(&[
        "k8s",
        "manifests",
        "--image",
        "registry.example.org/wayback:1",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let kinds: Vec<String> = parse_strict(&text(&out.stdout))
        .unwrap()
        .iter()
        .map(Object::describe)
        .collect();
    assert_eq!(
        kinds,
        [
            "CustomResourceDefinition/resurrections.wayback.io",
            "Namespace/wayback-system",
            "ServiceAccount/wayback-controller",
            "ClusterRole/wayback-controller",
            "ClusterRoleBinding/wayback-controller",
            "ClusterRole/wayback-user",
            "Deployment/wayback-controller",
        ]
    );
}

#[test]
fn without_a_cluster_commands_fail_with_exit_1_and_say_why() {
    for args in [
        &["k8s", "ls"][..],
        &["k8s", "down", "x"],
        &["k8s", "up", "shop", "--host", "a.example.org"],
    ] {
        let out = wayback(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("cannot reach a Kubernetes API server"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}
