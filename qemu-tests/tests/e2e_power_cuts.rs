//! Power cuts during the migration: the VM is killed during backup, flash, verify, restore
//! and finalize, restarted each time on the same disks, and the migration still ends in
//! resinOS with every file intact and the image's preloaded supervisor too. The stager is
//! handed the flasher download (`.zip`, inner image complete); no boot may ever run the
//! flasher.

use qemu_tests::e2e::{self, Cut, Download};
use qemu_tests::flasher_image::FlasherVariant;

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
    let download = Download::FlasherZip(FlasherVariant::InnerComplete);
    let outcome = e2e::run_with_cuts_download("e2e_power_cuts", &cuts, download)?;
    assert!(
        outcome.flasher_ran_in.is_empty(),
        "the flasher was booted: {:?}",
        outcome.flasher_ran_in
    );
    assert!(outcome.verdict.summary.preloaded_supervisor, "{:?}", outcome.verdict.summary);
    assert!(
        outcome.data_differences.is_empty(),
        "customer data differs after power cuts:\n{}",
        outcome.data_differences.join("\n")
    );
    assert!(outcome.verdict.summary.ok, "{:?}", outcome.verdict.summary);
    Ok(())
}
