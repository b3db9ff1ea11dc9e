//! The whole resinOS 1.x → 2.x takeover of an Intel NUC under UEFI firmware (OVMF): the 1.x
//! stand-in runs the real static `stager stage-1x`, which arms the firmware's one-shot
//! (`Boot####` + `BootNext`) and reboots; the firmware boots the migration kernel from
//! resin-boot, the real migrator backs up the applications' data and WiFi, flashes the 2.x
//! stand-in, restores and finalizes, and reboots; OVMF then boots the 2.x stand-in through its
//! `EFI/BOOT/BOOTX64.EFI`, whose verdict must pass. Checked against what the 1.x device itself
//! reported before staging: every entry of its `resin-data` byte-identical on the 2.x
//! resin-data, Docker's storage not carried, the WiFi of config.json's connman section and of
//! WiFi Connect's `network.config` as NetworkManager keyfiles with their secrets, config.json's
//! values carried, the migration log present; and, read from the VM's variable store after it
//! stopped, no boot option of the migration left and no `BootNext`.

use qemu_tests::console_lines::complete_lines;
use qemu_tests::paths;
use qemu_tests::qemu::Vm;
use qemu_tests::resin1x_e2e::{
    check_carried, follow_2x, stage, stage_in_1x, ConsoleOnFailure, Run, REBOOTING, STEPS,
};
use std::time::Duration;

const NAME: &str = "resinos1x_migration_uefi";

#[test]
fn resinos_1x_nuc_becomes_resinos_2x_under_uefi_with_its_data_and_wifi() -> anyhow::Result<()> {
    let mut guard = ConsoleOnFailure {
        logs: vec![paths::logs_dir().join(format!("{NAME}.log"))],
        passed: false,
    };
    let run = Run::prepare(NAME)?;
    let mut vm = Vm::start(&run.vm_config(NAME))?;

    // resinOS 1.x under UEFI stages the migration and reboots into the firmware's one-shot.
    stage_in_1x(&mut vm)?;

    // The migrator, started once by the firmware, carries the device over to 2.x, which
    // comes up under UEFI (GRUB EFI from resin-boot).
    stage(&mut vm, "swapover migrator", 300)?;
    follow_2x(&mut vm, Duration::from_secs(2400))?;

    let text = vm.console_text();
    let lines = complete_lines(&text);
    let migration = text.split_once(REBOOTING).map_or("", |(_, rest)| rest);

    // The one-shot ran the migrator once; it went through every step and rebooted into 2.x,
    // never 1.x again.
    for step in STEPS {
        for edge in ["begin", "done"] {
            let marker = format!("SWAPOVER-STEP {step} {edge}");
            assert!(migration.contains(&marker), "no `{marker}` on the console");
        }
    }
    assert!(
        migration.contains("SWAPOVER-MIGRATOR-REBOOT target=resinos"),
        "the migrator did not reboot into resinOS"
    );
    assert_eq!(text.matches("SWAPOVER-1X-UP").count(), 1, "resinOS 1.x booted again");
    check_carried(&lines, &text, &run)?;

    guard.passed = true;
    Ok(())
}
