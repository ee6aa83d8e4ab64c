//! The history of verify runs: an SQLite database (rusqlite, SQLite compiled in) at
//! `<state_dir>/verify/history.sqlite`.
//!
//! A run's row is written when it starts (result `running`, with the PID and start time of its `verify`)
//! and completed in one transaction with its checks when it ends, so a `verify` killed mid-run leaves a row
//! that reads as `interrupted`, never a lost one. The schema is versioned with `PRAGMA user_version` and
//! migrated forward in transactions; a database from a newer wayback is refused, not changed. A corrupt
//! or locked database is an error naming the file and the next step (exit 1), never a panic.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Result};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use wayback_core::verify::report::JobMetrics;
use wayback_core::verify::{CheckOutcome, CheckResult, Outcome, RunReport, SnapshotRef};
use wayback_core::Config;

use crate::state::{self, Owner};

/// How long a write waits for another `verify` holding the database.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// Each entry takes the schema from version N to N+1.
const MIGRATIONS: &[&str] = &[
    // 1: runs and their checks.
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL,
        snapshot_id INTEGER NOT NULL,
        snapshot_path TEXT NOT NULL,
        snapshot_date INTEGER NOT NULL,
        snapshot_uuid TEXT,
        series TEXT NOT NULL,
        instance TEXT NOT NULL DEFAULT '',
        started INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL DEFAULT 0,
        result TEXT NOT NULL,
        reason TEXT,
        version TEXT NOT NULL,
        owner_pid INTEGER NOT NULL,
        owner_start INTEGER NOT NULL
     );
     CREATE INDEX runs_by_job ON runs (job, id);
     CREATE TABLE checks (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        result TEXT NOT NULL,
        reason TEXT,
        duration_ms INTEGER NOT NULL,
        PRIMARY KEY (run_id, seq)
     );",
];

pub struct History {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// The database's path under the state directory.
pub fn path(cfg: &Config) -> PathBuf {
    cfg.state_dir.join("verify").join("history.sqlite")
}

/// A database error, with the file and what to do.
fn db_error(path: &Path, e: rusqlite::Error) -> anyhow::Error {
    let p = path.display();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => anyhow!(
            "the verify history {p} is locked by another process (another `wayback verify`?): wait for it \
             to finish and try again (`fuser {p}` shows who holds it)"
        ),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => anyhow!(
            "the verify history {p} is corrupt ({e}): move it aside (`mv {p} {p}.corrupt`) and run again to \
             start a new history; `sqlite3 {p}.corrupt .recover` may save its rows"
        ),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => anyhow!(
            "cannot open the verify history {p} for writing ({e}): run as root, or check the file's owner \
             and mode"
        ),
        _ => anyhow!("the verify history {p}: {e}"),
    }
}

impl History {
    /// Open (creating it and its directory when missing) and migrate to the current schema.
    pub fn open(cfg: &Config) -> Result<History> {
        let path = path(cfg);
        if let Some(dir) = path.parent() {
            state::create_private_dir_all(dir)?;
        }
        let err = |e| db_error(&path, e);
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(BUSY_WAIT).map_err(err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(err)?;
        let mut h = History {
            path: path.clone(),
            conn: Mutex::new(conn),
        };
        h.migrate()?;
        Ok(h)
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> anyhow::Error + '_ {
        |e| db_error(&self.path, e)
    }

    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        let err = |e| db_error(&path, e);
        let conn = self.conn.get_mut().expect("history lock");
        let version: usize = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if version > MIGRATIONS.len() {
            return Err(anyhow!(
                "the verify history {} has schema version {version}, newer than this wayback knows ({}): \
                 it was written by a newer wayback; use that one (this one leaves the file as it is)",
                path.display(),
                MIGRATIONS.len()
            ));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction().map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.pragma_update(None, "user_version", i + 1).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(())
    }

    /// Record that a run of `job` on `snap` starts now, with the instance `instance(id)` names; its id.
    pub fn begin(
        &self,
        job: &str,
        snap: &SnapshotRef,
        started: i64,
        instance: impl Fn(i64) -> String,
    ) -> Result<i64> {
        let owner = Owner::current();
        let conn = self.conn.lock().expect("history lock");
        conn.execute(
            "INSERT INTO runs (job, snapshot_id, snapshot_path, snapshot_date, snapshot_uuid, series, started,
                               result, version, owner_pid, owner_start)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9, ?10)",
            params![
                job,
                snap.id as i64,
                snap.path,
                snap.date,
                snap.uuid,
                snap.series,
                started,
                env!("CARGO_PKG_VERSION"),
                owner.pid,
                owner.start_time as i64
            ],
        )
        .map_err(self.err())?;
        let id = conn.last_insert_rowid();
        conn.execute(
            "UPDATE runs SET instance = ?2 WHERE id = ?1",
            params![id, instance(id)],
        )
        .map_err(self.err())?;
        Ok(id)
    }

    /// Complete a run's row and add its checks, in one transaction.
    pub fn finish(&self, r: &RunReport) -> Result<()> {
        let mut conn = self.conn.lock().expect("history lock");
        let tx = conn.transaction().map_err(self.err())?;
        tx.execute(
            "UPDATE runs SET instance = ?2, duration_ms = ?3, result = ?4, reason = ?5 WHERE id = ?1",
            params![
                r.id,
                r.instance,
                r.duration_ms as i64,
                r.result.as_str(),
                r.reason
            ],
        )
        .map_err(self.err())?;
        for (seq, c) in r.checks.iter().enumerate() {
            tx.execute(
                "INSERT INTO checks (run_id, seq, name, kind, result, reason, duration_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    r.id,
                    seq as i64,
                    c.name,
                    c.kind,
                    c.result.as_str(),
                    c.reason,
                    c.duration_ms as i64
                ],
            )
            .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())
    }

    /// Keys ([`SnapshotRef::key`]) of the snapshots of `job` with a verdict.
    pub fn verified(&self, job: &str) -> Result<BTreeSet<String>> {
        let conn = self.conn.lock().expect("history lock");
        let mut st = conn
            .prepare(
                "SELECT DISTINCT coalesce(snapshot_uuid, snapshot_path) FROM runs
                 WHERE job = ?1 AND result IN ('passed', 'failed')",
            )
            .map_err(self.err())?;
        let keys = st
            .query_map([job], |r| r.get::<_, String>(0))
            .map_err(self.err())?
            .collect::<Result<BTreeSet<_>, _>>()
            .map_err(self.err())?;
        Ok(keys)
    }

    /// Runs, newest first (of one job, or all), at most `limit`, with their checks.
    pub fn runs(&self, job: Option<&str>, limit: usize) -> Result<Vec<RunReport>> {
        let conn = self.conn.lock().expect("history lock");
        let mut st = conn
            .prepare(
                "SELECT id, job, snapshot_id, snapshot_path, snapshot_date, snapshot_uuid, series, instance,
                        started, duration_ms, result, reason, version, owner_pid, owner_start
                 FROM runs WHERE ?1 IS NULL OR job = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(self.err())?;
        let mut runs = st
            .query_map(params![job, limit as i64], row_to_run)
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        let mut checks = conn
            .prepare(
                "SELECT name, kind, result, reason, duration_ms FROM checks WHERE run_id = ?1 ORDER BY seq",
            )
            .map_err(self.err())?;
        for r in &mut runs {
            r.checks = checks
                .query_map([r.id], |row| {
                    Ok(CheckResult {
                        name: row.get(0)?,
                        kind: row.get(1)?,
                        result: CheckOutcome::parse(&row.get::<_, String>(2)?)
                            .unwrap_or(CheckOutcome::Skipped),
                        reason: row.get(3)?,
                        duration_ms: row.get::<_, i64>(4)? as u64,
                    })
                })
                .map_err(self.err())?
                .collect::<Result<Vec<_>, _>>()
                .map_err(self.err())?;
        }
        Ok(runs)
    }

    /// What the metrics file says of every job in the history.
    pub fn metrics(&self) -> Result<Vec<JobMetrics>> {
        let jobs: Vec<String> = {
            let conn = self.conn.lock().expect("history lock");
            let mut st = conn
                .prepare("SELECT DISTINCT job FROM runs ORDER BY job")
                .map_err(self.err())?;
            let rows = st.query_map([], |r| r.get(0)).map_err(self.err())?;
            rows.collect::<Result<_, _>>().map_err(self.err())?
        };
        jobs.into_iter().map(|j| self.job_metrics(j)).collect()
    }

    fn job_metrics(&self, job: String) -> Result<JobMetrics> {
        let last = self
            .runs(Some(&job), 1_000)?
            .into_iter()
            .find(|r| r.result.is_verdict());
        let conn = self.conn.lock().expect("history lock");
        let last_success = conn
            .query_row(
                "SELECT started, snapshot_date FROM runs WHERE job = ?1 AND result = 'passed'
                 ORDER BY snapshot_date DESC, id DESC LIMIT 1",
                [&job],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err())?;
        let count = |result: &str| -> Result<u64> {
            conn.query_row(
                "SELECT count(*) FROM runs WHERE job = ?1 AND result = ?2",
                [&job, result],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.err())
        };
        Ok(JobMetrics {
            passed: count("passed")?,
            failed: count("failed")?,
            job,
            last,
            last_success,
        })
    }
}

/// A run's row; `running` whose `verify` is gone reads as interrupted.
fn row_to_run(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunReport> {
    let mut result = Outcome::parse(&row.get::<_, String>(10)?).unwrap_or(Outcome::Interrupted);
    let owner = Owner {
        pid: row.get(13)?,
        start_time: row.get::<_, i64>(14)? as u64,
        daemon: false,
    };
    let mut reason: Option<String> = row.get(11)?;
    if result == Outcome::Running && !owner.alive() {
        result = Outcome::Interrupted;
        reason = Some(format!(
            "its `wayback verify` (pid {}) ended before the run did; `wayback gc` removes what it left",
            owner.pid
        ));
    }
    Ok(RunReport {
        id: row.get(0)?,
        job: row.get(1)?,
        snapshot: SnapshotRef {
            id: row.get::<_, i64>(2)? as u64,
            path: row.get(3)?,
            date: row.get(4)?,
            uuid: row.get(5)?,
            series: row.get(6)?,
        },
        instance: row.get(7)?,
        started: row.get(8)?,
        duration_ms: row.get::<_, i64>(9)? as u64,
        result,
        reason,
        checks: Vec::new(),
        version: row.get(12)?,
    })
}
