//! A recording [`Host`] for root-free tests of apply and teardown: it creates nothing, remembers every
//! call in order together with what the journal held at that moment, and fails the create step it is
//! told to fail.

use std::sync::Mutex;

use anyhow::{bail, Result};
use wayback_core::journal::{self, Resource};
use wayback_core::Plan;

use super::{Host, Undone};
use crate::progress::Progress;
use crate::state::InstanceDir;
use crate::steps::Create;

/// One call the fake saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// A create step, with what the journal held when it ran.
    Create {
        step: Create,
        journaled: Vec<Resource>,
    },
    /// An undo.
    Undo(Resource),
}

/// The PID the fake's container gets.
pub const PID: i32 = 4242;

#[derive(Default)]
pub struct FakeHost {
    /// Fail the create step with this index (0: the first create step).
    pub fail_at: Option<usize>,
    calls: Mutex<Vec<Call>>,
}

impl FakeHost {
    pub fn failing_at(i: usize) -> FakeHost {
        FakeHost {
            fail_at: Some(i),
            ..FakeHost::default()
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    /// The create steps seen so far.
    pub fn created(&self) -> Vec<Create> {
        (self.calls().into_iter())
            .filter_map(|c| match c {
                Call::Create { step, .. } => Some(step),
                Call::Undo(_) => None,
            })
            .collect()
    }

    /// The resources undone so far, in order.
    pub fn undone(&self) -> Vec<Resource> {
        (self.calls().into_iter())
            .filter_map(|c| match c {
                Call::Undo(r) => Some(r),
                Call::Create { .. } => None,
            })
            .collect()
    }
}

impl Host for FakeHost {
    type Child = i32;

    async fn create(
        &self,
        dir: &InstanceDir,
        _plan: &Plan,
        step: &Create,
        _progress: &Progress,
    ) -> Result<Option<i32>> {
        let journaled = (journal::read(&dir.journal_path())?.into_iter())
            .map(|e| e.resource)
            .collect();
        let mut calls = self.calls.lock().expect("calls");
        let index = calls
            .iter()
            .filter(|c| matches!(c, Call::Create { .. }))
            .count();
        calls.push(Call::Create {
            step: step.clone(),
            journaled,
        });
        if self.fail_at == Some(index) {
            bail!("injected failure at create step {index} ({})", step.kind());
        }
        Ok((*step == Create::Container).then_some(PID))
    }

    fn process(&self, child: &i32) -> (i32, u64) {
        (*child, 1)
    }

    async fn undo(&self, _dir: &InstanceDir, res: &Resource) -> Result<Undone> {
        self.calls
            .lock()
            .expect("calls")
            .push(Call::Undo(res.clone()));
        Ok(Undone::Removed)
    }
}
