//! The resinOS stand-in boots through its own BIOS GRUB, and its verdict really judges: a bare
//! image fails it, an image given what a migration delivers passes it; the preloaded
//! supervisor on resin-data is reported intact, and not once something overwrote it.

use qemu_tests::disk::{self, PartitionTable};
use qemu_tests::qemu::{Drive, Vm, VmConfig};
use qemu_tests::resin_image::{self, ResinImage, PARTITIONS};
use qemu_tests::verdict::{Verdict, SUMMARY_MARKER};
use std::time::Duration;

fn boot_and_judge(name: &str, image: &std::path::Path) -> anyhow::Result<Verdict> {
    let mut vm = Vm::start(&VmConfig {
        allow_reboot: false,
        ..VmConfig::new(name, vec![Drive::ide(image)])
    })?;
    let grub = vm.wait_for("SWAPOVER-RESIN-GRUB", Duration::from_secs(60))?;
    assert!(grub.contains("platform=pc"), "not BIOS GRUB: {grub}");
    let up = vm.wait_for("SWAPOVER-RESIN-UP", Duration::from_secs(120))?;
    // The UEFI boot (tests/resin_standin_uefi.rs) must say efi=yes; here the marker must differ.
    assert!(up.contains("efi=no"), "{up}");
    vm.wait_for(SUMMARY_MARKER, Duration::from_secs(120))?;
    vm.wait_exit(Duration::from_secs(60))?;
    Verdict::parse(&vm.console_text())
}

#[test]
fn standin_has_resinos_layout_and_a_verdict_that_can_fail_and_pass() -> anyhow::Result<()> {
    let image = ResinImage::ensure()?;
    let table = PartitionTable::read(&image.raw)?;
    assert_eq!(table.label, "dos");
    // boot, rootA, rootB, extended, state, data — in this order, with the boot flag on resin-boot.
    let numbers: Vec<u32> =
        table.partitions.iter().map(|p| p.number()).collect::<anyhow::Result<_>>()?;
    assert_eq!(numbers, vec![1, 2, 3, 4, 5, 6]);
    assert!(table.number(1)?.bootable);
    assert_eq!(table.number(4)?.kind, "5");
    assert!(std::fs::read_to_string(&image.sha256_file)?.starts_with(&image.xz_sha256));

    // A bare image lacks everything a migration delivers: the verdict must say so.
    let bare = image.fresh_raw_copy("standin_bare")?;
    let v = boot_and_judge("standin_bare", &bare)?;
    assert!(
        !v.summary.ok
            && !v.summary.config_json
            && v.summary.nm_files == 0
            && !v.summary.migration_log,
        "{:?}",
        v.summary
    );
    // ... but it holds the image's own preloaded supervisor on resin-data, intact.
    assert!(v.summary.preloaded_supervisor, "{:?}", v.summary);
    assert_eq!(v.summary.data_files, 0, "preloaded files are not customer data");

    // Deliver by hand what the migrator will deliver; the verdict must see each piece.
    let given = image.fresh_raw_copy("standin_given")?;
    let table = PartitionTable::read(&given)?;
    let boot = table.number(1)?;
    let data = table.number(6)?;
    assert_eq!(PARTITIONS[4].label, "resin-data");
    disk::write_fat_file(
        &given,
        boot,
        "/config.json",
        br#"{"deviceType":"intel-nuc","uuid":"abc"}"#,
    )?;
    disk::mkdir_fat(&given, boot, "/system-connections")?;
    disk::write_fat_file(
        &given,
        boot,
        "/system-connections/Plant WiFi",
        b"[wifi]\nssid=Plant WiFi\n[wifi-security]\npsk=secret one\n",
    )?;
    disk::write_ext4_file(&given, data, "/hello.txt", b"hello\n")?;
    // Data written over the preloaded supervisor: the verdict must notice.
    let (index, _) = &resin_image::preloaded_supervisor()[0];
    disk::write_ext4_file(&given, data, &format!("/{index}"), b"{}\n")?;
    let v = boot_and_judge("standin_given", &given)?;
    assert!(
        v.summary.config_json && v.summary.nm_files == 1 && v.summary.data_files == 1,
        "{:?}",
        v.summary
    );
    assert!(!v.summary.ok, "no migration log was delivered, yet the verdict passed");
    assert!(!v.summary.preloaded_supervisor, "a changed preloaded supervisor passed as intact");
    assert_eq!(
        v.connections,
        vec![("Plant WiFi".into(), "Plant WiFi".into(), "secret one".into())]
    );
    assert!(v.data.contains_key("hello.txt"), "{:?}", v.data);
    Ok(())
}
