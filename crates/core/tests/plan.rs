//! Tier 0: the plan `up` applies, from a request and fixed facts. No system access.

use std::path::{Path, PathBuf};

use wayback_core::plan::{self, PathState, PlanError, Publish, UpRequest};
use wayback_core::profile::{Bind, Profile};
use wayback_core::{Config, InstanceName};

use wayback_core::plan::fixture::{all_exist, facts};

fn request(profile: &str) -> UpRequest {
    wayback_core::plan::fixture::request(Profile::find(profile, &[]).unwrap())
}

#[test]
fn postgresql_with_publish() {
    let mut req = request("postgresql");
    req.publish = vec!["127.0.0.1:15432:5432".parse().unwrap()];
    let p = plan::build(&req, &facts(), &Config::default(), &all_exist).unwrap();
    assert_eq!(
        p.name.as_str(),
        "postgresql-2",
        "default names skip taken ones"
    );
    assert_eq!(p.clone, PathBuf::from("/persist/.wayback/postgresql-2"));
    assert_eq!(
        p.block.net.to_string(),
        "10.213.0.4/30",
        "the taken block is skipped"
    );
    assert!(p.http.is_none());
    insta::assert_snapshot!("postgresql_plan", p.to_string());
}

#[test]
fn nginx_route_and_json_round_trip() {
    let mut req = request("nginx-static");
    req.name = Some(InstanceName::new("www-old").unwrap());
    req.host = Some("Old-WWW.Example.org".into());
    req.ttl = Some("4h".parse().unwrap());
    let p = plan::build(&req, &facts(), &Config::default(), &all_exist).unwrap();
    let http = p.http.as_ref().unwrap();
    assert_eq!(http.host, "old-www.example.org");
    assert_eq!(http.url, "http://old-www.example.org:8080/");
    assert_eq!(p.expires - p.created, 4 * 3600);
    let json = serde_json::to_string(&p).unwrap();
    let back: wayback_core::Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
    insta::assert_snapshot!("nginx_plan", p.to_string());
}

#[test]
fn exec_with_user_and_cli_bind() {
    let mut req = request("nginx-static");
    req.exec = vec!["python3 -m http.server 8000".into()];
    req.user = Some("www-data".into());
    req.port = Some(8000);
    req.binds = vec![Bind::parse_cli("/srv/site:/var/www")];
    let p = plan::build(&req, &facts(), &Config::default(), &all_exist).unwrap();
    assert_eq!(p.init.processes.len(), 1);
    assert_eq!(p.init.processes[0].user.as_deref(), Some("www-data"));
    let clone_binds: Vec<_> = p
        .container
        .binds
        .iter()
        .filter(|b| b.clone.is_some())
        .collect();
    assert_eq!(
        clone_binds.len(),
        1,
        "a CLI bind replaces the profile's bind with the same destination"
    );
    assert_eq!(
        p.container.binds[0].data_path(),
        PathBuf::from("/persist/.wayback/nginx-static-1/srv/site")
    );
    assert_eq!(
        p.container.binds[0].source,
        PathBuf::from("/var/lib/wayback/instances/nginx-static-1/binds/0"),
        "nspawn binds the mount point wayback mounts the clone's path on, never a host path from the snapshot"
    );
    assert_eq!(p.http.unwrap().port, 8000);
}

#[test]
fn bad_input_is_refused() {
    let f = facts();
    let cfg = Config::default();
    let mut req = request("postgresql");
    req.name = Some(InstanceName::new("postgresql-1").unwrap());
    assert_eq!(
        plan::build(&req, &f, &cfg, &all_exist).unwrap_err(),
        PlanError::NameTaken("postgresql-1".into())
    );

    let req = request("postgresql");
    let missing = plan::build(&req, &f, &cfg, &|_: &Path, _: &Path| {
        PathState::Missing(" (/var/lib is a symlink to /x)".into())
    })
    .unwrap_err();
    assert!(matches!(missing, PlanError::BindMissing { .. }));
    assert!(missing.to_string().contains("/var/lib/postgresql"));
    assert!(missing.to_string().contains("symlink to /x"), "{missing}");

    let refused = plan::build(&req, &f, &cfg, &|_: &Path, _: &Path| {
        PathState::Refused("a symlink loop".into())
    })
    .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("cannot be used: a symlink loop"),
        "{refused}"
    );

    let nested = plan::build(&req, &f, &cfg, &|_: &Path, _: &Path| {
        PathState::NestedSubvolume
    })
    .unwrap_err();
    assert!(matches!(nested, PlanError::NestedSubvolume { .. }));
    assert!(
        nested.to_string().contains("separate btrfs subvolume"),
        "{nested}"
    );

    let mut req = request("nginx-static");
    req.host = Some("bad_host!".into());
    assert!(matches!(
        plan::build(&req, &f, &cfg, &all_exist),
        Err(PlanError::Name(_))
    ));

    let mut req = request("postgresql");
    req.binds = vec![Bind::parse_cli("relative/path")];
    assert!(matches!(
        plan::build(&req, &f, &cfg, &all_exist),
        Err(PlanError::BindInvalid(_))
    ));

    let mut f2 = facts();
    f2.in_use.push("10.213.0.0/16".parse().unwrap());
    assert!(matches!(
        plan::build(&request("postgresql"), &f2, &cfg, &all_exist),
        Err(PlanError::Pool(_))
    ));
}

#[test]
fn publish_parsing() {
    let p: Publish = "15432:5432".parse().unwrap();
    assert_eq!(p.listen.to_string(), "127.0.0.1:15432");
    let p: Publish = "0.0.0.0:80:8080".parse().unwrap();
    assert_eq!((p.listen.port(), p.port), (80, 8080));
    let p: Publish = "[::1]:15432:5432".parse().unwrap();
    assert_eq!(p.listen.to_string(), "[::1]:15432");
    for bad in ["5432", "x:5432", "0:5432", "1:70000", "nohost:1:2"] {
        assert!(bad.parse::<Publish>().is_err(), "{bad}");
    }
}

/// `--software snapshot`: the root is laid out from the snapshot (its software read-only from the clone,
/// its top-level links), the init runs through the host's loader, host paths are only the extra ones.
#[test]
fn snapshot_software_plan() {
    use wayback_core::drift::Software;
    use wayback_core::nspawn::HostLib;
    let mut f = facts();
    f.host_paths.binds = vec![];
    f.host_masks = vec![];
    f.snapshot_software = Some(plan::SnapshotSoftware {
        dirs: ["/etc", "/opt", "/usr"].map(PathBuf::from).to_vec(),
        links: vec![
            ("/bin".into(), "usr/bin".into()),
            ("/lib64".into(), "usr/lib64".into()),
        ],
        init_libs: ["ld-linux-x86-64.so.2", "libc.so.6"]
            .map(|n| HostLib {
                name: n.into(),
                path: PathBuf::from("/usr/lib/x86_64-linux-gnu").join(n),
            })
            .to_vec(),
    });
    let mut req = request("nginx-static");
    req.name = Some(InstanceName::new("www-old").unwrap());
    req.software = Some(Software::Snapshot);
    let p = plan::build(&req, &f, &Config::default(), &all_exist).unwrap();
    let root = p.container.snapshot_root.as_ref().unwrap();
    assert_eq!(
        root.dir,
        PathBuf::from("/var/lib/wayback/instances/www-old/root")
    );
    assert!(root.binds.iter().all(|b| b.readonly && b.clone.is_some()));
    let argv = p.container.argv();
    assert!(argv.contains(&"--directory=/var/lib/wayback/instances/www-old/root".into()));
    assert!(!argv.contains(&"--volatile=yes".into()));
    let back: wayback_core::Plan =
        serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
    insta::assert_snapshot!("snapshot_software_plan", p.to_string());

    // Without the binary's facts about the snapshot, there is nothing to lay the root out from.
    let err = plan::build(&req, &facts(), &Config::default(), &all_exist).unwrap_err();
    assert!(matches!(err, PlanError::NotARoot(_)), "{err}");
}

#[test]
fn original_host_forms_and_the_host_check() {
    use wayback_core::plan::{HostCheck, MasqueradeSpec, OriginalHost};
    let spec = |s: &str| MasqueradeSpec::parse(s, true).map(|m| (m.host, m.https));
    assert_eq!(
        spec("cloud.example.org"),
        Ok(("cloud.example.org".into(), true))
    );
    assert_eq!(
        spec("http://wiki.internal:8080"),
        Ok(("wiki.internal:8080".into(), false))
    );
    assert_eq!(
        spec("HTTPS://Wiki.Example.org/"),
        Ok(("wiki.example.org".into(), true))
    );
    assert!(spec("ftp://wiki.example.org").is_err());
    assert!(spec("https://wiki.example.org/start").is_err());
    assert_eq!(OriginalHost::parse(" Auto ", true), Ok(OriginalHost::Auto));

    let plan_of = |original: Option<&str>, no_check: bool, port: Option<u16>| {
        let mut req = request("nginx-static");
        req.original_host = original.map(str::to_string);
        req.no_host_check = no_check;
        req.port = port;
        plan::build(&req, &facts(), &Config::default(), &all_exist)
    };
    let p = plan_of(Some("auto"), false, None).unwrap();
    assert_eq!(
        (p.masquerade.clone(), p.host_check),
        (None, HostCheck::Auto { bodies: true })
    );
    assert!(
        p.to_string()
            .contains("original host: detected after start"),
        "{p}"
    );
    let p = plan_of(Some("http://wiki.internal:8080"), false, None).unwrap();
    assert_eq!(p.host_check, HostCheck::Verify);
    assert_eq!(p.masquerade.unwrap().host, "wiki.internal:8080");
    assert_eq!(
        plan_of(Some("wiki.example.org"), true, None)
            .unwrap()
            .host_check,
        HostCheck::Off
    );
    assert_eq!(
        plan_of(None, false, None).unwrap().host_check,
        HostCheck::Refuse
    );
    assert_eq!(
        plan_of(None, true, None).unwrap().host_check,
        HostCheck::Off
    );
    assert_eq!(
        plan_of(Some("auto"), true, None).unwrap_err(),
        PlanError::AutoWithoutCheck
    );
    // Without an HTTP route there is nothing to check.
    let mut req = request("postgresql");
    req.name = Some(InstanceName::new("pg-x").unwrap());
    let p = plan::build(&req, &facts(), &Config::default(), &all_exist).unwrap();
    assert_eq!(p.host_check, HostCheck::Off);
    // An old plan (before the check existed) reads as the default.
    let mut json = serde_json::to_value(&p).unwrap();
    json.as_object_mut().unwrap().remove("host_check");
    let old: wayback_core::Plan = serde_json::from_value(json).unwrap();
    assert_eq!(old.host_check, HostCheck::Refuse);
}

#[test]
fn boot_flags_need_boot_and_masks_are_unit_names() {
    let (f, cfg) = (facts(), Config::default());
    let mut req = request("nginx-static");
    req.masks = vec!["postfix.service".into()];
    assert_eq!(
        plan::build(&req, &f, &cfg, &all_exist).unwrap_err(),
        PlanError::BootOnly("--mask")
    );
    let mut req = request("nginx-static");
    req.no_default_masks = true;
    assert_eq!(
        plan::build(&req, &f, &cfg, &all_exist).unwrap_err(),
        PlanError::BootOnly("--no-default-masks")
    );
    let mut req = request("nginx-static");
    req.boot = true;
    req.user = Some("www-data".into());
    assert_eq!(
        plan::build(&req, &f, &cfg, &all_exist).unwrap_err(),
        PlanError::UserWithoutExec,
        "--user is refused in boot mode too, not ignored"
    );
    for bad in ["../../../etc/shadow", "a/b.service", "", ".", "..", "x y"] {
        let mut req = request("nginx-static");
        req.boot = true;
        req.masks = vec![bad.into()];
        assert_eq!(
            plan::build(&req, &f, &cfg, &all_exist).unwrap_err(),
            PlanError::BadMask(bad.into()),
            "{bad:?}"
        );
    }
    let mut req = request("nginx-static");
    req.boot = true;
    req.masks = vec!["cron".into(), "postfix@-.service".into()];
    let p = plan::build(&req, &f, &cfg, &all_exist).unwrap();
    assert_eq!(
        p.boot.unwrap().masks,
        ["cron.service", "postfix@-.service"],
        "a unit name without a type is a .service, as for systemctl"
    );
}

#[test]
fn a_host_without_an_http_route_is_refused() {
    let mut req = request("postgresql");
    req.host = Some("old.example.org".into());
    assert_eq!(
        plan::build(&req, &facts(), &Config::default(), &all_exist).unwrap_err(),
        PlanError::HostWithoutHttp("old.example.org".into()),
        "--host without an HTTP route is refused, not ignored"
    );
}

#[test]
fn binds_to_the_containers_own_paths_are_refused() {
    let (f, cfg) = (facts(), Config::default());
    for dest in [
        "/",
        "/run",
        "/proc",
        "/proc/sys",
        "/sys/x",
        "/dev",
        "/dev/shm/",
        "//dev",
    ] {
        let mut req = request("postgresql");
        req.binds = vec![Bind::parse_cli(&format!("/srv:{dest}"))];
        assert!(
            matches!(
                plan::build(&req, &f, &cfg, &all_exist),
                Err(PlanError::BindDestReserved { .. })
            ),
            "{dest}"
        );
    }
    for dest in ["/srv", "/run/postgresql", "/etc/app", "/device"] {
        let mut req = request("postgresql");
        req.binds = vec![Bind::parse_cli(&format!("/srv:{dest}"))];
        assert!(plan::build(&req, &f, &cfg, &all_exist).is_ok(), "{dest}");
    }
}

#[test]
fn masquerade_ports_are_1_to_65535() {
    for bad in [
        "http://x.example:0",
        "x.example:0",
        "https://x.example:99999",
    ] {
        let e = plan::MasqueradeSpec::parse(bad, true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--original-host") && e.contains("http://HOST[:PORT]"),
            "{e}"
        );
    }
    let m = plan::MasqueradeSpec::parse("http://x.example:8080", true).unwrap();
    assert_eq!(m.host, "x.example:8080");
}
