//! A resinOS 1.x device's disks for tests, per board profile: a sparse disk image in the
//! profile's source layout made by the real sfdisk, mkfs.vfat (with mtools for the boot
//! files), mkfs.ext3/ext4, mkswap and mkfs.btrfs, and a small 2.x image in the profile's
//! target layout (xz-compressed by the real xz), plus config.json, a data root and a kernel
//! with an EFI stub header: a [`PlanImageRequest`] for the profile. Sizes are the profile's
//! typical sizes divided by one scale per profile (a power of two, at least 16, small enough
//! for the 2.x image to fit the fixture host's 100 MiB old root), rounded up to whole MiB,
//! the same for both layouts. Included with `#[path]` by tests that also include
//! `stage_support` (whose `fixture_host` it uses).
#![allow(dead_code)]

pub mod device;

use crate::stage_support::fixture_host::{run, sfdisk, sparse_file};
use board_profiles::{ExpectedPartition, Profile};
use plan::{FsType, PartitionRole};
use stager::stage::resinos1x::plan_image::PlanImageRequest;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const MIB: u64 = 1024 * 1024;
pub const SECTORS_PER_MIB: u64 = 2048;
/// The smallest scale profile sizes are divided by.
pub const MIN_SCALE: u64 = 16;
/// The scaled 2.x image must end by here (the fixture STEM host's old root ends at 101 MiB).
pub const MAX_IMAGE_MIB: u64 = 90;
/// Where both layouts start (resinOS aligns to 4 MiB: IMAGE_ROOTFS_ALIGNMENT, cited in the profiles).
pub const FIRST_MIB: u64 = 4;
/// A `fills_rest` partition's size in the 2.x test image (in an image, resin-data holds only
/// its preloaded content).
pub const FILL_MIB: u64 = 8;
/// The 1.x disk's last partition (resin-data, btrfs) reaches this far past the image's end.
pub const DISK_PAST_IMAGE_MIB: u64 = 32;

pub fn scaled_mib(p: &ExpectedPartition, scale: u64) -> u64 {
    if p.fills_rest {
        FILL_MIB
    } else {
        p.typical_size_mib.div_ceil(scale).max(1)
    }
}

/// The profile's scale: the smallest power of two (at least [`MIN_SCALE`]) that brings its
/// 2.x image within [`MAX_IMAGE_MIB`].
pub fn scale_for(profile: &Profile) -> u64 {
    let mut scale = MIN_SCALE;
    while end_mib(&placed(&profile.target.partitions, &[], scale)) > MAX_IMAGE_MIB {
        scale *= 2;
    }
    scale
}

pub fn end_mib(parts: &[(ExpectedPartition, u64, u64)]) -> u64 {
    parts.last().map(|(_, at, size)| at + size).unwrap_or(FIRST_MIB)
}

/// (partition, start MiB, size MiB) in table order; partitions 4.. are logical (MBR with
/// more than four partitions: three primaries, then the extended one), each after a 1 MiB
/// gap for its EBR.
pub fn placed(
    partitions: &[ExpectedPartition],
    overrides: &[(&str, u64)],
    scale: u64,
) -> Vec<(ExpectedPartition, u64, u64)> {
    let mut sorted = partitions.to_vec();
    sorted.sort_by_key(|p| p.order);
    let logical_from = if sorted.len() > 4 { 3 } else { usize::MAX };
    let mut at = FIRST_MIB;
    let mut out = Vec::new();
    for (i, p) in sorted.into_iter().enumerate() {
        if i >= logical_from {
            at += 1;
        }
        let size = overrides
            .iter()
            .find(|(n, _)| *n == p.name)
            .map(|(_, s)| *s)
            .unwrap_or_else(|| scaled_mib(&p, scale));
        out.push((p, at, size));
        at += size;
    }
    out
}

/// sfdisk script for `parts`, with the extended container when there are logicals.
pub fn sfdisk_script(parts: &[(ExpectedPartition, u64, u64)], label_id: &str) -> String {
    let mut script = format!("label: dos\nlabel-id: {label_id}\n");
    let logical_from = if parts.len() > 4 { 3 } else { usize::MAX };
    for (i, (p, start, size)) in parts.iter().enumerate() {
        if i == logical_from {
            script.push_str(&format!("start={}, type=f\n", (start - 1) * SECTORS_PER_MIB));
        }
        let kind = if p.fs == FsType::Vfat {
            "c"
        } else if p.fs == FsType::Swap {
            "82"
        } else {
            "83"
        };
        let boot = if i == 0 { ", bootable" } else { "" };
        script.push_str(&format!(
            "start={}, size={}, type={kind}{boot}\n",
            start * SECTORS_PER_MIB,
            size * SECTORS_PER_MIB
        ));
    }
    script
}

/// Copies `file` into `disk` at `at_mib`.
pub fn dd_into(file: &Path, disk: &Path, at_mib: u64) {
    run(Command::new("dd")
        .arg(format!("if={}", file.display()))
        .arg(format!("of={}", disk.display()))
        .args(["bs=1M", &format!("seek={at_mib}"), "conv=notrunc,sparse", "status=none"]));
}

/// A file system of `fs` labelled `label`, `size_mib` large, at `at_mib` of `disk`, with
/// `files` (name, bytes) in a FAT one.
pub fn make_fs(
    dir: &Path,
    disk: &Path,
    fs: FsType,
    label: &str,
    at_mib: u64,
    size_mib: u64,
    files: &[(String, Vec<u8>)],
) {
    let part = dir.join(format!("{label}-{at_mib}.fs"));
    let _ = std::fs::remove_file(&part);
    match fs {
        FsType::Vfat => {
            run(Command::new("mkfs.vfat")
                .args(["-n", label, "-C"])
                .arg(&part)
                .arg((size_mib * 1024).to_string()));
            for (name, bytes) in files {
                let mut parents = String::new();
                for dir_part in name.split('/').rev().skip(1).collect::<Vec<_>>().into_iter().rev()
                {
                    parents.push('/');
                    parents.push_str(dir_part);
                    let _ = Command::new("mmd")
                        .arg("-i")
                        .arg(&part)
                        .arg(format!("::{parents}"))
                        .output();
                }
                let local = dir.join("fat-file");
                std::fs::write(&local, bytes).unwrap();
                run(Command::new("mcopy")
                    .arg("-o")
                    .arg("-i")
                    .arg(&part)
                    .arg(&local)
                    .arg(format!("::{name}")));
            }
        }
        FsType::Btrfs => {
            sparse_file(&part, size_mib * MIB);
            run(Command::new("mkfs.btrfs").args(["-q", "-M", "-L", label]).arg(&part));
        }
        FsType::Swap => {
            sparse_file(&part, size_mib * MIB);
            run(Command::new("mkswap").args(["-L", label]).arg(&part));
        }
        FsType::Ext2 | FsType::Ext3 | FsType::Ext4 => {
            let tool = format!("mkfs.{fs}");
            let mut command = Command::new(tool);
            command.args(["-q", "-F", "-L", label]);
            if !files.is_empty() {
                // Populated from a tree (`mkfs -d`), nested names making their directories.
                let tree = dir.join(format!("{label}-{at_mib}.tree"));
                let _ = std::fs::remove_dir_all(&tree);
                for (name, bytes) in files {
                    let path = tree.join(name);
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(path, bytes).unwrap();
                }
                command.arg("-d").arg(&tree);
            }
            run(command.arg(&part).arg(format!("{}k", size_mib * 1024)));
        }
    }
    dd_into(&part, disk, at_mib);
    std::fs::remove_file(&part).unwrap();
}

/// What a board's boot file looks like before the migration (enough for the edits).
pub fn original_boot_file(name: &str) -> Vec<u8> {
    match name.rsplit('/').next().unwrap_or(name) {
        "config.txt" => b"# resinOS 1.x\ngpu_mem=16\ndtparam=audio=on\n".to_vec(),
        "cmdline.txt" => {
            b"dwc_otg.lpm_enable=0 console=tty1 root=/dev/mmcblk0p2 rootfstype=ext3 rootwait\n"
                .to_vec()
        }
        "uEnv.txt" => b"bootpart=1:2\nfinduuid=part uuid mmc ${bootpart} uuid\n".to_vec(),
        _ => b"# original\n".to_vec(),
    }
}

/// A Raspberry Pi's 1.x config.txt, with lines the trial's copy drops.
pub const PI_CONFIG_TXT: &str =
    "# resinOS 1.x\ngpu_mem=16\nkernel=kernel7.img\ndtparam=audio=on\ninitramfs old.img\n";
/// A Raspberry Pi's 1.x cmdline.txt, the serial console first.
pub const PI_CMDLINE_TXT: &str = "dwc_otg.lpm_enable=0 console=serial0,115200 console=tty1 root=/dev/mmcblk0p2 rootfstype=ext3 rootwait\n";

/// What resin-boot of a 1.x Raspberry Pi holds (distinct bytes per file): bootcode.bin,
/// the firmware (one optional variant too), the kernel, two dtbs, overlays (nested), and
/// config.txt and cmdline.txt.
pub fn pi_boot_files(trial: &board_profiles::PiTrialProfile) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![
        ("bootcode.bin".to_string(), device::pattern(b"bootcode", 50_000)),
        ("start_x.elf".to_string(), device::pattern(b"start_x", 60_000)),
        (trial.kernel.clone(), device::pattern(b"kernel7", 400_000)),
        ("bcm2709-rpi-2-b.dtb".to_string(), device::pattern(b"dtb2", 15_000)),
        ("bcm2710-rpi-3-b.dtb".to_string(), device::pattern(b"dtb3", 16_000)),
        ("overlays/w1-gpio.dtbo".to_string(), device::pattern(b"w1", 2_000)),
        ("overlays/extra/i2c.dtbo".to_string(), device::pattern(b"i2c", 3_000)),
        ("config.txt".to_string(), PI_CONFIG_TXT.as_bytes().to_vec()),
        ("cmdline.txt".to_string(), PI_CMDLINE_TXT.as_bytes().to_vec()),
    ];
    for name in &trial.firmware_files {
        files.push((name.clone(), device::pattern(name.as_bytes(), 200_000)));
    }
    files
}

/// The 2.x image in the profile's target layout (FAT boot with device-type.json), xz'd.
pub fn target_image(
    dir: &Path,
    profile: &Profile,
) -> (PathBuf, Vec<(ExpectedPartition, u64, u64)>) {
    let parts = placed(&profile.target.partitions, &[], scale_for(profile));
    let raw = dir.join(format!("{}-2x.img", profile.name));
    let end = end_mib(&parts);
    sparse_file(&raw, end * MIB);
    sfdisk(&raw, &sfdisk_script(&parts, "0xa1b2c3d4"));
    let (boot, at, size) = &parts[0];
    let slug = format!("{{\"slug\":\"{}\"}}", profile.device_type).into_bytes();
    make_fs(dir, &raw, boot.fs, &boot.name, *at, *size, &[("device-type.json".into(), slug)]);
    // resin-rootA with the supervisor the image ships, as 2.x writes it.
    if let Some((root_a, at, size)) = parts.iter().find(|(p, _, _)| p.role == PartitionRole::RootA)
    {
        let conf =
            format!("SUPERVISOR_IMAGE=resin/amd64-supervisor\nSUPERVISOR_TAG={IMAGE_SUPERVISOR}\n")
                .into_bytes();
        make_fs(
            dir,
            &raw,
            root_a.fs,
            &root_a.name,
            *at,
            *size,
            &[("etc/resin-supervisor/supervisor.conf".into(), conf)],
        );
    }
    // resin-data: a real image ships it as a prebuilt file system (the preloaded supervisor),
    // and both the stager and the migrator refuse an image whose data partition has none.
    if let Some((data, at, size)) = parts.iter().find(|(p, _, _)| p.role == PartitionRole::Data) {
        make_fs(dir, &raw, data.fs, &data.name, *at, *size, &[]);
    }
    run(Command::new("xz").args(["-k", "-0", "-T1", "-f"]).arg(&raw));
    (dir.join(format!("{}-2x.img.xz", profile.name)), parts)
}

/// The supervisor version [`target_image`]'s resin-rootA ships.
pub const IMAGE_SUPERVISOR: &str = "v6.1.2";

/// A resinOS 1.x disk in the profile's source layout, every partition with its file system
/// and label, the boot partition with the profile's bootloader files.
pub fn source_disk(
    dir: &Path,
    profile: &Profile,
    overrides: &[(&str, u64)],
) -> (PathBuf, Vec<(ExpectedPartition, u64, u64)>) {
    let scale = scale_for(profile);
    let mut parts = placed(&profile.source.partitions, overrides, scale);
    // The partition that fills the rest reaches past the image's end (a real disk is larger).
    let end = end_mib(&placed(&profile.target.partitions, &[], scale)) + DISK_PAST_IMAGE_MIB;
    if let Some((p, at, size)) = parts.last_mut() {
        if p.fills_rest && *at < end {
            *size = end - *at;
        }
    }
    let end = end_mib(&parts);
    let disk = dir.join(format!("{}-1x.img", profile.name));
    sparse_file(&disk, end * MIB);
    sfdisk(&disk, &sfdisk_script(&parts, "0x1c0ffee1"));
    for (p, at, size) in &parts {
        let files: Vec<(String, Vec<u8>)> = if p.role == PartitionRole::Boot {
            match &profile.pi_trial {
                Some(trial) => pi_boot_files(trial),
                None => profile
                    .bootloader_config_files
                    .iter()
                    .map(|f| (f.clone(), original_boot_file(f)))
                    .collect(),
            }
        } else {
            Vec::new()
        };
        make_fs(dir, &disk, p.fs, &p.name, *at, *size, &files);
    }
    (disk, parts)
}

/// Source partition sizes (MiB) a profile's device needs here beyond its scaled typical
/// ones: a Raspberry Pi's spare becomes a FAT32, which needs about 33 MiB (65525 clusters
/// of 512 bytes), so resin-updt is 40 MiB and lies past the 2.x image's end (resin-root
/// grown to put it there); resin-data at btrfs's smallest size.
pub fn layout_for(profile: &Profile) -> &'static [(&'static str, u64)] {
    if profile.pi_trial.is_some() {
        &PI_LAYOUT
    } else {
        &[]
    }
}

pub const PI_LAYOUT: [(&str, u64); 3] =
    [("resin-root", 52), ("resin-updt", 40), ("resin-data", 16)];

pub struct Case {
    pub dir: tempfile::TempDir,
    pub request: PlanImageRequest,
    pub source: Vec<(ExpectedPartition, u64, u64)>,
    pub target: Vec<(ExpectedPartition, u64, u64)>,
}

pub fn resinos1x_case(
    profile: &Profile,
    overrides: &[(&str, u64)],
    data_bytes: u64,
    kernel_bytes: u64,
) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let (disk, source) = source_disk(dir.path(), profile, overrides);
    let (image, target) = target_image(dir.path(), profile);
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            "{{\"deviceType\":\"{}\",\"applicationId\":4321,\"hostname\":\"pi-17\"}}",
            profile.device_type
        ),
    )
    .unwrap();
    let data_root = dir.path().join("data");
    std::fs::create_dir_all(data_root.join("resin-data/4321")).unwrap();
    sparse_file(&data_root.join("resin-data/4321/app.db"), data_bytes);
    std::fs::create_dir_all(data_root.join("docker/overlay")).unwrap();
    sparse_file(&data_root.join("docker/overlay/layer.tar"), 400 * 1000 * 1000);
    let kernel = dir.path().join("vmlinuz");
    sparse_file(&kernel, kernel_bytes);
    write_pe_header(&kernel);
    let initramfs = dir.path().join("initramfs.img");
    sparse_file(&initramfs, MIB / 2);
    let request = PlanImageRequest {
        profile: profile.clone(),
        disk,
        image,
        config,
        data_root,
        kernel,
        initramfs,
        allow_unknown_device_type: false,
        phys_mem: dir.path().join("phys-mem"),
    };
    if let Some(trial) = &profile.uboot_trial {
        write_counter(&request.phys_mem, &trial.bootcount, BOOT_COUNT_WORD);
    }
    Case { dir, request, source, target }
}

/// The boot counter word [`resinos1x_case`] gives a U-Boot trial board: U-Boot's magic and
/// count 4, so the trial runs at bootcount 5.
pub const BOOT_COUNT_WORD: u32 = 0xB001_0004;

/// A sparse file standing for `/dev/mem`: `word` at the register's address in its byte order.
pub fn write_counter(path: &Path, register: &board_profiles::BootcountRegister, word: u32) {
    use std::os::unix::fs::FileExt;
    let bytes = match register.byte_order {
        board_profiles::ByteOrder::BigEndian => word.to_be_bytes(),
        board_profiles::ByteOrder::LittleEndian => word.to_le_bytes(),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).unwrap();
    file.set_len(register.address + 4096).unwrap();
    file.write_all_at(&bytes, register.address).unwrap();
}

/// A bzImage's first bytes as the EFI stub has them: `MZ`, `e_lfanew` at 0x3c, `PE\0\0`
/// and the COFF machine type x86-64.
pub fn write_pe_header(kernel: &Path) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(kernel).unwrap();
    file.write_all_at(b"MZ", 0).unwrap();
    file.write_all_at(&0x80u32.to_le_bytes(), 0x3c).unwrap();
    file.write_all_at(b"PE\0\0\x64\x86", 0x80).unwrap();
}

pub fn start_of(parts: &[(ExpectedPartition, u64, u64)], role: PartitionRole) -> (u64, u64) {
    let (_, at, size) = parts.iter().find(|(p, _, _)| p.role == role).unwrap();
    (at * SECTORS_PER_MIB, size * SECTORS_PER_MIB)
}
