//! `stager abort`: disarm and restore the host exactly as it was before `stage` — grubenv
//! and custom.cfg byte for byte, fstab byte for byte, the swap header page (signature, UUID,
//! label) written back and swap turned on again, state.json removed. Idempotent: with
//! nothing staged it says so and succeeds.

use crate::host::HostRoot;
use crate::stage::engine::execute;
use crate::stage::engine::rollback::{self, RollbackReport};
use crate::stage::engine::system::System;
use crate::state::{StateError, StateStore};

#[derive(Debug)]
pub enum AbortOutcome {
    NothingStaged,
    Restored(RollbackReport),
}

#[derive(Debug, thiserror::Error)]
pub enum AbortError {
    #[error("{0}")]
    State(#[from] StateError),
    #[error("abort incomplete: {0}")]
    Incomplete(String),
}

pub fn abort(root: &HostRoot, system: &mut dyn System) -> Result<AbortOutcome, AbortError> {
    let store = StateStore::new(root);
    let Some(state) = store.load()? else {
        return Ok(AbortOutcome::NothingStaged);
    };
    log::info!("aborting the staged migration: undoing {} recorded changes", state.entries.len());
    let report = rollback::rollback(root, &state, system);
    if report.complete() {
        Ok(AbortOutcome::Restored(report))
    } else {
        Err(AbortError::Incomplete(execute::describe(&report)))
    }
}
