//! Block devices from sysfs-shaped fixture trees: partitions and their disk, LVM, LUKS, md.

#[path = "fixtures/fixture_host.rs"]
mod fixture_host;

use fixture_host::{FixtureHost, SWAP_SECTORS, SWAP_START};
use plan::Bytes;
use stager::host::block::{self, BlockKind};
use stager::host::device_number::DeviceNumber;
use stager::host::units::KernelSectors;
use stager::host::HostRoot;

fn dev(major: u32, minor: u32) -> DeviceNumber {
    DeviceNumber { major, minor }
}

#[test]
fn partition_knows_its_number_start_and_disk() {
    let host = FixtureHost::empty();
    host.add_legacy_sysfs(true);
    let root = HostRoot::new(host.root());
    let sda5 = block::by_name(&root, "sda5").unwrap();
    assert_eq!(sda5.kind, BlockKind::Partition);
    assert_eq!(sda5.device, dev(8, 5));
    assert_eq!(sda5.partition_number, Some(5));
    assert_eq!(sda5.start, Some(KernelSectors(SWAP_START)));
    assert_eq!(sda5.size, KernelSectors(SWAP_SECTORS));
    assert_eq!(sda5.parent_disk.as_deref(), Some("sda"));
    assert_eq!(sda5.logical_sector_size, Bytes(512));
    assert_eq!(sda5.dev_path(), "/dev/sda5");
    let sda = block::by_name(&root, "sda").unwrap();
    assert_eq!((sda.kind, sda.parent_disk), (BlockKind::Disk, None));
}

#[test]
fn device_numbers_resolve_through_links_or_by_scanning() {
    for dev_links in [true, false] {
        let host = FixtureHost::empty();
        host.add_legacy_sysfs(dev_links);
        let root = HostRoot::new(host.root());
        assert_eq!(
            block::by_device_number(&root, dev(8, 1)).unwrap().name,
            "sda1",
            "links: {dev_links}"
        );
        let err = block::by_device_number(&root, dev(8, 9)).unwrap_err();
        assert!(err.to_string().contains("8:9"), "{err}");
    }
}

#[test]
fn dev_paths_resolve_by_name_and_through_mapper_links() {
    let host = FixtureHost::empty();
    host.add_legacy_sysfs(true);
    host.add_sysfs_virtual("dm-1", "253:1", 2_000_000, Some("LVM-abcdefabcdef"), &["sda5"]);
    host.symlink("/dev/mapper/vg-swap", "../dm-1");
    let root = HostRoot::new(host.root());
    assert_eq!(block::by_dev_path(&root, "/dev/sda5").unwrap().name, "sda5");
    let lv = block::by_dev_path(&root, "/dev/mapper/vg-swap").unwrap();
    assert_eq!(lv.name, "dm-1");
    assert_eq!(lv.kind, BlockKind::Lvm);
    assert_eq!(lv.slaves, vec!["sda5"]);
    assert!(block::by_dev_path(&root, "/dev/nosuch").is_err());
}

#[test]
fn device_mapper_and_md_kinds() {
    let host = FixtureHost::empty();
    host.add_legacy_sysfs(true);
    host.add_sysfs_virtual(
        "dm-0",
        "253:0",
        80_000,
        Some("CRYPT-LUKS2-3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c-sda5_crypt"),
        &["sda5"],
    );
    host.add_sysfs_virtual("dm-2", "253:2", 80_000, Some("mpath-3600508b1001c"), &["sda1"]);
    host.add_sysfs_virtual("md0", "9:0", 80_000, None, &["sda1"]);
    let root = HostRoot::new(host.root());
    assert_eq!(block::by_device_number(&root, dev(253, 0)).unwrap().kind, BlockKind::DmCrypt);
    assert_eq!(
        block::by_name(&root, "dm-2").unwrap().kind,
        BlockKind::DeviceMapper("mpath".into())
    );
    let md = block::by_device_number(&root, dev(9, 0)).unwrap();
    assert_eq!((md.kind, md.partition_number), (BlockKind::Md, None));
}

#[test]
fn this_machines_sysfs_reads() {
    let root = HostRoot::default();
    let names: Vec<String> = std::fs::read_dir("/sys/class/block")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in names {
        let device = block::by_name(&root, &name).unwrap();
        if device.kind == BlockKind::Partition {
            assert!(device.parent_disk.is_some(), "{name}");
        }
        assert_eq!(block::by_device_number(&root, device.device).unwrap().name, name);
    }
}
