//! Layout on real partition tables made by sfdisk: a resinOS 2.x image and
//! Ubuntu-shaped host disks (sda1 from 2048, extended + logical swap at the end).

use disk_layout::units::{Sectors, Sectors512, SECTOR_BYTES};
use disk_layout::{
    final_table, place_image, write_growth, DataGrowth, HeadOverlay, HostDisk, LayoutError,
    PartitionTable, Span,
};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MIB: u64 = 2048; // sectors

/// resinOS 2.x, MBR: 4 MiB reserved, boot 40 MiB vfat, rootA/rootB 312 MiB,
/// extended with resin-state 20 MiB and resin-data (16 MiB in the image).
const RESIN_2X: &str = "label: dos
unit: sectors
start=8192, size=81920, type=c, bootable
start=90112, size=638976, type=83
start=729088, size=638976, type=83
start=1368064, size=90112, type=5
start=1376256, size=40960, type=83
start=1425408, size=32768, type=83
";
const RESIN_2X_END: u64 = 1458176;

fn sfdisk(path: &Path, size: Sectors, script: &str) {
    let f = File::create(path).unwrap();
    f.set_len(size.bytes_512().0).unwrap();
    drop(f);
    let mut child = Command::new("sfdisk")
        .args(["--no-reread", "--no-tell-kernel", "-q"])
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk failed on {script}");
}

fn sfdisk_json(path: &Path) -> Value {
    let out = Command::new("sfdisk").arg("-J").arg(path).output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["partitiontable"].clone()
}

fn resin_image(dir: &Path) -> PathBuf {
    let p = dir.join("resin.img");
    sfdisk(&p, Sectors(RESIN_2X_END), RESIN_2X);
    p
}

/// Ubuntu 14.04 shape on a disk of `disk` sectors with a swap of `swap` sectors.
fn host_disk(dir: &Path, disk: Sectors, swap: Sectors) -> PathBuf {
    let p = dir.join("host.img");
    let ext_start = disk.0 - swap.0 - 2;
    let script = format!(
        "label: dos\nunit: sectors\nstart=2048, size={}, type=83, bootable\nstart={ext_start}, size={}, type=5\nstart={}, size={}, type=82\n",
        ext_start - 2 - 2048,
        disk.0 - ext_start,
        ext_start + 2,
        swap.0
    );
    sfdisk(&p, disk, &script);
    p
}

fn host_facts(table: &PartitionTable, disk_size: Sectors) -> HostDisk {
    let staging = table.partition(5).unwrap();
    let facts = HostDisk::from_table(table, Sectors(2048), staging.start, disk_size).unwrap();
    assert_eq!(facts.old_root.start, Sectors(2048));
    assert_eq!(facts.old_root.size, table.partition(1).unwrap().size);
    assert_eq!(facts.staging_container_start, Some(table.extended().unwrap().start));
    facts
}

fn first_mib(path: &Path) -> Vec<u8> {
    let mut head = vec![0u8; (MIB * SECTOR_BYTES) as usize];
    File::open(path).unwrap().read_exact(&mut head).unwrap();
    head
}

#[test]
fn reads_the_resin_image_table_whole() {
    let dir = tempfile::tempdir().unwrap();
    let table = PartitionTable::read(&mut File::open(resin_image(dir.path())).unwrap()).unwrap();
    let sj = sfdisk_json(&dir.path().join("resin.img"));
    let want: Vec<(u64, u64)> = sj["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap()))
        .collect();
    let got: Vec<(u64, u64)> = table.all().map(|p| (p.start.0, p.size.0)).collect();
    assert_eq!(got, want);
    assert_eq!(table.logicals.iter().map(|p| p.number).collect::<Vec<_>>(), vec![5, 6]);
    assert!(table.partition(1).unwrap().bootable);
    assert_eq!(table.partition(1).unwrap().kind, 0x0c);
    assert_eq!(table.end(), Sectors(RESIN_2X_END));
    let sig = u32::from_str_radix(sj["id"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(table.disk_signature, sig);
}

#[test]
fn the_first_mib_alone_tells_how_far_the_image_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let table = PartitionTable::from_head(&first_mib(&resin_image(dir.path()))).unwrap();
    assert_eq!(table.primaries.len(), 4);
    assert!(table.logicals.is_empty());
    assert_eq!(table.end(), Sectors(RESIN_2X_END));
}

#[test]
fn a_16_gib_ubuntu_host_takes_the_image_before_its_extended_partition() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Sectors(16 * 1024 * MIB);
    let host = host_disk(dir.path(), disk, Sectors(2048 * MIB));
    let host_table = PartitionTable::read(&mut File::open(&host).unwrap()).unwrap();
    let facts = host_facts(&host_table, disk);
    let image = PartitionTable::from_head(&first_mib(&resin_image(dir.path()))).unwrap();
    let placed = place_image(&image, &facts).unwrap();
    let ext = host_table.extended().unwrap().start;
    assert_eq!(placed.limit, ext, "the extended partition's EBR must survive, not just the swap");
    assert!(placed.limit < facts.staging_start);
    assert_eq!(placed.image_end, Sectors(RESIN_2X_END));
    assert_eq!(placed.spare, Sectors(ext.0 - RESIN_2X_END));
}

#[test]
fn a_host_with_too_small_a_root_is_refused_with_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    // 700 MiB disk, 100 MiB swap: about 599 MiB before the extended partition.
    let disk = Sectors(700 * MIB);
    let host = host_disk(dir.path(), disk, Sectors(100 * MIB));
    let facts = host_facts(&PartitionTable::read(&mut File::open(&host).unwrap()).unwrap(), disk);
    let image = PartitionTable::read(&mut File::open(resin_image(dir.path())).unwrap()).unwrap();
    let err = place_image(&image, &facts).unwrap_err();
    assert!(
        matches!(err, LayoutError::ImageTooLarge { needs_mib: 712, room_mib: 599, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("image needs 712 MiB but only 599 MiB lie before the extended partition"),
        "{msg}"
    );
    assert!(msg.contains("use a smaller image"), "{msg}");
}

#[test]
fn a_primary_staging_partition_is_its_own_limit() {
    let dir = tempfile::tempdir().unwrap();
    let image = PartitionTable::read(&mut File::open(resin_image(dir.path())).unwrap()).unwrap();
    let facts = HostDisk {
        old_root: Span { start: Sectors(2048), size: Sectors(RESIN_2X_END - 2048) },
        staging_start: Sectors(RESIN_2X_END),
        staging_container_start: None,
        disk_size: Sectors(RESIN_2X_END + 100 * MIB),
    };
    let placed = place_image(&image, &facts).unwrap();
    assert_eq!((placed.limit, placed.spare), (Sectors(RESIN_2X_END), Sectors(0)));
    let short = HostDisk { staging_start: Sectors(RESIN_2X_END - 1), ..facts };
    let short = HostDisk { old_root: Span { start: Sectors(2048), size: Sectors(1000) }, ..short };
    let msg = place_image(&image, &short).unwrap_err().to_string();
    assert!(msg.contains("before the staging partition"), "{msg}");
}

#[test]
fn an_old_root_reaching_past_staging_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = PartitionTable::read(&mut File::open(resin_image(dir.path())).unwrap()).unwrap();
    let facts = HostDisk {
        old_root: Span { start: Sectors(2048), size: Sectors(10 * 1024 * MIB) },
        staging_start: Sectors(4 * 1024 * MIB),
        staging_container_start: None,
        disk_size: Sectors(16 * 1024 * MIB),
    };
    assert!(matches!(place_image(&image, &facts), Err(LayoutError::OldRootPastStaging { .. })));
}

#[test]
fn a_gpt_image_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gpt.img");
    sfdisk(&p, Sectors(64 * MIB), "label: gpt\nsize=20MiB, name=resin-boot\nname=resin-data\n");
    let err = PartitionTable::from_head(&first_mib(&p)).unwrap_err();
    assert!(matches!(err, LayoutError::GptNotSupported), "{err:?}");
}

#[test]
fn keep_leaves_the_image_table_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let image = PartitionTable::read(&mut File::open(resin_image(dir.path())).unwrap()).unwrap();
    let kept = final_table(&image, Sectors(16 * 1024 * MIB), DataGrowth::Keep).unwrap();
    assert_eq!(kept.table, image);
    assert_eq!(kept.growth, None);
}

/// The flashed host disk: the image's body written over it, the image's first
/// MiB held back (the old MBR still at sector 0), as the migrator leaves it
/// before finalize.
fn flashed_host(dir: &Path, disk: Sectors) -> (PathBuf, Vec<u8>) {
    let host = host_disk(dir, disk, Sectors(2048 * MIB));
    let image = resin_image(dir);
    let mut body = Vec::new();
    File::open(&image).unwrap().read_to_end(&mut body).unwrap();
    let mut out = OpenOptions::new().write(true).open(&host).unwrap();
    let head_len = (MIB * SECTOR_BYTES) as usize;
    out.seek(SeekFrom::Start(head_len as u64)).unwrap();
    out.write_all(&body[head_len..]).unwrap();
    (host, body[..head_len].to_vec())
}

#[test]
fn growing_resin_data_over_the_freed_staging_area_gives_a_table_sfdisk_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Sectors(16 * 1024 * MIB);
    let (host, mut head) = flashed_host(dir.path(), disk);

    // Before the head is written, the overlay shows the disk as resinOS will see it.
    let mut disk_file = OpenOptions::new().read(true).write(true).open(&host).unwrap();
    let image_table = PartitionTable::read(&mut HeadOverlay::new(&head, &mut disk_file)).unwrap();
    assert_eq!(image_table.logicals.len(), 2);
    let fin = final_table(&image_table, disk, DataGrowth::OverStaging).unwrap();
    let growth = fin.growth.unwrap();
    assert_eq!((growth.number, growth.old_end, growth.new_end), (6, Sectors(RESIN_2X_END), disk));

    write_growth(&fin, &mut head, &mut disk_file).unwrap();
    disk_file.seek(SeekFrom::Start(0)).unwrap();
    disk_file.write_all(&head).unwrap();
    drop(disk_file);

    let verify = Command::new("sfdisk").arg("-V").arg(&host).output().unwrap();
    assert!(verify.status.success(), "sfdisk -V: {}", String::from_utf8_lossy(&verify.stdout));
    let sj = sfdisk_json(&host);
    let parts = sj["partitions"].as_array().unwrap();
    let end = |i: usize| parts[i]["start"].as_u64().unwrap() + parts[i]["size"].as_u64().unwrap();
    assert_eq!(parts.len(), 6);
    assert_eq!(end(3), disk.0, "extended reaches the disk end");
    assert_eq!(end(5), disk.0, "resin-data reaches the disk end");
    assert_eq!(parts[4]["size"].as_u64(), Some(40960), "resin-state unchanged");
    assert_eq!(parts[5]["start"].as_u64(), Some(1425408));
    // Reading back with our own reader agrees with the computed table.
    let reread = PartitionTable::read(&mut File::open(&host).unwrap()).unwrap();
    assert_eq!(reread, fin.table);
}

#[test]
fn a_table_that_already_fills_the_disk_does_not_grow() {
    let dir = tempfile::tempdir().unwrap();
    let image = PartitionTable::read(&mut File::open(resin_image(dir.path())).unwrap()).unwrap();
    let fin = final_table(&image, Sectors(RESIN_2X_END), DataGrowth::OverStaging).unwrap();
    assert_eq!(fin.growth, None);
    let err = final_table(&image, Sectors(RESIN_2X_END - 1), DataGrowth::OverStaging).unwrap_err();
    assert!(matches!(err, LayoutError::PastDiskEnd { .. }));
}

#[test]
fn host_partitions_are_found_by_start_sector_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Sectors(1024 * MIB);
    let host = host_disk(dir.path(), disk, Sectors(100 * MIB));
    let table = PartitionTable::read(&mut File::open(&host).unwrap()).unwrap();
    let err = HostDisk::from_table(&table, Sectors(2048), Sectors(12345), disk).unwrap_err();
    assert!(matches!(err, LayoutError::PartitionNotFound { what: "staging", .. }), "{err:?}");
    // The extended container itself is never taken for a partition.
    let ext = table.extended().unwrap().start;
    assert!(HostDisk::from_table(&table, Sectors(2048), ext, disk).is_err());
}
