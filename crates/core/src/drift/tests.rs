//! Drift detection on version strings and package lists: PostgreSQL majors, MariaDB data versions, packages.

use super::*;

#[allow(clippy::unnecessary_wraps)] // the inputs hold an Option<Package>
fn pkg(name: &str, version: &str) -> Option<Package> {
    Some(Package {
        name: name.into(),
        version: version.into(),
    })
}

fn pg(version: &str, host: &[&str], snapshot: &[&str]) -> PgInputs {
    let list = |v: &[&str]| v.iter().map(std::string::ToString::to_string).collect();
    PgInputs {
        clusters: vec![PgCluster {
            dir: "/var/lib/postgresql/9/main".into(),
            version: format!("{version}\n"),
        }],
        installed: Sides {
            host: list(host),
            snapshot: list(snapshot),
        },
        named: vec![],
    }
}

#[test]
fn postgres_major_the_host_lacks_is_refused_with_both_versions_and_options() {
    let f = postgres(&pg("9", &["15"], &["9"]), Software::Host);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].level, Level::Refuse);
    insta::assert_snapshot!(f[0].message, @"the PostgreSQL data in /var/lib/postgresql/9/main is version 9 (its PG_VERSION), but this host has PostgreSQL 15 only under /usr/lib/postgresql: a server reads only data of its own major version (a new major needs pg_upgrade, which wayback never runs). Options: `--software snapshot` runs the snapshot's own PostgreSQL 9 (/usr/lib/postgresql/9/bin/postgres there); install postgresql-9 on this host (apt.postgresql.org has the versions Debian no longer ships)");
    // The snapshot lacks it too: only installing helps.
    let f = postgres(&pg("9", &["15"], &[]), Software::Host);
    assert!(f[0].message.contains("cannot help"), "{}", f[0].message);
    // With the snapshot's software, the snapshot's majors count.
    let f = postgres(&pg("9", &["15"], &["9"]), Software::Snapshot);
    assert_eq!(f[0].level, Level::Ok, "{f:?}");
    let f = postgres(&pg("15", &["15"], &["13"]), Software::Snapshot);
    assert_eq!(f[0].level, Level::Refuse);
    assert!(
        f[0].message.contains("`--software host`"),
        "{}",
        f[0].message
    );
    // Old numbering: 9.6 is a major of its own.
    let f = postgres(&pg("9.6", &["9"], &[]), Software::Host);
    assert_eq!(f[0].level, Level::Refuse);
    assert_eq!(pg_major("9.6.24"), "9.6");
    assert_eq!(pg_major("15.4"), "15");
}

#[test]
fn postgres_named_by_the_unit_must_match_the_data() {
    let mut inp = pg("15", &["15", "17"], &[]);
    inp.named = vec![PgNamed {
        version: "17".into(),
        why: "process postgresql@17-main.service (pg_ctlcluster 17-main)".into(),
        debian: true,
    }];
    let f = postgres(&inp, Software::Host);
    assert_eq!(f[0].level, Level::Refuse);
    assert!(
        f[0].message.contains("runs PostgreSQL 17, but the data in"),
        "{}",
        f[0].message
    );
    inp.named[0].version = "15".into();
    assert_eq!(postgres(&inp, Software::Host)[0].level, Level::Ok);
    // The unit's version must be installed too (pg_ctlcluster runs /usr/lib/postgresql/9/bin).
    let mut old = pg("9", &["15"], &[]);
    old.named = vec![PgNamed {
        version: "9".into(),
        why: "process postgresql@9-main.service (pg_ctlcluster 9-main)".into(),
        debian: true,
    }];
    assert_eq!(postgres(&old, Software::Host)[0].level, Level::Refuse);
    // A store path carries its own binaries.
    old.named[0].debian = false;
    assert_eq!(postgres(&old, Software::Host)[0].level, Level::Ok);
}

#[test]
fn mariadb_newer_data_is_refused_older_data_is_a_warning() {
    let data = |v: &str| MyInputs {
        data: vec![MyData {
            dir: "/var/lib/mysql".into(),
            version: v.into(),
        }],
        server: Sides {
            host: pkg("mariadb-server-core", "1:10.11.6-0+deb12u1"),
            snapshot: pkg("mariadb-server-core-10.5", "1:10.5.23-0+deb11u1"),
        },
    };
    let f = mysql(&data("11.4.2-MariaDB"), Software::Host);
    assert_eq!(f[0].level, Level::Refuse);
    assert!(
        f[0].message.contains("11.4.2-MariaDB") && f[0].message.contains("10.11.6"),
        "both versions: {}",
        f[0].message
    );
    let f = mysql(&data("10.5.23-MariaDB"), Software::Host);
    assert_eq!(f[0].level, Level::Warn);
    assert!(
        f[0].message
            .contains("may upgrade the clone's data on start")
            && f[0].message.contains("`--software snapshot`"),
        "{}",
        f[0].message
    );
    assert_eq!(
        mysql(&data("10.11.2-MariaDB"), Software::Host)[0].level,
        Level::Ok
    );
    assert_eq!(
        mysql(&data("10.5.23-MariaDB"), Software::Snapshot)[0].level,
        Level::Ok
    );
    let f = mysql(&data("8.0.36"), Software::Host);
    assert_eq!(f[0].level, Level::Refuse, "MySQL data, MariaDB server");
    let mut none = data("10.11.2-MariaDB");
    none.server.host = None;
    assert_eq!(mysql(&none, Software::Host)[0].level, Level::Note);
}

#[test]
fn programs_missing_and_package_versions() {
    let prog = |host: bool, snap: bool, hv: &str, sv: &str| Program {
        path: "/usr/sbin/nginx".into(),
        process: "nginx.service".into(),
        required: true,
        exists: Sides {
            host,
            snapshot: snap,
        },
        package: Sides {
            host: host.then(|| pkg("nginx", hv)).flatten(),
            snapshot: snap.then(|| pkg("nginx", sv)).flatten(),
        },
        databases: Sides {
            host: true,
            snapshot: true,
        },
    };
    let f = programs(&[prog(false, true, "", "1.18.0-6.1")], Software::Host);
    assert_eq!(f[0].level, Level::Refuse);
    assert!(
        f[0].message.contains("(from nginx 1.18.0-6.1)")
            && f[0].message.contains("`--software snapshot`"),
        "{}",
        f[0].message
    );
    let f = programs(
        &[prog(true, true, "1.22.1-9", "1.18.0-6.1")],
        Software::Host,
    );
    assert_eq!(f[0].level, Level::Warn);
    assert!(
        f[0].message.contains("this host's is newer"),
        "{}",
        f[0].message
    );
    let f = programs(
        &[prog(true, true, "1.22.1-9", "1.18.0-6.1")],
        Software::Snapshot,
    );
    assert_eq!(f[0].level, Level::Note);
    let f = programs(&[prog(true, true, "1.22.1-9", "1.22.1-9")], Software::Host);
    assert_eq!(f[0].level, Level::Ok);
    let f = programs(
        &[prog(true, true, "1.22.1-9+deb12u12", "1.22.1-9+deb12u9")],
        Software::Host,
    );
    assert_eq!(f[0].level, Level::Note, "a packaging revision only");
    // Only the running side has it: a note, when the other side has a package database at all.
    let mut only = prog(true, false, "1.22.1-9", "");
    assert_eq!(
        programs(&[only.clone()], Software::Host)[0].level,
        Level::Note
    );
    only.databases.snapshot = false;
    assert!(programs(&[only], Software::Host).is_empty());
    let mut optional = prog(false, true, "", "1");
    optional.required = false;
    assert!(programs(&[optional], Software::Host).is_empty());
}

#[test]
fn why_the_software_was_chosen() {
    assert_eq!(why(Software::Snapshot, true, &[]), "--software snapshot");
    let ok = Finding::new(Level::Ok, "x", String::new());
    assert_eq!(
        why(Software::Host, false, &[ok]),
        "the default; no drift found"
    );
    let warn = Finding::new(Level::Warn, "x", String::new());
    assert!(why(Software::Host, false, &[warn]).contains("can be handled"));
    assert_eq!("snapshot".parse::<Software>(), Ok(Software::Snapshot));
    assert!("both".parse::<Software>().is_err());
}
