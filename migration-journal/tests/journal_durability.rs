//! The journal on a real directory: resume from every step, torn and corrupt
//! copies fall back to the last durable step, attempts survive restarts.

use migration_journal::{
    next_action, Action, ActionKind, Inputs, Journal, JournalError, LoadReport, Step, SLOT_NAMES,
};
use plan::units::Bytes;
use std::fs;
use std::path::Path;

const PLAN: &str = "plan-1";

fn inputs() -> Inputs<'static> {
    Inputs { plan_id: PLAN, max_attempts: 3, max_interrupted: 10 }
}

/// The whole migration as the migrator would drive it, one recorded milestone per action.
fn all_steps() -> Vec<Step> {
    vec![
        Step::ResumeArmed,
        Step::BackupDone,
        Step::FlashStarted,
        Step::FlashProgress { through: Bytes(64 << 20) },
        Step::FlashProgress { through: Bytes(128 << 20) },
        Step::FlashWritten { image_bytes: Bytes(150 << 20) },
        Step::FlashVerified,
        Step::RestoreDone,
        Step::BootFinalized,
        Step::Done,
    ]
}

fn begun(dir: &Path) -> Journal {
    let mut j = Journal::open(dir).unwrap();
    assert_eq!(j.load_report(), &LoadReport::Fresh);
    j.begin(PLAN).unwrap();
    j
}

#[test]
fn missing_journal_is_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    assert_eq!(j.state().step, Step::NotStarted);
    assert_eq!(next_action(j.state(), &inputs()), Action::Begin);
}

#[test]
fn resumes_from_every_step_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = begun(dir.path());
    for step in all_steps() {
        j.record(step.clone()).unwrap();
        drop(j);
        j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.state().step, step);
        assert!(matches!(j.load_report(), LoadReport::Loaded { .. }));
        assert_eq!(j.state().plan_id.as_deref(), Some(PLAN));
    }
    assert_eq!(next_action(j.state(), &inputs()), Action::RebootIntoResin);
}

#[test]
fn driving_the_machine_reaches_done_and_every_action_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path()).unwrap();
    let mut seen = Vec::new();
    loop {
        let action = next_action(j.state(), &inputs());
        if let Some(kind) = action.kind() {
            if kind != ActionKind::Begin {
                assert_eq!(j.record_attempt(kind).unwrap(), 1);
            }
        }
        seen.push(action.clone());
        let done = match action {
            Action::Begin => Step::Started,
            Action::ArmResume => Step::ResumeArmed,
            Action::Backup => Step::BackupDone,
            Action::Flash { resume_from } => {
                assert_eq!(resume_from, Bytes(0));
                j.record(Step::FlashStarted).unwrap();
                j.record(Step::FlashProgress { through: Bytes(1 << 20) }).unwrap();
                Step::FlashWritten { image_bytes: Bytes(2 << 20) }
            }
            Action::VerifyFlash { image_bytes } => {
                assert_eq!(image_bytes, Bytes(2 << 20));
                Step::FlashVerified
            }
            Action::Restore => Step::RestoreDone,
            Action::FinalizeBoot => Step::BootFinalized,
            Action::Finish => Step::Done,
            Action::RebootIntoResin => break,
            other => panic!("unexpected {other:?}"),
        };
        if done == Step::Started {
            j.begin(PLAN).unwrap();
        } else {
            j.record(done).unwrap();
        }
    }
    assert_eq!(seen.len(), 9);
}

fn newest_and_older(j: &Journal, dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let newest = j.newest_slot().unwrap();
    let older = SLOT_NAMES.iter().map(|n| dir.join(n)).find(|p| *p != newest).unwrap();
    (newest, older)
}

#[test]
fn torn_newest_copy_falls_back_to_the_last_durable_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = begun(dir.path());
    j.record(Step::ResumeArmed).unwrap();
    j.record(Step::BackupDone).unwrap();
    j.record(Step::FlashStarted).unwrap();
    j.record(Step::FlashProgress { through: Bytes(1 << 30) }).unwrap();
    let (newest, _) = newest_and_older(&j, dir.path());
    let len = fs::metadata(&newest).unwrap().len();
    for cut in [0, 1, len / 2, len - 2, len - 1] {
        let full = fs::read(&newest).unwrap();
        fs::write(&newest, &full[..cut as usize]).unwrap();
        let reopened = Journal::open(dir.path()).unwrap();
        assert_eq!(reopened.state().step, Step::FlashStarted, "cut at {cut}");
        match reopened.load_report() {
            LoadReport::RecoveredOlder { bad_slot, .. } => assert_eq!(bad_slot, &newest),
            other => panic!("cut at {cut}: {other:?}"),
        }
        fs::write(&newest, &full).unwrap();
    }
    assert_eq!(
        Journal::open(dir.path()).unwrap().state().step,
        Step::FlashProgress { through: Bytes(1 << 30) }
    );
}

#[test]
fn flipped_bytes_are_detected_anywhere_in_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = begun(dir.path());
    j.record(Step::ResumeArmed).unwrap();
    j.record(Step::BackupDone).unwrap();
    let (newest, _) = newest_and_older(&j, dir.path());
    let good = fs::read(&newest).unwrap();
    for at in [0, good.len() / 3, good.len() / 2, good.len() - 10] {
        let mut bad = good.clone();
        bad[at] ^= 0x04;
        fs::write(&newest, &bad).unwrap();
        let reopened = Journal::open(dir.path()).unwrap();
        assert_eq!(reopened.state().step, Step::ResumeArmed, "flip at {at}");
    }
}

#[test]
fn writing_after_a_recovery_replaces_the_torn_copy() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = begun(dir.path());
    j.record(Step::ResumeArmed).unwrap();
    let (newest, _) = newest_and_older(&j, dir.path());
    fs::write(&newest, b"{\"form").unwrap();
    let mut j = Journal::open(dir.path()).unwrap();
    assert_eq!(j.state().step, Step::Started);
    j.record(Step::ResumeArmed).unwrap();
    j.record(Step::BackupDone).unwrap();
    let j = Journal::open(dir.path()).unwrap();
    assert_eq!(j.state().step, Step::BackupDone);
    assert!(matches!(j.load_report(), LoadReport::Loaded { .. }));
}

#[test]
fn a_torn_first_write_is_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let j = begun(dir.path());
    let only = j.newest_slot().unwrap();
    let full = fs::read(&only).unwrap();
    fs::write(&only, &full[..full.len() / 2]).unwrap();
    let j = Journal::open(dir.path()).unwrap();
    assert_eq!(j.state().step, Step::NotStarted);
    assert!(matches!(j.load_report(), LoadReport::FreshAfterTornFirstWrite { .. }));
}

#[test]
fn both_copies_corrupt_is_an_error_not_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = begun(dir.path());
    j.record(Step::ResumeArmed).unwrap();
    for name in SLOT_NAMES {
        let p = dir.path().join(name);
        let mut bytes = fs::read(&p).unwrap();
        bytes[5] ^= 0xff;
        fs::write(&p, bytes).unwrap();
    }
    match Journal::open(dir.path()) {
        Err(e @ JournalError::NoValidCopy { .. }) => assert!(e.to_string().contains("re-stage")),
        other => panic!("expected NoValidCopy, got {other:?}"),
    }
}

#[test]
fn attempts_are_counted_durably_and_hit_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = begun(dir.path());
    for step in [Step::ResumeArmed, Step::BackupDone, Step::FlashStarted] {
        j.record(step).unwrap();
    }
    // Power cuts: one boot decides, counts the attempt, then "loses power" before any
    // progress. They use up the interruption bound (10), not the error bound (3).
    for expected in 1..=10 {
        let mut boot = Journal::open(dir.path()).unwrap();
        assert_eq!(
            next_action(boot.state(), &inputs()),
            Action::Flash { resume_from: Bytes(0) },
            "boot {expected}"
        );
        assert_eq!(boot.record_attempt(ActionKind::Flash).unwrap(), expected);
    }
    let mut boot = Journal::open(dir.path()).unwrap();
    assert_eq!(boot.state().interruptions_of(ActionKind::Flash), 10);
    assert!(matches!(
        next_action(boot.state(), &inputs()),
        Action::Halt { retry: Some(ActionKind::Flash), .. }
    ));

    // The halt gives the step a fresh budget for the next boot, durably.
    boot.reset_budget(ActionKind::Flash).unwrap();
    let mut boot = Journal::open(dir.path()).unwrap();
    assert_eq!(next_action(boot.state(), &inputs()), Action::Flash { resume_from: Bytes(0) });

    // Errors: three attempts that each report a failure hit the error bound.
    for n in 1..=3 {
        assert_eq!(
            next_action(boot.state(), &inputs()),
            Action::Flash { resume_from: Bytes(0) },
            "error {n}"
        );
        boot.record_attempt(ActionKind::Flash).unwrap();
        assert_eq!(boot.record_failure(ActionKind::Flash).unwrap(), n);
    }
    let boot = Journal::open(dir.path()).unwrap();
    assert_eq!(
        (
            boot.state().failures_of(ActionKind::Flash),
            boot.state().interruptions_of(ActionKind::Flash)
        ),
        (3, 0)
    );
    match next_action(boot.state(), &inputs()) {
        Action::Halt { reason, retry } => {
            assert!(reason.contains("Flash failed 3 times"), "{reason}");
            assert_eq!(retry, Some(ActionKind::Flash));
        }
        other => panic!("expected Halt, got {other:?}"),
    }
}

#[test]
fn a_failure_is_never_counted_without_its_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = begun(dir.path());
    assert_eq!(j.record_failure(ActionKind::ArmResume).unwrap(), 0);
    j.record_attempt(ActionKind::ArmResume).unwrap();
    assert_eq!(j.record_failure(ActionKind::ArmResume).unwrap(), 1);
    assert_eq!(j.record_failure(ActionKind::ArmResume).unwrap(), 1);
}

#[test]
fn moving_backwards_is_refused_and_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = begun(dir.path());
    j.record(Step::BackupDone).unwrap();
    assert!(matches!(j.record(Step::ResumeArmed), Err(JournalError::Regress { .. })));
    assert_eq!(Journal::open(dir.path()).unwrap().state().step, Step::BackupDone);
}

#[test]
fn begin_for_a_new_plan_resets_step_and_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = begun(dir.path());
    j.record_attempt(ActionKind::ArmResume).unwrap();
    j.record(Step::ResumeArmed).unwrap();
    j.begin("plan-2").unwrap();
    let j = Journal::open(dir.path()).unwrap();
    assert_eq!(j.state().step, Step::Started);
    assert_eq!(j.state().plan_id.as_deref(), Some("plan-2"));
    assert_eq!(j.state().attempts_of(ActionKind::ArmResume), 0);
}

#[test]
fn an_unwritable_directory_is_an_error_that_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&dir.path().join("missing")).unwrap();
    let err = j.begin(PLAN).unwrap_err();
    assert!(err.to_string().contains("mounted read-write"), "{err}");
}

#[test]
fn flash_progress_resets_the_flash_bound_but_stalls_still_hit_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = begun(dir.path());
    for step in [Step::ResumeArmed, Step::BackupDone, Step::FlashStarted] {
        j.record(step).unwrap();
    }
    // Five power cuts, each after another checkpoint: never stuck, never halted.
    for n in 1..=5u64 {
        let mut boot = Journal::open(dir.path()).unwrap();
        let action = next_action(boot.state(), &inputs());
        assert!(matches!(action, Action::Flash { .. }), "boot {n}: {action:?}");
        boot.record_attempt(ActionKind::Flash).unwrap();
        boot.record(Step::FlashProgress { through: Bytes(n << 20) }).unwrap();
        assert_eq!(boot.state().attempts_of(ActionKind::Flash), 0);
    }
    // Repeating the same checkpoint is no progress.
    let mut j = Journal::open(dir.path()).unwrap();
    for _ in 0..10 {
        j.record_attempt(ActionKind::Flash).unwrap();
        j.record(Step::FlashProgress { through: Bytes(5 << 20) }).unwrap();
    }
    assert_eq!(j.state().attempts_of(ActionKind::Flash), 10);
    assert!(matches!(next_action(j.state(), &inputs()), Action::Halt { .. }));
}
