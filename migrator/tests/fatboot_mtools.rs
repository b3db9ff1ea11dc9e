//! resin-boot files written with fatfs through a partition window of a disk
//! image, read back by mtools and checked by fsck.fat, on FAT16 and FAT32
//! volumes made by mkfs.vfat, with and without an existing system-connections/.

mod steps_support;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use migrator::fatboot::{write_files, FatFile, PartitionSlice};
use plan::Bytes;
use steps_support::run;

const PART_START: u64 = 4 * 1024 * 1024;
const PART_BYTES: u64 = 40 * 1024 * 1024;

fn disk_with_fat(dir: &std::path::Path, fat_bits: &str, existing_dir: bool) -> std::path::PathBuf {
    let part = dir.join("boot.vfat");
    std::fs::File::create(&part).unwrap().set_len(PART_BYTES).unwrap();
    run("mkfs.vfat", &["-F", fat_bits, "-n", "RESIN-BOOT", part.to_str().unwrap()]);
    if existing_dir {
        run("mmd", &["-i", part.to_str().unwrap(), "::system-connections"]);
        std::fs::write(dir.join("README"), b"sample\n").unwrap();
        run(
            "mcopy",
            &[
                "-i",
                part.to_str().unwrap(),
                dir.join("README").to_str().unwrap(),
                "::system-connections/README.ignore",
            ],
        );
    }
    let disk = dir.join("disk.img");
    let file =
        OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&disk).unwrap();
    file.set_len(PART_START + PART_BYTES + 1024 * 1024).unwrap();
    // Bytes around the partition that must survive.
    file.write_all_at(&[0xa5; 4096], PART_START - 4096).unwrap();
    file.write_all_at(&[0x5a; 4096], PART_START + PART_BYTES).unwrap();
    file.write_all_at(&std::fs::read(&part).unwrap(), PART_START).unwrap();
    disk
}

fn files() -> Vec<FatFile> {
    vec![
        FatFile {
            path: "config.json".into(),
            contents: br#"{"applicationId":1,"hostname":"stem"}"#.to_vec(),
        },
        FatFile {
            path: "system-connections/Home-Net".into(),
            contents: b"[wifi]\nssid=Home Net\n".to_vec(),
        },
        FatFile {
            path: "system-connections/office_5g".into(),
            contents: b"[wifi]\nssid=office\n".to_vec(),
        },
    ]
}

fn check(fat_bits: &str, existing_dir: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let disk = disk_with_fat(tmp.path(), fat_bits, existing_dir);
    let file = OpenOptions::new().read(true).write(true).open(&disk).unwrap();
    write_files(PartitionSlice::new(&file, Bytes(PART_START), Bytes(PART_BYTES)), &files())
        .unwrap();
    // Twice: replacing contents, not appending.
    write_files(PartitionSlice::new(&file, Bytes(PART_START), Bytes(PART_BYTES)), &files())
        .unwrap();
    let volume = format!("{}@@{PART_START}", disk.display());
    assert_eq!(
        run("mtype", &["-i", &volume, "::config.json"]),
        r#"{"applicationId":1,"hostname":"stem"}"#
    );
    assert_eq!(
        run("mtype", &["-i", &volume, "::system-connections/Home-Net"]),
        "[wifi]\nssid=Home Net\n"
    );
    let mut names: Vec<String> = run("mdir", &["-b", "-i", &volume, "::system-connections"])
        .lines()
        .map(str::to_string)
        .collect();
    names.sort();
    let mut expected = vec![
        "::/system-connections/Home-Net".to_string(),
        "::/system-connections/office_5g".to_string(),
    ];
    if existing_dir {
        expected.insert(0, "::/system-connections/README.ignore".to_string());
    }
    expected.sort();
    assert_eq!(names, expected, "FAT{fat_bits}");
    let all = std::fs::read(&disk).unwrap();
    let part = tmp.path().join("check.vfat");
    std::fs::write(&part, &all[PART_START as usize..(PART_START + PART_BYTES) as usize]).unwrap();
    run("fsck.fat", &["-n", part.to_str().unwrap()]);
    assert!(all[(PART_START - 4096) as usize..PART_START as usize].iter().all(|b| *b == 0xa5));
    assert!(all[(PART_START + PART_BYTES) as usize..(PART_START + PART_BYTES + 4096) as usize]
        .iter()
        .all(|b| *b == 0x5a));
}

#[test]
fn fat16_new_directory() {
    check("16", false);
}

#[test]
fn fat16_existing_directory() {
    check("16", true);
}

#[test]
fn fat32_new_directory() {
    check("32", false);
}

#[test]
fn fat32_existing_directory() {
    check("32", true);
}
