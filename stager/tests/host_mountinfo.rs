//! mountinfo parsing on real-format files: plain ext4, LVM, btrfs subvolume, LUKS, md,
//! read-only /boot.

#[path = "fixtures/fixture_host.rs"]
mod fixture_host;

use fixture_host::read_fixture;
use stager::host::device_number::DeviceNumber;
use stager::host::mountinfo::{self, holding, mounted_at};

fn entries(name: &str) -> Vec<mountinfo::MountInfoEntry> {
    mountinfo::parse(&read_fixture(&format!("mountinfo/{name}"))).unwrap()
}

fn dev(major: u32, minor: u32) -> DeviceNumber {
    DeviceNumber { major, minor }
}

#[test]
fn ubuntu_14_04_root_is_8_1_mounted_by_uuid_path() {
    let all = entries("ubuntu-14.04-plain");
    assert_eq!(all.len(), 15);
    let root = mounted_at(&all, "/").unwrap();
    assert_eq!(root.device, dev(8, 1));
    assert_eq!(root.fs_type, "ext4");
    assert_eq!(root.source, "/dev/disk/by-uuid/5c1b7f8a-3f4e-4d8a-9a63-0f1f0c6b9a11");
    assert!(root.optional_fields.is_empty());
    assert_eq!(root.super_options, vec!["rw", "errors=remount-ro", "data=ordered"]);
    assert!(!root.is_read_only());
    assert_eq!(root.btrfs_subvolume(), None);
    // No separate /boot: the root mount holds it.
    assert_eq!(holding(&all, "/boot").unwrap().mount_point, "/");
    // Escaped spaces in mount points are decoded.
    assert!(all.iter().any(|e| e.mount_point == "/media/usb stick"));
}

#[test]
fn lvm_root_is_a_device_mapper_number_and_boot_is_separate() {
    let all = entries("ubuntu-22.04-lvm");
    let root = mounted_at(&all, "/").unwrap();
    assert_eq!(root.device, dev(253, 0));
    assert_eq!(root.source, "/dev/mapper/ubuntu--vg-ubuntu--lv");
    assert_eq!(root.optional_fields, vec!["shared:1"]);
    let boot = holding(&all, "/boot").unwrap();
    assert_eq!((boot.device, boot.source.as_str()), (dev(8, 2), "/dev/sda2"));
    assert_eq!(holding(&all, "/boot/efi/EFI").unwrap().device, dev(8, 1));
}

#[test]
fn btrfs_root_is_anonymous_and_names_its_subvolume() {
    let all = entries("ubuntu-22.04-btrfs");
    let root = mounted_at(&all, "/").unwrap();
    assert!(root.device.is_anonymous());
    assert_eq!(root.root, "/@");
    assert_eq!(root.source, "/dev/sda1");
    assert_eq!(root.btrfs_subvolume().as_deref(), Some("/@"));
    assert_eq!(mounted_at(&all, "/home").unwrap().btrfs_subvolume().as_deref(), Some("/@home"));
}

#[test]
fn luks_and_md_roots() {
    let luks = entries("ubuntu-18.04-luks");
    assert_eq!(mounted_at(&luks, "/").unwrap().source, "/dev/mapper/sda5_crypt");
    assert_eq!(mounted_at(&luks, "/").unwrap().device, dev(253, 0));
    let md = entries("ubuntu-16.04-md");
    assert_eq!(mounted_at(&md, "/").unwrap().device, dev(9, 0));
}

#[test]
fn read_only_boot_is_detected() {
    let all = entries("ubuntu-16.04-ro-boot");
    assert!(holding(&all, "/boot").unwrap().is_read_only());
    assert!(!mounted_at(&all, "/").unwrap().is_read_only());
}

#[test]
fn this_machines_own_mountinfo_parses() {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let all = mountinfo::parse(&text).unwrap();
    assert_eq!(all.len(), text.lines().count());
    assert!(mounted_at(&all, "/").is_some());
}
