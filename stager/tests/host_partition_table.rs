//! Partition tables read from sparse image files partitioned by the real `sfdisk`; the
//! expected values come from `sfdisk --json` on the same image.

#[path = "fixtures/fixture_host.rs"]
mod fixture_host;

use fixture_host::{run, sfdisk, sparse_file, DISK_SECTORS, LEGACY_MBR_SCRIPT, SECTOR};
use plan::{Bytes, DiskId, Guid, Sectors};
use serde_json::Value;
use stager::host::partition_table::{self, PartitionTable};
use std::path::Path;
use std::process::Command;

fn sfdisk_json(image: &Path) -> Value {
    let text = run(Command::new("sfdisk").arg("--json").arg(image));
    serde_json::from_str::<Value>(&text).unwrap()["partitiontable"].clone()
}

fn image_with(script: &str, sectors: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    sparse_file(&image, sectors * SECTOR);
    sfdisk(&image, script);
    (dir, image)
}

/// Every partition sfdisk lists is in our table with the same number, start and size.
fn assert_matches_sfdisk(table: &PartitionTable, json: &Value) {
    let listed = json["partitions"].as_array().unwrap();
    assert_eq!(table.partitions.len(), listed.len());
    for p in listed {
        let node = p["node"].as_str().unwrap();
        let number: u32 =
            node.rsplit(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap();
        let entry = table
            .partitions
            .iter()
            .find(|e| e.number == number)
            .unwrap_or_else(|| panic!("partition {number} missing"));
        assert_eq!(entry.start_sector, Sectors(p["start"].as_u64().unwrap()), "start of {number}");
        assert_eq!(entry.sector_count, Sectors(p["size"].as_u64().unwrap()), "size of {number}");
        assert_eq!(entry.start, Bytes(p["start"].as_u64().unwrap() * SECTOR));
    }
}

#[test]
fn mbr_with_primary_extended_and_logical_partitions() {
    let (_dir, image) = image_with(LEGACY_MBR_SCRIPT, DISK_SECTORS);
    let table = partition_table::read(&image, Bytes(512)).unwrap();
    let json = sfdisk_json(&image);
    assert_eq!(json["label"], "dos");
    assert_eq!(
        table.id,
        DiskId::Mbr {
            signature: u32::from_str_radix(
                json["id"].as_str().unwrap().trim_start_matches("0x"),
                16
            )
            .unwrap()
        }
    );
    assert_matches_sfdisk(&table, &json);

    let numbers: Vec<u32> = table.partitions.iter().map(|p| p.number).collect();
    assert_eq!(numbers, vec![1, 2, 5]);
    let root = &table.partitions[0];
    assert!(root.bootable && !root.extended);
    assert_eq!(root.type_code, "0x83");
    assert_eq!(root.partuuid, "1234abcd-01");
    let extended = &table.partitions[1];
    assert!(extended.extended);
    let swap = table.find_by_start(Bytes(fixture_host::SWAP_START * SECTOR)).unwrap();
    assert_eq!(swap.number, 5);
    assert_eq!(swap.type_code, "0x82");
    assert_eq!(swap.partuuid, "1234abcd-05");
    assert_eq!(table.extended_containing(swap).map(|e| e.number), Some(2));
    assert_eq!(table.extended_containing(root), None);
    // The extended partition itself is never returned as a data partition.
    assert_eq!(table.find_by_start(extended.start), None);
}

#[test]
fn mbr_with_two_logical_partitions_numbers_them_5_and_6() {
    let script = "label: dos\nlabel-id: 0xcafe0001\nstart=2048, size=40960, type=83\nstart=43008, type=5\nstart=45056, size=20480, type=82\nstart=67584, type=83\n";
    let (_dir, image) = image_with(script, DISK_SECTORS);
    let table = partition_table::read(&image, Bytes(512)).unwrap();
    assert_matches_sfdisk(&table, &sfdisk_json(&image));
    let logical: Vec<(u32, &str)> = table
        .partitions
        .iter()
        .filter(|p| p.number >= 5)
        .map(|p| (p.number, p.type_code.as_str()))
        .collect();
    assert_eq!(logical, vec![(5, "0x82"), (6, "0x83")]);
}

#[test]
fn gpt_partitions_with_guids_and_names() {
    let script = "label: gpt\nlabel-id: 6E1B2C3D-4F5A-4B6C-8D7E-9F0A1B2C3D4E\n\
        start=2048, size=40960, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=11111111-2222-4333-8444-555555555555, name=root\n\
        start=43008, size=40960, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, uuid=AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE, name=swap\n";
    let (_dir, image) = image_with(script, DISK_SECTORS);
    let table = partition_table::read(&image, Bytes(512)).unwrap();
    let json = sfdisk_json(&image);
    assert_eq!(json["label"], "gpt");
    assert!(table.is_gpt());
    assert_eq!(table.id, DiskId::Gpt { guid: Guid::parse(json["id"].as_str().unwrap()).unwrap() });
    assert_matches_sfdisk(&table, &json);
    for (entry, listed) in table.partitions.iter().zip(json["partitions"].as_array().unwrap()) {
        assert_eq!(entry.partuuid, listed["uuid"].as_str().unwrap().to_ascii_lowercase());
        assert_eq!(entry.type_code, listed["type"].as_str().unwrap().to_ascii_lowercase());
        assert_eq!(entry.name.as_deref(), listed["name"].as_str());
    }
    assert_eq!(table.partitions[1].size, Bytes::from_mib(20).unwrap());
}

#[test]
fn a_blank_disk_has_no_table() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("blank.img");
    sparse_file(&image, DISK_SECTORS * SECTOR);
    let err = partition_table::read(&image, Bytes(512)).unwrap_err();
    assert!(err.to_string().contains("no MBR or GPT partition table"), "{err}");
    let missing = partition_table::read(&dir.path().join("nothing"), Bytes(512)).unwrap_err();
    assert!(missing.to_string().contains("cannot open"), "{missing}");
}

#[test]
fn odd_sector_sizes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gpt = dir.path().join("gpt.img");
    sparse_file(&gpt, DISK_SECTORS * SECTOR);
    sfdisk(&gpt, "label: gpt\nstart=2048, size=2048, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n");
    let err = partition_table::read(&gpt, Bytes(1024)).unwrap_err();
    assert!(err.to_string().contains("not supported"), "{err}");
}
