//! A refusal of `stage-1x` that README promises, on a real resinOS 1.x device tree: the
//! disk at `/dev/sda` in the profile's source layout (real sfdisk, mkfs.vfat/ext3/btrfs, see
//! `resinos1x_support`), a sysfs naming its partitions, efivarfs holding one variable, the
//! boot partition's mount point, the migration kernel and a module tree. Each refusal is one
//! line and comes before the first change: the disk image, every file of the tree and the
//! boot mount are byte-identical afterwards, no undo journal is written, nothing is attached
//! or mounted. The boot mount is a directory of the test's own file system, and sysfs gives
//! the boot partition that file system's device number (`stage-1x` compares the two, as it
//! does on a device where resin-boot is mounted): this kernel does not scan partitions of
//! loop devices, so the disk image's own FAT cannot be the one mounted there.

#[path = "stage_support/mod.rs"]
mod stage_support;

#[path = "resinos1x_support/mod.rs"]
mod resinos1x_support;

use resinos1x_support::device::{Device, BOOT_MOUNT};
use stager::stage::engine::system::FixtureSystem;
use stager::stage::resinos1x::stage_1x::{self, Outcome1x};

#[test]
fn an_earlier_runs_swapover_directory_on_the_boot_partition_is_refused() {
    let mut device = Device::new("resinos1x-intel-nuc");
    let leftover = device.host.path(&format!("{BOOT_MOUNT}/swapover"));
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("vmlinuz"), b"an earlier run's kernel").unwrap();
    device.refused(&[
        &format!("{} exists already (left by an earlier run)", leftover.display()),
        "run `stager abort`, or remove it if no migration is staged",
    ]);

    // Without the leftover the same device is ready: the refusal was the leftover's.
    std::fs::remove_dir_all(&leftover).unwrap();
    device.request.dry_run = true;
    match stage_1x::run(&device.request, &mut FixtureSystem::default()) {
        Ok(Outcome1x::DryRun(text)) => {
            assert!(text.contains("set BootNext to it (one boot)"), "{text}")
        }
        other => panic!("the device without the leftover is not ready: {other:?}"),
    }
}
