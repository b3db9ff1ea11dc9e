//! The pure state machine: from the journal's state, what to do next.
//!
//! It encodes the failure policy too: before the first destructive write a
//! step that keeps failing sends the device back to the old OS; after it, the
//! migrator halts with the disk still booting into the migration environment.

use super::step::{ActionKind, Step};
use super::JournalState;
use plan::units::Bytes;

/// What the caller knows about this run that the journal must agree with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs<'a> {
    /// Identity of the staged plan (e.g. its sha256); a journal for another plan is stale.
    pub plan_id: &'a str,
    /// How many attempts that end in an error each unit of work gets (counting the first).
    pub max_attempts: u32,
    /// How many interrupted attempts (power cut, crash, hang) each unit of work gets.
    /// Larger than `max_attempts`: a power cut says nothing about the step, but a step
    /// that takes the machine down every time must not loop forever.
    pub max_interrupted: u32,
}

/// The next thing the migrator must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a fresh journal for this plan (`Journal::begin`).
    Begin,
    /// Back up the old root and convert network settings onto staging; then record `BackupDone`.
    /// (Comes after `ArmResume`, so a power cut during the backup re-enters the migrator.)
    Backup,
    /// Make every boot re-enter the migrator; then record `ResumeArmed`.
    ArmResume,
    /// Record `FlashStarted` (if not yet), write the image from `resume_from` on
    /// (re-checking what lies before it is optional), recording `FlashProgress`
    /// checkpoints and finally `FlashWritten`.
    Flash { resume_from: Bytes },
    /// Read back `image_bytes` of the image and compare; then record `FlashVerified`.
    VerifyFlash { image_bytes: Bytes },
    /// Restore data, keyfiles, config.json, hostname; then record `RestoreDone`.
    Restore,
    /// Write resinOS's boot code and final partition table; then record `BootFinalized`.
    FinalizeBoot,
    /// Record `Done` and reboot into resinOS.
    Finish,
    /// Everything is done already: reboot into resinOS.
    RebootIntoResin,
    /// Nothing destructive happened: disarm the resume entry and reboot into the old OS.
    ReturnToOldOs { reason: String },
    /// Destruction began and we cannot go on: stop with this message on the console.
    /// `retry`: the unit of work whose bound was reached; it gets a fresh budget on the
    /// next boot of the migration environment (the disk still boots it).
    Halt { reason: String, retry: Option<ActionKind> },
}

impl Action {
    /// The unit of work whose attempts this action counts against, if any.
    pub fn kind(&self) -> Option<ActionKind> {
        match self {
            Action::Begin => Some(ActionKind::Begin),
            Action::Backup => Some(ActionKind::Backup),
            Action::ArmResume => Some(ActionKind::ArmResume),
            Action::Flash { .. } => Some(ActionKind::Flash),
            Action::VerifyFlash { .. } => Some(ActionKind::VerifyFlash),
            Action::Restore => Some(ActionKind::Restore),
            Action::FinalizeBoot => Some(ActionKind::FinalizeBoot),
            Action::Finish => Some(ActionKind::Finish),
            Action::RebootIntoResin | Action::ReturnToOldOs { .. } | Action::Halt { .. } => None,
        }
    }
}

/// Decide the next action. Pure: same state and inputs, same answer.
pub fn next_action(state: &JournalState, inputs: &Inputs<'_>) -> Action {
    if state.step == Step::NotStarted {
        return Action::Begin;
    }
    if state.plan_id.as_deref() != Some(inputs.plan_id) {
        let recorded = state.plan_id.as_deref().unwrap_or("none");
        if state.step.is_destructive() {
            return Action::Halt {
                reason: format!(
                    "journal belongs to plan {recorded} but the staged plan is {}; the disk was already \
                     overwritten by that run, so re-stage with its plan or reflash the device",
                    inputs.plan_id
                ),
                retry: None,
            };
        }
        return Action::Begin;
    }
    let action = work_after(&state.step);
    let Some(kind) = action.kind() else {
        return action;
    };
    let failures = state.failures_of(kind);
    let interrupted = state.interruptions_of(kind);
    let reason = if failures >= inputs.max_attempts {
        format!("{kind:?} failed {failures} times (limit {})", inputs.max_attempts)
    } else if interrupted >= inputs.max_interrupted {
        format!(
            "{kind:?} was interrupted {interrupted} times by a power cut, crash or hang (limit {})",
            inputs.max_interrupted
        )
    } else {
        return action;
    };
    let reason = format!("{reason}; see the migration log on the staging partition");
    if state.step.is_destructive() {
        Action::Halt { reason, retry: Some(kind) }
    } else {
        Action::ReturnToOldOs { reason }
    }
}

/// The work that follows a durably recorded milestone.
fn work_after(step: &Step) -> Action {
    match step {
        Step::NotStarted => Action::Begin,
        Step::Started => Action::ArmResume,
        Step::ResumeArmed => Action::Backup,
        Step::BackupDone | Step::FlashStarted => Action::Flash { resume_from: Bytes(0) },
        Step::FlashProgress { through } => Action::Flash { resume_from: *through },
        Step::FlashWritten { image_bytes } => Action::VerifyFlash { image_bytes: *image_bytes },
        Step::FlashVerified => Action::Restore,
        Step::RestoreDone => Action::FinalizeBoot,
        Step::BootFinalized => Action::Finish,
        Step::Done => Action::RebootIntoResin,
    }
}
