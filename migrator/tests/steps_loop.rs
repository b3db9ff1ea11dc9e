//! The whole journaled step loop on image FILES: a host-shaped MBR disk made by
//! sfdisk (old root, extended, staging logical), a resinOS-shaped xz image with
//! a real FAT resin-boot, the real GRUB boot.img/core.img for arm-resume. Old root
//! and resin-data are plain directories (`mounts::Directories`); mounting them is
//! what the QEMU end-to-end test adds.
//!
//! Proves: a straight run and runs resumed at each journal point end with the same
//! disk; the staging area is never written; the boot area rolls back byte for
//! byte; resin-boot receives config.json and keyfiles readable by mtools and
//! clean for fsck.fat; data is restored; the log and plan land on resin-data.

mod steps_support;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use migration_journal::{Journal, Step};
use migrator::mounts::Directories;
use migrator::pid1::RebootTarget;
use migrator::steps::{self, Context, Exit};
use plan::{
    BackupItem, BackupVolume, Bytes, Compression, DiskId, FsType, PartitionIdentity, PartitionRole,
    Plan, RestoreLocation, SectorSize, Sectors, Sha256Hex, TargetPartition,
};
use sha2::{Digest, Sha256};
use steps_support::{noise, run, run_with_input};

const SECTOR: u64 = 512;
const MIB: u64 = 1024 * 1024;
const DISK_SECTORS: u64 = 262_144; // 128 MiB
const ROOT: (u64, u64) = (2048, 184_320);
const EXTENDED_START: u64 = 188_416;
const STAGING: (u64, u64) = (190_464, 71_680);
const IMAGE_SECTORS: u64 = 65_536; // 32 MiB
/// (name, role, fs, start, size) in sectors, identical in the image and on the disk.
const LAYOUT: [(&str, PartitionRole, FsType, u64, u64); 5] = [
    ("resin-boot", PartitionRole::Boot, FsType::Vfat, 8192, 8192),
    ("resin-rootA", PartitionRole::RootA, FsType::Ext4, 16_384, 8192),
    ("resin-rootB", PartitionRole::RootB, FsType::Ext4, 24_576, 8192),
    ("resin-state", PartitionRole::State, FsType::Ext4, 34_816, 4096),
    ("resin-data", PartitionRole::Data, FsType::Ext4, 40_960, 24_576),
];

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    disk: PathBuf,
    raw_image: PathBuf,
    staging_root: PathBuf,
    old_root: PathBuf,
    data: PathBuf,
    plan: Plan,
}

impl Fixture {
    fn staging_dir(&self) -> PathBuf {
        self.staging_root.join("swapover")
    }

    fn disk_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.disk).unwrap()
    }

    fn context<'a>(&'a self, fs: &'a mut Directories) -> Context<'a> {
        let mut ctx = Context::new(
            &self.plan,
            "plan-under-test".into(),
            self.staging_root.clone(),
            self.disk.clone(),
            fs,
        );
        ctx.flash_sync_every = 4 * MIB;
        ctx
    }

    fn dirs(&self) -> Directories {
        Directories {
            old_root: self.old_root.clone(),
            data: self.data.clone(),
            boot: self.dir.join("boot-tree"),
        }
    }
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

/// The image: a FAT resin-boot, noise in the roots and resin-state, an empty ext4
/// resin-data (what restore mounts; the migrator checks it is there before destroying).
fn build_image(dir: &Path) -> PathBuf {
    let image = dir.join("resin.img");
    std::fs::File::create(&image).unwrap().set_len(IMAGE_SECTORS * SECTOR).unwrap();
    let table = "label: dos\nlabel-id: 0x12345678\n\
        start=8192, size=8192, type=c, bootable\n\
        start=16384, size=8192, type=83\n\
        start=24576, size=8192, type=83\n\
        start=32768, size=32768, type=5\n\
        start=34816, size=4096, type=83\n\
        start=40960, size=24576, type=83\n";
    run_with_input("sfdisk", &["-q", image.to_str().unwrap()], table);
    let boot = dir.join("boot.vfat");
    std::fs::File::create(&boot).unwrap().set_len(8192 * SECTOR).unwrap();
    run("mkfs.vfat", &["-n", "RESIN-BOOT", boot.to_str().unwrap()]);
    std::fs::write(dir.join("resinos-marker"), b"resinOS stand-in\n").unwrap();
    run(
        "mcopy",
        &[
            "-i",
            boot.to_str().unwrap(),
            dir.join("resinos-marker").to_str().unwrap(),
            "::resinos-marker",
        ],
    );
    write_at(&image, 8192 * SECTOR, &std::fs::read(&boot).unwrap());
    for (i, (_, _, _, start, size)) in LAYOUT.iter().enumerate().skip(1) {
        let len = (*size * SECTOR).min(3 * MIB) as usize;
        write_at(&image, start * SECTOR, &noise(len, 100 + i as u64));
    }
    let data = dir.join("data.ext4");
    std::fs::File::create(&data).unwrap().set_len(24_576 * SECTOR).unwrap();
    // The same bytes in every fixture (fixed UUID, hash seed and time): runs are compared.
    let uuid = "5a0e4e11-0000-4000-8000-000000000006";
    let made = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-L", "resin-data", "-U", uuid, "-E", &format!("hash_seed={uuid}")])
        .arg(&data)
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .status()
        .unwrap();
    assert!(made.success(), "mkfs.ext4 failed");
    write_at(&image, 40_960 * SECTOR, &std::fs::read(&data).unwrap());
    // Boot code bytes in the image's own MBR and gap (its bootloader stand-in).
    write_at(&image, 0, &noise(440, 9));
    write_at(&image, SECTOR, &noise((MIB - SECTOR) as usize, 10));
    image
}

fn build_host_disk(path: &Path, signature: u32, old_root_fs: Option<&Path>) {
    std::fs::File::create(path).unwrap().set_len(DISK_SECTORS * SECTOR).unwrap();
    let table = format!(
        "label: dos\nlabel-id: 0x{:08x}\n\
         start={}, size={}, type=83, bootable\n\
         start={EXTENDED_START}, type=5\n\
         start={}, size={}, type=82\n",
        signature, ROOT.0, ROOT.1, STAGING.0, STAGING.1
    );
    run_with_input("sfdisk", &["-q", path.to_str().unwrap()], &table);
    // The old boot code and the old root's and staging's contents.
    write_at(path, 0, &noise(440, 1));
    write_at(path, SECTOR, &noise((MIB - SECTOR) as usize, 2));
    match old_root_fs {
        Some(fs) => write_at(path, ROOT.0 * SECTOR, &std::fs::read(fs).unwrap()),
        None => write_at(path, ROOT.0 * SECTOR, &noise(8 * MIB as usize, 3)),
    }
    write_at(path, STAGING.0 * SECTOR, &noise(4 * MIB as usize, 4));
}

fn build_old_root(root: &Path) {
    std::fs::create_dir_all(root.join("srv/app/data dir")).unwrap();
    std::fs::write(root.join("srv/app/data dir/ünïcödé file.txt"), b"data survives\n").unwrap();
    std::fs::write(root.join("srv/app/blob.bin"), noise(300_000, 77)).unwrap();
    std::os::unix::fs::symlink("blob.bin", root.join("srv/app/blob link")).unwrap();
    std::fs::create_dir_all(root.join("etc/NetworkManager/system-connections")).unwrap();
    std::fs::write(
        root.join("etc/NetworkManager/system-connections/Office"),
        "[connection]\nid=Office\ntype=wifi\n\n[wifi]\nssid=Office WiFi\nmode=infrastructure\n\n\
         [wifi-security]\nkey-mgmt=wpa-psk\npsk=office-secret\n\n[ipv4]\nmethod=auto\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/hostname"), b"old-ubuntu-host\n").unwrap();
}

fn sha256_hex(bytes: &[u8]) -> Sha256Hex {
    Sha256Hex::from_digest(&Sha256::digest(bytes))
}

fn build_plan(xz: &[u8], raw: &[u8], signature: u32) -> Plan {
    let id = |number, (start, size): (u64, u64)| {
        PartitionIdentity::mbr(signature, number, Sectors(start), Sectors(size), SectorSize::S512)
            .unwrap()
    };
    let mut plan = Plan::stem_example();
    plan.source_disk.id = DiskId::Mbr { signature };
    plan.source_disk.size = Sectors(DISK_SECTORS);
    plan.old_root.partition = id(1, ROOT);
    plan.staging.partition = id(5, STAGING);
    plan.layout.region = plan.old_root.partition.extent();
    plan.layout.partitions = LAYOUT
        .iter()
        .map(|&(name, role, fs, start, size)| TargetPartition {
            name: name.into(),
            role,
            fs,
            image_start: Sectors(start),
            size: Sectors(size),
            disk_start: Sectors(start),
        })
        .collect();
    plan.image.file = "resin.img.xz".into();
    plan.image.compression = Compression::Xz;
    plan.image.compressed_size = Bytes(xz.len() as u64);
    plan.image.raw_size = Bytes(raw.len() as u64);
    plan.image.compressed_sha256 = sha256_hex(xz);
    plan.image.raw_sha256 = sha256_hex(raw);
    plan.backup.volumes = vec![BackupVolume {
        name: "app".into(),
        restore_to: RestoreLocation {
            partition: PartitionRole::Data,
            path: "/resin-data/app-1".into(),
        },
        items: vec![BackupItem {
            source: "/srv/app".into(),
            target: String::new(),
            filters: vec![],
            excludes: vec![],
            estimated_size: Bytes(400_000),
        }],
    }];
    plan.hostname = None;
    plan.failure.step_retries = 2;
    plan.failure.retry_delay_secs = 0;
    plan.validate().unwrap();
    plan
}

fn fixture() -> Fixture {
    fixture_with(0x5a0e_4e11, false)
}

/// `real_filesystems`: the old root partition holds an ext4 made with `mkfs.ext4 -d`
/// from the old root tree.
fn fixture_with(signature: u32, real_filesystems: bool) -> Fixture {
    fixture_full(signature, real_filesystems, false)
}

/// `staging_fs`: the staging partition also holds an ext4 made from the staging
/// tree (for the migrator as PID 1, which mounts it itself).
fn fixture_full(signature: u32, real_filesystems: bool, staging_fs: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let raw_image = build_image(&dir);
    let raw = std::fs::read(&raw_image).unwrap();
    run("xz", &["-k", "-T1", "-3", raw_image.to_str().unwrap()]);
    let xz = std::fs::read(dir.join("resin.img.xz")).unwrap();
    let old_root = dir.join("old-root");
    build_old_root(&old_root);
    let old_root_fs = real_filesystems.then(|| {
        let fs = dir.join("old-root.ext4");
        std::fs::File::create(&fs).unwrap().set_len(ROOT.1 * SECTOR).unwrap();
        run("mkfs.ext4", &["-q", "-d", old_root.to_str().unwrap(), fs.to_str().unwrap()]);
        fs
    });
    let disk = dir.join("disk.img");
    build_host_disk(&disk, signature, old_root_fs.as_deref());
    let staging_root = dir.join("staging");
    let staging_dir = staging_root.join("swapover");
    std::fs::create_dir_all(staging_dir.join("grub")).unwrap();
    std::fs::rename(dir.join("resin.img.xz"), staging_dir.join("resin.img.xz")).unwrap();
    std::fs::copy("/usr/lib/grub/i386-pc/boot.img", staging_dir.join("grub/boot.img")).unwrap();
    let core = staging_dir.join("grub/core.img");
    run(
        "grub-mkimage",
        &[
            "-O",
            "i386-pc",
            "-p",
            "(hd0,msdos5)/swapover/grub",
            "-o",
            core.to_str().unwrap(),
            "biosdisk",
            "part_msdos",
            "ext2",
        ],
    );
    std::fs::write(
        staging_dir.join("config.json"),
        r#"{"applicationId":1,"deviceType":"intel-nuc","apiKey":"k"}"#,
    )
    .unwrap();
    let plan = build_plan(&xz, &raw, signature);
    std::fs::write(staging_dir.join("plan.json"), plan.to_json_pretty().unwrap()).unwrap();
    if staging_fs {
        let fs = dir.join("staging.ext4");
        std::fs::File::create(&fs).unwrap().set_len(STAGING.1 * SECTOR).unwrap();
        run("mkfs.ext4", &["-q", "-d", staging_root.to_str().unwrap(), fs.to_str().unwrap()]);
        write_at(&disk, STAGING.0 * SECTOR, &std::fs::read(&fs).unwrap());
    }
    let data = dir.join("resin-data");
    std::fs::create_dir_all(&data).unwrap();
    Fixture { _tmp: tmp, dir, disk, raw_image, staging_root, old_root, data, plan }
}

/// Everything the finished disk must show.
fn assert_migrated(f: &Fixture, original: &[u8]) {
    assert_migrated_with(f, original, false);
}

/// `staging_in_use`: the staging file system itself was mounted and written (journal,
/// log), so only the host's extended partition EBR before it must be unchanged.
fn assert_migrated_with(f: &Fixture, original: &[u8], staging_in_use: bool) {
    let disk = f.disk_bytes();
    let image = std::fs::read(&f.raw_image).unwrap();
    // The image's boot code and disk signature, its partitions' contents.
    assert_eq!(disk[..446], image[..446], "boot code and disk signature are the image's");
    assert_eq!(
        disk[510..MIB as usize],
        image[510..MIB as usize],
        "the rest of the image's first MiB"
    );
    for &(name, role, _, start, size) in &LAYOUT[1..] {
        let range = (start * SECTOR) as usize..((start + size) * SECTOR) as usize;
        if role != PartitionRole::Data {
            assert!(disk[range.clone()] == image[range], "{name} is the image's, byte for byte");
        }
    }
    // The staging area (and the host's extended EBR before it) is untouched.
    let staging_area = if staging_in_use {
        (EXTENDED_START * SECTOR) as usize..(STAGING.0 * SECTOR) as usize
    } else {
        (EXTENDED_START * SECTOR) as usize..original.len()
    };
    assert!(disk[staging_area.clone()] == original[staging_area], "the staging area was written");
    // The final table: the image's, with resin-data and its extended grown to the disk end.
    let json = run("sfdisk", &["--json", f.disk.to_str().unwrap()]);
    let table: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(table["partitiontable"]["id"], "0x12345678");
    let parts = table["partitiontable"]["partitions"].as_array().unwrap();
    let spans: Vec<(u64, u64)> =
        parts.iter().map(|p| (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap())).collect();
    assert_eq!(
        spans,
        vec![
            (8192, 8192),
            (16_384, 8192),
            (24_576, 8192),
            (32_768, DISK_SECTORS - 32_768),
            (34_816, 4096),
            (40_960, DISK_SECTORS - 40_960)
        ]
    );
    // resin-boot: config.json with the old hostname, the keyfile, the image's own file; a clean FAT.
    let boot = format!("{}@@{}", f.disk.display(), 8192 * SECTOR);
    let config: serde_json::Value =
        serde_json::from_str(&run("mtype", &["-i", &boot, "::config.json"])).unwrap();
    assert_eq!(config["hostname"], "old-ubuntu-host");
    assert_eq!(config["applicationId"], 1);
    let listing = run("mdir", &["-b", "-i", &boot, "::system-connections"]);
    assert_eq!(listing.lines().count(), 1, "{listing}");
    let keyfile = run("mtype", &["-i", &boot, listing.trim()]);
    assert!(
        keyfile.contains("ssid=Office WiFi") && keyfile.contains("psk=office-secret"),
        "{keyfile}"
    );
    assert_eq!(run("mtype", &["-i", &boot, "::resinos-marker"]), "resinOS stand-in\n");
    let boot_fs = f.dir.join("boot-check.vfat");
    std::fs::write(&boot_fs, &disk[(8192 * SECTOR) as usize..(16_384 * SECTOR) as usize]).unwrap();
    run("fsck.fat", &["-n", boot_fs.to_str().unwrap()]);
    // resin-data: the backup and the plan (the log is checked where it is attached).
    let restored = f.data.join("resin-data/app-1/srv/app");
    assert_eq!(
        std::fs::read(restored.join("data dir/ünïcödé file.txt")).unwrap(),
        b"data survives\n"
    );
    assert_eq!(std::fs::read(restored.join("blob.bin")).unwrap(), noise(300_000, 77));
    assert_eq!(std::fs::read_link(restored.join("blob link")).unwrap(), PathBuf::from("blob.bin"));
    assert_eq!(
        std::fs::read(f.data.join("swapover/plan.json")).unwrap(),
        std::fs::read(f.staging_dir().join("plan.json")).unwrap()
    );
}

#[test]
fn a_straight_run_migrates_the_disk_and_never_touches_staging() {
    let f = fixture();
    let original = f.disk_bytes();
    migrator::logging::attach_file(&f.staging_dir().join("migration.log")).unwrap();
    let mut fs = f.dirs();
    let mut ctx = f.context(&mut fs);
    let mut journal = Journal::open(&f.staging_dir()).unwrap();
    assert_eq!(steps::run(&mut ctx, &mut journal), Exit::Reboot(RebootTarget::Resinos));
    assert_eq!(journal.state().step, Step::Done);
    assert_migrated(&f, &original);
    let log = std::fs::read_to_string(f.data.join("swapover/migration.log")).unwrap();
    assert!(
        log.contains("SWAPOVER-STEP backup done") && log.contains("SWAPOVER-STEP restore begin"),
        "{log}"
    );
    // The saved boot area is the original's.
    assert_eq!(
        std::fs::read(f.staging_dir().join("mbr-gap.orig")).unwrap(),
        original[..(2048 * SECTOR) as usize]
    );
    // Entering again after Done changes nothing and reboots into resinOS.
    let before = f.disk_bytes();
    let mut journal = Journal::open(&f.staging_dir()).unwrap();
    assert_eq!(steps::run(&mut ctx, &mut journal), Exit::Reboot(RebootTarget::Resinos));
    assert!(f.disk_bytes() == before);
}

/// A power cut in the middle of flashing: the disk holds the image only up to a
/// journaled checkpoint; a new boot (no memory of the flash) resumes from it,
/// re-derives the hashes and the head, and ends with the same disk.
#[test]
fn a_run_resumed_from_a_flash_checkpoint_ends_the_same() {
    let straight = fixture();
    let original = straight.disk_bytes();
    {
        let mut fs = straight.dirs();
        let mut ctx = straight.context(&mut fs);
        let mut journal = Journal::open(&straight.staging_dir()).unwrap();
        assert_eq!(steps::run(&mut ctx, &mut journal), Exit::Reboot(RebootTarget::Resinos));
    }

    let f = fixture();
    let mut fs = f.dirs();
    let mut ctx = f.context(&mut fs);
    let mut journal = Journal::open(&f.staging_dir()).unwrap();
    journal.begin("plan-under-test").unwrap();
    steps::step_arm_resume(&mut ctx).unwrap();
    journal.record(Step::ResumeArmed).unwrap();
    steps::step_backup(&mut ctx).unwrap();
    journal.record(Step::BackupDone).unwrap();
    // Arming wrote GRUB's boot code, kept the table and saved the old boot area.
    let armed = f.disk_bytes();
    assert_ne!(armed[..440], original[..440]);
    assert_eq!(armed[440..512], original[440..512], "the partition table is untouched");
    let core = std::fs::read(f.staging_dir().join("grub/core.img")).unwrap();
    assert_eq!(armed[512..512 + core.len()], core[..]);
    // The power cut: 12 MiB of the image made it to the disk and were journaled.
    let through = 12 * MIB;
    let image = std::fs::read(&f.raw_image).unwrap();
    write_at(&f.disk, MIB, &image[MIB as usize..through as usize]);
    journal.record(Step::FlashStarted).unwrap();
    journal.record(Step::FlashProgress { through: Bytes(through) }).unwrap();
    drop(ctx);

    let mut fs = f.dirs();
    let mut ctx = f.context(&mut fs);
    let mut journal = Journal::open(&f.staging_dir()).unwrap();
    assert_eq!(steps::run(&mut ctx, &mut journal), Exit::Reboot(RebootTarget::Resinos));
    assert_migrated(&f, &original);
    // Same disk as the straight run, except resin-boot (FAT timestamps of this run).
    let (a, b) = (straight.disk_bytes(), f.disk_bytes());
    let boot = (8192 * SECTOR) as usize..(16_384 * SECTOR) as usize;
    assert!(
        a[..boot.start] == b[..boot.start] && a[boot.end..] == b[boot.end..],
        "resumed and straight runs differ"
    );
}

/// A crash after the head was committed but before the journal said so: finalize
/// runs again from the image's pristine EBRs and gives the same table.
#[test]
fn finalize_twice_gives_the_same_disk() {
    let f = fixture();
    let mut fs = f.dirs();
    let mut ctx = f.context(&mut fs);
    let mut journal = Journal::open(&f.staging_dir()).unwrap();
    journal.begin("plan-under-test").unwrap();
    for step in [Step::ResumeArmed, Step::BackupDone, Step::FlashStarted] {
        journal.record(step).unwrap();
    }
    steps::step_flash(&mut ctx, &mut journal, 0).unwrap();
    steps::step_finalize(&mut ctx).unwrap();
    let once = f.disk_bytes();
    steps::step_finalize(&mut ctx).unwrap();
    assert!(f.disk_bytes() == once, "a second finalize changed the disk");
}

/// The staged image is damaged: nothing destructive may happen. Arm-resume fails
/// its attempts, the loop returns to the old OS, and the disk is byte-identical.
#[test]
fn a_damaged_staged_image_returns_to_the_old_os_untouched() {
    let f = fixture();
    let original = f.disk_bytes();
    let image = f.staging_dir().join("resin.img.xz");
    let mut bytes = std::fs::read(&image).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&image, bytes).unwrap();
    let mut fs = f.dirs();
    let mut ctx = f.context(&mut fs);
    let mut journal = Journal::open(&f.staging_dir()).unwrap();
    assert_eq!(steps::run(&mut ctx, &mut journal), Exit::Reboot(RebootTarget::OldOs));
    assert_eq!(journal.state().step, Step::Started, "arm-resume refused before writing anything");
    assert!(f.disk_bytes() == original, "the disk changed");
}

/// How an image is staged: as is, or xz in one block (a customer's `.img.xz` staged as
/// downloaded) or in many (the stager's re-encoding; 100000-byte blocks, so a partition's
/// first bytes span two of them).
#[derive(Debug, Clone, Copy)]
enum Staged {
    Raw,
    XzOneBlock,
    XzBlocks,
}

/// Stage `raw` (the disk image) in place of the fixture's image, in `form`; the plan follows.
fn restage(f: &mut Fixture, raw: &[u8], form: Staged) {
    let staging_dir = f.staging_dir();
    std::fs::remove_file(staging_dir.join(&f.plan.image.file)).unwrap();
    std::fs::write(&f.raw_image, raw).unwrap();
    let path = f.raw_image.to_str().unwrap();
    let (file, compression) = match form {
        Staged::Raw => ("resin.img", Compression::None),
        Staged::XzOneBlock => {
            run("xz", &["-k", "-f", "-T1", "-3", path]);
            ("resin.img.xz", Compression::Xz)
        }
        Staged::XzBlocks => {
            run("xz", &["-k", "-f", "-T2", "-3", "--block-size=100000", path]);
            ("resin.img.xz", Compression::Xz)
        }
    };
    let staged = match form {
        Staged::Raw => raw.to_vec(),
        _ => std::fs::read(format!("{path}.xz")).unwrap(),
    };
    std::fs::write(staging_dir.join(file), &staged).unwrap();
    f.plan.image.file = file.into();
    f.plan.image.compression = compression;
    f.plan.image.compressed_size = Bytes(staged.len() as u64);
    f.plan.image.raw_size = Bytes(raw.len() as u64);
    f.plan.image.compressed_sha256 = sha256_hex(&staged);
    f.plan.image.raw_sha256 = sha256_hex(raw);
    f.plan.validate().unwrap();
    std::fs::write(staging_dir.join("plan.json"), f.plan.to_json_pretty().unwrap()).unwrap();
}

/// Issue 15 point 8, seen on a real device: a flasher image (resin-state and resin-data
/// without a file system) was written over the old root and restore then failed to mount
/// resin-data with the old OS gone. Staged raw, xz in one block or in many: arm-resume
/// refuses it naming the partition, what it holds and what restore needs, the loop returns
/// to the old OS and the disk is byte-identical.
#[test]
fn an_image_whose_data_partition_has_no_file_system_is_refused_before_destruction() {
    for form in [Staged::Raw, Staged::XzOneBlock, Staged::XzBlocks] {
        let mut f = fixture();
        let mut raw = std::fs::read(&f.raw_image).unwrap();
        let data = (40_960 * SECTOR) as usize;
        raw[data..data + 4 * MIB as usize].copy_from_slice(&noise(4 * MIB as usize, 66));
        restage(&mut f, &raw, form);
        let original = f.disk_bytes();
        let mut fs = f.dirs();
        let mut ctx = f.context(&mut fs);
        let error = steps::step_arm_resume(&mut ctx).unwrap_err().to_string();
        assert_eq!(
            error,
            "the staged image's resin-data (partition 6) holds no file system where restore \
             mounts ext4: the image is not a bootable resinOS image; run `stager abort` on the \
             old OS and stage the resinOS image (not a flasher)",
            "{form:?}"
        );
        let mut journal = Journal::open(&f.staging_dir()).unwrap();
        assert_eq!(steps::run(&mut ctx, &mut journal), Exit::Reboot(RebootTarget::OldOs));
        assert_eq!(journal.state().step, Step::Started, "{form:?}: refused before any write");
        assert!(f.disk_bytes() == original, "{form:?}: the disk changed");
    }
}

/// The same check passes a good image in every staged form, and names a boot partition
/// holding something else than FAT.
#[test]
fn the_file_system_check_passes_a_good_image_and_names_a_wrong_boot_partition() {
    for form in [Staged::Raw, Staged::XzOneBlock, Staged::XzBlocks] {
        let mut f = fixture();
        let raw = std::fs::read(&f.raw_image).unwrap();
        restage(&mut f, &raw, form);
        let image = f.staging_dir().join(&f.plan.image.file);
        migrator::steps::staged_fs::check(&f.plan, &image).unwrap();
        // resin-boot holding the ext4 of resin-data.
        let mut wrong = raw.clone();
        let (boot, data) = ((8192 * SECTOR) as usize, (40_960 * SECTOR) as usize);
        let ext4 = raw[data..data + 4 * MIB as usize].to_vec();
        wrong[boot..boot + 4 * MIB as usize].copy_from_slice(&ext4);
        restage(&mut f, &wrong, form);
        let image = f.staging_dir().join(&f.plan.image.file);
        let error = migrator::steps::staged_fs::check(&f.plan, &image).unwrap_err().to_string();
        assert!(
            error.starts_with(
                "the staged image's resin-boot (partition 1) holds ext4 where restore writes into vfat"
            ),
            "{form:?}: {error}"
        );
    }
}

/// The backup fails (after arm-resume installed the resume boot code): the loop
/// retries it, gives up, writes the saved boot area back and returns to the old OS.
#[test]
fn a_failing_backup_rolls_the_boot_code_back_and_returns_to_the_old_os() {
    let mut f = fixture();
    f.plan.backup.volumes[0].items[0].source = "/srv/missing".into();
    let original = f.disk_bytes();
    let mut fs = f.dirs();
    let mut ctx = f.context(&mut fs);
    let mut journal = Journal::open(&f.staging_dir()).unwrap();
    assert_eq!(steps::run(&mut ctx, &mut journal), Exit::Reboot(RebootTarget::OldOs));
    assert_eq!(journal.state().step, Step::ResumeArmed);
    assert_eq!(journal.state().attempts_of(migration_journal::ActionKind::Backup), 2);
    assert!(f.disk_bytes() == original, "the boot area was not rolled back");
}

/// Armed, then given up before flashing: the boot area comes back byte for byte.
#[test]
fn arm_then_rollback_restores_the_boot_area() {
    let f = fixture();
    let original = f.disk_bytes();
    let mut disk = OpenOptions::new().read(true).write(true).open(&f.disk).unwrap();
    migrator::steps::bios_resume::arm(&mut disk, &f.staging_dir()).unwrap();
    assert!(f.disk_bytes() != original);
    // A second arm keeps the first saved copy (not our own boot code).
    migrator::steps::bios_resume::arm(&mut disk, &f.staging_dir()).unwrap();
    assert_eq!(
        std::fs::read(f.staging_dir().join("mbr-gap.orig")).unwrap(),
        original[..(2048 * SECTOR) as usize]
    );
    let mut fs = f.dirs();
    let mut ctx = f.context(&mut fs);
    assert_eq!(steps::return_to_old_os(&mut ctx, "test"), Exit::Reboot(RebootTarget::OldOs));
    assert!(f.disk_bytes() == original, "rollback left the disk different");
}

/// A loop device over the disk image with the kernel's partitions of its table
/// (partx, as the kernel would have them at boot); detached on drop.
struct LoopDisk {
    node: String,
}

impl LoopDisk {
    fn attach(image: &Path) -> LoopDisk {
        LoopDisk::attach_with(image, &[1, 2, 5])
    }

    /// Attached, with the kernel's partitions `numbers` present as the image's table has
    /// them. A free loop device may still carry stale partitions of an earlier image (partx
    /// adds partitions the kernel does not drop when the device is detached): they are
    /// deleted first; a device where that fails is held while the next one is tried.
    fn attach_with(image: &Path, numbers: &[u32]) -> LoopDisk {
        let mut stale = Vec::new();
        for _ in 0..8 {
            let node =
                run("losetup", &["-f", "--show", image.to_str().unwrap()]).trim().to_string();
            let disk = LoopDisk { node };
            let _ = std::process::Command::new("partx").args(["-d", &disk.node]).output();
            let _ = std::process::Command::new("partx").args(["-a", &disk.node]).output();
            let name = disk.node.trim_start_matches("/dev/").to_string();
            let part = |number: &u32| PathBuf::from(format!("/sys/block/{name}/{name}p{number}"));
            let read = |number: &u32, what: &str| {
                std::fs::read_to_string(part(number).join(what))
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
            };
            let span_of = |number: &u32| Some((read(number, "start")?, read(number, "size")?));
            let table = run("sfdisk", &["--json", image.to_str().unwrap()]);
            let table: serde_json::Value = serde_json::from_str(&table).unwrap();
            let wanted = |number: &u32| {
                table["partitiontable"]["partitions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["node"].as_str().is_some_and(|n| n.ends_with(&number.to_string())))
                    .and_then(|p| {
                        // The kernel shows an extended partition as 2 sectors (its EBR link).
                        let extended = matches!(p["type"].as_str(), Some("5" | "f" | "85"));
                        Some((p["start"].as_u64()?, if extended { 2 } else { p["size"].as_u64()? }))
                    })
            };
            if numbers.iter().all(|n| span_of(n).is_some() && span_of(n) == wanted(n)) {
                return disk;
            }
            stale.push(disk);
        }
        panic!(
            "no loop device took the partitions {numbers:?} of {} (stale partitions on {:?})",
            image.display(),
            stale.iter().map(|d| &d.node).collect::<Vec<_>>()
        );
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        // partx's partitions outlive the detach unless deleted.
        let _ = std::process::Command::new("partx").args(["-d", &self.node]).status();
        let _ = std::process::Command::new("losetup").args(["-d", &self.node]).status();
    }
}

/// Unmounts on drop (a failed assertion must not leave a mount behind).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// The real-mount implementation on a real kernel block device: the disk found by
/// its MBR signature in sysfs, the old root's ext4 mounted read-only from its
/// partition (found by start and size), resin-data reached through a BLKPG
/// partition (60) over the not yet committed layout and mounted read-write.
/// Only the PID 1 parts (early mounts, modules, reboot) are left to the QEMU test.
#[test]
fn the_loop_runs_on_a_kernel_block_device_with_real_mounts() {
    use migrator::disk::BlockRoots;
    use migrator::mounts::KernelMounts;
    use std::time::Duration;

    // A signature of this run only, so no other disk in sysfs can match.
    let signature = 0x7000_0000 | (std::process::id() & 0x00ff_ffff);
    let mut f = fixture_with(signature, true);
    let preloaded = preload_resin_data(&mut f);
    let original = f.disk_bytes();
    let exit = {
        let loop_disk = LoopDisk::attach(&f.disk);
        let roots = BlockRoots::default();
        let size = f.plan.source_disk.size_bytes().unwrap();
        let wrong_size = plan::Bytes(size.get() - 512);
        assert!(
            roots
                .wait_for_disk(&f.plan.source_disk.id, wrong_size, Duration::from_millis(300))
                .is_err(),
            "a disk of another size is not the planned one"
        );
        let found =
            roots.wait_for_disk(&f.plan.source_disk.id, size, Duration::from_secs(5)).unwrap();
        assert_eq!(found.node, PathBuf::from(&loop_disk.node));
        let mut fs = KernelMounts::new(roots, found, f.plan.clone());
        fs.old_root_at = f.dir.join("mnt/old-root");
        fs.data_at = f.dir.join("mnt/resin-data");
        let mut ctx = Context::new(
            &f.plan,
            "plan-under-test".into(),
            f.staging_root.clone(),
            PathBuf::from(&loop_disk.node),
            &mut fs,
        );
        ctx.flash_sync_every = 4 * MIB;
        let mut journal = Journal::open(&f.staging_dir()).unwrap();
        let exit = steps::run(&mut ctx, &mut journal);
        assert_eq!(journal.state().step, Step::Done);
        exit
    };
    assert_eq!(exit, Exit::Reboot(RebootTarget::Resinos));
    // What landed in resin-data's ext4, read through the kernel again.
    let data_fs = format!("loop,ro,offset={},sizelimit={}", 40_960 * SECTOR, 24_576 * SECTOR);
    run("mount", &["-o", &data_fs, f.disk.to_str().unwrap(), f.data.to_str().unwrap()]);
    let _mounted = Mounted(f.data.clone());
    assert_migrated(&f, &original);
    let source = steps_support::describe(&f.old_root.join("srv/app"));
    let restored = steps_support::describe(&f.data.join("resin-data/app-1/srv/app"));
    assert_eq!(source, restored);
    // Issue 15 point 4: the image's resin-data is restored into, not over. Its own files
    // (outside the restore location, and inside it where the backup has no such path) are
    // there as they were, in the same file system (the image's UUID). What the backup holds
    // takes the backup's bytes and metadata: blob.bin (checked above) and its directories.
    let now = steps_support::describe(&f.data);
    for (path, node) in &preloaded {
        if path.starts_with("resin-data/app-1/srv") {
            continue;
        }
        assert_eq!(now.get(path), Some(node), "{} of the image's resin-data", path.display());
    }
    let uuid = |bytes: &[u8]| {
        let sb = (40_960 * SECTOR + 1024 + 0x68) as usize;
        bytes[sb..sb + 16].to_vec()
    };
    let image = std::fs::read(&f.raw_image).unwrap();
    assert_eq!(uuid(&f.disk_bytes()), uuid(&image), "resin-data was reformatted");
}

/// The image's resin-data as a real one is: an ext4 holding the preloaded supervisor, plus
/// (to show what restore does with them) a file beside the restore location, one inside it
/// and one the backup also has. Staged as a multi-block xz; returns the tree as made.
fn preload_resin_data(f: &mut Fixture) -> std::collections::BTreeMap<PathBuf, steps_support::Node> {
    let tree = f.dir.join("preloaded-data");
    std::fs::create_dir_all(tree.join("docker")).unwrap();
    std::fs::write(tree.join("docker/preloaded-supervisor"), noise(200_000, 91)).unwrap();
    std::fs::create_dir_all(tree.join("resin-data/app-1/srv/app")).unwrap();
    std::fs::write(tree.join("resin-data/image-note"), b"from the image\n").unwrap();
    std::fs::write(tree.join("resin-data/app-1/from-image.txt"), b"the image's own\n").unwrap();
    std::fs::write(tree.join("resin-data/app-1/srv/app/blob.bin"), b"the image's blob\n").unwrap();
    let fs = f.dir.join("preloaded-data.ext4");
    std::fs::File::create(&fs).unwrap().set_len(24_576 * SECTOR).unwrap();
    run(
        "mkfs.ext4",
        &["-q", "-L", "resin-data", "-d", tree.to_str().unwrap(), fs.to_str().unwrap()],
    );
    let mut raw = std::fs::read(&f.raw_image).unwrap();
    let data = (40_960 * SECTOR) as usize;
    raw[data..data + (24_576 * SECTOR) as usize].copy_from_slice(&std::fs::read(&fs).unwrap());
    restage(f, &raw, Staged::XzBlocks);
    let made = steps_support::describe(&tree);
    assert!(made.contains_key(Path::new("docker/preloaded-supervisor")));
    made
}

/// The migrator binary as PID 1 of a new PID and mount namespace, chrooted into a
/// directory holding only itself (and its shared libraries) and the plan: it mounts
/// proc, sysfs and devtmpfs, finds the loop disk by its signature, mounts staging,
/// logs there, runs every step and calls reboot(2), which in a child PID namespace
/// ends that namespace's init (SIGHUP) instead of rebooting the machine. Left to the
/// QEMU test: module loading, the real reboot, the GRUB resume path.
/// `SWAPOVER_MIGRATOR_BIN=target/x86_64-unknown-linux-musl/release/migrator` runs the
/// static release binary instead of this build's.
#[test]
fn the_binary_as_pid_1_migrates_the_loop_disk() {
    use std::os::unix::process::ExitStatusExt;

    let signature = 0x6100_0000 | (std::process::id() & 0x00ff_ffff);
    let f = fixture_full(signature, true, true);
    let original = f.disk_bytes();
    let root = f.dir.join("initramfs");
    std::fs::create_dir_all(root.join("etc/swapover")).unwrap();
    // The binary under test: this build's, or another (e.g. the static musl release build).
    let binary = std::env::var("SWAPOVER_MIGRATOR_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_migrator").to_string());
    std::fs::copy(&binary, root.join("init")).unwrap();
    std::fs::copy(f.staging_dir().join("plan.json"), root.join("etc/swapover/plan.json")).unwrap();
    // Its shared libraries, if any ("not a dynamic executable" lists none).
    let ldd = std::process::Command::new("ldd").arg(&binary).output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = line.split_whitespace().find(|w| w.starts_with('/'));
        if let Some(lib) = path {
            let to = root.join(lib.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(lib, &to).unwrap();
        }
    }
    let status = {
        let _loop_disk = LoopDisk::attach(&f.disk);
        std::process::Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--mount",
                "--propagation",
                "private",
                "--root",
                root.to_str().unwrap(),
                "/init",
            ])
            .status()
            .unwrap()
    };
    // reboot(RB_AUTOBOOT) in a child PID namespace kills its init with SIGHUP.
    assert!(
        status.signal() == Some(1) || status.code() == Some(128 + 1),
        "the migrator did not reboot: {status:?}"
    );
    let stage = f.dir.join("mnt-staging");
    std::fs::create_dir_all(&stage).unwrap();
    let staging_fs =
        format!("loop,ro,offset={},sizelimit={}", STAGING.0 * SECTOR, STAGING.1 * SECTOR);
    run("mount", &["-o", &staging_fs, f.disk.to_str().unwrap(), stage.to_str().unwrap()]);
    let log = {
        let _mounted = Mounted(stage.clone());
        std::fs::read_to_string(stage.join("swapover/migration.log")).unwrap()
    };
    eprintln!("{log}");
    let markers: Vec<&str> = log.lines().filter(|l| l.starts_with("SWAPOVER-")).collect();
    let expected: Vec<String> = std::iter::once("SWAPOVER-MIGRATOR-START attempt=1".to_string())
        .chain(
            ["arm-resume", "backup", "flash", "verify", "restore", "finalize"].iter().flat_map(
                |s| [format!("SWAPOVER-STEP {s} begin"), format!("SWAPOVER-STEP {s} done")],
            ),
        )
        .chain(std::iter::once("SWAPOVER-MIGRATOR-REBOOT target=resinos".to_string()))
        .collect();
    assert_eq!(markers, expected, "{log}");
    assert!(log.contains("step flash took"), "{log}");
    let data_fs = format!("loop,ro,offset={},sizelimit={}", 40_960 * SECTOR, 24_576 * SECTOR);
    run("mount", &["-o", &data_fs, f.disk.to_str().unwrap(), f.data.to_str().unwrap()]);
    let _mounted = Mounted(f.data.clone());
    assert_migrated_with(&f, &original, true);
    let copied = std::fs::read_to_string(f.data.join("swapover/migration.log")).unwrap();
    assert!(copied.contains("SWAPOVER-STEP restore begin"), "{copied}");
}

/// A power cut tore the FAT write on resin-boot: the next restore puts the flashed
/// resin-boot back from staging and writes the files again, leaving a clean FAT.
#[test]
fn a_restore_torn_in_resin_boot_is_redone_from_the_flashed_copy() {
    let f = fixture();
    let mut fs = f.dirs();
    let mut ctx = f.context(&mut fs);
    let mut journal = Journal::open(&f.staging_dir()).unwrap();
    journal.begin("plan-under-test").unwrap();
    for step in [Step::ResumeArmed, Step::FlashStarted] {
        journal.record(step).unwrap();
    }
    steps::step_backup(&mut ctx).unwrap();
    steps::step_flash(&mut ctx, &mut journal, 0).unwrap();
    steps::step_restore(&mut ctx).unwrap();
    let image = std::fs::read(&f.raw_image).unwrap();
    let boot = (8192 * SECTOR) as usize..(16_384 * SECTOR) as usize;
    assert!(std::fs::read(f.staging_dir().join("resin-boot.orig")).unwrap() == image[boot.clone()]);
    // The tear: the FATs and root directory of resin-boot are garbage.
    write_at(&f.disk, 8192 * SECTOR + SECTOR, &noise(64 * 1024, 99));
    steps::step_restore(&mut ctx).unwrap();
    let volume = format!("{}@@{}", f.disk.display(), 8192 * SECTOR);
    let config: serde_json::Value =
        serde_json::from_str(&run("mtype", &["-i", &volume, "::config.json"])).unwrap();
    assert_eq!(config["hostname"], "old-ubuntu-host");
    assert_eq!(run("mtype", &["-i", &volume, "::resinos-marker"]), "resinOS stand-in\n");
    let check = f.dir.join("boot-check.vfat");
    std::fs::write(&check, &f.disk_bytes()[boot]).unwrap();
    run("fsck.fat", &["-n", check.to_str().unwrap()]);
}

/// resinOS 1.x shape: the spare root (staging) lies inside the image's resin-rootB.
const ROOT_1X: (u64, u64) = (2048, 20_480);
const STAGING_1X: (u64, u64) = (25_600, 6144);
const ROOT_B: (u64, u64) = (24_576, 8192);

/// The straight fixture, its disk rebuilt in a resinOS 1.x shape (old root, then the
/// spare root used as staging inside the image's resin-rootB) and its plan a 1.x plan
/// with resin-rootB written last.
fn fixture_written_last() -> Fixture {
    fixture_written_last_with(0x5a0e_4e11, false)
}

/// The 1.x data partition (btrfs), past the 2.x image.
const DATA_1X: (u64, u64) = (65_536, 131_072);

/// `real_filesystems`: the old root holds an ext4 of the old root tree (with the 1.x
/// mount point `/mnt/data`), the image's resin-data an empty ext4, and a third partition a
/// btrfs `resin-data` with application data and Docker storage, which the plan's
/// `source_data` names and its backup reads at `/mnt/data/resin-data`.
fn fixture_written_last_with(signature: u32, real_filesystems: bool) -> Fixture {
    let mut f = fixture_with(signature, real_filesystems);
    std::fs::File::create(&f.disk).unwrap().set_len(DISK_SECTORS * SECTOR).unwrap();
    let mut table = format!(
        "label: dos\nlabel-id: 0x{signature:08x}\nstart={}, size={}, type=83, bootable\nstart={}, size={}, type=83\n",
        ROOT_1X.0, ROOT_1X.1, STAGING_1X.0, STAGING_1X.1
    );
    if real_filesystems {
        table.push_str(&format!("start={}, size={}, type=83\n", DATA_1X.0, DATA_1X.1));
    }
    run_with_input("sfdisk", &["-q", f.disk.to_str().unwrap()], &table);
    write_at(&f.disk, 0, &noise(440, 1));
    write_at(&f.disk, SECTOR, &noise((MIB - SECTOR) as usize, 2));
    write_at(&f.disk, ROOT_1X.0 * SECTOR, &noise(8 * MIB as usize, 3));
    write_at(&f.disk, ROOT_B.0 * SECTOR, &noise((ROOT_B.1 * SECTOR) as usize, 4));
    let id = |number, (start, size): (u64, u64)| {
        PartitionIdentity::mbr(signature, number, Sectors(start), Sectors(size), SectorSize::S512)
            .unwrap()
    };
    if real_filesystems {
        std::fs::create_dir_all(f.old_root.join("mnt/data")).unwrap();
        let root_fs = f.dir.join("old-root-1x.ext4");
        std::fs::File::create(&root_fs).unwrap().set_len(ROOT_1X.1 * SECTOR).unwrap();
        run("mkfs.ext4", &["-q", "-d", f.old_root.to_str().unwrap(), root_fs.to_str().unwrap()]);
        write_at(&f.disk, ROOT_1X.0 * SECTOR, &std::fs::read(&root_fs).unwrap());
        let tree = f.dir.join("data-1x");
        std::fs::create_dir_all(tree.join("resin-data/1/config")).unwrap();
        std::fs::write(tree.join("resin-data/1/config/settings.json"), br#"{"from":"1.x"}"#)
            .unwrap();
        std::fs::write(tree.join("resin-data/1/readings.bin"), noise(200_000, 55)).unwrap();
        std::fs::create_dir_all(tree.join("docker/btrfs/subvolumes/layer")).unwrap();
        std::fs::write(tree.join("docker/btrfs/subvolumes/layer/image-blob"), noise(100_000, 56))
            .unwrap();
        let data_fs = f.dir.join("data-1x.btrfs");
        std::fs::File::create(&data_fs).unwrap().set_len(DATA_1X.1 * SECTOR).unwrap();
        run(
            "mkfs.btrfs",
            &[
                "-q",
                "-M",
                "-L",
                "resin-data",
                "--rootdir",
                tree.to_str().unwrap(),
                data_fs.to_str().unwrap(),
            ],
        );
        write_at(&f.disk, DATA_1X.0 * SECTOR, &std::fs::read(&data_fs).unwrap());
        f.plan.source_data = Some(plan::FsPartition {
            partition: id(3, DATA_1X),
            fs_uuid: "1x-data".into(),
            fs_type: FsType::Btrfs,
        });
        // As the 1.x planner writes it: the contents of 1.x's resin-data/ straight into 2.x's.
        f.plan.backup.volumes.push(BackupVolume {
            name: "resin-data".into(),
            restore_to: RestoreLocation {
                partition: PartitionRole::Data,
                path: "/resin-data".into(),
            },
            items: vec![BackupItem {
                source: "/mnt/data/resin-data".into(),
                target: ".".into(),
                filters: vec![],
                excludes: vec![],
                estimated_size: Bytes(300_000),
            }],
        });
    }
    f.plan.profile.source_kind = plan::SourceKind::Resinos1x;
    f.plan.old_root.partition = id(1, ROOT_1X);
    f.plan.staging.partition = id(2, STAGING_1X);
    f.plan.staging.original_swap_uuid = None;
    f.plan.layout.region = plan::Extent::new(Sectors(0), Sectors(IMAGE_SECTORS));
    f.plan.layout.written_last = vec!["resin-rootB".into()];
    f.plan.validate().unwrap();
    std::fs::write(f.staging_dir().join("plan.json"), f.plan.to_json_pretty().unwrap()).unwrap();
    f
}

fn range_of((start, size): (u64, u64)) -> std::ops::Range<usize> {
    (start * SECTOR) as usize..((start + size) * SECTOR) as usize
}

/// Arm, back up, flash, verify and restore step by step (as `steps::run` would), then
/// check that resin-rootB, and the staging area inside it, are still the old disk's.
fn run_until_restored(f: &Fixture, original: &[u8]) {
    let mut fs = f.dirs();
    let mut ctx = f.context(&mut fs);
    let mut journal = Journal::open(&f.staging_dir()).unwrap();
    journal.begin("plan-under-test").unwrap();
    steps::step_arm_resume(&mut ctx).unwrap();
    journal.record(Step::ResumeArmed).unwrap();
    steps::step_backup(&mut ctx).unwrap();
    journal.record(Step::BackupDone).unwrap();
    steps::step_flash(&mut ctx, &mut journal, 0).unwrap();
    let Step::FlashWritten { image_bytes } = journal.state().step.clone() else {
        panic!("{:?}", journal.state().step)
    };
    steps::step_verify(&mut ctx, image_bytes.0).unwrap();
    journal.record(Step::FlashVerified).unwrap();
    let disk = f.disk_bytes();
    let image = std::fs::read(&f.raw_image).unwrap();
    assert!(
        disk[range_of(ROOT_B)] == original[range_of(ROOT_B)],
        "the flash wrote into resin-rootB (and the staging area in it)"
    );
    let root_a = MIB as usize..range_of(ROOT_B).start;
    assert!(
        disk[root_a.clone()] == image[root_a],
        "the flash did not write what lies before resin-rootB"
    );
    let after = range_of(ROOT_B).end..image.len();
    assert!(
        disk[after.clone()] == image[after],
        "the flash did not write what lies after resin-rootB"
    );
    steps::step_restore(&mut ctx).unwrap();
    journal.record(Step::RestoreDone).unwrap();
    // The staged backup was there to restore from, and the staging area is still intact.
    assert!(
        f.staging_dir().join("backup/app.tar").exists(),
        "the staged backup is gone before restore finished"
    );
    assert!(
        f.disk_bytes()[range_of(STAGING_1X)] == original[range_of(STAGING_1X)],
        "staging was written before restore finished"
    );
}

/// The staging area lies inside the image's resin-rootB: the flash and verify leave
/// resin-rootB alone, restore reads the staged backup, and finalize writes resin-rootB
/// last (then the head), without a journal write after it; the disk equals the image.
#[test]
fn a_partition_written_last_is_written_after_restore_and_the_disk_equals_the_image() {
    let f = fixture_written_last();
    let original = f.disk_bytes();
    run_until_restored(&f, &original);
    let mut fs = f.dirs();
    let mut ctx = f.context(&mut fs);
    let mut journal = Journal::open(&f.staging_dir()).unwrap();
    assert_eq!(steps::run(&mut ctx, &mut journal), Exit::Reboot(RebootTarget::Resinos));
    assert_eq!(
        journal.state().step,
        Step::RestoreDone,
        "nothing is journaled once resin-rootB (holding the journal) is written"
    );
    assert_migrated(&f, &original);
    let image = std::fs::read(&f.raw_image).unwrap();
    assert!(
        f.disk_bytes()[range_of(ROOT_B)] == image[range_of(ROOT_B)],
        "resin-rootB is the image's"
    );
}

/// A power cut after the flash (journal at FlashWritten), before the written-last write:
/// the next boot, with no memory of the flash, re-derives the hashes (resin-rootB held back
/// again), verifies, restores and finalizes, and ends the same.
#[test]
fn a_power_cut_between_flash_and_the_written_last_write_ends_the_same() {
    let f = fixture_written_last();
    let original = f.disk_bytes();
    {
        let mut fs = f.dirs();
        let mut ctx = f.context(&mut fs);
        let mut journal = Journal::open(&f.staging_dir()).unwrap();
        journal.begin("plan-under-test").unwrap();
        steps::step_arm_resume(&mut ctx).unwrap();
        journal.record(Step::ResumeArmed).unwrap();
        steps::step_backup(&mut ctx).unwrap();
        journal.record(Step::BackupDone).unwrap();
        steps::step_flash(&mut ctx, &mut journal, 0).unwrap();
        assert!(matches!(journal.state().step, Step::FlashWritten { .. }));
    }
    assert!(
        f.disk_bytes()[range_of(ROOT_B)] == original[range_of(ROOT_B)],
        "the flash wrote into resin-rootB"
    );
    // The new boot remembers nothing of the flash: hashes and head come from the image again.
    let mut fs = f.dirs();
    let mut ctx = f.context(&mut fs);
    let mut journal = Journal::open(&f.staging_dir()).unwrap();
    assert_eq!(steps::run(&mut ctx, &mut journal), Exit::Reboot(RebootTarget::Resinos));
    assert_eq!(journal.state().step, Step::RestoreDone);
    assert_migrated(&f, &original);
    let image = std::fs::read(&f.raw_image).unwrap();
    assert!(
        f.disk_bytes()[range_of(ROOT_B)] == image[range_of(ROOT_B)],
        "resin-rootB is the image's"
    );
}

/// The migrator refuses at plan load, before any write: a staging partition inside a
/// partition that is not written last, and (for now) any resinOS 1.x plan, naming what
/// is missing.
#[test]
fn plans_the_migrator_cannot_carry_out_are_refused_at_load() {
    let f = fixture_written_last();
    let path = f.dir.join("plan.json");
    std::fs::write(&path, f.plan.to_json_pretty().unwrap()).unwrap();
    let refused = migrator::run::read_plan(&path).unwrap_err().to_string();
    assert!(refused.contains("no data partition to mount at /mnt/data"), "{refused}");
    // With its data partition named, a 1.x plan is refused unless the firmware's boot order
    // can bring the migrator back after a power cut (the UEFI route).
    let mut boot_files = f.plan.clone();
    boot_files.source_data = Some(plan::FsPartition {
        partition: PartitionIdentity::mbr(
            0x5a0e_4e11,
            3,
            Sectors(40_000),
            Sectors(1024),
            SectorSize::S512,
        )
        .unwrap(),
        fs_uuid: "1x-data".into(),
        fs_type: FsType::Btrfs,
    });
    boot_files.grub.route = plan::GrubRoute::BootFiles;
    let refused = migrator::steps::written_last::check_plan(&boot_files).unwrap_err().to_string();
    assert!(
        refused.contains("armed through BootFiles, which nothing starts again after a power cut"),
        "{refused}"
    );
    let mut uefi = boot_files.clone();
    uefi.grub.route = plan::GrubRoute::UefiBootNext;
    migrator::steps::written_last::check_plan(&uefi).unwrap();
    // The BeagleBone's route: the committed uEnv.txt brings the migrator back.
    let mut uboot = boot_files.clone();
    uboot.grub.route = plan::GrubRoute::UbootTrial;
    uboot.grub.uboot = Some(uboot_trial());
    migrator::steps::written_last::check_plan(&uboot).unwrap();
    // The Raspberry Pi's route: the committed config.txt brings the migrator back.
    let mut pi = boot_files.clone();
    pi.grub.route = plan::GrubRoute::PiFirmwareTrial;
    pi.grub.pi = Some(pi_trial());
    migrator::steps::written_last::check_plan(&pi).unwrap();
    // Its staging is a FAT32: no backup archive of 4 GiB or more.
    pi.staging.fs_type = FsType::Vfat;
    migrator::steps::written_last::check_plan(&pi).unwrap();
    pi.backup.volumes[0].items[0].estimated_size = Bytes(4 << 30);
    let refused = migrator::steps::written_last::check_plan(&pi).unwrap_err().to_string();
    assert!(refused.contains("backup volume 'app' is estimated at"), "{refused}");
    // Staging inside resin-rootA, which is flashed first.
    let mut inside_root_a = f.plan.clone();
    inside_root_a.layout.written_last = vec!["resin-rootB".into()];
    inside_root_a.staging.partition =
        PartitionIdentity::mbr(0x5a0e_4e11, 2, Sectors(22_600), Sectors(1024), SectorSize::S512)
            .unwrap();
    let refused =
        migrator::steps::written_last::check_plan(&inside_root_a).unwrap_err().to_string();
    assert!(refused.contains("overlaps the target partition 'resin-rootA'"), "{refused}");
    std::fs::write(&path, inside_root_a.to_json_pretty().unwrap()).unwrap();
    let refused = migrator::run::read_plan(&path).unwrap_err().to_string();
    assert!(refused.contains("overlaps the staging partition"), "{refused}");
    // The Ubuntu plan of the other tests passes.
    let ubuntu = fixture().plan;
    migrator::steps::written_last::check_plan(&ubuntu).unwrap();
    // Growth over staging with a partition ending after resin-data: finalize would grow that
    // one, where resinOS's resindataexpander grows resin-data.
    let mut data_not_last = ubuntu.clone();
    let state = data_not_last.layout.partitions.iter_mut().find(|p| p.name == "resin-state");
    state.unwrap().image_start = Sectors(66_000);
    let refused =
        migrator::steps::written_last::check_plan(&data_not_last).unwrap_err().to_string();
    assert!(
        refused.starts_with(
            "the layout's data partition 'resin-data' is not its last ('resin-state' ends after it)"
        ),
        "{refused}"
    );
    data_not_last.finalize.grow_over_staging = false;
    migrator::steps::written_last::check_plan(&data_not_last).unwrap();
}

/// A resinOS 1.x plan on a kernel block device with real mounts: the old root (ext4)
/// and the 1.x data partition (a real btrfs, mounted read-only at the old root's
/// `/mnt/data`) are backed up, Docker storage is not carried, resin-rootB (holding the
/// staging partition) is written last; the disk equals the image and resin-data's ext4
/// holds the application data as it was.
#[test]
fn a_1x_plan_backs_up_the_btrfs_data_partition_and_writes_root_b_last_on_a_block_device() {
    use migrator::disk::BlockRoots;
    use migrator::mounts::KernelMounts;
    use std::time::Duration;

    let signature = 0x7100_0000 | (std::process::id() & 0x00ff_ffff);
    let f = fixture_written_last_with(signature, true);
    let original = f.disk_bytes();
    let tree = f.dir.join("data-1x");
    let exit = {
        let loop_disk = LoopDisk::attach_with(&f.disk, &[1, 2, 3]);
        let roots = BlockRoots::default();
        let size = f.plan.source_disk.size_bytes().unwrap();
        let found =
            roots.wait_for_disk(&f.plan.source_disk.id, size, Duration::from_secs(5)).unwrap();
        let mut fs = KernelMounts::new(roots, found, f.plan.clone());
        fs.old_root_at = f.dir.join("mnt/old-root");
        fs.data_at = f.dir.join("mnt/resin-data");
        let mut ctx = Context::new(
            &f.plan,
            "plan-under-test".into(),
            f.staging_root.clone(),
            PathBuf::from(&loop_disk.node),
            &mut fs,
        );
        ctx.flash_sync_every = 4 * MIB;
        let mut journal = Journal::open(&f.staging_dir()).unwrap();
        let exit = steps::run(&mut ctx, &mut journal);
        assert_eq!(journal.state().step, Step::RestoreDone, "finalize is not journaled");
        // Nothing stays mounted below the old root.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(!mounts.contains(f.dir.join("mnt/old-root").to_str().unwrap()), "{mounts}");
        exit
    };
    assert_eq!(exit, Exit::Reboot(RebootTarget::Resinos));
    let data_fs = format!("loop,ro,offset={},sizelimit={}", 40_960 * SECTOR, 24_576 * SECTOR);
    run("mount", &["-o", &data_fs, f.disk.to_str().unwrap(), f.data.to_str().unwrap()]);
    let _mounted = Mounted(f.data.clone());
    assert_migrated(&f, &original);
    let restored = f.data.join("resin-data");
    assert_eq!(
        steps_support::describe(&tree.join("resin-data/1")),
        steps_support::describe(&restored.join("1")),
        "1.x app data at 2.x's place"
    );
    assert!(
        !restored.join("mnt").exists() && !restored.join("docker").exists(),
        "the 1.x path or Docker storage was carried over"
    );
    let image = std::fs::read(&f.raw_image).unwrap();
    assert!(
        f.disk_bytes()[range_of(ROOT_B)] == image[range_of(ROOT_B)],
        "resin-rootB is the image's"
    );
}

/// The resinOS 1.x Intel NUC's route (`uefi-boot-next`) on the written-last fixture: the
/// old resin-boot (a real FAT at the image's resin-boot place) carries `swapover/` with the
/// migration kernel; the firmware's variables are an efivarfs-shaped directory where the
/// firmware booted our `Boot0100` once (BootNext consumed, BootCurrent=0100).
struct UefiFixture {
    f: Fixture,
    vars_dir: PathBuf,
}

const BOOT: (u64, u64) = (8192, 8192);

fn var_file(name: &str) -> String {
    format!("{name}-{}", efivars::EFI_GLOBAL_VARIABLE_GUID)
}

fn uefi_fixture() -> UefiFixture {
    let mut f = fixture_written_last();
    f.plan.grub.route = plan::GrubRoute::UefiBootNext;
    std::fs::write(f.staging_dir().join("plan.json"), f.plan.to_json_pretty().unwrap()).unwrap();
    let boot = f.dir.join("old-boot.vfat");
    std::fs::File::create(&boot).unwrap().set_len(BOOT.1 * SECTOR).unwrap();
    run("mkfs.vfat", &["-n", "RESIN-BOOT", boot.to_str().unwrap()]);
    run("mmd", &["-i", boot.to_str().unwrap(), "::swapover"]);
    for (name, seed) in [("vmlinuz", 61), ("initramfs.img", 62)] {
        let file = f.dir.join(name);
        std::fs::write(&file, noise(300_000, seed)).unwrap();
        run(
            "mcopy",
            &["-i", boot.to_str().unwrap(), file.to_str().unwrap(), &format!("::swapover/{name}")],
        );
    }
    write_at(&f.disk, BOOT.0 * SECTOR, &std::fs::read(&boot).unwrap());
    let vars_dir = f.dir.join("efivars");
    std::fs::create_dir_all(&vars_dir).unwrap();
    let option = efivars::LoadOption {
        description: "swapover migration to resinOS 2.x".into(),
        partition: efivars::HardDrive {
            number: 1,
            start_lba: BOOT.0,
            size_lba: BOOT.1,
            signature: efivars::PartitionSignature::Mbr(0x5a0e_4e11),
        },
        file: r"\swapover\vmlinuz".into(),
        args: r"initrd=\swapover\initramfs.img".into(),
    };
    let mut boot_var = vec![7, 0, 0, 0];
    boot_var.extend(option.encode().unwrap());
    std::fs::write(vars_dir.join(var_file("Boot0100")), boot_var).unwrap();
    std::fs::write(vars_dir.join(var_file("Boot0000")), [7, 0, 0, 0, 1, 0, 0, 0]).unwrap();
    std::fs::write(vars_dir.join(var_file("BootOrder")), [7, 0, 0, 0, 0, 0, 1, 0]).unwrap();
    std::fs::write(vars_dir.join(var_file("BootCurrent")), [6, 0, 0, 0, 0, 1]).unwrap();
    UefiFixture { f, vars_dir }
}

impl UefiFixture {
    fn vars(&self) -> efivars::EfiVars {
        efivars::EfiVars::at(&self.vars_dir)
    }

    fn context<'a>(&'a self, fs: &'a mut Directories) -> Context<'a> {
        let mut ctx = self.f.context(fs);
        ctx.efivars = self.vars();
        ctx
    }

    /// Everything the migration must leave: the disk is the image outside resin-boot and
    /// resin-data, resin-boot is the image's FAT with config.json, the keyfile and the
    /// migration kernel added (clean for fsck.fat), our option and the relay are gone.
    fn assert_migrated(&self) {
        let f = &self.f;
        let disk = f.disk_bytes();
        let image = std::fs::read(&f.raw_image).unwrap();
        assert_eq!(disk[..446], image[..446], "the image's head is committed");
        for (name, range) in [
            ("resin-rootA", range_of((16_384, 8192))),
            ("resin-rootB", range_of(ROOT_B)),
            ("resin-state", range_of((34_816, 4096))),
        ] {
            assert!(disk[range.clone()] == image[range], "{name} is the image's, byte for byte");
        }
        let boot = format!("{}@@{}", f.disk.display(), BOOT.0 * SECTOR);
        assert_eq!(
            run("mtype", &["-i", &boot, "::resinos-marker"]),
            "resinOS stand-in\n",
            "the image's own boot files"
        );
        let config: serde_json::Value =
            serde_json::from_str(&run("mtype", &["-i", &boot, "::config.json"])).unwrap();
        assert_eq!(config["applicationId"], 1);
        assert_eq!(run("mdir", &["-b", "-i", &boot, "::system-connections"]).lines().count(), 1);
        let kernel = f.dir.join("kernel-back");
        run("mcopy", &["-i", &boot, "::swapover/vmlinuz", kernel.to_str().unwrap()]);
        assert_eq!(
            std::fs::read(&kernel).unwrap(),
            noise(300_000, 61),
            "the migration kernel was carried into the new resin-boot"
        );
        let boot_fs = f.dir.join("boot-check.vfat");
        std::fs::write(&boot_fs, &disk[range_of(BOOT)]).unwrap();
        run("fsck.fat", &["-n", boot_fs.to_str().unwrap()]);
        let vars = self.vars();
        assert_eq!(vars.boot_order().unwrap(), vec![0, 1], "our option is out of BootOrder");
        assert!(vars.boot_option(0x0100).unwrap().is_none(), "our option is deleted");
        assert!(vars.boot_option(0).unwrap().is_some(), "the firmware's own option stays");
        assert!(
            !f.data.join(migrator::steps::relay_store::RELAY_DIR).exists(),
            "the relay is removed"
        );
        assert_eq!(
            std::fs::read(f.data.join("resin-data/app-1/srv/app/blob.bin")).unwrap(),
            noise(300_000, 77)
        );
    }
}

/// A straight run on the UEFI route: arm-resume puts our option first in BootOrder (before
/// the flash, which holds resin-boot back as well as resin-rootB), restore builds the new
/// resin-boot carrying the migration kernel, finalize relays, writes resin-rootB, commits
/// the head and removes the option and the relay.
#[test]
fn a_uefi_1x_run_keeps_the_migration_kernel_bootable_and_cleans_up_the_firmware() {
    let u = uefi_fixture();
    let original = u.f.disk_bytes();
    let mut fs = u.f.dirs();
    let mut ctx = u.context(&mut fs);
    let mut journal = Journal::open(&u.f.staging_dir()).unwrap();
    journal.begin("plan-under-test").unwrap();
    steps::step_arm_resume(&mut ctx).unwrap();
    journal.record(Step::ResumeArmed).unwrap();
    assert_eq!(
        u.vars().boot_order().unwrap(),
        vec![0x0100, 0, 1],
        "every boot starts the migrator now"
    );
    assert!(
        u.f.disk_bytes()[..MIB as usize] == original[..MIB as usize],
        "the UEFI route installs no boot code"
    );
    steps::step_backup(&mut ctx).unwrap();
    journal.record(Step::BackupDone).unwrap();
    steps::step_flash(&mut ctx, &mut journal, 0).unwrap();
    let disk = u.f.disk_bytes();
    assert!(
        disk[range_of(BOOT)] == original[range_of(BOOT)],
        "the flash wrote into resin-boot, where the firmware finds the migration kernel"
    );
    assert!(
        disk[range_of(ROOT_B)] == original[range_of(ROOT_B)],
        "the flash wrote into resin-rootB"
    );
    assert_eq!(steps::run(&mut ctx, &mut journal), Exit::Reboot(RebootTarget::Resinos));
    u.assert_migrated();
}

/// A power cut while resin-rootB is written over staging: the journal is gone, the relay
/// on resin-data finishes the migration (resin-rootB again, the head, option and relay
/// removed).
#[test]
fn a_uefi_1x_run_cut_during_the_written_last_write_finishes_from_the_relay() {
    let u = uefi_fixture();
    let mut fs = u.f.dirs();
    let mut ctx = u.context(&mut fs);
    let mut journal = Journal::open(&u.f.staging_dir()).unwrap();
    journal.begin("plan-under-test").unwrap();
    for step in [steps::step_arm_resume, steps::step_backup] {
        step(&mut ctx).unwrap();
    }
    journal.record(Step::BackupDone).unwrap();
    steps::step_flash(&mut ctx, &mut journal, 0).unwrap();
    steps::step_restore(&mut ctx).unwrap();
    // What finalize does up to the cut: the final head, the relay, part of resin-rootB.
    let plan = &u.f.plan;
    let (range, name) = migrator::steps::written_last::held_range(plan).unwrap().unwrap();
    let staging_dir = u.f.staging_dir();
    let image = staging_dir.join(&plan.image.file);
    let held = migrator::steps::written_last::collect(plan, &image, range, &name).unwrap();
    let mut disk = OpenOptions::new().read(true).write(true).open(&u.f.disk).unwrap();
    let head = migrator::flash::decoded::read_head(&image).unwrap();
    let (_, head) =
        migrator::steps::final_table::final_head(plan, &mut disk, &head, &staging_dir).unwrap();
    let permanent = migrator::steps::uefi_resume::saved(&staging_dir).unwrap();
    assert_eq!(permanent.as_ref().map(|p| p.boot_number), Some(0x0100));
    migrator::steps::relay_store::write(
        &u.f.data,
        "plan-under-test",
        &held,
        &head,
        permanent.as_ref(),
    )
    .unwrap();
    disk.write_all_at(&noise(MIB as usize, 90), range.start).unwrap();
    // The next boot: staging is not ours any more; the relay is.
    assert!(
        matches!(
            migrator::steps::relay_store::read(&u.f.data, "another-plan"),
            Err(migrator::steps::relay_store::RelayError::OtherPlan { .. })
        ),
        "a relay of another plan is refused"
    );
    let found = migrator::steps::relay_store::read(&u.f.data, "plan-under-test")
        .unwrap()
        .expect("the relay is complete");
    let mut fs = u.f.dirs();
    steps::finish_from_relay(&u.f.disk, &mut fs, &u.vars(), found, None).unwrap();
    u.assert_migrated();
    assert!(migrator::steps::relay_store::read(&u.f.data, "plan-under-test").unwrap().is_none());
}

/// Giving up before destruction on the UEFI route puts BootOrder back (the stager's abort
/// removes the option itself); a boot that was not started by our option is refused.
#[test]
fn a_uefi_1x_run_giving_up_puts_boot_order_back_and_needs_our_option() {
    let u = uefi_fixture();
    let mut fs = u.f.dirs();
    let mut ctx = u.context(&mut fs);
    steps::step_arm_resume(&mut ctx).unwrap();
    assert_eq!(u.vars().boot_order().unwrap(), vec![0x0100, 0, 1]);
    assert_eq!(steps::return_to_old_os(&mut ctx, "test"), Exit::Reboot(RebootTarget::OldOs));
    assert_eq!(u.vars().boot_order().unwrap(), vec![0, 1]);
    assert!(u.vars().boot_option(0x0100).unwrap().is_some());

    let other = uefi_fixture();
    // The firmware booted its own option (the 1.x GRUB), not ours.
    let grub = efivars::LoadOption {
        description: "UEFI disk".into(),
        partition: efivars::HardDrive {
            number: 1,
            start_lba: BOOT.0,
            size_lba: BOOT.1,
            signature: efivars::PartitionSignature::Mbr(0x5a0e_4e11),
        },
        file: r"\EFI\BOOT\BOOTX64.EFI".into(),
        args: String::new(),
    };
    let mut grub_var = vec![7, 0, 0, 0];
    grub_var.extend(grub.encode().unwrap());
    std::fs::write(other.vars_dir.join(var_file("Boot0000")), grub_var).unwrap();
    std::fs::write(other.vars_dir.join(var_file("BootCurrent")), [6, 0, 0, 0, 0, 0]).unwrap();
    let mut fs = other.f.dirs();
    let mut ctx = other.context(&mut fs);
    let err = steps::step_arm_resume(&mut ctx).unwrap_err().to_string();
    assert!(err.contains(r"starts \EFI\BOOT\BOOTX64.EFI, not the migration kernel"), "{err}");
    assert_eq!(other.vars().boot_order().unwrap(), vec![0, 1], "BootOrder untouched");
}

// The BeagleBone Black's route (`uboot-trial`, docs/arm-1x-contract.md §2.3–§2.5) on the
// written-last fixture: resin-boot is a real FAT at the image's resin-boot place holding
// what the stager left in phase A (the armed trial `uEnv.txt`, `swapover/` with the trial's
// kernel, dtb, initramfs and the 1.x `uEnv.txt` copy) and 1.x's own boot files. On the
// device the migrator mounts it vfat and renames there; here (no vfat in this kernel, and
// the other steps' trees are plain directories too) the mounted partition is a directory
// holding the same files, `boot-tree`, while the disk's resin-boot bytes show that the
// flash held the partition back.

/// The BBB's 1.x uEnv.txt (balena-beaglebone 1.X `uEnv.txt_internal`, contract B2).
const UENV_1X: &[u8] = b"mmcdev=1\nbootpart=1:2\n";

fn uboot_trial() -> plan::UbootTrialBoot {
    plan::UbootTrialBoot {
        interface: plan::UbootInterface::Mmc,
        original_uenv: "swapover/uEnv.txt.1x".into(),
        trial_count: 7,
    }
}

fn trial_text() -> String {
    uboot_env::TrialEnv {
        interface: plan::UbootInterface::Mmc,
        mmcdev: 1,
        bootpart: uboot_env::BootPart { device: 1, partition: 2 },
        trial_count: uboot_env::TrialCount::after(uboot_env::BootCount(6)).unwrap(),
    }
    .render(&uboot_env::ExistingUenv::parse(UENV_1X).unwrap())
    .unwrap()
}

fn commit_text() -> String {
    uboot_env::CommitEnv {
        interface: plan::UbootInterface::Mmc,
        mmcdev: 1,
        bootpart: uboot_env::BootPart { device: 1, partition: 2 },
    }
    .render(&uboot_env::ExistingUenv::parse(UENV_1X).unwrap())
    .unwrap()
}

/// A FAT of resin-boot's size with `files` (path, contents), made by mkfs.vfat and mcopy.
fn fat_with(dir: &Path, name: &str, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let fat = dir.join(name);
    std::fs::File::create(&fat).unwrap().set_len(BOOT.1 * SECTOR).unwrap();
    run("mkfs.vfat", &["-i", "5a0eb001", "-n", "RESIN-BOOT", fat.to_str().unwrap()]);
    for (path, contents) in files {
        if let Some((parent, _)) = path.rsplit_once('/') {
            let _ = std::process::Command::new("mmd")
                .args(["-D", "s", "-i", fat.to_str().unwrap(), &format!("::{parent}")])
                .output();
        }
        let src = dir.join("fat-src");
        std::fs::write(&src, contents).unwrap();
        run(
            "mcopy",
            &["-o", "-i", fat.to_str().unwrap(), src.to_str().unwrap(), &format!("::{path}")],
        );
    }
    std::fs::read(&fat).unwrap()
}

/// The image's resin-boot files: a 2.x BBB boot partition stand-in.
fn image_boot_files(with_uenv: bool) -> Vec<(&'static str, Vec<u8>)> {
    let mut files = vec![
        ("MLO", noise(70_000, 81)),
        ("u-boot.img", noise(400_000, 82)),
        ("resinOS_uEnv.txt", b"resin_root_part=2\n".to_vec()),
        ("resinos-marker", b"resinOS stand-in\n".to_vec()),
        ("splash/resin-logo.png", noise(5_000, 83)),
        ("config.json", br#"{"deviceType":"beaglebone-black"}"#.to_vec()),
    ];
    if with_uenv {
        files.push(("uEnv.txt", b"# resinOS 2.x\nfdtfile=am335x-boneblack.dtb\n".to_vec()));
    }
    files
}

/// resin-boot as phase A leaves it on a 1.x BBB.
fn old_boot_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("MLO", noise(60_000, 71)),
        ("u-boot.img", noise(350_000, 72)),
        ("config.json", br#"{"deviceType":"beaglebone-black","from":"1.x"}"#.to_vec()),
        ("resin-1x-only", b"1.x\n".to_vec()),
        ("uEnv.txt", trial_text().into_bytes()),
        ("swapover/uEnv.txt.1x", UENV_1X.to_vec()),
        ("swapover/zImage", noise(300_000, 73)),
        ("swapover/board.dtb", noise(30_000, 74)),
        ("swapover/initramfs.img", noise(200_000, 75)),
    ]
}

/// The written-last fixture as a BBB: the plan's route uboot-trial, the image's resin-boot a
/// 2.x stand-in, the disk's resin-boot as phase A left it.
fn uboot_fixture(image_uenv: bool) -> Fixture {
    let mut f = fixture_written_last();
    f.plan.grub.route = plan::GrubRoute::UbootTrial;
    f.plan.grub.uboot = Some(uboot_trial());
    let mut raw = std::fs::read(&f.raw_image).unwrap();
    let image_boot = fat_with(&f.dir, "image-boot.vfat", &image_boot_files(image_uenv));
    raw[range_of(BOOT)].copy_from_slice(&image_boot);
    restage(&mut f, &raw, Staged::XzOneBlock);
    let old_boot = fat_with(&f.dir, "old-boot.vfat", &old_boot_files());
    write_at(&f.disk, BOOT.0 * SECTOR, &old_boot);
    for (path, contents) in old_boot_files() {
        let at = f.dirs().boot.join(path);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(at, contents).unwrap();
    }
    f
}

/// The test's file systems: the plain directories. `cut_at`: the n-th open of resin-boot
/// (from 1) is a power cut instead: the run stops there (a panic, caught by the test).
struct BootFileSystems {
    dirs: Directories,
    opens: u32,
    cut_at: Option<u32>,
}

/// How a power cut in [`BootFileSystems`] stops the run.
const POWER_CUT: &str = "simulated power cut";

impl BootFileSystems {
    fn new(f: &Fixture) -> Self {
        BootFileSystems { dirs: f.dirs(), opens: 0, cut_at: None }
    }
}

impl migrator::mounts::FileSystems for BootFileSystems {
    fn open_old_root(&mut self) -> Result<PathBuf, migrator::mounts::MountError> {
        self.dirs.open_old_root()
    }
    fn close_old_root(&mut self) -> Result<(), migrator::mounts::MountError> {
        self.dirs.close_old_root()
    }
    fn open_data(&mut self) -> Result<PathBuf, migrator::mounts::MountError> {
        self.dirs.open_data()
    }
    fn close_data(&mut self) -> Result<(), migrator::mounts::MountError> {
        self.dirs.close_data()
    }
    fn open_boot(&mut self) -> Result<PathBuf, migrator::mounts::MountError> {
        self.opens += 1;
        if self.cut_at == Some(self.opens) {
            panic!("{POWER_CUT}");
        }
        self.dirs.open_boot()
    }
    fn close_boot(&mut self) -> Result<(), migrator::mounts::MountError> {
        self.dirs.close_boot()
    }
}

fn boot_context<'a>(f: &'a Fixture, fs: &'a mut BootFileSystems) -> Context<'a> {
    let mut ctx =
        Context::new(&f.plan, "plan-under-test".into(), f.staging_root.clone(), f.disk.clone(), fs);
    ctx.flash_sync_every = 4 * MIB;
    ctx
}

/// resin-boot's files (path → contents), directories walked.
fn boot_tree(f: &Fixture) -> std::collections::BTreeMap<String, Vec<u8>> {
    let root = f.dirs().boot;
    let mut tree = std::collections::BTreeMap::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let rel = path.strip_prefix(&root).unwrap().to_string_lossy().to_string();
                tree.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    tree
}

/// Everything the BBB migration must leave ([`assert_boot_migrated`]).
fn assert_bbb_migrated(f: &Fixture, image_uenv: bool) {
    assert_boot_migrated(f, image_boot_files(image_uenv));
}

/// Everything a migration that updates resin-boot file by file must leave: the disk is the
/// image outside resin-boot and resin-data; resin-boot holds exactly `image_files` with
/// config.json and the keyfile restored (no `swapover/`, the switch file the image's or
/// none, no waiting `.swapover-new`), the disk's bytes of it never written (its tree stands
/// for the mounted partition); the relay is gone and the data restored.
fn assert_boot_migrated(f: &Fixture, image_files: Vec<(&'static str, Vec<u8>)>) {
    let disk = f.disk_bytes();
    let image = std::fs::read(&f.raw_image).unwrap();
    assert_eq!(disk[..446], image[..446], "the image's head is committed");
    for (name, range) in [
        ("resin-rootA", range_of((16_384, 8192))),
        ("resin-rootB", range_of(ROOT_B)),
        ("resin-state", range_of((34_816, 4096))),
    ] {
        assert!(disk[range.clone()] == image[range], "{name} is the image's, byte for byte");
    }
    let tree = boot_tree(f);
    let mut expected: std::collections::BTreeMap<String, Vec<u8>> = image_files
        .into_iter()
        .filter(|(p, _)| *p != "config.json")
        .map(|(p, c)| (p.to_string(), c))
        .collect();
    let config: serde_json::Value = serde_json::from_slice(&tree["config.json"]).unwrap();
    assert_eq!(config["applicationId"], 1, "the staged config.json, not the image's or 1.x's");
    expected.insert("config.json".into(), tree["config.json"].clone());
    let keyfiles: Vec<&String> =
        tree.keys().filter(|k| k.starts_with("system-connections/")).collect();
    assert_eq!(keyfiles.len(), 1, "{:?}", tree.keys());
    let keyfile = String::from_utf8(tree[keyfiles[0]].clone()).unwrap();
    assert!(keyfile.contains("ssid=Office WiFi"), "{keyfile}");
    expected.insert(keyfiles[0].clone(), tree[keyfiles[0]].clone());
    assert_eq!(
        tree.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "resin-boot holds exactly the image's files (no swapover/, no 1.x leftovers)"
    );
    assert!(tree == expected, "resin-boot's files are the image's");
    assert!(
        disk[range_of(BOOT)] == std::fs::read(f.dir.join("old-boot.vfat")).unwrap()[..],
        "the flash and finalize held the disk's resin-boot back"
    );
    assert!(!f.data.join(migrator::steps::relay_store::RELAY_DIR).exists(), "the relay is gone");
    assert_eq!(
        std::fs::read(f.data.join("resin-data/app-1/srv/app/blob.bin")).unwrap(),
        noise(300_000, 77)
    );
    assert_eq!(
        std::fs::read(f.data.join("swapover/plan.json")).unwrap(),
        std::fs::read(f.staging_dir().join("plan.json")).unwrap(),
        "the plan (and log) are copied onto resin-data"
    );
}

/// A straight run through the loop: arm-resume commits uEnv.txt (before it the trial text is
/// untouched, after it it is CommitEnv's text), the flash holds resin-boot back, restore
/// brings resin-boot to the image's files file by file while uEnv.txt still boots the
/// migrator, finalize switches to the image's uEnv.txt and removes swapover/.
#[test]
fn a_bbb_run_commits_uenv_holds_resin_boot_back_and_switches_last() {
    for image_uenv in [true, false] {
        let f = uboot_fixture(image_uenv);
        let original = f.disk_bytes();
        let mut fs = BootFileSystems::new(&f);
        let mut ctx = boot_context(&f, &mut fs);
        let mut journal = Journal::open(&f.staging_dir()).unwrap();
        journal.begin("plan-under-test").unwrap();
        assert_eq!(boot_tree(&f)["uEnv.txt"], trial_text().into_bytes(), "phase A's text");
        steps::step_arm_resume(&mut ctx).unwrap();
        journal.record(Step::ResumeArmed).unwrap();
        let committed = boot_tree(&f);
        assert_eq!(
            String::from_utf8(committed["uEnv.txt"].clone()).unwrap(),
            commit_text(),
            "uEnv.txt is CommitEnv's text after arm-resume"
        );
        assert_eq!(committed["swapover/uEnv.txt.1x"], UENV_1X, "the 1.x copy stays");
        // A second commit (a cut before the journal said so) changes nothing.
        steps::step_arm_resume(&mut ctx).unwrap();
        assert!(boot_tree(&f) == committed);
        steps::step_backup(&mut ctx).unwrap();
        journal.record(Step::BackupDone).unwrap();
        steps::step_flash(&mut ctx, &mut journal, 0).unwrap();
        assert!(
            boot_tree(&f) == committed,
            "the flash wrote into resin-boot, where U-Boot finds the migrator"
        );
        assert!(f.disk_bytes()[..MIB as usize] == original[..MIB as usize], "no boot code");
        let Step::FlashWritten { image_bytes } = journal.state().step.clone() else {
            panic!("{:?}", journal.state().step)
        };
        steps::step_verify(&mut ctx, image_bytes.0).unwrap();
        journal.record(Step::FlashVerified).unwrap();
        steps::step_restore(&mut ctx).unwrap();
        journal.record(Step::RestoreDone).unwrap();
        let restored = boot_tree(&f);
        assert_eq!(restored["uEnv.txt"], commit_text().into_bytes(), "still boots the migrator");
        assert_eq!(restored["swapover/zImage"], noise(300_000, 73), "the migrator's kernel stays");
        assert_eq!(restored["MLO"], noise(60_000, 71), "the 1.x MLO until the switch");
        assert_eq!(restored["MLO.swapover-new"], noise(70_000, 81), "the image's MLO waits");
        assert_eq!(restored["u-boot.img.swapover-new"], noise(400_000, 82));
        assert!(!restored.contains_key("resin-1x-only"));
        assert_eq!(steps::run(&mut ctx, &mut journal), Exit::Reboot(RebootTarget::Resinos));
        drop(ctx);
        assert_bbb_migrated(&f, image_uenv);
    }
}

/// Giving up before destruction puts the board's 1.x uEnv.txt back (1.x boots next); a
/// boot partition without the trial's kernel is refused before the commit.
#[test]
fn a_bbb_run_giving_up_puts_the_1x_uenv_back_and_needs_the_trial_files() {
    let f = uboot_fixture(true);
    let mut fs = BootFileSystems::new(&f);
    let mut ctx = boot_context(&f, &mut fs);
    steps::step_arm_resume(&mut ctx).unwrap();
    assert_eq!(steps::return_to_old_os(&mut ctx, "test"), Exit::Reboot(RebootTarget::OldOs));
    drop(ctx);
    assert_eq!(boot_tree(&f)["uEnv.txt"], UENV_1X);

    let other = uboot_fixture(true);
    std::fs::remove_file(other.dirs().boot.join("swapover/zImage")).unwrap();
    let mut fs = BootFileSystems::new(&other);
    let mut ctx = boot_context(&other, &mut fs);
    let err = steps::step_arm_resume(&mut ctx).unwrap_err().to_string();
    assert!(err.contains("has no swapover/zImage"), "{err}");
    drop(ctx);
    assert_eq!(boot_tree(&other)["uEnv.txt"], trial_text().into_bytes(), "not committed");
}

/// Power cuts after the commit: at each later opening of resin-boot (restore's update,
/// finalize's switch) and inside the update (blobs half renamed, a torn `.swapover-new`),
/// then a new boot running from the journal (or the relay, once staging is written over).
/// Every run ends with the same disk outside resin-boot and the same resin-boot files as a
/// straight run.
#[test]
fn a_bbb_run_cut_anywhere_after_the_commit_ends_the_same() {
    // Inside restore's update: u-boot.img renamed in, MLO torn as MLO.swapover-new.
    cuts_after_the_commit_end_the_same(
        &|| uboot_fixture(true),
        &|| image_boot_files(true),
        &|boot| {
            std::fs::write(boot.join("u-boot.img"), noise(400_000, 82)).unwrap();
            std::fs::write(boot.join("MLO.swapover-new"), &noise(70_000, 81)[..30_000]).unwrap();
        },
    );
}

/// The cuts of [`a_bbb_run_cut_anywhere_after_the_commit_ends_the_same`] on any board whose
/// resin-boot is updated file by file: a cut at each opening of resin-boot, and one inside
/// restore's update, where `tear` leaves some blobs renamed and some torn (besides a torn
/// config.json waiting), with the journal at FlashWritten.
fn cuts_after_the_commit_end_the_same(
    make: &dyn Fn() -> Fixture,
    image_files: &dyn Fn() -> Vec<(&'static str, Vec<u8>)>,
    tear: &dyn Fn(&Path),
) {
    let straight = make();
    {
        let mut fs = BootFileSystems::new(&straight);
        let mut ctx = boot_context(&straight, &mut fs);
        let mut journal = Journal::open(&straight.staging_dir()).unwrap();
        assert_eq!(steps::run(&mut ctx, &mut journal), Exit::Reboot(RebootTarget::Resinos));
    }
    assert_boot_migrated(&straight, image_files());
    let outside_boot = |f: &Fixture| {
        let mut bytes = f.disk_bytes();
        bytes[range_of(BOOT)].fill(0);
        bytes
    };
    let same_as_straight = |f: &Fixture, what: &str| {
        assert_boot_migrated(f, image_files());
        assert!(outside_boot(f) == outside_boot(&straight), "{what}: the disk differs");
        let (a, b) = (boot_tree(f), boot_tree(&straight));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{what}");
        for (path, contents) in &a {
            if path != "config.json" && !path.starts_with("system-connections/") {
                assert!(*contents == b[path], "{what}: {path} differs");
            }
        }
    };
    // Opens of resin-boot in a straight run: 1 commit, 2 restore, 3 finalize's switch.
    for cut_at in [1, 2, 3] {
        let f = make();
        let cut = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut fs = BootFileSystems::new(&f);
            fs.cut_at = Some(cut_at);
            let mut ctx = boot_context(&f, &mut fs);
            let mut journal = Journal::open(&f.staging_dir()).unwrap();
            steps::run(&mut ctx, &mut journal)
        }));
        assert!(cut.is_err(), "the run reached open {cut_at} of resin-boot");
        if cut_at == 3 {
            // Cut after resin-rootB (holding staging) and the head were written: the next
            // boot finds staging written over (pid1's check) and finishes from the relay.
            assert!(
                f.disk_bytes()[range_of(STAGING_1X)]
                    == std::fs::read(&f.raw_image).unwrap()[range_of(STAGING_1X)],
                "staging is written over"
            );
            let found = migrator::steps::relay_store::read(&f.data, "plan-under-test")
                .unwrap()
                .expect("the relay is there");
            let mut fs = BootFileSystems::new(&f);
            let switch = migrator::steps::boot_switch::BootSwitch::for_plan(&f.plan);
            let vars = efivars::EfiVars::at(&f.dir);
            steps::finish_from_relay(&f.disk, &mut fs, &vars, found, switch.as_ref()).unwrap();
        } else {
            let mut fs = BootFileSystems::new(&f);
            let mut ctx = boot_context(&f, &mut fs);
            let mut journal = Journal::open(&f.staging_dir()).unwrap();
            assert_eq!(steps::run(&mut ctx, &mut journal), Exit::Reboot(RebootTarget::Resinos));
        }
        same_as_straight(&f, &format!("cut at resin-boot open {cut_at}"));
    }
    let f = make();
    {
        let mut fs = BootFileSystems::new(&f);
        let mut ctx = boot_context(&f, &mut fs);
        let mut journal = Journal::open(&f.staging_dir()).unwrap();
        journal.begin("plan-under-test").unwrap();
        steps::step_arm_resume(&mut ctx).unwrap();
        journal.record(Step::ResumeArmed).unwrap();
        steps::step_backup(&mut ctx).unwrap();
        journal.record(Step::BackupDone).unwrap();
        steps::step_flash(&mut ctx, &mut journal, 0).unwrap();
        let boot = ctx.fs.open_boot().unwrap();
        tear(&boot);
        std::fs::write(boot.join("config.json.swapover-new"), b"{\"torn").unwrap();
        ctx.fs.close_boot().unwrap();
    }
    let mut fs = BootFileSystems::new(&f);
    let mut ctx = boot_context(&f, &mut fs);
    let mut journal = Journal::open(&f.staging_dir()).unwrap();
    assert_eq!(steps::run(&mut ctx, &mut journal), Exit::Reboot(RebootTarget::Resinos));
    drop(ctx);
    same_as_straight(&f, "cut inside the boot update");
}

// The Raspberry Pi route (`pi-firmware-trial`, docs/arm-1x-contract.md §2.2, §2.4, §2.5) on
// the same written-last fixture. What stands in for what (this sandbox's kernel cannot mount
// vfat): resin-boot (p1, FAT16 on the device) is the plain directory `boot-tree`, as for the
// BBB, and the disk's resin-boot bytes a real FAT of the same files (the flash must hold them
// back); the spare partition (a FAT32 on the device, mounted as staging) is the fixture's
// staging directory, holding what the stager leaves there: the trial's `kernel7.img` and
// `config.txt` at its root, `swapover/initramfs.img` and `swapover/cmdline.txt` beside the
// staging (plan, image, journal, backup). The journal's torn-write recovery on a FAT is not
// run here (no vfat mount); what it relies on is listed in migration-journal's README text.

/// resin-boot's config.txt on a 1.x Pi 3 (stand-in: a comment, balena-raspberrypi 1.X's
/// `gpu_mem`, a board dtparam, and a `kernel=` line that the commit must drop).
const CONFIG_1X: &[u8] = b"# resinOS 1.x\ngpu_mem=16\ndtparam=i2c_arm=on\nkernel=kernel7.img\n";
/// The trial's cmdline.txt as the stager writes it (contract §2.2 step 3: no root=, no
/// rootwait, the serial console last).
const TRIAL_CMDLINE: &str =
    "dwc_otg.lpm_enable=0 console=tty1 console=ttyAMA0,115200 swapover.stage=trial panic=10\n";

fn pi_trial() -> plan::PiTrialBoot {
    plan::PiTrialBoot {
        trial_partition: 2,
        kernel: "kernel7.img".into(),
        blobs_last: [
            "bootcode.bin",
            "start*.elf",
            "fixup*.dat",
            "*.dtb",
            "overlays/*",
            "kernel7.img",
        ]
        .map(String::from)
        .to_vec(),
    }
}

/// resin-boot of a 1.x Pi 3 (p1, untouched by phase A).
fn pi_old_boot_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("bootcode.bin", noise(50_000, 91)),
        ("start.elf", noise(600_000, 92)),
        ("fixup.dat", noise(6_000, 93)),
        ("kernel7.img", noise(400_000, 94)),
        ("bcm2710-rpi-3-b.dtb", noise(20_000, 95)),
        ("overlays/i2c-rtc.dtbo", noise(2_000, 96)),
        // Blobs the image lacks (a 4.1-era overlay name, a dtb 2.x dropped): the migrator's
        // boot may load them until the switch, which removes them.
        ("overlays/w1-gpio-overlay.dtb", noise(1_500, 98)),
        ("bcm2708-rpi-b.dtb", noise(19_000, 99)),
        ("config.txt", CONFIG_1X.to_vec()),
        (
            "cmdline.txt",
            b"dwc_otg.lpm_enable=0 console=null root=/dev/mmcblk0p2 rootfstype=ext4 rootwait\n"
                .to_vec(),
        ),
        ("config.json", br#"{"deviceType":"raspberrypi3","from":"1.x"}"#.to_vec()),
        ("resin-1x-only", b"1.x\n".to_vec()),
    ]
}

/// The image's resin-boot: a 2.x Pi 3 stand-in (U-Boot as kernel7.img, contract P14).
fn pi_image_boot_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("bootcode.bin", noise(51_000, 101)),
        ("start.elf", noise(610_000, 102)),
        ("start_x.elf", noise(620_000, 103)),
        ("fixup.dat", noise(6_100, 104)),
        ("kernel7.img", noise(450_000, 105)),
        ("boot.scr", b"fatload mmc 0:1 ${kernel_addr_r} zImage\n".to_vec()),
        ("bcm2710-rpi-3-b.dtb", noise(21_000, 106)),
        ("overlays/i2c-rtc.dtbo", noise(2_100, 107)),
        ("overlays/new-in-2x.dtbo", noise(2_200, 108)),
        ("config.txt", b"# resinOS 2.x\nkernel=kernel7.img\ngpu_mem=16\n".to_vec()),
        ("cmdline.txt", b"console=null\n".to_vec()),
        ("resinos-marker", b"resinOS stand-in\n".to_vec()),
        ("config.json", br#"{"deviceType":"raspberrypi3"}"#.to_vec()),
    ]
}

/// The spare's trial files: `(path from the spare's root, contents)`.
fn pi_spare_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("kernel7.img", noise(400_000, 94)),
        (
            "config.txt",
            pi_firmware::boot_config(std::str::from_utf8(CONFIG_1X).unwrap(), "kernel7.img")
                .into_bytes(),
        ),
        ("swapover/initramfs.img", noise(300_000, 97)),
        ("swapover/cmdline.txt", TRIAL_CMDLINE.as_bytes().to_vec()),
    ]
}

/// The written-last fixture as a Pi 3 after phase A: route pi-firmware-trial, staging a vfat
/// with the trial files, the image's resin-boot a 2.x stand-in, resin-boot the 1.x one.
fn pi_fixture() -> Fixture {
    let mut f = fixture_written_last();
    f.plan.grub.route = plan::GrubRoute::PiFirmwareTrial;
    f.plan.grub.pi = Some(pi_trial());
    f.plan.staging.fs_type = FsType::Vfat;
    f.plan.staging.fs_uuid = "5A0E-3B02".into();
    let mut raw = std::fs::read(&f.raw_image).unwrap();
    let image_boot = fat_with(&f.dir, "image-boot.vfat", &pi_image_boot_files());
    raw[range_of(BOOT)].copy_from_slice(&image_boot);
    restage(&mut f, &raw, Staged::XzOneBlock);
    let old_boot = fat_with(&f.dir, "old-boot.vfat", &pi_old_boot_files());
    write_at(&f.disk, BOOT.0 * SECTOR, &old_boot);
    for (root, files) in
        [(f.dirs().boot, pi_old_boot_files()), (f.staging_root.clone(), pi_spare_files())]
    {
        for (path, contents) in files {
            let at = root.join(path);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::fs::write(at, contents).unwrap();
        }
    }
    f
}

fn pi_old_tree() -> std::collections::BTreeMap<String, Vec<u8>> {
    pi_old_boot_files().into_iter().map(|(p, c)| (p.to_string(), c)).collect()
}

/// The commit writes exactly the contract's files on p1 (common brief "After the migrator's
/// commit"): the spare's kernel and initramfs and its cmdline with stage=resume under
/// `swapover/`, the 1.x config.txt's byte copy, and config.txt = the 1.x lines without
/// `kernel=` plus ours; nothing else changes. Then the flash holds resin-boot back, restore
/// updates it file by file with the blobs waiting, and finalize switches to the image's
/// config.txt after renaming the blobs.
#[test]
fn a_pi_run_commits_config_txt_holds_resin_boot_back_and_switches_last() {
    let f = pi_fixture();
    let original = f.disk_bytes();
    let mut fs = BootFileSystems::new(&f);
    let mut ctx = boot_context(&f, &mut fs);
    let mut journal = Journal::open(&f.staging_dir()).unwrap();
    journal.begin("plan-under-test").unwrap();
    assert!(boot_tree(&f) == pi_old_tree(), "phase A leaves p1 alone");
    steps::step_arm_resume(&mut ctx).unwrap();
    journal.record(Step::ResumeArmed).unwrap();
    let committed = boot_tree(&f);
    let mut expected = pi_old_tree();
    for (path, contents) in [
        ("swapover/kernel7.img", noise(400_000, 94)),
        ("swapover/initramfs.img", noise(300_000, 97)),
        ("swapover/cmdline.txt", TRIAL_CMDLINE.replace("stage=trial", "stage=resume").into_bytes()),
        ("swapover/config.txt.1x", CONFIG_1X.to_vec()),
        (
            "config.txt",
            b"# resinOS 1.x\ngpu_mem=16\ndtparam=i2c_arm=on\nkernel=swapover/kernel7.img\n\
              initramfs swapover/initramfs.img followkernel\ncmdline=swapover/cmdline.txt\n"
                .to_vec(),
        ),
    ] {
        expected.insert(path.into(), contents);
    }
    assert_eq!(committed.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (path, contents) in &expected {
        assert!(committed[path] == *contents, "{path} after the commit");
    }
    // A second commit (a cut before the journal said so) changes nothing.
    steps::step_arm_resume(&mut ctx).unwrap();
    assert!(boot_tree(&f) == committed);
    steps::step_backup(&mut ctx).unwrap();
    journal.record(Step::BackupDone).unwrap();
    steps::step_flash(&mut ctx, &mut journal, 0).unwrap();
    assert!(boot_tree(&f) == committed, "the flash wrote into resin-boot");
    assert!(f.disk_bytes()[..MIB as usize] == original[..MIB as usize], "no boot code");
    let Step::FlashWritten { image_bytes } = journal.state().step.clone() else {
        panic!("{:?}", journal.state().step)
    };
    steps::step_verify(&mut ctx, image_bytes.0).unwrap();
    journal.record(Step::FlashVerified).unwrap();
    steps::step_restore(&mut ctx).unwrap();
    journal.record(Step::RestoreDone).unwrap();
    let restored = boot_tree(&f);
    assert!(restored["config.txt"] == committed["config.txt"], "still boots the migrator");
    assert!(restored["swapover/initramfs.img"] == noise(300_000, 97), "the migrator stays");
    for (blob, old, new) in [
        ("start.elf", noise(600_000, 92), noise(610_000, 102)),
        ("kernel7.img", noise(400_000, 94), noise(450_000, 105)),
        ("overlays/i2c-rtc.dtbo", noise(2_000, 96), noise(2_100, 107)),
    ] {
        assert!(restored[blob] == old, "the 1.x {blob} until the switch");
        assert!(restored[&format!("{blob}.swapover-new")] == new, "the image's {blob} waits");
    }
    assert!(!restored.contains_key("start_x.elf"), "a new blob waits too");
    assert!(restored["start_x.elf.swapover-new"] == noise(620_000, 103));
    assert_eq!(restored["resinos-marker"], b"resinOS stand-in\n", "other files are in");
    assert_eq!(restored["config.txt.swapover-new"], pi_image_boot_files()[9].1);
    assert!(!restored.contains_key("resin-1x-only"));
    assert!(restored.contains_key("bcm2708-rpi-b.dtb"), "an old blob stays until the switch");
    assert_eq!(
        restored["swapover/blobs-obsolete"], b"bcm2708-rpi-b.dtb\noverlays/w1-gpio-overlay.dtb\n",
        "and is listed for it"
    );
    assert_eq!(steps::run(&mut ctx, &mut journal), Exit::Reboot(RebootTarget::Resinos));
    drop(ctx);
    assert_boot_migrated(&f, pi_image_boot_files());
}

/// Giving up before destruction renames the 1.x config.txt back and removes p1's
/// `swapover/`: p1's files are byte for byte the 1.x ones, and the loop reboots (into 1.x:
/// `reboot_part` is 0) rather than halting. A spare without the trial's initramfs is refused
/// before the commit writes anything.
#[test]
fn a_pi_run_giving_up_before_destruction_gives_p1_back_byte_identical() {
    let f = pi_fixture();
    let mut fs = BootFileSystems::new(&f);
    let mut ctx = boot_context(&f, &mut fs);
    steps::step_arm_resume(&mut ctx).unwrap();
    assert!(boot_tree(&f) != pi_old_tree(), "committed");
    assert_eq!(steps::return_to_old_os(&mut ctx, "test"), Exit::Reboot(RebootTarget::OldOs));
    drop(ctx);
    assert!(boot_tree(&f) == pi_old_tree(), "p1 is the 1.x one, byte for byte");
    assert!(!f.dirs().boot.join("swapover").exists());

    let other = pi_fixture();
    std::fs::remove_file(other.staging_root.join("swapover/initramfs.img")).unwrap();
    let mut fs = BootFileSystems::new(&other);
    let mut ctx = boot_context(&other, &mut fs);
    let err = steps::step_arm_resume(&mut ctx).unwrap_err().to_string();
    assert!(err.contains("the spare partition has no") && err.contains("initramfs.img"), "{err}");
    drop(ctx);
    assert!(boot_tree(&other) == pi_old_tree(), "not committed, nothing written");
}

/// Power cuts after the commit, as for the BBB: at each later opening of resin-boot and
/// inside restore's update (bootcode.bin and an overlay renamed in early, start.elf torn as
/// start.elf.swapover-new), then a new boot from the journal or the relay: every run ends
/// like a straight one.
#[test]
fn a_pi_run_cut_anywhere_after_the_commit_ends_the_same() {
    cuts_after_the_commit_end_the_same(&pi_fixture, &pi_image_boot_files, &|boot| {
        std::fs::write(boot.join("bootcode.bin"), noise(51_000, 101)).unwrap();
        std::fs::write(boot.join("overlays/i2c-rtc.dtbo"), noise(2_100, 107)).unwrap();
        std::fs::write(boot.join("start.elf.swapover-new"), &noise(610_000, 102)[..9_000]).unwrap();
    });
}
