//! A migration environment that fails to boot returns the device to the old OS (the GRUB
//! entry was one-shot); there `stager status` explains and `stager abort` restores the host:
//! swap active again with its old UUID, fstab and GRUB files and partition table as before.

use qemu_tests::e2e::{self, PROFILE};
use qemu_tests::fixture::BACKUP_PATHS;
use qemu_tests::host_image::{HostImage, SWAP_UUID};
use qemu_tests::payload::Payload;
use qemu_tests::qemu::{Drive, Vm, VmConfig};
use qemu_tests::resin_image::ResinImage;
use std::time::Duration;

#[test]
fn broken_migration_environment_falls_back_to_old_os_and_abort_restores_it() -> anyhow::Result<()> {
    let host = HostImage::ensure()?;
    let image = ResinImage::ensure()?;
    let disk = host.fresh_copy("e2e_failed_boot")?;
    let backups: String = BACKUP_PATHS.iter().map(|p| format!(" --backup {p}")).collect();
    let run_sh = format!(
        "if [ -e /var/lib/swapover-e2e-staged ]; then\n\
           echo SWAPOVER-E2E-OLD-OS-AGAIN\n\
           ./stager status; echo \"STATUS-EXIT $?\"\n\
           ./stager abort; echo \"ABORT-EXIT $?\"\n\
           echo \"SWAP-AFTER $(awk 'NR>1 {{print $1}}' /proc/swaps | tr '\\n' ,) uuid-dev=$(findfs UUID={SWAP_UUID})\"\n\
           rm /var/lib/swapover-e2e-staged; sync; poweroff -f\n\
         fi\n\
         touch /var/lib/swapover-e2e-staged\n\
         ./stager stage --profile {PROFILE} --image ./resinos.img.xz --sha256 {} --config ./config.json{backups} --no-reboot\n\
         echo \"SWAPOVER-E2E-STAGE exit=$?\"\n\
         # Break the migration environment: its initramfs becomes junk the kernel cannot unpack.\n\
         mkdir -p /mnt/staging && mount \"$(findfs LABEL=swapover-stage)\" /mnt/staging\n\
         dd if=/dev/urandom of=/mnt/staging/swapover/initramfs.img bs=4096 count=64 conv=notrunc 2>/dev/null\n\
         umount /mnt/staging; sync; echo SWAPOVER-E2E-BROKE-INITRAMFS; reboot -f\n",
        image.xz_sha256
    );
    let payload = Payload::new("e2e_failed_boot", &run_sh)?;
    payload.add_file("stager", &e2e::packaged_stager()?, 0o755)?;
    payload.add_file("resinos.img.xz", &image.xz, 0o644)?;
    payload.add_bytes("config.json", e2e::demo_config_json().as_bytes(), 0o644)?;
    let payload_disk = payload.build()?;

    let mut vm = Vm::start(&VmConfig::new(
        "e2e_failed_boot",
        vec![Drive::ide(&disk), Drive::ide(&payload_disk)],
    ))?;
    let staged = vm.wait_for("SWAPOVER-E2E-STAGE exit=", Duration::from_secs(300))?;
    assert!(staged.ends_with("exit=0"), "{staged}");
    vm.wait_for("SWAPOVER-E2E-BROKE-INITRAMFS", Duration::from_secs(60))?;
    // The one-shot entry boots the broken environment once: the kernel cannot start it...
    vm.wait_for("Kernel panic", Duration::from_secs(180))?;
    // ...and panic=10 reboots into the old OS, because GRUB already spent next_entry.
    vm.wait_for("SWAPOVER-E2E-OLD-OS-AGAIN", Duration::from_secs(300))?;
    let status = vm.wait_for("STATUS-EXIT", Duration::from_secs(60))?;
    let abort = vm.wait_for("ABORT-EXIT", Duration::from_secs(120))?;
    assert!(abort.ends_with("ABORT-EXIT 0"), "{abort}");
    let swap = vm.wait_for("SWAP-AFTER", Duration::from_secs(30))?;
    let back = ["/dev/sda5", "/dev/sdb5"].iter().any(|d| {
        swap.contains(&format!("SWAP-AFTER {d},")) && swap.ends_with(&format!("uuid-dev={d}"))
    });
    assert!(back, "swap not back with its UUID: {swap}");
    vm.wait_exit(Duration::from_secs(60))?;
    let console = vm.console_text();
    let status_text: String = console
        .lines()
        .skip_while(|l| !l.contains("SWAPOVER-E2E-OLD-OS-AGAIN"))
        .take_while(|l| !l.contains("STATUS-EXIT"))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("--- stager status after the failed attempt ---\n{status_text}\n{status}");
    assert!(
        status_text.to_lowercase().contains("migrat"),
        "status does not explain the failed attempt:\n{status_text}"
    );

    // Byte-for-byte as it was: partition table, swap header, fstab, GRUB files.
    let differences = e2e::host_restored(&host.path, &disk)?;
    assert!(differences.is_empty(), "abort left the host changed: {differences:?}");
    Ok(())
}
