//! What instances exist and what each is doing, as `ls`, `status`, the daemon's API and the console tell
//! it: the state each is in (see [`State`]) and the next step for it, where to reach it, time left, the
//! binds (and where in the snapshot each comes from), the processes and their users (planned, and running
//! inside the container), the masquerade host and the access gate.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use wayback_core::nspawn::MountBind;
use wayback_core::plan::GateSpec;
use wayback_core::{Config, Duration, InstanceName};

use crate::state::{self, InstanceDir};

mod lifecycle;
mod live;

pub use lifecycle::State;
pub use live::LiveProcess;

#[derive(Debug, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub state: State,
    /// What the state means.
    #[serde(default)]
    pub meaning: String,
    /// What to do next.
    #[serde(default)]
    pub next: String,
    pub profile: Option<String>,
    pub url: Option<String>,
    pub host: Option<String>,
    pub publish: Vec<String>,
    pub address: Option<String>,
    pub source: Option<String>,
    pub clone: Option<String>,
    pub created: Option<u64>,
    pub expires: Option<u64>,
    pub ttl_left: Option<String>,
    #[serde(default)]
    pub idle: Option<String>,
    /// `wayback keep`: TTL and idle expiry are suspended (until `kept_until`, or until `keep --off`).
    #[serde(default)]
    pub kept: bool,
    #[serde(default)]
    pub kept_until: Option<u64>,
    pub owner_pid: Option<i32>,
    /// The owner is the daemon (`up --detach`), not a foreground `up`.
    #[serde(default)]
    pub owner_daemon: bool,
    /// The app's usual origin shown to it (`--original-host`), e.g. `https://cloud.example.org`.
    #[serde(default)]
    pub masquerade: Option<String>,
    /// What the pinned-hostname check found after the app answered (with `--original-host auto`: the
    /// origin that became the masquerade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_check: Option<crate::hostdetect::HostCheckRecord>,
    #[serde(default)]
    pub gate: GateSpec,
    /// What the container shows of the clone (and wayback's own read-only files), with where each comes
    /// from in the snapshot (`clone`: root, path asked for, path it resolved to).
    #[serde(default)]
    pub binds: Vec<MountBind>,
    /// The profile's processes, in start order, with their users.
    #[serde(default)]
    pub processes: Vec<PlannedProcess>,
    /// What runs in the container now (only from `status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Vec<LiveProcess>>,
    /// The one-time share link, only in `up`'s ready output (it is never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedProcess {
    pub name: String,
    pub user: String,
    /// A hook run to completion before the next process starts.
    pub hook: bool,
    pub command: String,
}

impl InstanceStatus {
    pub fn of(dir: &InstanceDir) -> InstanceStatus {
        let plan = dir.plan().ok();
        let owner = dir.owner();
        let state = State::of(dir);
        let expires = dir.expires();
        let keep = dir.keep();
        let now = crate::clock::now_secs();
        let processes = plan
            .as_ref()
            .map(|p| {
                p.init
                    .processes
                    .iter()
                    .map(|pr| PlannedProcess {
                        name: pr.name.clone(),
                        user: pr.user.clone().unwrap_or_else(|| "root".into()),
                        hook: pr.oneshot,
                        command: pr.argv(&p.init.shell).join(" "),
                    })
                    .collect()
            })
            .unwrap_or_default();
        InstanceStatus {
            name: dir.name.to_string(),
            state,
            meaning: state.meaning().into(),
            next: state.next_step(dir.name.as_str()),
            profile: plan.as_ref().map(|p| p.profile.clone()),
            url: plan
                .as_ref()
                .and_then(|p| p.http.as_ref().map(|h| h.url.clone())),
            host: plan
                .as_ref()
                .and_then(|p| p.http.as_ref().map(|h| h.host.clone())),
            publish: plan
                .as_ref()
                .map(|p| {
                    p.publish
                        .iter()
                        .map(|x| format!("{}->{}", x.listen, x.port))
                        .collect()
                })
                .unwrap_or_default(),
            address: plan.as_ref().map(|p| p.block.peer.to_string()),
            source: plan.as_ref().map(|p| p.source.path.display().to_string()),
            clone: plan.as_ref().map(|p| p.clone.display().to_string()),
            created: plan.as_ref().map(|p| p.created),
            expires,
            ttl_left: expires.map(|e| Duration(e.saturating_sub(now).max(1)).to_string()),
            idle: plan.as_ref().and_then(|p| p.idle.map(|d| d.to_string())),
            kept: keep.is_some_and(|k| k.active(now)),
            kept_until: keep.and_then(|k| k.until),
            owner_pid: owner.map(|o| o.pid),
            owner_daemon: owner.is_some_and(|o| o.daemon),
            masquerade: plan.as_ref().and_then(|p| {
                p.masquerade
                    .as_ref()
                    .map(|m| format!("{}://{}", if m.https { "https" } else { "http" }, m.host))
            }),
            host_check: crate::hostdetect::HostCheckRecord::load(dir),
            gate: plan.as_ref().map(|p| p.gate.clone()).unwrap_or_default(),
            binds: plan
                .as_ref()
                .map(|p| p.container.binds.clone())
                .unwrap_or_default(),
            processes,
            running: None,
            share_url: None,
        }
    }

    /// The one line `up` prints when ready: `ready NAME URL|- PUBLISH...`.
    pub fn ready_line(&self) -> String {
        let mut s = format!("ready {} {}", self.name, self.url.as_deref().unwrap_or("-"));
        for p in &self.publish {
            s.push(' ');
            s.push_str(p);
        }
        s
    }
}

/// Every instance's status, and a warning for each instance directory this release cannot read.
pub fn list(cfg: &Config) -> (Vec<InstanceStatus>, Vec<String>) {
    let mut warnings = Vec::new();
    let all = state::list(cfg)
        .iter()
        .filter_map(|n| match InstanceDir::open(cfg, n) {
            Ok(d) => Some(d),
            Err(e @ crate::state::StateError::Format(_)) => {
                warnings.push(format!("{n}: {e}"));
                None
            }
            Err(_) => None,
        })
        .map(|d| InstanceStatus::of(&d))
        .collect();
    (all, warnings)
}

/// What `status NAME` finds: an instance (with what runs in it now), or only the logs of a failed start.
pub enum Found {
    Instance {
        status: Box<InstanceStatus>,
        log: std::path::PathBuf,
    },
    Failed(crate::state::failed::Failed),
}

/// One instance's status, including the processes running in its container now (also for an orphan:
/// whether its container still runs is what the admin wants to know).
pub fn lookup(cfg: &Config, name: &InstanceName) -> Result<Found> {
    let dir = match InstanceDir::open(cfg, name) {
        Ok(d) => d,
        Err(crate::state::StateError::NotFound { .. }) => {
            return match crate::state::failed::find(cfg, name) {
                Some(f) => Ok(Found::Failed(f)),
                None => Err(crate::state::StateError::NotFound {
                    name: name.to_string(),
                }
                .into()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    let mut s = InstanceStatus::of(&dir);
    s.running = dir
        .plan()
        .ok()
        .map(|p| live::processes(&p.container.machine, &dir.journal_path()));
    Ok(Found::Instance {
        status: Box::new(s),
        log: dir.log_path(),
    })
}
