//! The undo engine: every change recorded in the journal (`state.json`) before it is made
//! ([`execute`]), undone in reverse by [`rollback`] (a failed run, `stager abort`), through
//! the effects on the running system that are not file writes ([`system`]), on the staging
//! partition found again by its identity ([`current_staging`]).

pub mod current_staging;
pub mod execute;
pub mod rollback;
pub mod system;
