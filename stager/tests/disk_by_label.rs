//! Finding the resinOS 1.x disk by its boot partition's label (`stage-1x`/`plan-image`
//! without `--disk`) in a fixture sysfs whose disk images are partitioned by the real sfdisk
//! and formatted by the real mkfs.ext4: the disk holding the label is found whatever its
//! name; a label on no partition, or on two disks, is refused in one line naming them.
//! (Loop devices with partitions would be the real thing, but this kernel does not scan
//! loop partitions; the QEMU stage-1x test finds the disk on a booted device.)

#[path = "fixtures/fixture_host.rs"]
mod fixture_host;

use fixture_host::{run, sfdisk, sparse_file, FixtureHost, Partition};
use stager::host::HostRoot;
use stager::stage::resinos1x::source_disk::find_by_partition_label;
use std::path::PathBuf;
use std::process::Command;

const SECTORS: u64 = 65_536;
const P1_START: u64 = 2048;
const P1_SECTORS: u64 = 20_480;

/// A disk `name` whose first partition holds an ext4 labelled `label`.
fn add_disk(host: &FixtureHost, name: &str, minor: u32, label: &str) {
    let image = host.path(&format!("/dev/{name}"));
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    sparse_file(&image, SECTORS * 512);
    sfdisk(
        &image,
        &format!(
            "label: dos\nstart={P1_START}, size={P1_SECTORS}, type=83\nstart=22528, type=83\n"
        ),
    );
    let fs = host.path(&format!("/{name}.p1"));
    sparse_file(&fs, P1_SECTORS * 512);
    run(Command::new("mkfs.ext4").args(["-q", "-F", "-L", label]).arg(&fs));
    run(Command::new("dd")
        .arg(format!("if={}", fs.display()))
        .arg(format!("of={}", image.display()))
        .args(["bs=512", &format!("seek={P1_START}"), "conv=notrunc", "status=none"]));
    let (p1, p2) = (format!("{name}1"), format!("{name}2"));
    let (d1, d2) = (format!("8:{}", minor + 1), format!("8:{}", minor + 2));
    host.add_sysfs_disk(
        name,
        &format!("8:{minor}"),
        SECTORS,
        &[
            Partition { name: &p1, number: 1, dev: &d1, start: P1_START, sectors: P1_SECTORS },
            Partition { name: &p2, number: 2, dev: &d2, start: 22528, sectors: SECTORS - 22528 },
        ],
        true,
    );
}

#[test]
fn the_disk_holding_the_label_is_found_and_none_or_two_are_refused() {
    let host = FixtureHost::empty();
    add_disk(&host, "sda", 0, "data");
    add_disk(&host, "sdb", 16, "resin-boot");
    let root = HostRoot::new(host.root());
    assert_eq!(find_by_partition_label(&root, "resin-boot").unwrap(), PathBuf::from("/dev/sdb"));

    let refused = find_by_partition_label(&root, "resin-conf").unwrap_err().to_string();
    assert!(refused.contains("no partition of this device is labelled resin-conf"), "{refused}");
    assert!(refused.contains("pass --disk"), "{refused}");

    add_disk(&host, "sdc", 32, "resin-boot");
    let refused = find_by_partition_label(&root, "resin-boot").unwrap_err().to_string();
    assert!(
        refused.contains("2 partitions are labelled resin-boot (/dev/sdb1, /dev/sdc1)"),
        "{refused}"
    );
    assert!(refused.contains("pass --disk"), "{refused}");
    assert!(!refused.contains('\n'), "one line: {refused}");
}
