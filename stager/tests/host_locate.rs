//! Finding a partition by identity (disk identifier + start + size) in a fixture sysfs whose
//! disk images are partitioned by the real sfdisk: under whatever name the disk has, never
//! a look-alike with another identifier, and never a guess between two disks that share one.

#[path = "fixtures/fixture_host.rs"]
mod fixture_host;

use fixture_host::{sfdisk, sparse_file, FixtureHost, Partition};
use plan::{DiskId, PartitionIdentity, SectorSize, Sectors};
use stager::host::locate::{self, LocateError};
use stager::host::HostRoot;

const SECTORS: u64 = 65_536;

/// A disk `name` (device numbers from `8:<minor>`) with partitions 1 at 2048 and 5 in an
/// extended one, and MBR signature `signature`.
fn add_disk(host: &FixtureHost, name: &str, minor: u32, signature: u32) {
    let image = host.path(&format!("/dev/{name}"));
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    sparse_file(&image, SECTORS * 512);
    sfdisk(&image, &format!("label: dos\nlabel-id: 0x{signature:08x}\nstart=2048, size=20480, type=83\nstart=22528, type=5\nstart=24576, type=82\n"));
    let (p1, p2, p5) = (format!("{name}1"), format!("{name}2"), format!("{name}5"));
    let (d1, d2, d5) =
        (format!("8:{}", minor + 1), format!("8:{}", minor + 2), format!("8:{}", minor + 5));
    host.add_sysfs_disk(
        name,
        &format!("8:{minor}"),
        SECTORS,
        &[
            Partition { name: &p1, number: 1, dev: &d1, start: 2048, sectors: 20480 },
            Partition { name: &p2, number: 2, dev: &d2, start: 22528, sectors: 2 },
            Partition { name: &p5, number: 5, dev: &d5, start: 24576, sectors: SECTORS - 24576 },
        ],
        true,
    );
}

fn swap_identity(signature: u32) -> PartitionIdentity {
    PartitionIdentity::mbr(signature, 5, Sectors(24576), Sectors(SECTORS - 24576), SectorSize::S512)
        .unwrap()
}

#[test]
fn the_partition_is_found_on_the_disk_with_its_identifier_whatever_its_name() {
    let host = FixtureHost::empty();
    add_disk(&host, "sda", 0, 0x0badf00d);
    add_disk(&host, "sdb", 16, 0x000ae07e);
    let root = HostRoot::new(host.root());
    let found = locate::find_partition(&root, &swap_identity(0x000ae07e)).unwrap();
    assert_eq!(found.dev_path(), "/dev/sdb5");
    assert_eq!(
        locate::find_disk(&root, &DiskId::Mbr { signature: 0x0badf00d }).unwrap().dev_path(),
        "/dev/sda"
    );

    // Same disk, start matches but the size does not: the table changed, say so.
    let mut resized = swap_identity(0x000ae07e);
    resized.size = Sectors(1024);
    let err = locate::find_partition(&root, &resized).unwrap_err();
    assert!(matches!(err, LocateError::NoPartition { .. }), "{err}");
    assert!(
        err.to_string().contains(
            "disk /dev/sdb (MBR 0x000ae07e) has no partition at 12582912 bytes with 524288 bytes"
        ),
        "{err}"
    );

    let err = locate::find_partition(&root, &swap_identity(0x12345678)).unwrap_err();
    assert!(matches!(err, LocateError::NoDisk { .. }), "{err}");
    assert!(err.to_string().contains("disks seen: sda, sdb"), "{err}");
}

#[test]
fn two_disks_with_the_same_identifier_are_refused_not_guessed() {
    let host = FixtureHost::empty();
    add_disk(&host, "sda", 0, 0x000ae07e);
    add_disk(&host, "sdb", 16, 0x000ae07e);
    let err = locate::find_partition(&HostRoot::new(host.root()), &swap_identity(0x000ae07e))
        .unwrap_err();
    assert!(matches!(err, LocateError::Ambiguous { .. }), "{err}");
    assert!(
        err.to_string().contains("/dev/sda, /dev/sdb all have the identifier MBR 0x000ae07e"),
        "{err}"
    );
}
