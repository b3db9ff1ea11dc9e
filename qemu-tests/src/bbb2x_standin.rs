//! The BeagleBone Black resinOS 2.x stand-in: the image a BBB migration writes, booted by the
//! harness U-Boot (`qemu_tests::bbb_uboot`, which plays the 2.x U-Boot when resin-boot's
//! `u-boot.img` is the 2.x one) and checked from inside by the same verdict init as the x86
//! 2.x stand-in (qemu-tests/assets/resin/verdict-init, parsed by `qemu_tests::verdict`).
//!
//! Layout: the 2.x MBR layout (meta-resin 2.x `image_types_resin.bbclass`, profile [S1]/[S2]:
//! resin-boot FAT 40 MiB at 4 MiB, resin-rootA, resin-rootB, extended, resin-state, resin-data
//! ext4), root and data sizes scaled down (rootB = the 1.x stand-in's resin-updt, see
//! [`crate::bbb1x_standin`]).
//! - resin-boot: `MLO` and `u-boot.img` (balena-beaglebone `resin-image.inc`:
//!   `RESIN_BOOT_PARTITION_FILES_beaglebone = "MLO: u-boot.img:"`; stand-ins whose text tells the
//!   harness which U-Boot runs), `resinOS_uEnv.txt` with `resin_root_part=2` (the file
//!   meta-balena's U-Boot imports from partition 1, `RESIN_ENV_FILE`, and balenahup writes at
//!   the switch, contract H4), the `resin-image` flag file and `device-type.json` (from
//!   balena-beaglebone `beaglebone.coffee`: slug `beaglebone-black`, machine `beaglebone`,
//!   arch `armv7hf`, yocto `thud`).
//! - resin-rootA: `/boot/zImage` (the BBB kernel is on the root file system in 2.x too:
//!   `resin-image.inc` "Beaglebone expects the kernel and dtbs on rootfs"), the harness dtb and
//!   the verdict initramfs beside it (2.x's own kernel carries a bundled initramfs,
//!   `kernel-image-initramfs`; this one is the verdict's), `/etc/os-release`.
//! - resin-data: the image's preloaded supervisor ([`crate::resin_image::preloaded_supervisor`]).
//!
//! Shipped xz-compressed with a sha256 file, as a real image is served.

use crate::bbb_uboot::{
    self, BbbInputs, HARNESS_DTB, HARNESS_INITRAMFS, MLO_STANDIN_2X, UBOOT_IMG_2X,
};
use crate::disk::SECTOR_BYTES;
use crate::kernel::FS_MODULES;
use crate::paths;
use crate::resin_image::{
    self, preloaded_supervisor, DeviceTypeJson, StandInPartition, FLAG_FILE_CONTENT,
    IMAGE_FLAG_FILE,
};
use crate::rootfs::{busybox_applets, RootTree};
use crate::stamp::{self, Fingerprint};
use crate::standin_disk::StandInDisk;
use crate::tools::run;
use anyhow::{Context, Result};
use initramfs::{Compression, InitramfsBuilder};
use std::path::{Path, PathBuf};

const MIB_SECTORS: u64 = (1 << 20) / SECTOR_BYTES;
/// The MBR disk identifier of the image.
pub const DISK_ID: &str = "0x0bbb2a02";

/// The layout, in order: boot, rootA, rootB, (extended), state, data.
pub const PARTITIONS: [StandInPartition; 5] = [
    StandInPartition::mib("resin-boot", 4, 40, "c", "vfat"),
    StandInPartition::mib("resin-rootA", 44, 64, "83", "ext4"),
    StandInPartition::mib("resin-rootB", 108, 64, "83", "ext4"),
    StandInPartition::mib("resin-state", 176, 20, "83", "ext4"),
    StandInPartition::mib("resin-data", 200, 64, "83", "ext4"),
];
/// Where the extended partition starts and the image ends (shared by the ARM 2.x stand-ins).
pub const EXTENDED_START: u64 = 172 * MIB_SECTORS;
pub const IMAGE_SECTORS: u64 = 264 * MIB_SECTORS;

/// Modules of the verdict initramfs besides [`FS_MODULES`]: the virtio disk.
const DISK_MODULES: [&str; 2] = ["virtio_mmio", "virtio_blk"];

/// What 2.x resin-boot's `device-type.json` says (balena-beaglebone `beaglebone.coffee`).
pub const DEVICE_TYPE: DeviceTypeJson<'static> = DeviceTypeJson {
    slug: "beaglebone-black",
    alias: "beaglebone",
    name: "BeagleBone Black",
    arch: "armv7hf",
    machine: "beaglebone",
    yocto: "yocto-thud",
};

const RECIPE: &str = concat!(
    include_str!("bbb2x_standin.rs"),
    include_str!("bbb_uboot.rs"),
    include_str!("standin_disk.rs"),
    include_str!("../assets/resin/verdict-init"),
);

/// A built ARM 2.x stand-in image (the BBB's, the Pi's): raw, its xz and sha256 files, as a
/// real image is served.
#[derive(Debug, Clone)]
pub struct Arm2xImage {
    pub raw: PathBuf,
    pub xz: PathBuf,
    pub sha256_file: PathBuf,
}

impl Arm2xImage {
    /// `<stem>.img` in the images directory, built with `build` (given the raw path) if `fp`
    /// changed since the last build, then compressed with its sha256 file; `what` names it in
    /// the log.
    pub fn ensure_built(
        stem: &str,
        what: &str,
        fp: &Fingerprint,
        build: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Arm2xImage> {
        let dir = paths::images_dir();
        let raw = dir.join(format!("{stem}.img"));
        let xz = dir.join(format!("{stem}.img.xz"));
        let sha256_file = dir.join(format!("{stem}.img.xz.sha256"));
        let also = [raw.as_path(), sha256_file.as_path()];
        stamp::build_if_stale(&xz, fp, &also, what, || {
            build(&raw)?;
            resin_image::serve_compressed(&raw, &xz, &sha256_file, 3)
        })?;
        Ok(Arm2xImage { raw, xz, sha256_file })
    }

    /// A fresh writable copy (sparse) of the raw image in `dir`, for booting it directly (as a
    /// migration leaves the disk: the flash writes the image from sector 0).
    pub fn fresh_raw_copy(&self, dir: &Path, name: &str) -> Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let dst = dir.join(format!("{name}.img"));
        run(
            "cp",
            [std::ffi::OsStr::new("--sparse=always"), self.raw.as_os_str(), dst.as_os_str()],
        )?;
        Ok(dst)
    }
}

/// The BBB 2.x stand-in, built if its inputs changed since the last build.
pub fn ensure(inputs: &BbbInputs) -> Result<Arm2xImage> {
    let mut fp = Fingerprint::new(RECIPE);
    fp.text(&inputs.kernel_version).file(&inputs.busybox)?;
    Arm2xImage::ensure_built("bbb-resinos2x-standin", "the BBB resinOS 2.x stand-in", &fp, |raw| {
        build(inputs, raw)
    })
}

/// The ARM 2.x stand-ins' initramfs in `out`: the verdict init
/// (qemu-tests/assets/resin/verdict-init), busybox, the virtio disk and file system modules.
pub fn verdict_initramfs(inputs: &BbbInputs, out: &Path) -> Result<()> {
    let assets = paths::workspace_root().join("qemu-tests/assets/resin");
    InitramfsBuilder::new()
        .compression(Compression::Gzip)
        .busybox(inputs.busybox.as_path(), busybox_applets()?)
        .modules(&inputs.modules, DISK_MODULES.iter().chain(FS_MODULES).copied())
        .init(resin_image::verdict_init(&assets)?)
        .write_to_path(out)
        .with_context(|| format!("building {}", out.display()))?;
    Ok(())
}

fn build(inputs: &BbbInputs, raw: &Path) -> Result<()> {
    let work = raw.with_extension("work");
    let dtb = bbb_uboot::board_dtb(&RootTree::fresh_empty(&work)?.root)?;

    let boot = RootTree::fresh_empty(&work.join("boot"))?;
    boot.file("MLO", MLO_STANDIN_2X, 0o644)?;
    boot.file("u-boot.img", UBOOT_IMG_2X.as_bytes(), 0o644)?;
    boot.file("resinOS_uEnv.txt", b"resin_root_part=2\n", 0o644)?;
    boot.file(IMAGE_FLAG_FILE, FLAG_FILE_CONTENT.as_bytes(), 0o644)?;
    boot.file("device-type.json", DEVICE_TYPE.render().as_bytes(), 0o644)?;

    let root_a = RootTree::fresh_empty(&work.join("rootA"))?;
    root_a.copy("boot/zImage", &inputs.zimage, 0o644)?;
    root_a.copy(HARNESS_DTB, &dtb, 0o644)?;
    let rd = work.join("verdict-initramfs.img");
    verdict_initramfs(inputs, &rd)?;
    root_a.copy(HARNESS_INITRAMFS, &rd, 0o644)?;
    write_2x_disk(raw, &work, &boot, &root_a, &BBB_DISK)?;
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

/// What differs between the ARM 2.x stand-ins' disks.
#[derive(Debug, Clone, Copy)]
pub struct Disk2x<'a> {
    /// The MBR disk identifier (`0x…`).
    pub disk_id: &'a str,
    /// The file systems' id prefixes ([`StandInDisk::new`]).
    pub ids: (&'a str, &'a str),
    /// `VERSION` in resin-rootA's `/etc/os-release`.
    pub version: &'a str,
    /// `MACHINE` there: the Yocto machine.
    pub machine: &'a str,
}

const BBB_DISK: Disk2x<'static> = Disk2x {
    disk_id: DISK_ID,
    ids: ("bbb2a002-0000-4000-8000-00000000000", "0bbb200"),
    version: "2.12.7+rev1",
    machine: "beaglebone",
};

/// Writes an ARM 2.x stand-in image `raw` in the shared layout ([`PARTITIONS`]), using `work`:
/// resin-boot from `boot`, resin-rootA from `root_a` plus the 2.x `/etc/os-release`, resin-data
/// with the image's preloaded supervisor ([`preloaded_supervisor`]).
pub fn write_2x_disk(
    raw: &Path,
    work: &Path,
    boot: &RootTree,
    root_a: &RootTree,
    disk: &Disk2x,
) -> Result<()> {
    let (version, machine) = (disk.version, disk.machine);
    root_a.file(
        "etc/os-release",
        format!(
            "ID=\"resin-os\"\nNAME=\"resinOS\"\nVERSION=\"{version}\"\nVERSION_ID=\"{version}\"\nPRETTY_NAME=\"resinOS {version} (stand-in)\"\nMACHINE=\"{machine}\"\n"
        )
        .as_bytes(),
        0o644,
    )?;
    let data = RootTree::fresh_empty(&work.join("data"))?;
    for (path, content) in preloaded_supervisor() {
        data.file(&path, &content, 0o644)?;
    }
    StandInDisk::new(disk.disk_id, &PARTITIONS, (EXTENDED_START, IMAGE_SECTORS), disk.ids)
        .build(
            raw,
            work,
            &[
                ("resin-boot", &boot.root),
                ("resin-rootA", &root_a.root),
                ("resin-data", &data.root),
            ],
        )
        .with_context(|| format!("building the 2.x stand-in {}", raw.display()))
}
