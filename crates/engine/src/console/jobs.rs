//! Long console actions (`up`, `reset`) run as jobs: the page starts one, then polls `/api/jobs/ID` for
//! its progress lines (the same lines `up --detach` relays) and its result. Jobs live in memory; finished
//! ones are forgotten after an hour.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

/// One job's progress and outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Job {
    pub id: u64,
    pub what: String,
    pub lines: Vec<String>,
    pub done: bool,
    /// The result (the instance's status, with `share_url` after an `up` with `--share`).
    pub result: Option<Value>,
    pub error: Option<String>,
    #[serde(skip)]
    finished_at: u64,
}

/// The console's jobs.
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    all: Mutex<HashMap<u64, Arc<Mutex<Job>>>>,
}

impl Jobs {
    /// A new, running job.
    pub fn start(&self, what: String) -> Arc<Mutex<Job>> {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let now = crate::clock::now_secs();
        let job = Arc::new(Mutex::new(Job {
            id,
            what,
            ..Job::default()
        }));
        let mut all = self.all.lock().expect("jobs lock");
        all.retain(|_, j| {
            let j = j.lock().expect("job lock");
            !j.done || now.saturating_sub(j.finished_at) < 3600
        });
        all.insert(id, job.clone());
        job
    }

    pub fn get(&self, id: u64) -> Option<Job> {
        let all = self.all.lock().expect("jobs lock");
        all.get(&id).map(|j| j.lock().expect("job lock").clone())
    }

    /// The newest finished job's share link for an instance (shown on the instances page; never on disk).
    pub fn share_link(&self, name: &str) -> Option<String> {
        let all = self.all.lock().expect("jobs lock");
        all.values()
            .filter_map(|j| {
                let j = j.lock().expect("job lock");
                let r = j.result.as_ref()?;
                (r["name"] == name).then(|| Some((j.id, r["share_url"].as_str()?.to_string())))?
            })
            .max_by_key(|(id, _)| *id)
            .map(|(_, link)| link)
    }
}

/// Record a progress line.
pub fn line(job: &Mutex<Job>, l: &str) {
    job.lock().expect("job lock").lines.push(l.to_string());
}

/// Record the outcome.
pub fn finish(job: &Mutex<Job>, outcome: anyhow::Result<Value>) {
    let mut j = job.lock().expect("job lock");
    j.done = true;
    j.finished_at = crate::clock::now_secs();
    match outcome {
        Ok(v) => j.result = Some(v),
        Err(e) => j.error = Some(crate::error::render(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_links_of_finished_jobs() {
        let jobs = Jobs::default();
        let j = jobs.start("up".into());
        line(&j, "cloning");
        finish(
            &j,
            Ok(serde_json::json!({"name": "a", "share_url": "http://a/?wayback-token=x"})),
        );
        let id = j.lock().unwrap().id;
        assert_eq!(jobs.get(id).unwrap().lines, vec!["cloning"]);
        assert_eq!(
            jobs.share_link("a").as_deref(),
            Some("http://a/?wayback-token=x")
        );
        assert_eq!(jobs.share_link("b"), None);
    }
}
