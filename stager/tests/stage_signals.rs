//! SIGINT, SIGTERM and SIGHUP raised for real in the process that stages (through the
//! `SWAPOVER_TEST_RAISE_AT` hook) at points early in staging, in the middle of the image
//! copy of `write-staging`, just before arming, and just after arming began: each run ends
//! rolled back with the host byte-identical to the start, or (signal after the last step
//! began) staged and armed — never in between. One fixture host serves every run, since each
//! must leave it exactly as it was.
//!
//! Its own test binary: the signal handlers and the hook's environment variable are the
//! process's, so the runs here go one after another.

#[path = "stage_support/mod.rs"]
mod stage_support;

use stage_support::*;
use stager::interrupt::{self, RAISE_AT_ENV};
use stager::stage::engine::execute::ExecuteError;
use stager::stage::engine::system::FixtureSystem;
use stager::stage::{run_stage, StageError, StageOutcome};
use stager::state::StateStore;

struct Snapshot {
    files: std::collections::BTreeMap<String, String>,
    /// Everything before the swap partition (MBR, root, EBR) and the swap header page: the
    /// rest of a swap partition holds no data, and `mkfs` overwrote it.
    disk: (String, String),
    /// The whole disk image, for the runs stopped before `mkfs`.
    whole: String,
    blkid: String,
}

fn snapshot(host: &StageHost) -> Snapshot {
    Snapshot {
        files: host.files(),
        disk: host.disk_guarded(),
        whole: host.disk_whole(),
        blkid: host.blkid_swap(),
    }
}

fn assert_untouched(host: &StageHost, before: &Snapshot, what: &str) {
    assert_restored(host, before, what);
    assert_eq!(host.disk_whole(), before.whole, "{what}: the disk image differs");
}

fn assert_restored(host: &StageHost, before: &Snapshot, what: &str) {
    assert_eq!(host.blkid_swap(), before.blkid, "{what}");
    assert_eq!(host.files(), before.files, "{what}: the host's files differ");
    assert!(!StateStore::new(&host.root()).exists(), "{what}: state.json left");
    assert!(loops_over(host.host.root()).is_empty(), "{what}: {:?}", loops_over(host.host.root()));
    assert!(mounted_under(host.host.root()).is_empty(), "{what}: still mounted");
    // After every loop device let go of it: the partition table, root and swap header.
    assert_eq!(host.disk_guarded(), before.disk, "{what}: the disk differs");
}

/// Runs one staging with `point=signal` armed; returns its result and the swap calls made.
fn stage_with_signal_at(
    host: &StageHost,
    point: &str,
    signal: &str,
) -> (Result<StageOutcome, StageError>, Vec<String>) {
    interrupt::reset();
    std::env::set_var(RAISE_AT_ENV, format!("{point}={signal}"));
    let mut system = FixtureSystem::default();
    let result = run_stage(&host.request(), &mut system);
    std::env::remove_var(RAISE_AT_ENV);
    (result, system.calls)
}

#[test]
fn each_signal_at_each_point_ends_rolled_back_or_armed_never_between() {
    let _one_at_a_time = serial();
    interrupt::install().unwrap();
    let host = StageHost::new();
    // The swap must read as swap afterwards; the disk's bytes are compared whole.
    let before = snapshot(&host);
    assert!(before.blkid.contains(&format!("UUID={SWAP_UUID}")), "{}", before.blkid);
    let swap_node = host.host.path("/dev/sda5").display().to_string();

    // (point, step named in the error)
    let rolled_back = [
        ("after:comment-fstab", "attach"),
        ("copy:resinos.img.xz", "write-staging"),
        ("before:arm-grubenv", "arm-grubenv"),
    ];
    for signal in ["SIGINT", "SIGTERM", "SIGHUP"] {
        for (point, step) in rolled_back {
            let what = format!("{signal} at {point}");
            // Earlier runs' mkfs left other bytes in the swap area: compare with now.
            let before = Snapshot { whole: host.disk_whole(), ..snapshot(&host) };
            let (result, calls) = stage_with_signal_at(&host, point, signal);
            match result {
                Err(StageError::Execute(ExecuteError::Interrupted {
                    interrupted,
                    step: at,
                    rollback,
                })) => {
                    assert_eq!(interrupt::name(interrupted.0), signal, "{what}");
                    assert_eq!(at, step, "{what}");
                    assert!(
                        rollback.starts_with("everything was rolled back, the host is as it was"),
                        "{what}: {rollback}"
                    );
                }
                other => panic!("{what}: {other:?}"),
            }
            // Swap went off and came back on; the rollback was complete.
            assert_eq!(calls, vec![format!("swapoff {swap_node}"), format!("swapon {swap_node}")]);
            if point == "after:comment-fstab" {
                assert_untouched(&host, &before, &what);
            } else {
                assert_restored(&host, &before, &what);
            }
        }

        // After the last step began: staged and armed (and not rebooted), then undone by abort.
        let what = format!("{signal} after arming began");
        let (result, calls) = stage_with_signal_at(&host, "after:arm-grubenv", signal);
        let outcome = result.unwrap_or_else(|e| panic!("{what}: {e}"));
        let StageOutcome::Staged { report, .. } = outcome else { panic!("{what}: {outcome:?}") };
        assert!(!report.rebooting, "{what}");
        assert_eq!(calls, vec![format!("swapoff {swap_node}")], "{what}: no reboot asked");
        let state = StateStore::new(&host.root()).load().unwrap().unwrap();
        assert!(state.armed, "{what}");
        assert_eq!(interrupt::received().map(|i| interrupt::name(i.0)), Some(signal));
        let grubenv = std::fs::read_to_string(host.host.path("/boot/grub/grubenv")).unwrap();
        assert!(grubenv.contains("next_entry=swapover-migrate"), "{what}");
        let mut system = FixtureSystem::default();
        let aborted = stager::abort::abort(&host.root(), &mut system).unwrap();
        assert!(matches!(aborted, stager::abort::AbortOutcome::Restored(_)), "{what}");
        assert_restored(&host, &before, &what);
    }
}

#[test]
fn a_second_signal_does_not_interrupt_the_rollback() {
    let _one_at_a_time = serial();
    interrupt::install().unwrap();
    let host = StageHost::new();
    let before = snapshot(&host);
    // SIGTERM mid-copy starts the rollback; SIGINT at its start and SIGHUP in its middle
    // (while the staging partition's swap header is written back) are noted, not obeyed.
    let (result, _) = stage_with_signal_at(
        &host,
        "copy:resinos.img.xz",
        "SIGTERM,rollback=SIGINT,undo:mkfs=SIGHUP",
    );
    match result {
        Err(StageError::Execute(ExecuteError::Interrupted { interrupted, step, rollback })) => {
            assert_eq!(interrupt::name(interrupted.0), "SIGTERM");
            assert_eq!(step, "write-staging");
            assert!(rollback.contains("wrote the saved swap header back"), "{rollback}");
        }
        other => panic!("{other:?}"),
    }
    assert_restored(&host, &before, "signals during the rollback");
}

#[test]
fn a_signal_before_the_first_step_changes_nothing() {
    let _one_at_a_time = serial();
    interrupt::install().unwrap();
    let host = StageHost::new();
    let before = snapshot(&host);
    let (result, calls) = stage_with_signal_at(&host, "before:swapoff", "SIGHUP");
    assert!(
        matches!(&result, Err(StageError::Execute(ExecuteError::Interrupted { step, .. })) if step == "swapoff"),
        "{result:?}"
    );
    assert!(calls.is_empty(), "{calls:?}");
    assert_untouched(&host, &before, "SIGHUP before swapoff");
}

/// The tests here share the process's signal handlers and environment: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
