//! bootcode against real images partitioned by sfdisk and a real grub-mkimage core.img.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::run;
use grub::bootcode::{self, sectors_to_hold, BootCodeError, BOOT_CODE_BYTES, SECTOR_BYTES};
use plan::Sectors;

const BOOT_IMG: &str = "/usr/lib/grub/i386-pc/boot.img";
const IMAGE_BYTES: u64 = 64 * 1024 * 1024;

/// A sparse image file with the given sfdisk script applied.
fn image_with_table(dir: &Path, script: &str) -> PathBuf {
    let img = dir.join("disk.img");
    File::create(&img).unwrap().set_len(IMAGE_BYTES).unwrap();
    let mut child = Command::new("sfdisk")
        .arg("--no-reread")
        .arg("--no-tell-kernel")
        .arg(&img)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "sfdisk: {}", String::from_utf8_lossy(&out.stderr));
    img
}

/// The host-like layout: sda1 ext4 at 1 MiB, extended, swap in a logical partition.
const HOST_LAYOUT: &str = "label: dos\nlabel-id: 0x1234abcd\nstart=2048, size=81920, type=83, bootable\nstart=83968, type=5\nstart=86016, type=82\n";

fn sfdisk_dump(img: &Path) -> String {
    run(Command::new("sfdisk").arg("-d").arg(img))
}

fn core_img(dir: &Path) -> Vec<u8> {
    let out = dir.join("core.img");
    bootcode::build_core_img("(hd0,msdos1)/boot/grub", &["biosdisk", "part_msdos", "ext2"], &out)
        .unwrap();
    fs::read(out).unwrap()
}

fn read_range(img: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut f = File::open(img).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0; len];
    f.read_exact(&mut buf).unwrap();
    buf
}

#[test]
fn install_puts_boot_code_and_core_img_in_place_and_keeps_the_partition_table() {
    let dir = tempfile::tempdir().unwrap();
    let img = image_with_table(dir.path(), HOST_LAYOUT);
    // Mark the first partition's first sector so we can see it is not touched.
    let marker = b"PARTITION-ONE-DATA";
    {
        let mut f = OpenOptions::new().write(true).open(&img).unwrap();
        f.seek(SeekFrom::Start(2048 * SECTOR_BYTES)).unwrap();
        f.write_all(marker).unwrap();
    }
    let core = core_img(dir.path());
    let boot = fs::read(BOOT_IMG).unwrap();
    let dump_before = sfdisk_dump(&img);
    let sector0_before = read_range(&img, 0, 512);

    let plan =
        bootcode::install_files(&img, Path::new(BOOT_IMG), &dir.path().join("core.img")).unwrap();

    assert_eq!(sfdisk_dump(&img), dump_before);
    assert!(dump_before.contains("label-id: 0x1234abcd"), "{dump_before}");
    let sector0 = read_range(&img, 0, 512);
    assert_eq!(
        sector0[BOOT_CODE_BYTES..],
        sector0_before[BOOT_CODE_BYTES..],
        "disk signature/table changed"
    );
    // boot.img with exactly grub-setup's two hard-disk patches.
    let mut expected = boot[..BOOT_CODE_BYTES].to_vec();
    expected[0x66] = 0x90;
    expected[0x67] = 0x90;
    assert_eq!(&sector0[..BOOT_CODE_BYTES], &expected[..]);
    assert_eq!(u64::from_le_bytes(sector0[0x5c..0x64].try_into().unwrap()), 1, "kernel_sector");
    assert_eq!(read_range(&img, SECTOR_BYTES, core.len()), core);
    assert_eq!(plan.core_sectors, sectors_to_hold(core.len()));
    assert_eq!(plan.first_partition_start, Sectors(2048));
    // Between the end of core.img and the partition: still zeros; partition data intact.
    let after_core = SECTOR_BYTES + core.len() as u64;
    let gap = read_range(&img, after_core, (2048 * SECTOR_BYTES - after_core) as usize);
    assert!(gap.iter().all(|&b| b == 0));
    assert_eq!(read_range(&img, 2048 * SECTOR_BYTES, marker.len()), marker);
    // The image stays sparse-sized.
    assert_eq!(fs::metadata(&img).unwrap().len(), IMAGE_BYTES);
}

#[test]
fn core_img_that_does_not_fit_before_the_first_partition_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let img = image_with_table(dir.path(), "label: dos\nstart=16, size=81920, type=83\n");
    let core = core_img(dir.path());
    assert!(core.len() as u64 > 15 * SECTOR_BYTES, "core.img unexpectedly small: {}", core.len());
    let before = read_range(&img, 0, 16 * 512);
    let mut disk = OpenOptions::new().read(true).write(true).open(&img).unwrap();
    let err = bootcode::install(&mut disk, &fs::read(BOOT_IMG).unwrap(), &core).unwrap_err();
    match &err {
        BootCodeError::CoreImgTooBig { first_partition: 16, end, .. } => {
            assert_eq!(*end, 1 + sectors_to_hold(core.len()).0)
        }
        other => panic!("unexpected: {other}"),
    }
    assert!(err.to_string().contains("first partition starts at sector 16"), "{err}");
    assert_eq!(read_range(&img, 0, 16 * 512), before);
}

#[test]
fn disk_without_mbr_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("blank.img");
    File::create(&img).unwrap().set_len(IMAGE_BYTES).unwrap();
    let core = core_img(dir.path());
    let mut disk = OpenOptions::new().read(true).write(true).open(&img).unwrap();
    let err = bootcode::install(&mut disk, &fs::read(BOOT_IMG).unwrap(), &core).unwrap_err();
    assert!(matches!(err, BootCodeError::NoMbr), "{err}");
    assert!(read_range(&img, 0, 64 * 1024).iter().all(|&b| b == 0));
}

#[test]
fn gpt_disk_and_empty_table_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let core = core_img(dir.path());
    let boot = fs::read(BOOT_IMG).unwrap();

    let gpt = image_with_table(dir.path(), "label: gpt\nstart=2048, size=81920\n");
    let mut disk = OpenOptions::new().read(true).write(true).open(&gpt).unwrap();
    assert!(matches!(bootcode::install(&mut disk, &boot, &core), Err(BootCodeError::GptDisk)));

    let empty = image_with_table(dir.path(), "label: dos\n");
    let mut disk = OpenOptions::new().read(true).write(true).open(&empty).unwrap();
    assert!(matches!(bootcode::install(&mut disk, &boot, &core), Err(BootCodeError::NoPartitions)));
}

#[test]
fn build_core_img_reports_grub_mkimage_failure() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("core.img");
    let err = bootcode::build_core_img("(hd0,msdos1)/boot/grub", &["no_such_module_xyz"], &out)
        .unwrap_err();
    match err {
        BootCodeError::Mkimage { stderr, .. } => {
            assert!(stderr.contains("no_such_module_xyz"), "{stderr}")
        }
        other => panic!("unexpected: {other}"),
    }
}

#[test]
fn install_through_a_loop_block_device() {
    let dir = tempfile::tempdir().unwrap();
    let img = image_with_table(dir.path(), HOST_LAYOUT);
    let core = core_img(dir.path());
    let dump_before = sfdisk_dump(&img);
    let loopdev =
        run(Command::new("losetup").args(["--find", "--show"]).arg(&img)).trim().to_string();
    let result = bootcode::install_files(
        Path::new(&loopdev),
        Path::new(BOOT_IMG),
        &dir.path().join("core.img"),
    );
    run(Command::new("losetup").args(["-d", &loopdev]));
    result.unwrap();
    assert_eq!(sfdisk_dump(&img), dump_before);
    assert_eq!(read_range(&img, SECTOR_BYTES, core.len()), core);
}

#[test]
fn self_contained_core_img_with_embedded_config_fits_the_1mib_gap() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("early.cfg");
    let early = "search --no-floppy --fs-uuid --set=root 0a1b2c3d-1111-2222-3333-444455556666\nset prefix=($root)/boot/grub\nconfigfile $prefix/grub.cfg\n";
    fs::write(&config, early).unwrap();
    run(Command::new("grub-script-check").arg(&config));
    let out = dir.path().join("core.img");
    let modules = [
        "biosdisk",
        "part_msdos",
        "ext2",
        "search_fs_uuid",
        "configfile",
        "normal",
        "linux",
        "echo",
        "test",
    ];
    bootcode::build_core_img_with_config("(hd0,msdos5)/boot/grub", &modules, &config, &out)
        .unwrap();
    let core = fs::read(&out).unwrap();
    let plain = dir.path().join("plain.img");
    bootcode::build_core_img("(hd0,msdos5)/boot/grub", &modules, &plain).unwrap();
    assert!(core.len() > fs::metadata(&plain).unwrap().len() as usize, "config was not embedded");

    let img = image_with_table(dir.path(), HOST_LAYOUT);
    let dump_before = sfdisk_dump(&img);
    let plan = bootcode::install_files(&img, Path::new(BOOT_IMG), &out).unwrap();
    assert!(plan.core_sectors.0 < 2047, "{plan:?}");
    assert_eq!(read_range(&img, SECTOR_BYTES, core.len()), core);
    assert_eq!(sfdisk_dump(&img), dump_before);
}
