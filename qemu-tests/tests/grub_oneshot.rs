//! GRUB's one-shot boot on the legacy host, armed with swapover's `grub` crate: the armed
//! entry runs exactly once, the next boot is the default again, and GRUB itself cleared
//! `next_entry` in the grubenv.

use qemu_tests::disk::{self, PartitionTable};
use qemu_tests::host_image::{HostImage, ROOT_UUID};
use qemu_tests::payload::Payload;
use qemu_tests::qemu::{Drive, Vm, VmConfig};
use std::time::Duration;

const ENTRY_ID: &str = "swapover-oneshot-test";

#[test]
fn armed_entry_boots_exactly_once_then_default_returns() -> anyhow::Result<()> {
    let host = HostImage::ensure()?;
    let disk_path = host.fresh_copy("grub_oneshot")?;
    let table = PartitionTable::read(&disk_path)?;
    let root = table.number(1)?;
    let kver = &host.kernel.version;

    let custom = format!(
        "menuentry 'swapover one-shot test' --id {ENTRY_ID} {{\n\
         \tinsmod part_msdos\n\tinsmod ext2\n\
         \tsearch --no-floppy --fs-uuid --set=root {ROOT_UUID}\n\
         \techo 'SWAPOVER-ONESHOT-ENTRY'\n\
         \tlinux /boot/vmlinuz-{kver} root=UUID={ROOT_UUID} ro console=ttyS0,115200 swapover.oneshot=1\n\
         \tinitrd /boot/initrd.img-{kver}\n}}\n"
    );
    disk::write_ext4_file(&disk_path, root, "/boot/grub/custom.cfg", custom.as_bytes())?;

    // Arm with our library on the host's real grubenv, then put it back on the disk.
    let local = disk_path.with_extension("grubenv");
    std::fs::write(&local, disk::read_ext4_file(&disk_path, root, "/boot/grub/grubenv")?)?;
    grub::oneshot::OneShot::arm(&local, ENTRY_ID)?;
    disk::write_ext4_file(&disk_path, root, "/boot/grub/grubenv", &std::fs::read(&local)?)?;

    let payload = Payload::new(
        "grub_oneshot",
        "if grep -q swapover.oneshot /proc/cmdline; then echo ONESHOT-RUN; sync; reboot -f; \
         else echo DEFAULT-RUN; sync; poweroff -f; fi\n",
    )?
    .build()?;
    let mut vm = Vm::start(&VmConfig::new(
        "grub_oneshot",
        vec![Drive::ide(&disk_path), Drive::ide(&payload)],
    ))?;
    vm.wait_for("SWAPOVER-ONESHOT-ENTRY", Duration::from_secs(60))?;
    let first = vm.wait_for("SWAPOVER-HOST-UP", Duration::from_secs(120))?;
    assert!(first.contains("swapover.oneshot=1"), "first boot was not the armed entry: {first}");
    vm.wait_for("ONESHOT-RUN", Duration::from_secs(60))?;
    vm.wait_for("Loading Linux", Duration::from_secs(60))?;
    let second = vm.wait_for("SWAPOVER-HOST-UP", Duration::from_secs(120))?;
    assert!(
        !second.contains("swapover.oneshot"),
        "second boot ran the one-shot entry again: {second}"
    );
    vm.wait_for("DEFAULT-RUN", Duration::from_secs(60))?;
    vm.wait_exit(Duration::from_secs(60))?;
    assert_eq!(vm.count("SWAPOVER-ONESHOT-ENTRY"), 1, "armed entry must run exactly once");

    let env = grub::env::GrubEnv::from_bytes(&disk::read_ext4_file(
        &disk_path,
        root,
        "/boot/grub/grubenv",
    )?)?;
    assert!(
        env.get("next_entry").unwrap_or("").is_empty(),
        "GRUB left next_entry armed: {:?}",
        env.get("next_entry")
    );
    for (marker, at) in vm.stages() {
        eprintln!("[timing] {marker}: {:.1}s", at.as_secs_f64());
    }
    Ok(())
}
