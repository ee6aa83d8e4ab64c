//! Tier 0: profiles from systemd unit files in fixture trees (tests/fixtures/units/): Debian 12's real unit
//! files, a NixOS-style tree of symlinks into a fake /nix/store, and synthetic units for drop-ins,
//! EnvironmentFile, ordering and reports. No system access beyond reading the fixtures.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use wayback_core::profile::{Bind, Profile, Ready};
use wayback_core::units::{
    group_reports, nothing_bound, profile_from_units, render_conversion, render_toml, Conversion,
    FsUnitSource, Options, Report, ReportKind, UnitError,
};

fn fixture(tree: &str) -> FsUnitSource {
    FsUnitSource::new(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/units")
            .join(tree),
    )
}

fn nothing_in_snapshot(_: &Path) -> bool {
    false
}

fn build(
    tree: &str,
    names: &[&str],
    opts: &Options,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<(Profile, Vec<Report>), UnitError> {
    convert(tree, names, opts, exists).map(|c| (c.profile, c.reports))
}

fn convert(
    tree: &str,
    names: &[&str],
    opts: &Options,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Conversion, UnitError> {
    let src = fixture(tree);
    profile_from_units(names, "generated", &src, &src, exists, opts)
}

/// The conversion's state candidates (by the path named) include every one of `want` and none of `never`.
fn assert_candidates(c: &Conversion, want: &[&str], never: &[&str]) {
    let named: Vec<String> = c
        .state
        .candidates
        .iter()
        .map(|x| x.named.display().to_string())
        .collect();
    for w in want {
        assert!(named.iter().any(|n| n == w), "{w} not in {named:#?}");
    }
    for n in never {
        assert!(!named.iter().any(|x| x == n), "{n} in {named:#?}");
    }
}

/// The paths a conversion's profile binds, in order.
fn bind_paths(c: &Conversion) -> Vec<&Path> {
    c.profile.binds.iter().map(Bind::path).collect()
}

/// The rendered TOML parses back to the same profile, and every wrapper script is valid sh.
fn rendered(p: &Profile, reports: &[Report]) -> String {
    for proc in &p.processes {
        if let Some(script) = &proc.shell {
            let out = std::process::Command::new("/bin/sh")
                .args(["-n", "-c", script])
                .output()
                .expect("run /bin/sh -n");
            assert!(
                out.status.success(),
                "{}: {}\n{script}",
                proc.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let text = render_toml(p, reports);
    let back = Profile::parse(&text, "rendered").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(&back, p, "round trip changed the profile:\n{text}");
    text
}

fn has(reports: &[Report], directive: &str, needle: &str) -> bool {
    reports
        .iter()
        .any(|r| r.directive == directive && r.message.contains(needle))
}

#[test]
fn debian_mariadb_php_fpm_nginx() {
    let opts = Options {
        http_port: Some(80),
        ready_ports: BTreeMap::from([("nginx".to_string(), 80)]),
        ..Options::default()
    };
    let (p, reports) = build(
        "debian",
        &["nginx", "php8.2-fpm", "mariadb"],
        &opts,
        &nothing_in_snapshot,
    )
    .unwrap();
    let names: Vec<&str> = p.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["nginx", "php8.2-fpm", "mariadb"],
        "no ordering among them: the given order"
    );
    let maria = &p.processes[2];
    assert_eq!(
        maria.user, None,
        "ExecStartPost=! needs root: the wrapper drops to mysql"
    );
    assert_eq!(
        maria.env["MYSQLD_OPTS"], "--skip-name-resolve --max-connections=50",
        "from the drop-in"
    );
    let sh = maria.shell.as_deref().unwrap();
    assert!(sh.contains("umask 0007"), "{sh}");
    assert!(sh.contains("\"$setpriv\" --reuid=mysql --regid=mysql --init-groups -- /bin/sh -c"));
    assert!(
        sh.contains("until [ -S /run/mysqld/mysqld.sock ]"),
        "waits for the socket from mariadb.socket"
    );
    assert!(sh.contains("/etc/mysql/debian-start ||"));
    assert!(has(&reports, "ProtectSystem", "sandboxing"));
    assert!(has(&reports, "Restart", "does not restart"));
    assert!(
        !reports.iter().any(|r| r.directive == "LimitNOFILE"),
        "reset by the drop-in"
    );
    assert!(
        !reports.iter().any(|r| r.directive == "PrivateTmp"),
        "PrivateTmp=false asks nothing"
    );
    let nginx = &p.processes[0];
    assert!(nginx
        .shell
        .as_deref()
        .unwrap()
        .contains("main=$(cat /run/nginx.pid)"));
    assert!(has(&reports, "ExecStop", "not run"));
    let fpm = p.processes[1].shell.as_deref().unwrap();
    assert!(
        fpm.contains("--fpm-config /etc/php/8.2/fpm/php-fpm.conf &\nmain=$!"),
        "ExecStartPost= runs while php-fpm runs in the background: {fpm}"
    );
    let dirs: Vec<&Path> = p.dirs.iter().map(|d| d.path.as_path()).collect();
    assert!(
        dirs.contains(&Path::new("/run/php")) && dirs.contains(&Path::new("/run/mysqld")),
        "from tmpfiles.d"
    );
    insta::assert_snapshot!("debian_stack", rendered(&p, &reports));
}

#[test]
fn debian_postgresql_instance_and_alias() {
    let (p, reports) = build(
        "debian",
        &["postgresql", "postgresql@15-main"],
        &Options::default(),
        &nothing_in_snapshot,
    )
    .unwrap();
    let names: Vec<&str> = p.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["postgresql@15-main", "postgresql"],
        "postgresql@.service says Before=postgresql.service"
    );
    let sh = p.processes[0].shell.as_deref().unwrap();
    assert!(
        sh.contains("/usr/bin/pg_ctlcluster --skip-systemctl-redirect 15-main start || :"),
        "{sh}"
    );
    assert!(
        sh.contains("main=$(cat /run/postgresql/15-main.pid)"),
        "{sh}"
    );
    assert!(has(&reports, "AssertPathExists", "not checked"));
    assert!(
        p.description.contains("PostgreSQL Cluster 15-main"),
        "%i expanded: {}",
        p.description
    );
    insta::assert_snapshot!("debian_postgresql", rendered(&p, &reports));

    let (p, reports) = build(
        "debian",
        &["mysql"],
        &Options::default(),
        &nothing_in_snapshot,
    )
    .unwrap();
    assert_eq!(p.processes[0].name, "mariadb");
    assert!(reports
        .iter()
        .any(|r| r.message.contains("alias of mariadb.service")));
    assert!(matches!(
        build("debian", &["mysql", "mariadb"], &Options::default(), &nothing_in_snapshot),
        Err(UnitError::Duplicate(u)) if u == "mariadb.service"
    ));
}

#[test]
fn nixos_store_links() {
    let in_snapshot = |p: &Path| {
        [
            "/var/lib/wiki",
            "/var/lib/postgresql",
            "/var/lib/postgresql/16",
        ]
        .iter()
        .any(|x| p == Path::new(x))
    };
    let (p, reports) = build(
        "nixos",
        &["wiki", "postgresql"],
        &Options::default(),
        &in_snapshot,
    )
    .unwrap();
    assert_eq!(
        p.processes[0].name, "postgresql",
        "wiki is After=postgresql.service"
    );
    let wiki = &p.processes[1];
    assert_eq!(
        wiki.shell.as_deref().unwrap().lines().last().unwrap(),
        "exec /nix/store/w3i4-wiki-1.2.3/bin/wiki --data /var/lib/wiki/data --listen 127.0.0.1:3000",
        "store paths kept, ${{WIKI_DATA}} from the drop-in (a link into the store)"
    );
    assert!(wiki.env["PATH"].starts_with("/nix/store/a1c2-coreutils-9.5/bin:"));
    assert_eq!(wiki.env["STATE_DIRECTORY"], "/var/lib/wiki");
    let binds: Vec<(&Path, &str)> = p
        .binds
        .iter()
        .map(|b| (b.path(), b.reason().unwrap()))
        .collect();
    assert_eq!(
        binds,
        [
            (Path::new("/var/lib/postgresql"), "StateDirectory=postgresql of postgresql.service; StateDirectory=postgresql/16 of postgresql.service; PGDATA=/var/lib/postgresql/16 in Environment= of postgresql.service"),
            (Path::new("/var/lib/wiki"), "StateDirectory=wiki of wiki.service; WorkingDirectory=/var/lib/wiki of wiki.service"),
        ],
        "StateDirectory= in the snapshot become binds; /var/lib/postgresql/16 is inside /var/lib/postgresql"
    );
    assert!(reports.iter().any(|r| r.message.contains(
        "/etc/systemd/system/wiki.service is a link to /nix/store/u1b2-unit-wiki.service/wiki.service"
    )));
    assert!(!reports.iter().any(|r| r.directive.starts_with("X-")));
    insta::assert_snapshot!("nixos", rendered(&p, &reports));
}

#[test]
fn synthetic_dropins_environment_order_and_reports() {
    let opts = Options {
        http_port: Some(8080),
        ready_ports: BTreeMap::from([("app.service".to_string(), 8080)]),
        ..Options::default()
    };
    let in_snapshot = |p: &Path| p == Path::new("/var/lib/db");
    let (p, reports) = build(
        "synthetic",
        &["app", "db", "cache", "setup"],
        &opts,
        &in_snapshot,
    )
    .unwrap();
    let names: Vec<&str> = p.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["db", "cache", "setup", "app"]);

    let app = &p.processes[3];
    let sh = app.shell.as_deref().unwrap();
    assert!(
        !sh.contains("/bin/false"),
        "the lower-priority drop-in of the same name is shadowed"
    );
    assert!(
        sh.contains("/usr/bin/app-warmup --fast || :"),
        "ExecStartPost= reset by the drop-in"
    );
    assert!(
        sh.contains("--greeting 'hello world' --verbose --color=auto --unit app.service --host %H"),
        "{sh}"
    );
    assert!(
        sh.contains("/usr/bin/app-migrate --config /etc/app/app.conf --lock /run/app/migrate.lock")
    );
    assert!(sh.contains("umask 0027"));
    assert_eq!(
        app.env["APP_SECRET"], "s3cr3t \"quoted\"",
        "EnvironmentFile through the reader"
    );
    assert_eq!(app.env["FROM_ALL"], "1", "service.d/ drop-in");
    assert!(!app.env.contains_key("MODE"), "UnsetEnvironment=");
    assert_eq!(app.env["EMPTY"], "");
    assert_eq!(app.stop_signal.as_deref(), Some("SIGINT"));
    assert_eq!(app.workdir.as_deref(), Some(Path::new("/srv/app")));

    let db = &p.processes[0];
    assert_eq!(db.user.as_deref(), Some("db"));
    assert!(db
        .shell
        .as_deref()
        .unwrap()
        .contains("main=$(cat /run/db/db.pid)\ntrap 'kill -s QUIT \"$main\" 2>/dev/null' QUIT"));
    assert_eq!(
        p.binds,
        [Bind::explained(
            "/var/lib/db".into(),
            None,
            "StateDirectory=db of db.service"
        )]
    );
    let cache = &p.processes[1];
    assert_eq!(
        cache.ready.as_ref().unwrap().tcp,
        Some(6380),
        "from cache.socket"
    );
    assert_eq!(
        cache.command.as_ref().unwrap(),
        &["/usr/bin/cache", "--foreground"]
    );
    let dirs: Vec<&Path> = p.dirs.iter().map(|d| d.path.as_path()).collect();
    assert!(
        dirs.contains(&Path::new("/run/app/sockets")) && dirs.contains(&Path::new("/var/lib/app"))
    );
    assert!(
        !dirs.contains(&Path::new("/var/lib/db")),
        "bound, not created"
    );
    assert_eq!(
        p.dirs
            .iter()
            .find(|d| d.path == Path::new("/run/app"))
            .unwrap()
            .mode
            .as_deref(),
        Some("0750")
    );

    for (directive, needle) in [
        ("PrivateTmp", "private to the instance"),
        ("ProtectSystem", "sandboxing"),
        ("CapabilityBoundingSet", "capabilities"),
        ("Restart", "does not restart"),
        ("Slice", "cgroup"),
        ("MemoryMax", "cgroup"),
        ("LoadCredential", "credentials"),
        ("ConditionPathExists", "not checked"),
        ("Frobnicate", "unknown to wayback"),
        ("LimitNOFILE", "limits"),
        ("SupplementaryGroups", "not added"),
        ("EnvironmentFile", "app-missing"),
        ("ExecStart", "%H"),
        ("Description", "%H"),
        ("ExecStartPre", "setpriv"),
        ("WorkingDirectory", "must exist"),
        ("Wants", "metrics.service is not among the listed units"),
        ("ExecStop", "not run"),
        ("Type", "supervises the daemon"),
        ("Type", "run once"),
        ("Type", "no sd_notify"),
        ("", "not Key=value"),
    ] {
        assert!(
            has(&reports, directive, needle),
            "no report {directive}: {needle}\n{reports:#?}"
        );
    }
    assert!(
        !reports.iter().any(|r| r.directive == "PrivateDevices"),
        "PrivateDevices=no asks nothing"
    );
    assert!(
        !reports.iter().any(|r| r.message.contains("app-optional")),
        "a missing optional file is fine"
    );
    let line = reports
        .iter()
        .find(|r| r.directive == "Frobnicate")
        .unwrap();
    assert_eq!(line.line, Some(43));
    assert_eq!(line.kind, ReportKind::Ignored);
    assert_eq!(
        line.to_string(),
        "/etc/systemd/system/app.service:43: Frobnicate=yes: unknown to wayback: not honoured"
    );
    insta::assert_snapshot!("synthetic", rendered(&p, &reports));
}

#[test]
fn forking_without_pidfile_templates_and_prefixes() {
    let (p, reports) = build(
        "synthetic",
        &["legacy", "worker@mail-queue"],
        &Options::default(),
        &nothing_in_snapshot,
    )
    .unwrap();
    let legacy = p.processes[0].shell.as_deref().unwrap();
    assert!(legacy.ends_with("/usr/sbin/legacyd || exit\n: > /run/wayback-units/legacy.service.started\nexec sleep infinity\n"), "{legacy}");
    assert!(has(&reports, "Type", "unsupported without PIDFile="));
    let worker = p.processes[1].command.as_ref().unwrap();
    assert_eq!(
        worker,
        &[
            "/usr/bin/worker",
            "--queue",
            "mail/queue",
            "--dir",
            "/var/lib/worker/mail-queue"
        ]
    );
    assert!(has(&reports, "ExecStart", "argv[0] \"worker-mail-queue\""));
    insta::assert_snapshot!("legacy_worker", rendered(&p, &reports));
}

#[test]
fn errors_name_the_problem() {
    let err = |names: &[&str]| {
        build(
            "synthetic",
            names,
            &Options::default(),
            &nothing_in_snapshot,
        )
        .unwrap_err()
    };
    let e = err(&["cyc-a", "cyc-b", "cyc-c"]);
    assert_eq!(
        e.to_string(),
        "ordering cycle among the listed units: cyc-a.service -> cyc-b.service -> cyc-c.service -> cyc-a.service (each must start before the next, by After=/Before=); drop a unit from the list or override an ordering in a drop-in"
    );
    assert!(matches!(err(&["masked"]), UnitError::Masked { .. }));
    assert!(err(&["worker@"])
        .to_string()
        .contains("worker@NAME.service"));
    let e = err(&["nope"]).to_string();
    assert!(
        e.contains("nope.service not found") && e.contains("/etc/systemd/system"),
        "{e}"
    );
    assert!(matches!(err(&["cache.socket"]), UnitError::NotService(_)));
    assert!(matches!(err(&[]), UnitError::NoUnits));
    assert!(matches!(err(&["a b"]), UnitError::BadName(_)));
    let e = err(&["twostarts"]).to_string();
    assert!(e.starts_with("/etc/systemd/system/twostarts.service.d/bad.conf:2: unit twostarts.service: Type=simple allows one ExecStart=, found 2"), "{e}");
}

#[test]
fn environment_files_through_a_closure() {
    let src = fixture("synthetic");
    let files: BTreeMap<PathBuf, &str> = BTreeMap::from([
        (
            PathBuf::from("/etc/default/app"),
            "APP_SECRET=from-closure\n",
        ),
        (PathBuf::from("/etc/default/app-missing"), "LATE=1\n"),
    ]);
    let reader = |p: &Path| -> io::Result<String> {
        files
            .get(p)
            .map(std::string::ToString::to_string)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    };
    let c = profile_from_units(
        &["app", "db", "cache"],
        "x",
        &src,
        &reader,
        &nothing_in_snapshot,
        &Options::default(),
    )
    .unwrap();
    let (p, reports) = (c.profile, c.reports);
    let app = p.processes.iter().find(|p| p.name == "app").unwrap();
    assert_eq!(app.env["APP_SECRET"], "from-closure");
    assert_eq!(app.env["LATE"], "1");
    assert!(!reports.iter().any(|r| r.message.contains("cannot read")));
}

/// What a conversion inferred, as text: binds with reasons, the state paths not bound, log directories,
/// configuration files, ports, and the reports about unreadable configs.
fn inferred(c: &Conversion) -> String {
    let mut out = String::new();
    let mut section = |title: &str, lines: Vec<String>| {
        out.push_str(title);
        out.push('\n');
        for l in lines {
            out.push_str("  ");
            out.push_str(&l);
            out.push('\n');
        }
    };
    section(
        "binds:",
        c.profile
            .binds
            .iter()
            .map(|b| {
                let dest = match b.dest() == b.path() {
                    true => String::new(),
                    false => format!(" -> {}", b.dest().display()),
                };
                format!(
                    "{}{dest}: {}",
                    b.path().display(),
                    b.reason().unwrap_or("-")
                )
            })
            .collect(),
    );
    let cands = |list: &[wayback_core::units::Candidate]| {
        list.iter()
            .map(|x| {
                format!(
                    "{}: {} ({:?}, as {}): {}",
                    x.unit,
                    x.named.display(),
                    x.role,
                    x.path.display(),
                    x.reason
                )
            })
            .collect()
    };
    section("not in the snapshot:", cands(&c.state.missing));
    section("left out (--no-bind):", cands(&c.state.dropped));
    section("logs:", cands(&c.state.logs));
    section(
        "configs:",
        c.configs
            .iter()
            .map(|x| {
                format!(
                    "{}: {} [{:?}]: {}",
                    x.unit,
                    x.path.display(),
                    x.kind,
                    x.reason
                )
            })
            .collect(),
    );
    section(
        "ports:",
        c.ports
            .iter()
            .map(|p| format!("{}: {} ({})", p.unit, p.port, p.source))
            .collect(),
    );
    section(
        "process readiness:",
        c.profile
            .processes
            .iter()
            .map(|p| format!("{}: {:?}", p.name, p.ready))
            .collect(),
    );
    section(
        "instance readiness:",
        vec![format!("{:?}", c.profile.ready)],
    );
    section(
        "config problems:",
        c.reports
            .iter()
            .filter(|r| r.file.is_none() && r.kind == ReportKind::Ignored)
            .map(std::string::ToString::to_string)
            .collect(),
    );
    out
}

/// The state directories the snapshot of a typical Debian server has (no PostgreSQL cluster of 15/main).
fn debian_snapshot(p: &Path) -> bool {
    [
        "/var/lib/redis",
        "/var/lib/mosquitto",
        "/var/lib/mysql",
        "/var/www/html",
        "/var/log/redis",
    ]
    .iter()
    .any(|x| p == Path::new(x))
}

#[test]
fn debian_redis_and_mosquitto_need_no_binds() {
    let c = convert(
        "debian",
        &["redis-server", "mosquitto"],
        &Options::default(),
        &debian_snapshot,
    )
    .unwrap();
    let binds = bind_paths(&c);
    assert_eq!(
        binds,
        [Path::new("/var/lib/redis"), Path::new("/var/lib/mosquitto")]
    );
    let redis = &c.profile.processes[0];
    assert_eq!(
        redis.ready.as_ref().unwrap().tcp,
        Some(6379),
        "from redis.conf's port"
    );
    assert!(
        c.profile
            .dirs
            .iter()
            .any(|d| d.path == Path::new("/var/log/redis") && d.owner.as_deref() == Some("redis")),
        "redis.conf's logfile directory is created for redis: {:?}",
        c.profile.dirs
    );
    assert!(c.configs.iter().any(
        |f| f.path == Path::new("/etc/mosquitto/passwd") && f.reason.contains("password_file")
    ));
    assert!(
        c.reports.iter().any(|r| r.directive == "Type"
            && r.message.contains("readiness is TCP port 6379 accepting a connection (port 6379 in /etc/redis/redis.conf:")),
        "the report says where the port comes from"
    );
    assert!(nothing_bound(&c.profile.binds, &c.state.candidates).is_none());
    insta::assert_snapshot!("debian_redis_mosquitto", inferred(&c));
    let text = render_conversion(&c);
    assert_eq!(
        Profile::parse(&text, "rendered").unwrap(),
        c.profile,
        "{text}"
    );
    insta::assert_snapshot!("debian_redis_mosquitto_profile", text);
}

#[test]
fn debian_postgresql_mariadb_nginx_php_fpm() {
    let c = convert(
        "debian",
        &["postgresql@15-main", "mariadb", "php8.2-fpm", "nginx"],
        &Options::default(),
        &debian_snapshot,
    )
    .unwrap();
    let missing: Vec<&Path> = c.state.missing.iter().map(|m| m.named.as_path()).collect();
    assert_eq!(
        missing,
        [Path::new("/var/lib/postgresql/15/main")],
        "the cluster is not in this snapshot"
    );
    assert!(c.state.missing[0]
        .reason
        .starts_with("data_directory = '/var/lib/postgresql/15/main' in /etc/postgresql/15/main/postgresql.conf:"));
    let maria = c
        .profile
        .binds
        .iter()
        .find(|b| b.path() == Path::new("/var/lib/mysql"))
        .unwrap();
    assert!(
        maria.reason().unwrap().contains("default datadir"),
        "{maria:?}"
    );
    assert!(c
        .profile
        .binds
        .iter()
        .any(|b| b.path() == Path::new("/var/www/html")
            && b.reason()
                .unwrap()
                .starts_with("root /var/www/html in /etc/nginx/sites-enabled/default:")));
    let configs: Vec<&Path> = c.configs.iter().map(|f| f.path.as_path()).collect();
    for f in [
        "/etc/postgresql/15/main/pg_hba.conf",
        "/etc/mysql/my.cnf",
        "/etc/mysql/mariadb.conf.d/50-server.cnf",
        "/etc/nginx/sites-enabled/default",
        "/etc/php/8.2/fpm/pool.d/www.conf",
        "/etc/php/8.2/fpm/php.ini",
    ] {
        assert!(configs.contains(&Path::new(f)), "{f} not in {configs:#?}");
    }
    assert_eq!(
        c.profile.ready,
        Some(Ready::tcp(80)),
        "nginx (last) is ready by its start marker; the instance waits for its listen port"
    );
    insta::assert_snapshot!("debian_pg_maria_fpm_nginx", inferred(&c));
}

#[test]
fn include_chains_comments_and_quotes() {
    let exists =
        |p: &Path| !p.starts_with("/var/lib/private") && !p.starts_with("/srv/plain/extra");
    let c = convert(
        "apps",
        &[
            "kv",
            "db",
            "pg@16-other",
            "pg@17-linked",
            "web",
            "fpm",
            "mqtt",
            "plain",
        ],
        &Options::default(),
        &exists,
    )
    .unwrap();
    assert_candidates(
        &c,
        &[
            "/srv/kv data",
            "/data/db",
            "/srv/pg's data/16",
            "/srv/wiki",
            "/var/www/files",
            "/srv/api",
            "/srv/mqtt",
        ],
        &[
            "/never",
            "/commented",
            "/not/the/server",
            "/var/lib/first",
            "/var/lib/old-kv",
        ],
    );
    insta::assert_snapshot!("apps", inferred(&c));
}

#[test]
fn no_bind_leaves_out_inferred_and_builtin_binds() {
    let opts = Options {
        no_bind: vec!["/var/lib/mosquitto".into(), "/var/lib/nothing".into()],
        ..Options::default()
    };
    let c = convert(
        "debian",
        &["redis-server", "mosquitto"],
        &opts,
        &debian_snapshot,
    )
    .unwrap();
    let binds = bind_paths(&c);
    assert_eq!(binds, [Path::new("/var/lib/redis")]);
    assert_eq!(c.state.dropped.len(), 1);
    let text = render_conversion(&c);
    assert!(
        text.contains("# State paths the units name, left out with --no-bind:\n# - /var/lib/mosquitto (persistence_location /var/lib/mosquitto/ in /etc/mosquitto/mosquitto.conf:9)\n"),
        "{text}"
    );
    assert_eq!(c.no_bind_unmatched, [PathBuf::from("/var/lib/nothing")]);

    let mut p = Profile::find("nginx-php", &[]).unwrap();
    let d = p.drop_binds(&["/var/www".into()]);
    assert!(p.binds.is_empty() && d.removed.len() == 1 && d.unmatched.is_empty());
}

#[test]
fn nothing_bound_names_the_candidates() {
    let c = convert(
        "debian",
        &["redis-server"],
        &Options::default(),
        &nothing_in_snapshot,
    )
    .unwrap();
    assert!(c.profile.binds.is_empty());
    let e = nothing_bound(&c.profile.binds, &c.state.candidates).unwrap();
    assert_eq!(
        e.to_string(),
        "nothing of the snapshot would be bound; candidates looked for: /var/lib/redis (ReadWritePaths=-/var/lib/redis of redis-server.service; dir /var/lib/redis in /etc/redis/redis.conf:504); give --bind PATH for the service's state, or --allow-empty to run it on empty state"
    );
    let mut with_snapshot = e.clone();
    with_snapshot.snapshot = Some(("/pool/snaps/1".into(), vec!["/var/lib/other".into()]));
    assert_eq!(
        with_snapshot.to_string(),
        "nothing of the snapshot /pool/snaps/1 would be bound; candidates looked for: /var/lib/redis (ReadWritePaths=-/var/lib/redis of redis-server.service; dir /var/lib/redis in /etc/redis/redis.conf:504); the snapshot has /var/lib/other; give --bind PATH for the service's state, or --allow-empty to run it on empty state"
    );
    with_snapshot.snapshot = Some(("/pool/snaps/1".into(), Vec::new()));
    assert!(
        with_snapshot
            .to_string()
            .contains("; the snapshot has no directory in /var/lib, /srv, /var/www or /home (a snapshot of the whole root holds them at the live system's paths);"),
        "{with_snapshot}"
    );
    let extra = [Bind::parse_cli("/srv/data")];
    assert!(
        nothing_bound(&extra, &c.state.candidates).is_none(),
        "an explicit --bind counts"
    );

    let c = convert("apps", &["plain"], &Options::default(), &|p: &Path| {
        p.starts_with("/var/cache")
    })
    .unwrap();
    assert_eq!(c.profile.binds.len(), 1, "the cache is bound");
    let e = nothing_bound(&c.profile.binds, &c.state.candidates).unwrap();
    assert!(
        e.to_string()
            .contains("/var/lib/private/plain (StateDirectory=plain of plain.service)"),
        "{e}"
    );
    let e = nothing_bound(&[], &[]).unwrap().to_string();
    assert!(e.contains("the units name no state path"), "{e}");
}

#[test]
fn reports_collapse_across_units() {
    let c = convert(
        "debian",
        &["redis-server", "mosquitto", "nginx"],
        &Options::default(),
        &debian_snapshot,
    )
    .unwrap();
    let groups = group_reports(&c.reports);
    let lines: Vec<String> = groups
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    assert!(
        lines.contains(&"Restart= ignored in 2 units (redis-server, mosquitto): not honoured: wayback does not restart processes; when one exits, the instance stops".to_string()),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ExecReload= ignored in 2 units (mosquitto, nginx)")),
        "{lines:#?}"
    );
    let total: usize = groups.iter().map(|g| g.reports.len()).sum();
    assert_eq!(total, c.reports.len(), "--verbose still has every report");
    assert!(
        lines.len() * 2 < c.reports.len(),
        "{} lines for {} reports",
        lines.len(),
        c.reports.len()
    );
    insta::assert_snapshot!("collapsed_reports", lines.join("\n"));
}

#[test]
fn an_unknown_port_names_the_flag_that_gives_it() {
    let c = convert(
        "apps",
        &["unknownd"],
        &Options::default(),
        &nothing_in_snapshot,
    )
    .unwrap();
    let r = c.reports.iter().find(|r| r.directive == "Type").unwrap();
    assert_eq!(
        r.message,
        "no sd_notify socket in the instance: no port is known, so the next process starts without waiting (give one with --ready unknownd=PORT)"
    );
    assert!(c.ports.is_empty() && c.profile.ready.is_none());
    let opts = Options {
        ready_ports: BTreeMap::from([("unknownd".to_string(), 4000)]),
        ..Options::default()
    };
    let c = convert("apps", &["unknownd"], &opts, &nothing_in_snapshot).unwrap();
    assert_eq!(c.ports[0].source, "given with --ready");
    assert!(c.reports.iter().any(|r| r
        .message
        .ends_with("readiness is TCP port 4000 accepting a connection (given with --ready)")));
}

#[test]
fn caddy_sites_imports_and_ports() {
    let c = convert("apps", &["caddy"], &Options::default(), &|p: &Path| {
        p.starts_with("/srv")
    })
    .unwrap();
    assert_candidates(
        &c,
        &[
            "/srv/caddy site",
            "/srv/shop",
            "/srv/snippet",
            "/var/log/caddy",
        ],
        &["/commented", "/srv/shop/{host}"],
    );
    let configs: Vec<String> = c
        .configs
        .iter()
        .map(|x| x.path.display().to_string())
        .collect();
    for want in [
        "/etc/caddy/Caddyfile",
        "/etc/caddy/sites/shop.caddy",
        "/etc/caddy/shop.crt",
        "/etc/caddy/shop.key",
    ] {
        assert!(
            configs.iter().any(|n| n == want),
            "{want} not in {configs:#?}"
        );
    }
    assert_eq!(
        c.profile.processes[0].ready,
        Some(Ready::tcp(8080)),
        "the first site is http://, and the global options set http_port 8080"
    );
    let text = render_conversion(&c);
    assert!(
        text.contains("http://wiki.example.org in /etc/caddy/Caddyfile:11"),
        "{text}"
    );
}
