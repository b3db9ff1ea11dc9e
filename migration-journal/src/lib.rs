//! The journal on the staging filesystem: which steps are done, fsynced, resumable.
//!
//! Two copies ("slots") alternate; each carries a sequence number and a sha256.
//! A write goes to the slot that does not hold the newest good copy, is fsynced
//! together with its directory, and only then counts. A torn or corrupted copy is
//! detected by its checksum and the other slot — the last durable state — is used.
//!
//! Nothing here needs ext4: on the Raspberry Pi the journal sits on a FAT32 (the spare
//! partition, docs/arm-1x-contract.md R11). A copy is rewritten in place (truncate, write,
//! fsync; vfat's fsync of a file also writes its directory entry and the FAT), and the
//! directory is fsynced; no rename, link, symlink, sparse file, permission or file over
//! 4 GiB is involved. Whatever order a cut lets the data, the size and the FAT sectors reach
//! the disk in, a torn copy reads short, long or wrong and fails its checksum.

mod machine;
mod record;
mod step;

pub use machine::{next_action, Action, Inputs};
pub use record::RecordError;
pub use step::{ActionKind, Step};

use record::Record;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// File names of the two journal copies inside the journal directory.
pub const SLOT_NAMES: [&str; 2] = ["journal.0", "journal.1"];

/// Everything the migrator needs to resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalState {
    /// Identity of the plan this journal belongs to (`None` before `begin`).
    pub plan_id: Option<String>,
    /// Last milestone durably done.
    pub step: Step,
    /// Attempts started per unit of work (including the one that may be running).
    pub attempts: BTreeMap<ActionKind, u32>,
    /// Of those attempts, the ones that ended in an error. The others (attempts minus
    /// failures) were interrupted: a power cut, a crash or a hang that a watchdog ended.
    /// The two are bounded separately, so power cuts alone never exhaust the error bound.
    #[serde(default)]
    pub failures: BTreeMap<ActionKind, u32>,
}

impl JournalState {
    pub fn fresh() -> JournalState {
        JournalState {
            plan_id: None,
            step: Step::NotStarted,
            attempts: BTreeMap::new(),
            failures: BTreeMap::new(),
        }
    }

    pub fn attempts_of(&self, kind: ActionKind) -> u32 {
        self.attempts.get(&kind).copied().unwrap_or(0)
    }

    /// Attempts at `kind` that ended in an error.
    pub fn failures_of(&self, kind: ActionKind) -> u32 {
        self.failures.get(&kind).copied().unwrap_or(0)
    }

    /// Attempts at `kind` that never reported back (power cut, crash, hang).
    pub fn interruptions_of(&self, kind: ActionKind) -> u32 {
        self.attempts_of(kind).saturating_sub(self.failures_of(kind))
    }
}

/// How `Journal::open` found the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadReport {
    /// No journal yet: a fresh start.
    Fresh,
    /// The newest copy was good.
    Loaded { seq: u64 },
    /// A newer copy was torn or corrupt; the last durable one was used. `problem` is the
    /// [`RecordError`] as text: the report is a copyable summary for the log and `status`.
    RecoveredOlder { seq: u64, bad_slot: PathBuf, problem: String },
    /// The only copy ever begun was torn: nothing was durable, so a fresh start.
    FreshAfterTornFirstWrite { bad_slot: PathBuf, problem: String },
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot {action} journal {path}: {source}; check that the staging filesystem is mounted read-write")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("both journal copies in {dir} are corrupt ({first}; {second}); the progress is unknown, inspect the migration log and re-stage")]
    NoValidCopy { dir: PathBuf, first: RecordError, second: RecordError },
    #[error("journal step {to:?} would move back from {from:?}; this is a migrator bug, report it with the migration log")]
    Regress { from: Step, to: Step },
    #[error("the journal in {dir} is at the largest sequence number and cannot record more; it was not written by this migrator, inspect the migration log and re-stage")]
    SequenceExhausted { dir: PathBuf },
    #[error("cannot encode journal: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The journal: loaded state plus where and how to write the next copy.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    state: JournalState,
    /// Sequence number of the newest durable copy (0 = none).
    seq: u64,
    report: LoadReport,
}

impl Journal {
    /// Load the journal from `dir` (which must exist). A missing journal is a fresh
    /// start; a corrupt newest copy falls back to the other one.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        let loads = SLOT_NAMES.map(|name| load_slot(&dir.join(name)));
        let mut best: Option<Record> = None;
        let mut problems = Vec::new();
        for (name, load) in SLOT_NAMES.iter().zip(loads) {
            match load? {
                SlotLoad::Missing => {}
                SlotLoad::Corrupt(problem) => problems.push((dir.join(name), problem)),
                SlotLoad::Good(record) => {
                    if best.as_ref().is_none_or(|b| record.seq > b.seq) {
                        best = Some(record);
                    }
                }
            }
        }
        let (state, seq, report) = match (best, problems.len()) {
            (Some(record), 0) => {
                let seq = record.seq;
                (record.state, seq, LoadReport::Loaded { seq })
            }
            (Some(record), _) => {
                let (bad_slot, problem) = problems.swap_remove(0);
                log::warn!(
                    "journal copy {} unusable ({problem}); resuming from copy #{}",
                    bad_slot.display(),
                    record.seq
                );
                let seq = record.seq;
                let problem = problem.to_string();
                (record.state, seq, LoadReport::RecoveredOlder { seq, bad_slot, problem })
            }
            (None, 0) => (JournalState::fresh(), 0, LoadReport::Fresh),
            (None, 1) => {
                let (bad_slot, problem) = problems.swap_remove(0);
                log::warn!(
                    "journal copy {} unusable ({problem}); it was the first write, starting fresh",
                    bad_slot.display()
                );
                let problem = problem.to_string();
                (
                    JournalState::fresh(),
                    0,
                    LoadReport::FreshAfterTornFirstWrite { bad_slot, problem },
                )
            }
            (None, _) => {
                let second = problems.swap_remove(1).1;
                let first = problems.swap_remove(0).1;
                return Err(JournalError::NoValidCopy { dir: dir.to_path_buf(), first, second });
            }
        };
        Ok(Journal { dir: dir.to_path_buf(), state, seq, report })
    }

    pub fn state(&self) -> &JournalState {
        &self.state
    }

    pub fn load_report(&self) -> &LoadReport {
        &self.report
    }

    /// Path of the newest durable copy, if any.
    pub fn newest_slot(&self) -> Option<PathBuf> {
        (self.seq > 0).then(|| self.slot_path(self.seq))
    }

    /// Start over for `plan_id`: step `Started`, no attempts. Durable on return.
    pub fn begin(&mut self, plan_id: &str) -> Result<(), JournalError> {
        let state = JournalState {
            plan_id: Some(plan_id.to_string()),
            step: Step::Started,
            attempts: BTreeMap::new(),
            failures: BTreeMap::new(),
        };
        self.commit(state)
    }

    /// Record that `step` is done. Durable (file and directory fsynced) on return.
    /// Repeating the current step is allowed; moving backwards is an error. A new
    /// flash checkpoint clears the flash attempt count: only attempts without
    /// progress count against the bound.
    pub fn record(&mut self, step: Step) -> Result<(), JournalError> {
        if !self.state.step.may_advance_to(&step) {
            return Err(JournalError::Regress { from: self.state.step.clone(), to: step });
        }
        let mut state = self.state.clone();
        if let (Some(kind), true) = (step.work_kind(), step != state.step) {
            // A new checkpoint within a unit of work (flash progress): the retry
            // bound counts only attempts that make no progress.
            state.attempts.remove(&kind);
            state.failures.remove(&kind);
        }
        state.step = step;
        self.commit(state)
    }

    /// Count one more attempt at `kind` (durably, before doing the work) and return
    /// the attempt number, starting at 1.
    pub fn record_attempt(&mut self, kind: ActionKind) -> Result<u32, JournalError> {
        let mut state = self.state.clone();
        let count = state.attempts.entry(kind).or_insert(0);
        *count = count.saturating_add(1);
        let attempt = *count;
        self.commit(state)?;
        Ok(attempt)
    }

    /// Record that the running attempt at `kind` ended in an error (durably).
    pub fn record_failure(&mut self, kind: ActionKind) -> Result<u32, JournalError> {
        let mut state = self.state.clone();
        let started = state.attempts_of(kind);
        let count = state.failures.entry(kind).or_insert(0);
        // Never more failures than attempts: a failure always follows its attempt.
        *count = count.saturating_add(1).min(started);
        let failures = *count;
        self.commit(state)?;
        Ok(failures)
    }

    /// Give `kind` a fresh budget (durably): after the migrator stopped on it, the next
    /// boot of the migration environment tries again instead of stopping at once.
    pub fn reset_budget(&mut self, kind: ActionKind) -> Result<(), JournalError> {
        let mut state = self.state.clone();
        state.attempts.remove(&kind);
        state.failures.remove(&kind);
        self.commit(state)
    }

    fn slot_path(&self, seq: u64) -> PathBuf {
        self.dir.join(SLOT_NAMES[(seq % 2) as usize])
    }

    fn commit(&mut self, state: JournalState) -> Result<(), JournalError> {
        let seq = self
            .seq
            .checked_add(1)
            .ok_or(JournalError::SequenceExhausted { dir: self.dir.clone() })?;
        let bytes = record::encode(&Record::new(seq, state.clone()))?;
        let path = self.slot_path(seq);
        write_durably(&path, &bytes)?;
        sync_dir(&self.dir)?;
        log::info!("journal #{seq}: {:?}", state.step);
        self.seq = seq;
        self.state = state;
        Ok(())
    }
}

enum SlotLoad {
    Missing,
    Corrupt(RecordError),
    Good(Record),
}

fn load_slot(path: &Path) -> Result<SlotLoad, JournalError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(match record::decode(&bytes) {
            Ok(record) => SlotLoad::Good(record),
            Err(problem) => SlotLoad::Corrupt(problem),
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(SlotLoad::Missing),
        Err(source) => Err(JournalError::Io { action: "read", path: path.to_path_buf(), source }),
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), JournalError> {
    let io = |action| move |source| JournalError::Io { action, path: path.to_path_buf(), source };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io("open"))?;
    file.write_all(bytes).map_err(io("write"))?;
    file.sync_all().map_err(io("fsync"))
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    let io = |action| move |source| JournalError::Io { action, path: dir.to_path_buf(), source };
    File::open(dir).map_err(io("open directory of"))?.sync_all().map_err(io("fsync directory of"))
}
