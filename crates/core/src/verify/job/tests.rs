//! Verify job files: every key, unknown keys refused naming the key (never the value), `[run]` as `up` arguments.

use std::path::Path;

use super::*;
use crate::verify::check::{CheckKind, SqlClient};

const PG: &str = r#"
description = "invoices"
root = "/persist/.snapshots"
timeout = "5m"
[run]
unit = ["postgresql@15-main"]
env = { PGTZ = "UTC" }
[[check]]
name = "port"
tcp = 5432
[[check]]
name = "invoices"
sql = "SELECT count(*) FROM invoices"
client = "psql"
database = "shop"
min = 3
"#;

fn file() -> &'static Path {
    Path::new("/etc/wayback/verify.d/pg-main.toml")
}

#[test]
fn a_job_parses_into_typed_checks() {
    let job = parse(PG, file()).unwrap();
    assert_eq!(job.name, "pg-main");
    assert_eq!(job.timeout, Duration(300));
    assert_eq!(job.checks.len(), 2);
    assert_eq!(job.checks[0].kind, CheckKind::Tcp { port: 5432 });
    let CheckKind::Sql {
        client, argv, user, ..
    } = &job.checks[1].kind
    else {
        panic!("not sql: {:?}", job.checks[1]);
    };
    assert_eq!(*client, SqlClient::Psql);
    assert_eq!(user, "postgres");
    assert_eq!(argv.first().map(String::as_str), Some("psql"));
    assert!(argv.contains(&"--dbname=shop".to_string()), "{argv:?}");
    assert!(argv.contains(&"--command=SELECT count(*) FROM invoices".to_string()));
    assert_eq!(
        job.run.up_args(),
        ["--unit=postgresql@15-main", "--env=PGTZ=UTC"]
    );
}

#[test]
fn up_args_are_one_token_per_value() {
    let run = RunSpec {
        profile: Some("wiki".into()),
        exec: vec!["--weird value".into()],
        bind: vec!["/srv/a".into(), "@2w:/srv/b".into()],
        port: Some(80),
        original_host: Some("wiki.example.org".into()),
        allow_empty: true,
        ready: [("mariadb".to_string(), 3306)].into(),
        ..RunSpec::default()
    };
    assert_eq!(
        run.up_args(),
        [
            "--profile=wiki",
            "--port=80",
            "--original-host=wiki.example.org",
            "--exec=--weird value",
            "--bind=/srv/a",
            "--bind=@2w:/srv/b",
            "--ready=mariadb=3306",
            "--allow-empty",
        ]
    );
}

/// Errors name the file, the line and the key; never a value of the file.
#[test]
fn bad_jobs_name_the_key_and_never_echo_values() {
    let secret = "hunter2-secret";
    let cases: &[(&str, &str)] = &[
        // An unknown key at the top, in [run], in a check.
        ("root = \"/p\"\npubish = \"x\"\n[run]\nunit = [\"a\"]\n", "pubish"),
        ("root = \"/p\"\n[run]\nunit = [\"a\"]\npublish = [\"1:2\"]\n", "publish"),
        (
            "root = \"/p\"\n[run]\nunit = [\"a\"]\n[[check]]\ntcp = 1\nstauts = 200\n",
            "stauts",
        ),
        // Wrong types quote nothing of the value.
        (
            "root = \"/p\"\n[run]\nunit = [\"a\"]\nport = \"hunter2-secret\"\n",
            "run.port",
        ),
        (
            "root = \"/p\"\ntimeout = \"hunter2-secret\"\n[run]\nunit = [\"a\"]\n",
            "timeout",
        ),
        (
            "root = \"/p\"\n[run]\nunit = [\"a\"]\n[[check]]\ntcp = 1\n[[check]]\nhttp = \"/\"\nport = 80\nstatus = 200\nregex = \"hunter2-secret(\"\n",
            "check[2].regex",
        ),
        // A key that belongs to another kind of check.
        (
            "root = \"/p\"\n[run]\nunit = [\"a\"]\n[[check]]\ntcp = 1\ncontains = \"hunter2-secret\"\n",
            "check[1].contains",
        ),
        ("root = \"/p\"\n[run]\nunit = [\"a\"]\n[[check]]\nname = \"x\"\n", "check[1].type"),
        ("root = \"/p\"\n[run]\nenv = { K = \"hunter2-secret\" }\n", "run"),
        ("[run]\nunit = [\"a\"]\n", "root"),
    ];
    for (text, key) in cases {
        let e = parse(text, file()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("pg-main.toml"), "{msg}");
        assert!(msg.contains(key), "{text:?}: {msg} does not name {key}");
        assert!(!msg.contains(secret), "{msg} echoes a value");
    }
    let e = parse(PG.replace("tcp = 5432", "tcp = \"x\"").as_str(), file()).unwrap_err();
    assert_eq!(e.line, Some(10), "{e}");
}

#[test]
fn job_names_come_from_the_file() {
    for bad in [
        "Bad.toml",
        "history.toml",
        "a-very-long-job-name-x.toml",
        "-x.toml",
    ] {
        assert!(name_of(Path::new(bad)).is_err(), "{bad}");
    }
    assert_eq!(name_of(Path::new("/x/pg-1.toml")).unwrap(), "pg-1");
}

#[test]
fn check_names_are_unique_and_default_to_kind_and_number() {
    let text =
        "root = \"/p\"\n[run]\nprofile = \"postgresql\"\n[[check]]\ntcp = 1\n[[check]]\ntcp = 2\n";
    let job = parse(text, file()).unwrap();
    assert_eq!(job.checks[0].name, "tcp-1");
    assert_eq!(job.checks[1].name, "tcp-2");
    let dup = format!("{text}name = \"tcp-1\"\n");
    let e = parse(&dup, file()).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("check[2].name"), "{e}");
}

#[test]
fn http_checks_default_to_the_runs_port_and_original_host() {
    let text = "root = \"/p\"\n[run]\nunit = [\"nginx\"]\nport = 80\noriginal_host = \"https://wiki.example.org\"\n[[check]]\nhttp = \"/index.php\"\ncontains = \"old text\"\n";
    let job = parse(text, file()).unwrap();
    let CheckKind::Http {
        port,
        host,
        status,
        method,
        ..
    } = &job.checks[0].kind
    else {
        panic!("{:?}", job.checks[0]);
    };
    assert_eq!(
        (*port, host.as_str(), *status, method.as_str()),
        (80, "wiki.example.org", 200, "GET")
    );
    let no_port = "root = \"/p\"\n[run]\nunit = [\"nginx\"]\n[[check]]\nhttp = \"/\"\n";
    assert_eq!(
        parse(no_port, file()).unwrap_err().key.as_deref(),
        Some("check[1].port")
    );
}
