//! Where an instance is in its life, as `ls`, `status` and `exec` tell it: one value per situation the admin
//! must tell apart, each with what it means and the next step.
//!
//! The state follows from the owner (the process hosting the instance: a foreground `up` or the daemon,
//! alive or not), the phase the owner last wrote, and — only when the owner is gone — whether the container
//! still runs (its nspawn found by machine name, as the daemon does when it adopts). A new situation (a
//! failed start whose log is kept, say) is a new variant here with its meaning and next step; `ls`,
//! `status`, `--json` and `exec` pick it up from these methods.

use serde::{Deserialize, Serialize};

use crate::state::{InstanceDir, Owner, Phase};
use crate::sys::nspawn;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Its owner is applying the plan and waiting for the service to answer.
    Starting,
    /// It runs and answers; its owner hosts it.
    Running,
    /// Its owner is tearing it down.
    Stopping,
    /// The process that ran it is gone (killed, crashed); what is left is removed by `gc`.
    Orphaned,
    /// The daemon that hosts it is not running, but the container is: the next `wayback serve` adopts it.
    DaemonDown,
}

impl State {
    /// The state of the instance in `dir`.
    pub fn of(dir: &InstanceDir) -> State {
        let owner = dir.owner();
        let alive = owner.is_some_and(|o| o.alive());
        State::classify(owner.as_ref(), alive, dir.phase(), || {
            dir.plan()
                .is_ok_and(|p| nspawn::Watch::adopt(&p.container.machine).is_some())
        })
    }

    /// The rule, without the system: `container_runs` is asked only when it matters.
    pub fn classify(
        owner: Option<&Owner>,
        owner_alive: bool,
        phase: Option<Phase>,
        container_runs: impl FnOnce() -> bool,
    ) -> State {
        match (owner, owner_alive, phase) {
            (Some(_), true, Some(Phase::Running)) => State::Running,
            (Some(_), true, Some(Phase::Stopping)) => State::Stopping,
            (Some(_), true, _) => State::Starting,
            // Exactly what `wayback serve` adopts on start (see daemon::recover).
            (Some(o), false, Some(Phase::Running)) if o.daemon && container_runs() => {
                State::DaemonDown
            }
            _ => State::Orphaned,
        }
    }

    /// The word in `ls` and in `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Orphaned => "orphaned",
            State::DaemonDown => "daemon_down",
        }
    }

    /// What the state means, in one clause.
    pub fn meaning(self) -> &'static str {
        match self {
            State::Starting => "its owner is starting it and waits for the service to answer",
            State::Running => "it runs and answers",
            State::Stopping => "its owner is removing it",
            State::Orphaned => "the process that ran it is gone",
            State::DaemonDown => {
                "the daemon is down; it will adopt this instance when it starts (the container still runs)"
            }
        }
    }

    /// What to do next, naming the commands.
    pub fn next_step(self, name: &str) -> String {
        match self {
            State::Starting => {
                format!("wait until `wayback status {name}` says running (`wayback logs {name}` shows its progress)")
            }
            State::Running => format!(
                "get inside with `wayback shell {name}` or `wayback exec {name} -- CMD`; more time with \
                 `wayback extend {name} 4h`; remove it with `wayback down {name}`"
            ),
            State::Stopping => format!("wait: it leaves `wayback ls` once everything is removed (`wayback logs {name}`)"),
            State::Orphaned => format!("`wayback gc` removes it (or `wayback down {name}`)"),
            State::DaemonDown => format!(
                "start the daemon (`wayback serve`, or `systemctl start wayback`) to host it again; \
                 `wayback down {name}` removes it (`wayback gc` leaves it for the daemon)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(daemon: bool) -> Owner {
        Owner {
            pid: 1,
            start_time: 1,
            daemon,
        }
    }

    #[test]
    fn each_situation_has_its_state() {
        let fg = owner(false);
        let d = owner(true);
        let runs = || true;
        let never =
            || -> bool { panic!("the container is asked only for a dead daemon's instance") };
        let cases = [
            (Some(&fg), true, Some(Phase::Starting), State::Starting),
            (Some(&fg), true, None, State::Starting),
            (Some(&fg), true, Some(Phase::Running), State::Running),
            (Some(&d), true, Some(Phase::Running), State::Running),
            (Some(&fg), true, Some(Phase::Stopping), State::Stopping),
            (Some(&fg), false, Some(Phase::Running), State::Orphaned),
            (None, false, None, State::Orphaned),
            (Some(&d), false, Some(Phase::Starting), State::Orphaned),
        ];
        for (o, alive, phase, want) in cases {
            assert_eq!(
                State::classify(o, alive, phase, never),
                want,
                "{o:?} {alive} {phase:?}"
            );
        }
        assert_eq!(
            State::classify(Some(&d), false, Some(Phase::Running), runs),
            State::DaemonDown
        );
        assert_eq!(
            State::classify(Some(&d), false, Some(Phase::Running), || false),
            State::Orphaned
        );
    }

    #[test]
    fn words_and_next_steps() {
        assert_eq!(State::DaemonDown.as_str(), "daemon_down");
        assert_eq!(
            serde_json::to_string(&State::DaemonDown).unwrap(),
            "\"daemon_down\""
        );
        assert!(State::Orphaned.next_step("pg-1").contains("`wayback gc`"));
        assert!(State::DaemonDown.meaning().contains("will adopt"));
        assert!(State::DaemonDown
            .next_step("pg-1")
            .contains("wayback serve"));
        assert!(State::Running
            .next_step("pg-1")
            .contains("wayback shell pg-1"));
    }
}
