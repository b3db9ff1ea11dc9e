//! Gathering every fact from whole fixture hosts (sysfs, proc, etc, and a real disk image).

#[path = "fixtures/fixture_host.rs"]
mod fixture_host;

use board_profiles::BootMode;
use fixture_host::{FixtureHost, SECTOR, SWAP_LABEL, SWAP_SECTORS, SWAP_START, SWAP_UUID};
use plan::Bytes;
use plan::DiskId;
use stager::host::block::BlockKind;
use stager::host::facts::{gather_with, HostFacts, ProcessFacts};
use stager::host::fstab::{self, FsSpec};
use stager::host::units::KernelSectors;
use stager::host::HostRoot;

fn process() -> ProcessFacts {
    ProcessFacts { euid: 0, arch: "x86_64".to_string(), search_path: None }
}

fn gather(host: &FixtureHost) -> HostFacts {
    gather_with(&HostRoot::new(host.root()), process())
}

#[test]
fn legacy_host_facts() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    let facts = gather(&host);
    assert_eq!(facts.os_release.as_ref().unwrap().version_id.as_deref(), Some("14.04"));
    assert_eq!(facts.boot_mode, BootMode::Bios);
    assert_eq!(facts.grub.grub_cfg.as_deref(), Some("/boot/grub/grub.cfg"));
    assert!(facts.grub.grub_cfg_uses_next_entry && facts.grub.grubenv_exists);
    assert_eq!(facts.grub.grub_editenv.as_deref(), Some("/usr/bin/grub-editenv"));
    assert!(facts.grub.grub_cfg_sources_custom_cfg);
    assert_eq!(
        (facts.grub.custom_template.as_deref(), facts.grub.update_grub.as_deref()),
        (None, None)
    );

    let root = facts.root_device.as_ref().unwrap();
    assert_eq!((root.name.as_str(), &root.kind), ("sda1", &BlockKind::Partition));
    let disk = facts.root_disk.as_ref().unwrap();
    assert_eq!((disk.name.as_str(), disk.path.as_str()), ("sda", "/dev/sda"));
    assert_eq!(disk.table.id, DiskId::Mbr { signature: 0x1234_abcd });
    assert_eq!(disk.table.partitions.len(), 3);
    assert_eq!(facts.boot_mount.as_ref().unwrap().mount_point, "/");

    let swap = facts.swap_device.as_ref().unwrap();
    assert_eq!(swap.name, "sda5");
    assert_eq!(swap.size, KernelSectors(SWAP_SECTORS));
    let entry = disk.table.find_by_start(swap.start.unwrap().bytes()).unwrap();
    assert_eq!(entry.start, Bytes(SWAP_START * SECTOR));
    let header = facts.swap_header.as_ref().unwrap();
    assert_eq!((header.uuid.as_str(), header.label.as_deref()), (SWAP_UUID, Some(SWAP_LABEL)));
    // fstab finds swap by the UUID in the header.
    let fstab = facts.fstab.as_ref().unwrap();
    let swap_spec = &fstab::swap_entries(fstab).next().unwrap().spec;
    assert_eq!(swap_spec, &FsSpec::Uuid(header.uuid.clone()));

    let memory = facts.memory.as_ref().unwrap();
    assert!(memory.available_is_estimate);
    assert_eq!(memory.swap_used(), Bytes::from_kib(13_312).unwrap());
}

#[test]
fn uefi_and_separate_boot_and_grub_editenv_on_path() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    std::fs::create_dir_all(host.path("/sys/firmware/efi/efivars")).unwrap();
    host.remove("/usr/bin/grub-editenv");
    host.symlink("/opt/grub/bin/grub-editenv", "/usr/bin/grub-editenv");
    let mut with_path = process();
    with_path.search_path = Some("/opt/grub/bin:/usr/local/bin".into());
    let facts = gather_with(&HostRoot::new(host.root()), with_path);
    assert_eq!(facts.boot_mode, BootMode::Uefi);
    assert_eq!(facts.grub.grub_editenv.as_deref(), Some("/opt/grub/bin/grub-editenv"));
    assert_eq!(gather(&host).grub.grub_editenv, None);
}

#[test]
fn lvm_root_has_no_disk_and_says_why() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    host.copy_fixture("/proc/self/mountinfo", "mountinfo/ubuntu-22.04-lvm");
    host.add_sysfs_virtual("dm-0", "253:0", 80_000, Some("LVM-Xy7kPq2Rs9Tu"), &["sda1"]);
    let facts = gather(&host);
    assert_eq!(facts.root_device.as_ref().unwrap().kind, BlockKind::Lvm);
    let err = facts.root_disk.unwrap_err();
    assert!(err.contains("/dev/dm-0 is not a partition of a disk"), "{err}");
    // /boot is its own mount there.
    assert_eq!(facts.boot_mount.unwrap().mount_point, "/boot");
}

#[test]
fn btrfs_root_is_found_through_its_source() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    host.copy_fixture("/proc/self/mountinfo", "mountinfo/ubuntu-22.04-btrfs");
    let facts = gather(&host);
    assert_eq!(facts.root_device.unwrap().name, "sda1");
    assert_eq!(facts.root_mount.unwrap().btrfs_subvolume().as_deref(), Some("/@"));
}

#[test]
fn swap_choice_prefers_the_root_disk_and_reports_files() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    host.add_sysfs_disk(
        "sdb",
        "8:16",
        100_000,
        &[fixture_host::Partition {
            name: "sdb1",
            number: 1,
            dev: "8:17",
            start: 2048,
            sectors: 50_000,
        }],
        true,
    );
    host.write(
        "/proc/swaps",
        "Filename Type Size Used Priority\n/dev/sdb1 partition 24000 0 -2\n/dev/sda5 partition 22524 0 -3\n",
    );
    assert_eq!(gather(&host).swap_device.unwrap().name, "sda5");

    host.write("/proc/swaps", "Filename Type Size Used Priority\n/dev/sdb1 partition 24000 0 -2\n");
    let facts = gather(&host);
    assert_eq!(facts.swap_device.as_ref().unwrap().parent_disk.as_deref(), Some("sdb"));
    assert!(facts.swap_header.unwrap_err().contains("/dev/sdb"));

    host.copy_fixture("/proc/swaps", "swaps/ubuntu-22.04-file");
    let err = gather(&host).swap_device.unwrap_err();
    assert_eq!(err, "only swap files are active (/swapfile), no swap partition");
    host.copy_fixture("/proc/swaps", "swaps/none");
    assert_eq!(gather(&host).swap_device.unwrap_err(), "no swap area is active");
}

#[test]
fn an_empty_root_yields_errors_not_panics() {
    let host = FixtureHost::empty();
    let facts = gather(&host);
    assert!(facts.os_release.is_err() && facts.root_mount.is_err() && facts.root_device.is_err());
    assert!(
        facts.swaps.is_err()
            && facts.swap_device.is_err()
            && facts.memory.is_err()
            && facts.fstab.is_err()
    );
    assert!(facts.root_mount.unwrap_err().contains("proc/self/mountinfo"));
}
