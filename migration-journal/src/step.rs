//! The milestones of a migration, in the order they are reached.

use plan::units::Bytes;
use serde::{Deserialize, Serialize};

/// The last milestone that is durably done. Each one is recorded only after its
/// work is complete and synced, so a restart resumes with the work that follows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Nothing recorded yet (no journal on the staging filesystem).
    NotStarted,
    /// The migrator entered for this plan; nothing else done.
    Started,
    /// Every boot now re-enters the migration environment. Armed first, before the
    /// backup, so that a power cut at any later instant comes back here (the one-shot
    /// entry that started us is already spent).
    ResumeArmed,
    /// Backup archive and converted network settings are on staging and verified.
    BackupDone,
    /// Recorded right before the first destructive write: the old OS is gone from here on.
    FlashStarted,
    /// The image stream up to `through` is written to disk and synced.
    FlashProgress { through: Bytes },
    /// The whole image (`image_bytes` long) is written and synced.
    FlashWritten { image_bytes: Bytes },
    /// The written image was read back and matches.
    FlashVerified,
    /// Data, network keyfiles, config.json and hostname are restored.
    RestoreDone,
    /// resinOS's boot code and final partition table are written.
    BootFinalized,
    /// Nothing left to do.
    Done,
}

impl Step {
    /// Position in the migration order; `FlashProgress` checkpoints share one rank.
    pub fn rank(&self) -> u8 {
        match self {
            Step::NotStarted => 0,
            Step::Started => 1,
            Step::ResumeArmed => 2,
            Step::BackupDone => 3,
            Step::FlashStarted => 4,
            Step::FlashProgress { .. } => 5,
            Step::FlashWritten { .. } => 6,
            Step::FlashVerified => 7,
            Step::RestoreDone => 8,
            Step::BootFinalized => 9,
            Step::Done => 10,
        }
    }

    /// True once the old OS may have been overwritten: from here on failures never
    /// return to the old OS, they retry (bounded) and then halt.
    pub fn is_destructive(&self) -> bool {
        self.rank() >= Step::FlashStarted.rank()
    }

    /// The unit of work that records progress checkpoints of this kind, if any.
    pub fn work_kind(&self) -> Option<ActionKind> {
        match self {
            Step::FlashProgress { .. } => Some(ActionKind::Flash),
            _ => None,
        }
    }

    /// Whether recording `next` after `self` moves forward (or repeats `self`,
    /// which is harmless for idempotent steps).
    pub fn may_advance_to(&self, next: &Step) -> bool {
        match (self, next) {
            (Step::FlashProgress { through: a }, Step::FlashProgress { through: b }) => b >= a,
            _ => next.rank() >= self.rank(),
        }
    }
}

/// The unit of work the migrator performs between two milestones; attempts are
/// counted per kind for bounded retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    Begin,
    ArmResume,
    Backup,
    Flash,
    VerifyFlash,
    Restore,
    FinalizeBoot,
    Finish,
}
