//! Unit tests of the state directory: markers, strays, removal guards.

use std::fs;

use wayback_core::InstanceName;

use super::*;

#[test]
fn start_time_of_self_and_taken_names() {
    assert!(Owner::current().alive());
    assert!(!Owner {
        pid: std::process::id() as i32,
        start_time: 1,
        daemon: false,
    }
    .alive());
    let (_t, cfg) = temp_config();
    let a = InstanceDir::create(&cfg, &name("a")).unwrap();
    assert!(matches!(
        InstanceDir::create(&cfg, &name("a")),
        Err(StateError::Taken(_))
    ));
    assert_eq!(fs::read_to_string(a.path.join(MARKER)).unwrap(), "a\n");
    a.set_phase(Phase::Running).unwrap();
    assert_eq!(a.phase(), Some(Phase::Running));
    assert_eq!(list(&cfg), vec![name("a")]);
    fs::create_dir(a.path.join("sub")).unwrap();
    fs::write(a.path.join("sub/f"), "x").unwrap();
    a.remove().unwrap();
    assert!(!a.path.exists());
    a.remove().unwrap();
    assert!(list(&cfg).is_empty());
    assert_eq!(
        fs::read_dir(cfg.instances_dir()).unwrap().count(),
        0,
        "no temporary directory is left behind"
    );
}

pub(super) fn temp_config() -> (tempfile::TempDir, Config) {
    let t = tempfile::tempdir().unwrap();
    let cfg = Config {
        state_dir: t.path().join("state"),
        runtime_dir: t.path().join("run"),
        ..Config::default()
    };
    (t, cfg)
}

pub(super) fn name(s: &str) -> InstanceName {
    InstanceName::new(s).unwrap()
}

#[test]
fn strays_are_listed_never_and_removed_never() {
    let (t, cfg) = temp_config();
    let outside = t.path().join("outside");
    fs::create_dir_all(outside.join("keep")).unwrap();
    fs::write(outside.join(MARKER), "x\n").unwrap();
    let real = InstanceDir::create(&cfg, &name("real")).unwrap();
    let inst = cfg.instances_dir();
    // An invalid name, a symlink named like an instance (to a directory with a marker naming it), a
    // directory without a marker, one whose marker names another instance, a plain file.
    fs::create_dir(inst.join("Not_An-Instance")).unwrap();
    fs::write(outside.join(MARKER), "x\n").unwrap();
    std::os::unix::fs::symlink(&outside, inst.join("x")).unwrap();
    fs::create_dir(inst.join("nomark")).unwrap();
    fs::create_dir(inst.join("other")).unwrap();
    fs::write(inst.join("other").join(MARKER), "real\n").unwrap();
    fs::write(inst.join("file"), "").unwrap();
    assert_eq!(list(&cfg), vec![name("real")]);
    for n in ["x", "nomark", "other", "file"] {
        let e = InstanceDir::open(&cfg, &name(n)).unwrap_err();
        assert!(matches!(e, StateError::Foreign { .. }), "{n}: {e}");
        assert!(e.to_string().contains("leaves it alone"), "{e}");
    }
    assert!(matches!(
        InstanceDir::open(&cfg, &name("gone")),
        Err(StateError::NotFound { .. })
    ));
    // A directory value that was changed after opening is refused too.
    let mut moved = real.clone();
    moved.path = outside.clone();
    assert!(matches!(moved.remove(), Err(StateError::Foreign { .. })));
    let mut renamed = real.clone();
    renamed.name = name("x");
    renamed.path = inst.join("x");
    assert!(matches!(renamed.remove(), Err(StateError::Foreign { .. })));
    assert!(outside.join("keep").is_dir() && inst.join("x").exists());
    real.remove().unwrap();
    // The instances directory itself must not be a symlink.
    fs::remove_dir_all(&inst).unwrap();
    std::os::unix::fs::symlink(&outside, &inst).unwrap();
    assert!(list(&cfg).is_empty());
    assert!(matches!(
        InstanceDir::create(&cfg, &name("y")),
        Err(StateError::Foreign { .. })
    ));
    assert!(!outside.join("y").exists());
}
