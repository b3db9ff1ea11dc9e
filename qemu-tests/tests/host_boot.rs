//! The legacy host image boots through real GRUB 2 in its MBR to the Ubuntu 14.04 stand-in.

use qemu_tests::host_image::{HostImage, SWAP_UUID};
use qemu_tests::qemu::{Drive, Vm, VmConfig};
use std::time::Duration;

#[test]
fn legacy_host_boots_through_grub_with_swap_active() -> anyhow::Result<()> {
    let host = HostImage::ensure()?;
    let disk = host.fresh_copy("host_boot")?;
    let mut vm = Vm::start(&VmConfig::new("host_boot", vec![Drive::ide(&disk)]))?;
    let grub = vm.wait_for("Loading Linux", Duration::from_secs(60))?;
    assert!(grub.contains(&host.kernel.version), "GRUB loaded another kernel: {grub}");
    let up = vm.wait_for("SWAPOVER-HOST-UP", Duration::from_secs(120))?;
    assert!(up.contains("os=ubuntu-14.04"), "{up}");
    assert!(up.contains("swap=/dev/sda5"), "swap by UUID {SWAP_UUID} not active: {up}");
    vm.wait_for("SWAPOVER-HOST-IDLE", Duration::from_secs(30))?;
    for (marker, at) in vm.stages() {
        eprintln!("[timing] {marker}: {:.1}s", at.as_secs_f64());
    }
    Ok(())
}
