//! The order of `up` and of teardown, without root: apply and teardown run through the recording
//! [`FakeHost`] on a real instance directory and journal in a temp dir.

use std::path::Path;

use wayback_core::journal::{self, Resource};
use wayback_core::plan::{self, fixture, SourceKind};
use wayback_core::profile::Profile;
use wayback_core::{Config, Plan};

use super::fake::{Call, FakeHost, PID};
use crate::apply::apply_with;
use crate::progress::Progress;
use crate::state::InstanceDir;
use crate::steps::{steps, Step};
use crate::teardown::teardown_with;

fn config(tmp: &Path) -> Config {
    Config {
        state_dir: tmp.join("state"),
        runtime_dir: tmp.join("run"),
        ..Config::default()
    }
}

/// PostgreSQL from the fixture snapshot: a btrfs clone, or an overlay when `overlay`.
fn plan(cfg: &Config, overlay: bool) -> Plan {
    let req = fixture::request(Profile::find("postgresql", &[]).expect("built-in profile"));
    let mut facts = fixture::facts();
    if overlay {
        facts.source.kind = SourceKind::Overlay;
    }
    plan::build(&req, &facts, cfg, &fixture::all_exist).expect("a plan")
}

fn quiet() -> Progress {
    Progress {
        quiet: true,
        sink: None,
    }
}

fn journal_of(dir: &InstanceDir) -> Vec<Resource> {
    (journal::read(&dir.journal_path())
        .expect("journal")
        .into_iter())
    .map(|e| e.resource)
    .collect()
}

#[tokio::test]
async fn every_object_is_journaled_before_it_is_made() {
    for overlay in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path());
        let plan = plan(&cfg, overlay);
        let dir = InstanceDir::create(&cfg, &plan.name).unwrap();
        let host = FakeHost::default();
        let child = apply_with(&host, &dir, &plan, &quiet()).await.unwrap();
        assert_eq!(child, PID);

        let planned = steps(&plan, &dir.path, &crate::container::cgroups(&plan)).unwrap();
        let creates: Vec<_> = (planned.iter())
            .filter_map(|s| match s {
                Step::Create(c) => Some(c.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(host.created(), creates, "the fake saw the planned creates");
        assert_eq!(
            creates.last().map(super::super::steps::Create::kind),
            Some("container")
        );
        for call in host.calls() {
            let Call::Create { step, journaled } = call else {
                continue;
            };
            if step.makes_object() {
                assert!(
                    journaled.iter().any(|r| step.journaled_as(r)),
                    "{step:?} made before it was journaled: {journaled:?}"
                );
            }
        }
        // The journal holds the planned entries in order, then the container's process.
        let mut want: Vec<Resource> = (planned.iter())
            .filter_map(|s| match s {
                Step::Journal(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        want.push(Resource::Process {
            pid: PID,
            start_time: 1,
            what: "systemd-nspawn".into(),
        });
        assert_eq!(journal_of(&dir), want);
        let kinds: Vec<_> = want.iter().map(Resource::kind).collect();
        let first = if overlay { "overlay" } else { "dir" };
        assert_eq!(kinds.first(), Some(&first), "{kinds:?}");
        assert!(!overlay || !kinds.contains(&"clone"), "{kinds:?}");
    }
}

#[tokio::test]
async fn a_failure_at_any_step_is_rolled_back_completely() {
    let probe = tempfile::tempdir().unwrap();
    let cfg = config(probe.path());
    let p = plan(&cfg, false);
    let n = steps(
        &p,
        &cfg.instance_dir(p.name.as_str()),
        &crate::container::cgroups(&p),
    )
    .unwrap()
    .iter()
    .filter(|s| matches!(s, Step::Create(_)))
    .count();
    assert!(n >= 6, "{n} create steps");
    for i in 0..n {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path());
        let plan = plan(&cfg, false);
        let dir = InstanceDir::create(&cfg, &plan.name).unwrap();
        let host = FakeHost::failing_at(i);
        let err = apply_with(&host, &dir, &plan, &quiet()).await.unwrap_err();
        assert!(
            err.to_string().contains(&format!("create step {i}")),
            "{err:#}"
        );
        let journaled = journal_of(&dir);

        let report = teardown_with(&host, &dir, &quiet()).await;
        assert!(report.errors.is_empty(), "step {i}: {:?}", report.errors);
        let mut backwards = journaled.clone();
        backwards.reverse();
        assert_eq!(host.undone(), backwards, "step {i}: undone newest first");
        // Whatever was made (and the object whose creation failed) has its undo.
        for made in host.created().iter().filter(|c| c.makes_object()) {
            assert!(
                host.undone().iter().any(|r| made.journaled_as(r)),
                "step {i}: {made:?} was never undone"
            );
        }
        assert!(
            !dir.path.exists(),
            "step {i}: the instance directory is left"
        );
    }
}

#[tokio::test]
async fn teardown_stops_the_container_first_and_removes_the_clone_last() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let plan = plan(&cfg, false);
    let dir = InstanceDir::create(&cfg, &plan.name).unwrap();
    let host = FakeHost::default();
    apply_with(&host, &dir, &plan, &quiet()).await.unwrap();
    let report = teardown_with(&host, &dir, &quiet()).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let kinds: Vec<_> = host.undone().iter().map(Resource::kind).collect();
    let at = |k: &str| kinds.iter().position(|x| *x == k).unwrap_or(usize::MAX);
    assert_eq!(kinds.first(), Some(&"process"), "{kinds:?}");
    assert!(at("container") < at("veth"), "{kinds:?}");
    assert!(
        at("veth") < at("quarantine") && at("quarantine") < at("netns"),
        "{kinds:?}"
    );
    assert!(
        at("netns") < at("clone") && at("clone") < at("dir"),
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"dir"), "{kinds:?}");
    assert_eq!(report.removed.len(), kinds.len());
}

#[tokio::test]
async fn a_journal_naming_another_instances_object_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let plan = plan(&cfg, false);
    let dir = InstanceDir::create(&cfg, &plan.name).unwrap();
    let mut j = journal::Journal::open(&dir.journal_path()).unwrap();
    let foreign = [
        Resource::Netns {
            path: "/run/netns/wb-someone-else".into(),
        },
        Resource::Veth {
            host_if: "wb-other".into(),
        },
        Resource::Container {
            machine: "wb-other".into(),
        },
    ];
    for r in &foreign {
        j.record(r).unwrap();
    }
    let host = FakeHost::default();
    let report = teardown_with(&host, &dir, &quiet()).await;
    assert!(host.undone().is_empty(), "{:?}", host.undone());
    assert_eq!(report.left.len(), foreign.len(), "{:?}", report.left);
    assert!(report.left.iter().all(|l| l.contains("another instance")));
}
