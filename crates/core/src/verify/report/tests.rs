//! The Prometheus textfile and JUnit renderings of verify runs, by content.

use super::*;
use crate::verify::check::{
    eval_exec, eval_file, eval_http, expand_date, CheckKind, Expect, FileFacts,
};

fn run(id: i64, result: Outcome) -> RunReport {
    RunReport {
        id,
        job: "pg".into(),
        snapshot: SnapshotRef {
            id: 4,
            path: "/pool/snaps/s4".into(),
            date: 1_700_000_000,
            uuid: Some("u4".into()),
            series: "plain /pool/snaps".into(),
        },
        instance: format!("verify-pg-{id}"),
        started: 1_700_003_600,
        duration_ms: 2500,
        result,
        reason: None,
        checks: vec![
            CheckResult {
                name: "port".into(),
                kind: "tcp".into(),
                result: CheckOutcome::Passed,
                reason: None,
                duration_ms: 3,
            },
            CheckResult {
                name: "rows <&>".into(),
                kind: "sql".into(),
                result: if result == Outcome::Passed {
                    CheckOutcome::Passed
                } else {
                    CheckOutcome::Failed
                },
                reason: (result != Outcome::Passed).then(|| {
                    "exit status 1: \"ERROR:  could not open file \\\"base/5/16384\\\"\"".into()
                }),
                duration_ms: 40,
            },
        ],
        version: "0.1.0".into(),
    }
}

#[test]
fn prometheus_text_file() {
    let jobs = [
        JobMetrics {
            job: "pg".into(),
            last: Some(run(7, Outcome::Failed)),
            last_success: Some((1_700_000_100, 1_699_990_000)),
            passed: 5,
            failed: 1,
        },
        JobMetrics {
            job: "new\"job".into(),
            last: None,
            last_success: None,
            passed: 0,
            failed: 0,
        },
    ];
    insta::assert_snapshot!(prometheus(&jobs, 1_700_010_000));
}

#[test]
fn junit_xml_escapes_and_marks_failures() {
    let xml = junit(&[run(1, Outcome::Passed), run(2, Outcome::Failed)]);
    insta::assert_snapshot!(xml);
    roxmltree::Document::parse(&xml).expect("well-formed XML");
}

#[test]
fn expectations() {
    let e = Expect {
        min: Some(3.0),
        ..Expect::default()
    };
    assert!(e.eval("3\n").is_ok());
    assert!(e.eval("2").unwrap_err().contains("less than the minimum 3"));
    assert!(e.eval("ERROR").unwrap_err().contains("not a number"));
    let e = Expect {
        contains: Some("ada".into()),
        regex: Some("^1\\|".into()),
        min_rows: Some(2),
        ..Expect::default()
    };
    assert!(e.eval("1|ada\n2|grace\n").is_ok());
    assert!(e.eval("1|ada\n").unwrap_err().contains("1 rows"));
    assert!(e.eval("2|ada\n1|x").unwrap_err().contains("does not match"));
    let eq = Expect {
        equals: Some("t".into()),
        ..Expect::default()
    };
    assert!(eq.eval(" t \n").is_ok());
    assert!(eq.eval("f").is_err());
}

#[test]
fn exec_and_http_reasons_carry_the_programs_own_words() {
    let sql = CheckKind::Sql {
        client: crate::verify::check::SqlClient::Psql,
        argv: vec!["psql".into()],
        user: "postgres".into(),
        expect: Expect::default(),
    };
    let why = eval_exec(
        &sql,
        1,
        "",
        "psql: ERROR:  could not open file \"base/5/1\"",
    )
    .unwrap_err();
    assert!(
        why.contains("exit status 1") && why.contains("could not open file"),
        "{why}"
    );
    let http = CheckKind::Http {
        method: "GET".into(),
        path: "/".into(),
        port: 80,
        host: "h".into(),
        status: 200,
        expect: Expect {
            contains: Some("old".into()),
            ..Expect::default()
        },
    };
    assert!(eval_http(&http, 200, "the old page").is_ok());
    assert!(eval_http(&http, 404, "gone")
        .unwrap_err()
        .contains("status 404, expected 200"));
    assert!(eval_http(&http, 200, "new page")
        .unwrap_err()
        .contains("does not contain"));
}

#[test]
fn file_checks_count_age_back_from_the_snapshot() {
    let kind = CheckKind::File {
        path: "/srv/up/{year}/{month}/{day}".into(),
        not_empty: true,
        min_size: None,
        max_size: None,
        max_age: Some(crate::Duration(86400)),
    };
    let snap = 1_700_000_000; // 2023-11-14 22:13:20 UTC
    assert_eq!(
        expand_date(
            std::path::Path::new("/srv/up/{year}/{month}/{day}-{date}"),
            snap
        ),
        std::path::PathBuf::from("/srv/up/2023/11/14-2023-11-14")
    );
    let fresh = FileFacts {
        is_dir: true,
        size: 4096,
        mtime: snap - 3600,
        entries: 2,
    };
    assert!(eval_file(&kind, &fresh, snap).is_ok());
    let empty = FileFacts {
        entries: 0,
        ..fresh.clone()
    };
    assert_eq!(
        eval_file(&kind, &empty, snap).unwrap_err(),
        "the directory is empty"
    );
    let old = FileFacts {
        mtime: snap - 3 * 86400,
        ..fresh
    };
    assert!(eval_file(&kind, &old, snap)
        .unwrap_err()
        .contains("before the snapshot"));
}

#[test]
fn outcomes_round_trip() {
    for o in [
        Outcome::Passed,
        Outcome::Failed,
        Outcome::Running,
        Outcome::Interrupted,
    ] {
        assert_eq!(Outcome::parse(o.as_str()), Some(o));
    }
    assert!(Outcome::Failed.is_verdict() && !Outcome::Interrupted.is_verdict());
}
