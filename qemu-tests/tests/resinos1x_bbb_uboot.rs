//! BeagleBone Black resinOS 1.x: the one-shot trial armed by the `uboot-env` crate's uEnv.txt
//! runs on exactly one boot, under a real U-Boot with a real boot counter
//! (docs/arm-1x-contract.md §2.3 and §4; harness in `qemu_tests::bbb_uboot`).
//!
//! a. Power-on (counter 1) with the trial armed for 2: 1.x boots (equality false); 1.x
//!    warm-reboots, counter 2: the trial initramfs runs.
//! c. A power cut during that trial (QEMU killed, a new process: counter 1): 1.x.
//! d. After the commit text (phase B) replaced uEnv.txt: a power-on (counter 1) boots the
//!    migration environment with `swapover.stage=resume`.
//! b. A failing trial (an /init that cannot run: kernel panic, `panic=10`, warm reset,
//!    counter 3): 1.x, and the next warm reboot (counter 4) 1.x again; the BBB disk is
//!    byte-identical to before the run.

use anyhow::Result;
use qemu_tests::bbb_uboot::{
    build_disks, commit, power_on, BbbInputs, TrialKind, MARK_1X_UP, MARK_BOOTCOUNT,
    MARK_MIGRATOR_UP, MARK_RESUME_BOOT, MARK_TRIAL_BOOT,
};
use qemu_tests::paths;
use qemu_tests::qemu::Vm;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Duration, Instant};

const STAGE: Duration = Duration::from_secs(90);

fn sha256(path: &Path) -> Result<String> {
    let mut h = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut h)?;
    Ok(format!("{:x}", h.finalize()))
}

/// Waits for the harness's bootcount line and checks its value.
fn expect_bootcount(vm: &mut Vm, wanted: u32) -> Result<()> {
    let line = vm.wait_for(MARK_BOOTCOUNT, STAGE)?;
    let value = line.split_once(MARK_BOOTCOUNT).map(|(_, v)| v.trim()).unwrap_or_default();
    assert_eq!(value, wanted.to_string(), "U-Boot's boot counter: {line}");
    Ok(())
}

/// Waits for the 1.x stand-in and checks that nothing of the trial ran on this boot.
fn expect_1x(vm: &mut Vm) -> Result<()> {
    let before = vm.count(MARK_TRIAL_BOOT);
    // U-Boot's last line before the kernel: by then uenvcmd has run (or not) on this boot.
    vm.wait_for("Starting kernel", STAGE)?;
    assert_eq!(vm.count(MARK_TRIAL_BOOT), before, "the trial's swapover_boot ran on a 1.x boot");
    let line = vm.wait_for(MARK_1X_UP, STAGE)?;
    assert!(line.contains("harness.os=1x"), "1.x booted by mmcboot's loadimage: {line}");
    Ok(())
}

/// [`qemu_tests::timing::timed`] with this test's tag.
fn timed<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    qemu_tests::timing::timed("bbb", what, f)
}

#[test]
fn bbb_trial_runs_once_under_real_uboot() -> Result<()> {
    let started = Instant::now();
    let inputs = BbbInputs::locate()?;
    let runs = paths::artifacts_dir().join("runs/bbb-uboot");

    // a + c: the working trial, then a power cut during it.
    let good = runs.join("working");
    let (bbb, harness) =
        timed("build disks (working trial)", || build_disks(&good, &inputs, TrialKind::Working))?;
    timed("a: power-on → 1.x → warm reboot → trial", || {
        let mut vm = power_on("bbb-uboot-a", &inputs, &bbb, &harness)?;
        expect_bootcount(&mut vm, 1)?;
        expect_1x(&mut vm)?;
        expect_bootcount(&mut vm, 2)?;
        vm.wait_for(&format!("{MARK_TRIAL_BOOT}2"), STAGE)?;
        let line = vm.wait_for(MARK_MIGRATOR_UP, STAGE)?;
        assert!(line.contains("swapover.stage=trial"), "the trial's bootargs: {line}");
        assert!(!line.contains("harness.os=1x"), "the trial booted 1.x's args: {line}");
        // c: the power goes while the trial runs.
        vm.power_cut()
    })?;
    timed("c: power-on after a cut during the trial → 1.x", || {
        let mut vm = power_on("bbb-uboot-c", &inputs, &bbb, &harness)?;
        expect_bootcount(&mut vm, 1)?;
        expect_1x(&mut vm)?;
        vm.power_cut()
    })?;
    timed("d: commit, power-on → the migration environment resumes", || {
        commit(&bbb)?;
        let mut vm = power_on("bbb-uboot-d", &inputs, &bbb, &harness)?;
        expect_bootcount(&mut vm, 1)?;
        vm.wait_for(&format!("{MARK_RESUME_BOOT}1"), STAGE)?;
        let line = vm.wait_for(MARK_MIGRATOR_UP, STAGE)?;
        assert!(line.contains("swapover.stage=resume"), "the committed bootargs: {line}");
        assert_eq!(vm.count(MARK_1X_UP), 0, "1.x booted after the commit");
        vm.power_cut()
    })?;

    // b: a trial that does not start.
    let failing = runs.join("failing");
    let (bbb, harness) = timed("build disks (failing trial)", || {
        build_disks(&failing, &inputs, TrialKind::BrokenInit)
    })?;
    let before = sha256(&bbb)?;
    timed("b: power-on → 1.x → trial panics → 1.x → 1.x", || {
        let mut vm = power_on("bbb-uboot-b", &inputs, &bbb, &harness)?;
        expect_bootcount(&mut vm, 1)?;
        expect_1x(&mut vm)?;
        expect_bootcount(&mut vm, 2)?;
        vm.wait_for(&format!("{MARK_TRIAL_BOOT}2"), STAGE)?;
        vm.wait_for("Kernel panic", STAGE)?;
        expect_bootcount(&mut vm, 3)?;
        expect_1x(&mut vm)?;
        // And on every later warm reboot (the counter only grows): never the trial again.
        expect_bootcount(&mut vm, 4)?;
        expect_1x(&mut vm)?;
        assert_eq!(vm.count(MARK_MIGRATOR_UP), 0, "the failing trial's /init cannot run");
        vm.power_cut()
    })?;
    assert_eq!(sha256(&bbb)?, before, "the failed trial wrote to the BBB disk");
    eprintln!("[bbb] whole test: {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
