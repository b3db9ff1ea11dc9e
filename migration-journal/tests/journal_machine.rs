//! The resume state machine: every transition, the stale-plan rule, and the
//! retry bound with its before/after-destruction policy.

use migration_journal::{next_action, Action, ActionKind, Inputs, JournalState, Step};
use plan::units::Bytes;
use std::collections::BTreeMap;

const PLAN: &str = "plan-sha256-abc";

fn inputs() -> Inputs<'static> {
    Inputs { plan_id: PLAN, max_attempts: 3, max_interrupted: 10 }
}

fn at(step: Step) -> JournalState {
    JournalState {
        plan_id: Some(PLAN.to_string()),
        step,
        attempts: BTreeMap::new(),
        failures: BTreeMap::new(),
    }
}

#[test]
fn every_milestone_leads_to_the_work_that_follows_it() {
    let table = [
        (Step::Started, Action::ArmResume),
        (Step::ResumeArmed, Action::Backup),
        (Step::BackupDone, Action::Flash { resume_from: Bytes(0) }),
        (Step::FlashStarted, Action::Flash { resume_from: Bytes(0) }),
        (
            Step::FlashProgress { through: Bytes(123 << 20) },
            Action::Flash { resume_from: Bytes(123 << 20) },
        ),
        (
            Step::FlashWritten { image_bytes: Bytes(700 << 20) },
            Action::VerifyFlash { image_bytes: Bytes(700 << 20) },
        ),
        (Step::FlashVerified, Action::Restore),
        (Step::RestoreDone, Action::FinalizeBoot),
        (Step::BootFinalized, Action::Finish),
        (Step::Done, Action::RebootIntoResin),
    ];
    for (step, want) in table {
        assert_eq!(next_action(&at(step.clone()), &inputs()), want, "after {step:?}");
    }
}

#[test]
fn a_fresh_journal_begins() {
    assert_eq!(next_action(&JournalState::fresh(), &inputs()), Action::Begin);
}

#[test]
fn a_stale_plan_before_destruction_starts_over() {
    for step in [Step::Started, Step::ResumeArmed, Step::BackupDone] {
        let mut state = at(step);
        state.plan_id = Some("older-plan".into());
        assert_eq!(next_action(&state, &inputs()), Action::Begin);
    }
}

#[test]
fn a_stale_plan_after_destruction_halts() {
    let mut state = at(Step::FlashProgress { through: Bytes(4096) });
    state.plan_id = Some("older-plan".into());
    match next_action(&state, &inputs()) {
        Action::Halt { reason, retry: None } => {
            assert!(reason.contains("older-plan") && reason.contains(PLAN), "{reason}")
        }
        other => panic!("expected Halt, got {other:?}"),
    }
}

#[test]
fn attempts_below_the_bound_retry_the_same_work() {
    let mut state = at(Step::FlashProgress { through: Bytes(1 << 30) });
    state.attempts.insert(ActionKind::Flash, 2);
    assert_eq!(next_action(&state, &inputs()), Action::Flash { resume_from: Bytes(1 << 30) });
}

#[test]
fn the_bound_before_destruction_returns_to_the_old_os() {
    for (step, kind) in [
        (Step::Started, ActionKind::ArmResume),
        (Step::ResumeArmed, ActionKind::Backup),
        (Step::BackupDone, ActionKind::Flash),
    ] {
        let mut state = at(step.clone());
        state.attempts.insert(kind, 3);
        state.failures.insert(kind, 3);
        match next_action(&state, &inputs()) {
            Action::ReturnToOldOs { reason } => {
                assert!(reason.contains("failed 3 times"), "{reason}")
            }
            other => panic!("after {step:?}: expected ReturnToOldOs, got {other:?}"),
        }
    }
}

#[test]
fn the_bound_after_destruction_halts() {
    for (step, kind) in [
        (Step::FlashStarted, ActionKind::Flash),
        (Step::FlashWritten { image_bytes: Bytes(1) }, ActionKind::VerifyFlash),
        (Step::FlashVerified, ActionKind::Restore),
        (Step::RestoreDone, ActionKind::FinalizeBoot),
        (Step::BootFinalized, ActionKind::Finish),
    ] {
        let mut state = at(step.clone());
        state.attempts.insert(kind, 5);
        state.failures.insert(kind, 3);
        assert_eq!(
            next_action(&state, &inputs()),
            Action::Halt {
                reason: format!("{kind:?} failed 3 times (limit 3); see the migration log on the staging partition"),
                retry: Some(kind)
            },
            "after {step:?}"
        );
    }
}

#[test]
fn attempts_of_other_work_do_not_count() {
    let mut state = at(Step::FlashVerified);
    state.attempts.insert(ActionKind::Flash, 99);
    assert_eq!(next_action(&state, &inputs()), Action::Restore);
}

#[test]
fn destruction_begins_at_flash_started() {
    assert!(!Step::BackupDone.is_destructive());
    assert!(Step::FlashStarted.is_destructive());
    assert!(Step::Done.is_destructive());
}

#[test]
fn steps_only_move_forward() {
    assert!(Step::ResumeArmed.may_advance_to(&Step::BackupDone));
    assert!(Step::ResumeArmed.may_advance_to(&Step::ResumeArmed));
    assert!(!Step::BackupDone.may_advance_to(&Step::ResumeArmed));
    let p = |n| Step::FlashProgress { through: Bytes(n) };
    assert!(p(10).may_advance_to(&p(20)));
    assert!(!p(20).may_advance_to(&p(10)));
    assert!(p(20).may_advance_to(&Step::FlashWritten { image_bytes: Bytes(30) }));
}

#[test]
fn power_cuts_do_not_use_up_the_error_bound() {
    // Nine attempts cut short (no failure recorded) and two errors: keep going.
    for step in [Step::ResumeArmed, Step::FlashVerified] {
        let mut state = at(step.clone());
        let kind = if step == Step::ResumeArmed { ActionKind::Backup } else { ActionKind::Restore };
        state.attempts.insert(kind, 11);
        state.failures.insert(kind, 2);
        assert_eq!(state.interruptions_of(kind), 9);
        let action = next_action(&state, &inputs());
        assert_eq!(action.kind(), Some(kind), "after {step:?}: {action:?}");
    }
}

#[test]
fn a_step_interrupted_again_and_again_is_given_up() {
    let mut state = at(Step::ResumeArmed);
    state.attempts.insert(ActionKind::Backup, 10);
    match next_action(&state, &inputs()) {
        Action::ReturnToOldOs { reason } => {
            assert!(reason.contains("interrupted 10 times"), "{reason}")
        }
        other => panic!("expected ReturnToOldOs, got {other:?}"),
    }
    let mut state = at(Step::FlashVerified);
    state.attempts.insert(ActionKind::Restore, 12);
    state.failures.insert(ActionKind::Restore, 1);
    match next_action(&state, &inputs()) {
        Action::Halt { reason, retry } => {
            assert!(reason.contains("interrupted 11 times"), "{reason}");
            assert_eq!(retry, Some(ActionKind::Restore));
        }
        other => panic!("expected Halt, got {other:?}"),
    }
}
