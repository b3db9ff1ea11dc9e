//! The legacy host image boots through real GRUB 2 in its MBR to the Ubuntu 14.04 stand-in,
//! with swap active by UUID, the tools the stager relies on, and a payload command run on boot.

use qemu_tests::host_image::HostImage;
use qemu_tests::payload::Payload;
use qemu_tests::qemu::{Drive, Vm, VmConfig};
use std::time::Duration;

#[test]
fn legacy_host_boots_through_grub_with_swap_and_runs_the_payload() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let host = HostImage::ensure()?;
    eprintln!("[timing] host image ready: {:.1}s", started.elapsed().as_secs_f64());
    let disk = host.fresh_copy("host_boot")?;
    let payload = Payload::new(
        "host_boot",
        "echo \"TOOLS mkfs=$(mkfs.ext4 -V 2>&1 | head -n1 | cut -d' ' -f1-2) grub=$(grub-mkimage --version)\"\n\
         echo \"FSTAB-SWAP $(grep -c '^UUID=.* swap ' /etc/fstab)\"\n\
         sync; poweroff -f\n",
    )?
    .build()?;
    let mut vm =
        Vm::start(&VmConfig::new("host_boot", vec![Drive::ide(&disk), Drive::ide(&payload)]))?;
    let grub = vm.wait_for("Loading Linux", Duration::from_secs(60))?;
    assert!(grub.contains(&host.kernel.version), "GRUB loaded another kernel: {grub}");
    let up = vm.wait_for("SWAPOVER-HOST-UP", Duration::from_secs(120))?;
    assert!(up.contains("os=ubuntu-14.04"), "{up}");
    // The kernel may name the host disk sda or sdb (the payload disk probes in parallel):
    // exactly why swapover identifies partitions by disk id and start sector, not by name.
    assert!(
        up.contains("swap=/dev/sda5,") || up.contains("swap=/dev/sdb5,"),
        "swap by UUID not active: {up}"
    );
    // What a timeout reports about the VM comes from QEMU itself (QMP), not from a guess.
    let state = vm.run_state();
    assert_eq!(state, "running", "QMP query-status of a booted VM: {state}");
    let tools = vm.wait_for("TOOLS ", Duration::from_secs(60))?;
    assert!(tools.contains("mke2fs 1.") && tools.contains("grub-mkimage (GRUB)"), "{tools}");
    let fstab = vm.wait_for("FSTAB-SWAP", Duration::from_secs(10))?;
    assert!(fstab.ends_with(" 1"), "{fstab}");
    // A marker that never comes: the error's first line says what QEMU and the host know.
    let quiet = vm.wait_for("SWAPOVER-NEVER-PRINTED", Duration::from_secs(1)).unwrap_err();
    let first = quiet.to_string().lines().next().unwrap_or_default().to_string();
    assert!(first.contains("VM state: ") && first.contains("MiB free on the host"), "{first}");
    vm.wait_exit(Duration::from_secs(60))?;
    for (marker, at) in vm.stages() {
        eprintln!("[timing] {marker}: {:.1}s", at.as_secs_f64());
    }
    Ok(())
}
