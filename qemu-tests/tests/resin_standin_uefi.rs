//! The resinOS 2.x stand-in is hybrid like a real 2.x x86 image: besides its BIOS GRUB it
//! boots under UEFI firmware (OVMF) through GRUB EFI (`EFI/BOOT/BOOTX64.EFI` on resin-boot),
//! reading the same grub.cfg, the same kernel and init from resin-rootA, and its verdict
//! judges the same way: given everything a migration delivers, it passes.

use qemu_tests::disk::{self, PartitionTable};
use qemu_tests::qemu::{uefi_vars_copy, Drive, Firmware, Vm, VmConfig};
use qemu_tests::resin_image::ResinImage;
use qemu_tests::verdict::{Verdict, SUMMARY_MARKER};
use std::time::Duration;

#[test]
fn standin_boots_under_uefi_and_its_verdict_passes() -> anyhow::Result<()> {
    let name = "standin_uefi";
    let image = ResinImage::ensure()?;
    let disk_path = image.fresh_raw_copy(name)?;
    let table = PartitionTable::read(&disk_path)?;
    let boot = table.number(1)?;
    let data = table.number(6)?;

    // One menu for both firmwares: the EFI GRUB's grub.cfg is the BIOS GRUB's.
    let efi_cfg = disk::read_fat_file(&disk_path, boot, "/EFI/BOOT/grub.cfg")?;
    assert_eq!(efi_cfg, disk::read_fat_file(&disk_path, boot, "/grub/grub.cfg")?);

    // Deliver by hand everything a migration delivers, the migration log included.
    disk::write_fat_file(
        &disk_path,
        boot,
        "/config.json",
        br#"{"deviceType":"intel-nuc","uuid":"efi"}"#,
    )?;
    disk::mkdir_fat(&disk_path, boot, "/system-connections")?;
    disk::write_fat_file(
        &disk_path,
        boot,
        "/system-connections/Line2",
        b"[wifi]\nssid=Line2\n[wifi-security]\npsk=two\n",
    )?;
    disk::mkdir_fat(&disk_path, boot, "/swapover")?;
    disk::write_fat_file(&disk_path, boot, "/swapover/migration.log", b"migrated\n")?;
    disk::write_ext4_file(&disk_path, data, "/hello.txt", b"hello\n")?;

    let config = VmConfig {
        allow_reboot: false,
        firmware: Firmware::Uefi { vars: uefi_vars_copy(name)? },
        ..VmConfig::new(name, vec![Drive::ide(&disk_path)])
    };
    let mut vm = Vm::start(&config)?;
    // OVMF is slower to reach GRUB than SeaBIOS; the timeouts allow for a loaded machine.
    let grub = vm.wait_for("SWAPOVER-RESIN-GRUB", Duration::from_secs(300))?;
    assert!(grub.contains("platform=efi"), "not GRUB EFI: {grub}");
    let up = vm.wait_for("SWAPOVER-RESIN-UP", Duration::from_secs(300))?;
    assert!(up.contains("efi=yes"), "the kernel did not come up through UEFI: {up}");
    vm.wait_for(SUMMARY_MARKER, Duration::from_secs(120))?;
    vm.wait_exit(Duration::from_secs(60))?;

    let v = Verdict::parse(&vm.console_text())?;
    assert!(
        v.summary.ok
            && v.summary.config_json
            && v.summary.nm_files == 1
            && v.summary.data_files == 1
            && v.summary.migration_log,
        "{:?}",
        v.summary
    );
    assert_eq!(v.connections, vec![("Line2".into(), "Line2".into(), "two".into())]);
    assert!(v.data.contains_key("hello.txt"), "{:?}", v.data);
    Ok(())
}
