//! /proc/swaps, /proc/meminfo and /etc/fstab on real-format files.

#[path = "fixtures/fixture_host.rs"]
mod fixture_host;

use fixture_host::read_fixture;
use plan::Bytes;
use stager::host::fstab::{self, FsSpec};
use stager::host::meminfo;
use stager::host::swaps::{self, SwapKind};

#[test]
fn swap_partition_sizes_are_kib() {
    let areas = swaps::parse(&read_fixture("swaps/ubuntu-14.04-partition")).unwrap();
    assert_eq!(areas.len(), 1);
    assert_eq!(areas[0].path, "/dev/sda5");
    assert_eq!(areas[0].kind, SwapKind::Partition);
    assert_eq!(areas[0].size, Bytes(2_094_076 * 1024));
    assert_eq!(areas[0].used, Bytes(13_312 * 1024));
    assert_eq!(areas[0].priority, -1);
}

#[test]
fn swap_files_and_escaped_names() {
    let file = swaps::parse(&read_fixture("swaps/ubuntu-22.04-file")).unwrap();
    assert_eq!((file[0].path.as_str(), &file[0].kind), ("/swapfile", &SwapKind::File));
    let mixed = swaps::parse(&read_fixture("swaps/lvm-and-file")).unwrap();
    assert_eq!(mixed[0].path, "/dev/dm-1");
    assert_eq!(mixed[1].path, "/swap file");
    assert_eq!(mixed[1].kind, SwapKind::File);
    assert!(swaps::parse(&read_fixture("swaps/none")).unwrap().is_empty());
}

#[test]
fn old_kernels_without_memavailable_get_an_estimate() {
    let m = meminfo::parse(&read_fixture("meminfo/ubuntu-14.04-kernel-3.13")).unwrap();
    assert!(m.available_is_estimate);
    assert_eq!(m.available, Bytes((812_344 + 61_232 + 702_156) * 1024));
    assert_eq!(m.total, Bytes(2_048_316 * 1024));
    assert_eq!(m.swap_used(), Bytes((2_094_076 - 2_080_764) * 1024));
    assert_eq!(m.available_without_swap(), m.available.saturating_sub(m.swap_used()));
}

#[test]
fn modern_kernels_report_memavailable() {
    let m = meminfo::parse(&read_fixture("meminfo/ubuntu-22.04")).unwrap();
    assert!(!m.available_is_estimate);
    assert_eq!(m.available, Bytes(3_462_508 * 1024));
    assert_eq!(m.swap_used(), Bytes(0));
}

#[test]
fn this_machines_meminfo_and_swaps_parse() {
    let m = meminfo::parse(&std::fs::read_to_string("/proc/meminfo").unwrap()).unwrap();
    assert!(m.total > Bytes(0) && m.available <= m.total);
    swaps::parse(&std::fs::read_to_string("/proc/swaps").unwrap()).unwrap();
}

#[test]
fn fstab_swap_entries_by_uuid_label_path_and_partuuid() {
    let ubuntu = fstab::parse(&read_fixture("fstab/ubuntu-14.04")).unwrap();
    assert_eq!(ubuntu.len(), 3);
    let swap: Vec<_> = fstab::swap_entries(&ubuntu).collect();
    assert_eq!(swap.len(), 1);
    assert_eq!(swap[0].spec, FsSpec::Uuid(fixture_host::SWAP_UUID.to_string()));
    assert_eq!(swap[0].mount_point, "none");

    let mixed = fstab::parse(&read_fixture("fstab/mixed-swaps")).unwrap();
    let specs: Vec<FsSpec> = fstab::swap_entries(&mixed).map(|e| e.spec.clone()).collect();
    assert_eq!(
        specs,
        vec![
            FsSpec::Label("stem-swap".into()),
            FsSpec::Path("/dev/sdb2".into()),
            FsSpec::Path("/swap file".into()),
            FsSpec::PartUuid("1234abcd-05".into()),
        ]
    );
    assert_eq!(mixed[0].spec, FsSpec::Label("cloudimg-rootfs".into()));
    assert_eq!(mixed[2].options, vec!["sw", "pri=5"]);
}
