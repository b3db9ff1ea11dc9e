//! The resinOS 1.x → 2.x takeover of an Intel NUC under UEFI (OVMF) with two power cuts in
//! one migration, each VM restarted on the same disks and the same OVMF variable store:
//!
//! 1. mid-flash (1.5 s after `SWAPOVER-STEP flash begin`: 1.x is being destroyed, BootNext
//!    was spent by the first start): the firmware itself must start the migrator again, from
//!    the boot option arm-resume put first in BootOrder, and it resumes (`attempt=2`);
//! 2. in finalize's last write, as soon as the staging file system's superblock on the disk
//!    is written over (resin-rootB written over staging, after the relay went to resin-data):
//!    the next start must find staging gone and finish from the relay.
//!
//! Then the 2.x stand-in boots and the same checks as the uninterrupted run pass.

use qemu_tests::console_lines::complete_lines;
use qemu_tests::disk::{self, PartitionTable};
use qemu_tests::paths;
use qemu_tests::qemu::Vm;
use qemu_tests::resin1x_e2e::{
    armed_option, check_carried, follow_2x, stage, stage_in_1x, ConsoleOnFailure, Run,
};
use std::path::Path;
use std::time::{Duration, Instant};

const NAME: &str = "resinos1x_power_cuts_uefi";
/// The 1.x partition the migration stages on (resin-updt), inside the 2.x resin-rootB.
const STAGING_PARTITION: u32 = 3;
const SEALED: &str = "sealed read-only";
const RELAY_WRITTEN: &str = "finalize: relay written to";

/// The ext2/3/4 magic and UUID of the file system starting at byte `offset` of `disk`.
fn ext_identity(disk: &Path, offset: u64) -> anyhow::Result<Vec<u8>> {
    let superblock = disk::read_at(disk, offset + 1024, 1024)?;
    Ok([&superblock[56..58], &superblock[104..120]].concat())
}

/// `marker` on the console of `text` before `before` (or anywhere, when `before` never came).
fn before(text: &str, marker: &str, before: &str) -> bool {
    let end = text.find(before).unwrap_or(text.len());
    text[..end].contains(marker)
}

#[test]
fn power_cuts_mid_flash_and_mid_last_write_resume_from_firmware_and_from_the_relay(
) -> anyhow::Result<()> {
    let boots = ["boot0", "boot1", "boot2"].map(|b| format!("{NAME}-{b}"));
    let mut guard = ConsoleOnFailure {
        logs: boots.iter().map(|b| paths::logs_dir().join(format!("{b}.log"))).collect(),
        passed: false,
    };
    let run = Run::prepare(NAME)?;
    let staging = PartitionTable::read(&run.disk)?.number(STAGING_PARTITION)?.offset_bytes();
    let staged_fs = ext_identity(&run.disk, staging)?;

    // Boot 0: 1.x stages and reboots into the one-shot; the migrator's first start is cut
    // mid-flash.
    let mut vm = Vm::start(&run.vm_config(&boots[0]))?;
    stage_in_1x(&mut vm)?;
    stage(&mut vm, "SWAPOVER-MIGRATOR-START attempt=1", 300)?;
    stage(&mut vm, "SWAPOVER-STEP flash begin", 900)?;
    std::thread::sleep(Duration::from_millis(1500));
    vm.power_cut()?;
    let text0 = vm.console_text();
    eprintln!(
        "[cut 1] power cut 1.5 s after `SWAPOVER-STEP flash begin` ({:.1}s into boot 0; flash {})",
        vm.elapsed().as_secs_f64(),
        if text0.contains("SWAPOVER-STEP flash done") { "had finished" } else { "in progress" }
    );
    let lines_1x = complete_lines(&text0);
    let ours = armed_option(&lines_1x)?;
    let option = format!("Boot{ours:04X}");
    for step in ["backup", "arm-resume"] {
        assert!(
            text0.contains(&format!("SWAPOVER-STEP {step} done")),
            "boot 0: no `{step} done` before the cut"
        );
    }
    drop(vm);

    // Boot 1: no BootNext any more; the firmware starts the migrator from BootOrder, which
    // resumes the flash and goes on into finalize; cut once its last write began.
    let mut vm = Vm::start(&run.vm_config(&boots[1]))?;
    let firmware = stage(&mut vm, &format!("BdsDxe: starting {option}"), 300)?;
    assert!(
        firmware.contains("swapover migration"),
        "boot 1: the firmware did not start the migration's option: {firmware}"
    );
    stage(&mut vm, "SWAPOVER-MIGRATOR-START attempt=2", 300)?;
    stage(&mut vm, "SWAPOVER-STEP finalize begin", 1800)?;
    stage(&mut vm, RELAY_WRITTEN, 900)?;
    stage(&mut vm, SEALED, 300)?;
    // The last write's first piece (staging's superblock) is synced before the rest: cut the
    // moment the disk shows the staged file system gone.
    let sealed_at = Instant::now();
    while ext_identity(&run.disk, staging)? == staged_fs {
        if sealed_at.elapsed() > Duration::from_secs(600) {
            anyhow::bail!(
                "boot 1: staging's superblock still the staged one 600 s after `{SEALED}` (log {})",
                vm.log_path().display()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    vm.power_cut()?;
    let text1 = vm.console_text();
    let written = text1.contains("resin-rootB written last");
    eprintln!(
        "[cut 2] power cut {} ms after `{SEALED}`, staging's superblock written over ({:.1}s into boot 1; resin-rootB write {})",
        sealed_at.elapsed().as_millis(),
        vm.elapsed().as_secs_f64(),
        if written { "had finished and been read back" } else { "in progress" }
    );
    assert!(
        !text1.contains("SWAPOVER-STEP finalize done") && !text1.contains("relay removed"),
        "boot 1: the cut came after finalize finished; nothing was left for the relay"
    );
    let flash_resumed = ["begin", "done"].iter().all(|edge| {
        before(&text1, &format!("SWAPOVER-STEP flash {edge}"), "SWAPOVER-STEP finalize begin")
    });
    assert!(
        flash_resumed || text0.contains("SWAPOVER-STEP flash done"),
        "boot 1: the interrupted flash was not resumed before finalize"
    );
    assert!(
        before(&text1, RELAY_WRITTEN, SEALED),
        "boot 1: the relay was not written before staging was sealed"
    );
    assert_eq!(text1.matches("SWAPOVER-MIGRATOR-START").count(), 1);
    drop(vm);

    // Boot 2: the firmware starts the migrator again; staging is gone, it finishes from the
    // relay and reboots into 2.x, whose checks pass.
    let mut vm = Vm::start(&run.vm_config(&boots[2]))?;
    stage(&mut vm, &format!("BdsDxe: starting {option}"), 300)?;
    stage(&mut vm, "SWAPOVER-MIGRATOR-START relay", 300)?;
    stage(&mut vm, "SWAPOVER-STEP relay begin", 60)?;
    stage(&mut vm, "SWAPOVER-STEP relay done", 900)?;
    stage(&mut vm, "SWAPOVER-MIGRATOR-REBOOT target=resinos", 120)?;
    follow_2x(&mut vm, Duration::from_secs(600))?;
    let text2 = vm.console_text();
    assert!(
        !text2.contains("SWAPOVER-MIGRATOR-START attempt="),
        "boot 2: the migrator ran from staging, not from the relay"
    );
    for (i, text) in [&text0, &text1, &text2].into_iter().enumerate() {
        assert_eq!(
            text.matches("SWAPOVER-1X-UP").count(),
            usize::from(i == 0),
            "boot {i}: resinOS 1.x came up (again)"
        );
    }
    check_carried(&lines_1x, &text2, &run)?;

    guard.passed = true;
    Ok(())
}
