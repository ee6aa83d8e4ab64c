//! The bad-input corpus (issue 13): one table of invocations across every command and flag family, each
//! asserting its exit code (2 for bad input, never a panic), the words its message must hold (the thing
//! named and the hint) and must not (the content of any file it was pointed at), and an unchanged machine.
//!
//! One instance runs throughout, with an IDNA hostname, so that "the name is taken", "the hostname is taken
//! in every spelling" and "a bad name does not touch a running instance" are real; it must still answer at
//! the end. Before the table the test records what it owns on the machine (`machine::State`: mounts, netns,
//! links, nftables lines, processes and cgroups of its instances, the pool's subvolumes and clones, every
//! file under the state and runtime dirs, two canary trees); after every row the state must be the same.
//! Failures are collected, so one run reports every row that is wrong.

mod configs;
mod fixture;
mod machine;
mod rows;
mod rows_other;
mod up_front;
mod up_modes;
mod up_paths;

use std::time::{Duration, Instant};

use fixture::{Fixture, SECRET};
use machine::{Scope, State};
use rows::Row;
use wayback_testsupport::*;

#[test]
fn bad_input_corpus() {
    if !require_root("bad_input_corpus") {
        return;
    }
    let started = Instant::now();
    let mut f = Fixture::new();
    f.start();
    let mut table = rows::up_rows(&f);
    table.extend(rows_other::other_rows(&f));
    let mut names = vec![f.cx.run.clone()];
    for r in &mut table {
        // A name wayback refuses can name nothing it makes.
        names.extend(name_of(r).filter(|n| wayback_core::InstanceName::new(n).is_ok()));
    }
    let scope = Scope {
        names,
        dirs: vec![f.pool.dir().to_path_buf(), f.cx.tmp.clone()],
        state_dir: f.cx.state_dir.clone(),
        runtime_dir: f.cx.runtime_dir.clone(),
        canaries: f.canaries.clone(),
        clone_dir: f.pool.path(".wayback"),
    };
    let baseline = State::capture(&scope, &f.pool);
    eprintln!("recorded before the table: {}", baseline.summary());
    let mut expected = baseline.clone();
    let mut failures = Vec::new();
    let table_started = Instant::now();
    for (i, r) in table.iter().enumerate() {
        let t = Instant::now();
        let out = run(&f, r);
        let mut wrong = judge(r, &out);
        let now = State::capture(&scope, &f.pool);
        let changed = now.diff(&expected);
        if !changed.is_empty() {
            wrong.push(format!(
                "changed the machine:\n      {}",
                changed.join("\n      ")
            ));
            expected = now; // judge the next rows on their own
        }
        let said = String::from_utf8_lossy(&out.stderr);
        let said = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        eprintln!(
            "{:3} {:>5} ms  {}  {}  :: {}",
            i + 1,
            t.elapsed().as_millis(),
            if wrong.is_empty() { "ok " } else { "BAD" },
            r.label,
            said.chars().take(200).collect::<String>()
        );
        if !wrong.is_empty() {
            failures.push(format!(
                "row {} ({}): wayback {}\n    {}\n    --- stderr ---\n{}",
                i + 1,
                r.label,
                shown_args(r),
                wrong.join("\n    "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let table_time = table_started.elapsed();
    let whole = State::capture(&scope, &f.pool).diff(&baseline);
    f.assert_running();
    f.stop();
    eprintln!(
        "{} rows in {:.1} s ({:.1} s with setup and teardown), {} wrong",
        table.len(),
        table_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(
        table.len() >= 100,
        "the corpus has only {} rows",
        table.len()
    );
    assert!(
        failures.is_empty() && whole.is_empty(),
        "{} of {} rows are wrong:\n\n{}\n\nthe table as a whole changed the machine: {whole:#?}",
        failures.len(),
        table.len(),
        failures.join("\n\n")
    );
}

/// The instance name an `up` row may create: its own `--name`, else a unique one added to it.
fn name_of(r: &mut Row) -> Option<String> {
    if r.args.first().map(String::as_str) != Some("up") {
        return None;
    }
    for (i, a) in r.args.iter().enumerate() {
        match a.strip_prefix("--name") {
            Some("") => return r.args.get(i + 1).cloned(),
            Some(v) if v.starts_with('=') => return Some(v[1..].to_string()),
            _ => {}
        }
    }
    let name = unique("wbtbi");
    r.args.splice(1..1, ["--name".to_string(), name.clone()]);
    Some(name)
}

fn run(f: &Fixture, r: &Row) -> std::process::Output {
    let mut c = std::process::Command::new(wayback_bin());
    c.env_remove("WAYBACK_CONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("KUBECONFIG", f.cx.tmp.join("no-kubeconfig"))
        .env("HOME", &f.cx.tmp)
        .current_dir(&f.cx.tmp);
    if !r.env.iter().any(|(k, _)| k == "WAYBACK_CONFIG") {
        c.arg("--config")
            .arg(r.config.as_deref().unwrap_or(f.wb.config_path()));
    }
    c.envs(r.env.iter().map(|(k, v)| (k, v))).args(&r.args);
    // A row the product wrongly accepts runs `exit 3`, which ends `up` within seconds.
    output_timeout(&mut c, Duration::from_secs(90)).unwrap_or_else(|e| panic!("{}: {e}", r.label))
}

/// What is wrong with a row's outcome (empty: nothing).
fn judge(r: &Row, out: &std::process::Output) -> Vec<String> {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let mut wrong = Vec::new();
    if out.status.code() != Some(r.code) {
        wrong.push(format!("exit {:?}, expected {}", out.status, r.code));
    }
    if stderr.contains("panicked at") || out.status.code() == Some(101) {
        wrong.push("panicked".into());
    }
    if stderr.trim().is_empty() {
        wrong.push("no message".into());
    }
    if stdout
        .lines()
        .any(|l| l.starts_with("ready ") || l.contains("\"state\":\"running\""))
    {
        wrong.push(format!("printed a ready line: {stdout}"));
    }
    for h in &r.has {
        if !stderr.contains(h.as_str()) {
            wrong.push(format!("the message lacks {h:?}"));
        }
    }
    for l in r.lacks.iter().map(String::as_str).chain([SECRET]) {
        if stdout.contains(l) || stderr.contains(l) {
            wrong.push(format!("the output holds {l:?}"));
        }
    }
    wrong
}

fn shown_args(r: &Row) -> String {
    r.args
        .iter()
        .map(|a| {
            if a.is_empty() || a.contains(' ') {
                format!("'{a}'")
            } else if a.len() > 60 {
                format!(
                    "{}…",
                    &a[..a.char_indices().nth(40).map_or(a.len(), |(i, _)| i)]
                )
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
