//! File formats across releases: plans written by the release before versions were recorded (format 0,
//! fixtures made with that release's own `up --dry-run --json`) read back migrated; golden tests of the
//! migrated JSON; a newer format refused.

use std::path::Path;

use wayback_core::format::{self, FormatError};
use wayback_core::Plan;

fn migrated(fixture: &str) -> (Plan, serde_json::Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/format0")
        .join(fixture);
    let v0: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(v0.get("format").is_none(), "a format-0 file has no version");
    let plan: Plan = format::decode(v0, &path).unwrap();
    let v1 = format::encode(&plan).unwrap();
    (plan, v1)
}

#[test]
fn format0_host_plan_is_staged_and_confined() {
    let (plan, v1) = migrated("plan-host.json");
    let b = &plan.container.binds[0];
    let data = b
        .clone
        .as_ref()
        .expect("the bind says which clone it comes from");
    assert_eq!(data.root, plan.clone);
    assert_eq!(data.path, Path::new("/var/lib/postgresql"));
    assert_eq!(
        b.source,
        Path::new("/var/lib/wayback-fixture/instances/pg-old/binds/0")
    );
    assert!(plan
        .container
        .drop_capabilities
        .iter()
        .any(|c| c == "CAP_SYS_ADMIN"));
    assert!(plan.container.no_new_privileges);
    assert!(plan
        .container
        .inaccessible
        .iter()
        .any(|p| p == Path::new("/etc/shadow")));
    assert!(
        !plan
            .container
            .argv()
            .iter()
            .any(|a| a.contains("/.wayback/pg-old/var")),
        "no clone path given to nspawn"
    );
    insta::assert_json_snapshot!("format0_host_plan_migrated", v1["container"]);
}

#[test]
fn format0_web_plan_keeps_its_gate_and_route() {
    let (plan, v1) = migrated("plan-web.json");
    assert!(plan.gate.share.is_some());
    assert_eq!(plan.http.as_ref().unwrap().port, 8000);
    assert_eq!(v1["format"], format::CURRENT);
    let data = plan.container.binds[0].clone.as_ref().unwrap();
    assert_eq!(data.path, Path::new("/srv/www"));
}

#[test]
fn a_plan_from_a_newer_release_is_refused() {
    let mut v = format::encode(&migrated("plan-host.json").0).unwrap();
    v["format"] = (format::CURRENT + 1).into();
    let e =
        format::decode::<Plan>(v, Path::new("/var/lib/wayback/instances/x/plan.json")).unwrap_err();
    assert!(matches!(e, FormatError::Newer { .. }), "{e}");
}
