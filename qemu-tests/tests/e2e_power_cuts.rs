//! Power cuts during the migration: the VM is killed during backup, flash, verify, restore
//! and finalize, restarted each time on the same disks, and the migration still ends in
//! resinOS with every file intact.

use qemu_tests::e2e::{self, Cut};

#[test]
fn migration_survives_power_cuts_in_every_stage() -> anyhow::Result<()> {
    let cuts = [
        Cut::after("SWAPOVER-STEP backup begin", 300),
        Cut::after("SWAPOVER-STEP flash begin", 1500),
        Cut::after("SWAPOVER-STEP verify begin", 200),
        Cut::after("SWAPOVER-STEP restore begin", 300),
        Cut::after("SWAPOVER-STEP finalize begin", 0),
        Cut::after("SWAPOVER-MIGRATOR-REBOOT target=resinos", 0),
    ];
    let outcome = e2e::run_with_cuts("e2e_power_cuts", &cuts)?;
    assert!(
        outcome.data_differences.is_empty(),
        "customer data differs after power cuts:\n{}",
        outcome.data_differences.join("\n")
    );
    assert!(outcome.verdict.summary.ok, "{:?}", outcome.verdict.summary);
    Ok(())
}
