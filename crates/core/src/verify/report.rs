//! The record of a verify run, and how it is shown to other tools: the Prometheus text file that
//! node_exporter's textfile collector reads, and JUnit XML for CI systems.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Started, and every check passed.
    Passed,
    /// The snapshot did not start, or a check failed or timed out.
    Failed,
    /// Still running (a `verify` in progress).
    Running,
    /// Its `verify` was stopped (a signal) or killed before it ended: no verdict on the snapshot.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Running => "running",
            Outcome::Interrupted => "interrupted",
        }
    }
    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Passed,
            Outcome::Failed,
            Outcome::Running,
            Outcome::Interrupted,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
    /// A verdict on the snapshot (passed or failed), as opposed to a run without one.
    pub fn is_verdict(self) -> bool {
        matches!(self, Outcome::Passed | Outcome::Failed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckOutcome {
    Passed,
    Failed,
    /// Not run: the start or an earlier check failed.
    Skipped,
}

impl CheckOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckOutcome::Passed => "passed",
            CheckOutcome::Failed => "failed",
            CheckOutcome::Skipped => "skipped",
        }
    }
    pub fn parse(s: &str) -> Option<CheckOutcome> {
        [
            CheckOutcome::Passed,
            CheckOutcome::Failed,
            CheckOutcome::Skipped,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One snapshot, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// The id `wayback snapshots` shows (snapper number, else position in the series).
    pub id: u64,
    pub path: String,
    /// Unix seconds.
    pub date: i64,
    pub uuid: Option<String>,
    pub series: String,
}

impl SnapshotRef {
    /// What identifies the snapshot across runs: its subvolume UUID, else its path.
    pub fn key(&self) -> String {
        self.uuid.clone().unwrap_or_else(|| self.path.clone())
    }
}

/// One check of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    /// `start` (bringing the snapshot up), `http`, `tcp`, `sql`, `command`, `file`.
    pub kind: String,
    pub result: CheckOutcome,
    pub reason: Option<String>,
    pub duration_ms: u64,
}

/// One run: one snapshot of one job brought up, checked and removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The run's number in the history (its instance is `verify-JOB-ID`).
    pub id: i64,
    pub job: String,
    pub snapshot: SnapshotRef,
    pub instance: String,
    /// Unix seconds.
    pub started: i64,
    pub duration_ms: u64,
    pub result: Outcome,
    /// Why it failed: the first failed check with its reason, or what went wrong around the checks.
    pub reason: Option<String>,
    pub checks: Vec<CheckResult>,
    pub version: String,
}

/// What the metrics say about one job, from its history.
#[derive(Debug, Clone, PartialEq)]
pub struct JobMetrics {
    pub job: String,
    /// The newest run with a verdict.
    pub last: Option<RunReport>,
    /// When the newest passed run started, and the date of the snapshot it verified.
    pub last_success: Option<(i64, i64)>,
    pub passed: u64,
    pub failed: u64,
}

/// Prometheus text exposition format (for node_exporter's textfile collector), at `now` (unix seconds).
pub fn prometheus(jobs: &[JobMetrics], now: i64) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let job = |j: &JobMetrics| format!("job=\"{}\"", label(&j.job));
    family(
        "wayback_verify_last_result",
        "gauge",
        "Result of the newest verify run of the job with a verdict (1 passed, 0 failed).",
        jobs.iter()
            .filter_map(|j| {
                let r = j.last.as_ref()?;
                Some((job(j), u8::from(r.result == Outcome::Passed).to_string()))
            })
            .collect(),
    );
    family(
        "wayback_verify_last_run_timestamp_seconds",
        "gauge",
        "When the newest verify run of the job with a verdict started (unix time).",
        jobs.iter()
            .filter_map(|j| Some((job(j), j.last.as_ref()?.started.to_string())))
            .collect(),
    );
    family(
        "wayback_verify_last_duration_seconds",
        "gauge",
        "How long the newest verify run of the job took, from start to teardown.",
        jobs.iter()
            .filter_map(|j| {
                let ms = j.last.as_ref()?.duration_ms;
                Some((job(j), format!("{:.3}", ms as f64 / 1000.0)))
            })
            .collect(),
    );
    family(
        "wayback_verify_last_success_timestamp_seconds",
        "gauge",
        "When the newest passed verify run of the job started (unix time).",
        jobs.iter()
            .filter_map(|j| Some((job(j), j.last_success?.0.to_string())))
            .collect(),
    );
    family(
        "wayback_verify_last_verified_snapshot_age_seconds",
        "gauge",
        "Age of the newest snapshot of the job proven restorable (now minus its date).",
        jobs.iter()
            .filter_map(|j| Some((job(j), (now - j.last_success?.1).max(0).to_string())))
            .collect(),
    );
    family(
        "wayback_verify_runs_total",
        "counter",
        "Verify runs of the job with a verdict, by result.",
        jobs.iter()
            .flat_map(|j| {
                [("passed", j.passed), ("failed", j.failed)]
                    .map(|(r, n)| (format!("{},result=\"{r}\"", job(j)), n.to_string()))
            })
            .collect(),
    );
    out
}

/// A label value: backslash, double quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// JUnit XML: one test suite per run (`JOB #ID`), one test case per check.
pub fn junit(runs: &[RunReport]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"wayback verify\">\n",
    );
    for r in runs {
        let failures = r
            .checks
            .iter()
            .filter(|c| c.result == CheckOutcome::Failed)
            .count();
        let skipped = r
            .checks
            .iter()
            .filter(|c| c.result == CheckOutcome::Skipped)
            .count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\" timestamp=\"{}\">",
            xml(&format!("{} run {}: snapshot #{} {}", r.job, r.id, r.snapshot.id, r.snapshot.path)),
            r.checks.len(),
            r.duration_ms as f64 / 1000.0,
            crate::civil::format_utc(r.started).replace(' ', "T"),
        );
        for c in &r.checks {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml(&format!("wayback.verify.{}", r.job)),
                xml(&c.name),
                c.duration_ms as f64 / 1000.0
            );
            let reason = xml(c.reason.as_deref().unwrap_or(""));
            match c.result {
                CheckOutcome::Passed => out.push_str("/>\n"),
                CheckOutcome::Failed => {
                    let _ = writeln!(
                        out,
                        ">\n      <failure type=\"{}\" message=\"{reason}\">{reason}</failure>\n    </testcase>",
                        xml(&c.kind)
                    );
                }
                CheckOutcome::Skipped => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"{reason}\"/>\n    </testcase>"
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Text for an XML attribute or element: markup characters escaped, characters XML 1.0 cannot hold dropped.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
