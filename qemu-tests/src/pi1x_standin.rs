//! The Raspberry Pi 2/3 resinOS 1.x stand-in (issue 16, docs/arm-1x-contract.md §2.2, §4.2),
//! booted by the harness's firmware player (`qemu_tests::pi_firmware`). Its disk has the 1.x
//! layout (contract P6, meta-balena 52ee443f `image_types_resin.bbclass`; the same layout and
//! sizes as the BBB stand-in, [`bbb1x_standin::PARTITIONS`]):
//!
//! - p1 resin-boot (FAT, 40 MiB at 4 MiB, boot flag): the firmware files `bootcode.bin`,
//!   `start.elf`, `fixup.dat` (dummies: the player checks they are there), `kernel7.img`
//!   (Debian's armhf zImage, a named deviation), the Pi 2 and Pi 3 dtbs (QEMU's `virt` tree
//!   under their names, a named deviation), `overlays/`, `config.txt`, `cmdline.txt`
//!   (contract P1, P3);
//! - p2 resin-root (ext3): the root the BBB 1.x stand-in's builder makes
//!   ([`bbb1x_standin::build_root`]) for the Yocto machine `raspberrypi3`, with the packaged
//!   ARMv7 stager at [`bbb1x_standin::STAGER_PATH`];
//! - p3 resin-updt (ext3, the same size, empty), p5 resin-conf (FAT, config.json), p6
//!   resin-data (btrfs: [`resin1x_image::data_tree`]). p3 is 64 MiB at 108 MiB, inside the
//!   2.x stand-ins' resin-rootB (the planner's rule for a staging partition): room for the
//!   FAT32 trial set (the kernel, the migration initramfs), the small 2.x stand-in image and
//!   the backup, and with 512-byte clusters well over FAT32's 65525 clusters (≥ 33 MiB).
//!
//! Named deviations on resin-boot: the 1.x kernel mounts `root=/dev/mmcblk0p2` itself; Debian's
//! kernel has virtio and ext4 as modules, so `config.txt` also loads the harness initramfs
//! (`initramfs harness-initramfs.img followkernel`, the BBB stand-in's, which reads
//! `root=/dev/mmcblk0pN` as partition N of the disk holding resin-boot). `cmdline.txt` is the
//! 1.x debug build's (P3), `console=serial0,115200` included (the player resolves `serial0`,
//! [`crate::pi_firmware::firmware_cmdline`]).

use crate::bbb1x_standin::{self, Root1x, DISK_SECTORS, EXTENDED_START, PARTITIONS};
use crate::bbb_uboot::{self, BbbInputs};
use crate::paths;
use crate::pi_firmware::{PiModel, BOOTCODE};
use crate::resin1x_image;
use crate::rootfs::RootTree;
use crate::stamp::{self, Fingerprint};
use crate::standin_disk::StandInDisk;
use crate::tools::run;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The board the stand-in plays.
pub const MODEL: PiModel = PiModel::Pi3;
/// The MBR disk identifier of the stand-in.
pub const DISK_ID: &str = "0x0e1a0001";
/// The harness initramfs on resin-boot (named deviation, see the module comment).
pub const HARNESS_INITRAMFS: &str = "harness-initramfs.img";

/// resin-boot's `cmdline.txt` (contract P3, debug build).
pub const CMDLINE_1X: &str =
    "dwc_otg.lpm_enable=0 console=tty1 console=serial0,115200 root=/dev/mmcblk0p2 rootfstype=ext4 rootwait\n";
/// The test profile's name (the stem of its file, as `--profile-file` names it).
pub const TEST_PROFILE: &str = "resinos1x-raspberrypi3-qemu";
/// The built-in profile the test profile is made from.
const REAL_PROFILE: &str = "board-profiles/profiles/resinos1x-raspberrypi3.toml";

/// The test profile for `-M virt`, written to `dir/<TEST_PROFILE>.toml` for `stager
/// --profile-file`: the built-in Pi 3 profile with these one-line deviations
/// ([`bbb1x_standin::write_derived_profile`]):
/// 1. the description;
/// 2. `initramfs.modules` + `virtio_mmio`, `virtio_blk` ([`bbb1x_standin::virt_disk_modules`];
///    ext4, fat and vfat are modules of the Debian kernel and already listed).
///
/// `pi_trial.reboot_part` stays the real sysfs path: Debian's 6.1 kernel has no such file, so
/// the stager arms with `reboot(RESTART2, "N")` alone (contract §2.2), which the player reads
/// from the console.
pub fn write_test_profile(dir: &Path) -> Result<PathBuf> {
    let deviations = [
        (
            "description = \"resinOS 1.x Raspberry Pi 3 (32-bit) -> resinOS 2.x raspberrypi3\"",
            "description = \"resinOS 1.x Raspberry Pi 3 under QEMU -M virt (test profile)\""
                .to_string(),
        ),
        bbb1x_standin::virt_disk_modules(),
    ];
    bbb1x_standin::write_derived_profile(dir, REAL_PROFILE, TEST_PROFILE, &deviations)
}

/// resin-boot's `config.txt`: settings of the kind meta-raspberrypi writes (not copied from
/// a 1.x image; the player ignores them) and the harness initramfs line.
pub const CONFIG_1X: &str = "# resinOS 1.x stand-in (qemu-tests/src/pi1x_standin.rs)\n\
gpu_mem=16\n\
dtparam=audio=on\n\
# Named deviation: the harness initramfs mounts root= on virtio\n\
initramfs harness-initramfs.img followkernel\n";

/// Stand-in content of the firmware files (the player checks they are present).
pub fn firmware_blob(name: &str) -> Vec<u8> {
    format!("stand-in {name}: the GPU firmware is played by qemu-tests/src/pi_firmware.rs\n")
        .into_bytes()
}

const RECIPE: &str = concat!(
    include_str!("pi1x_standin.rs"),
    include_str!("bbb1x_standin.rs"),
    include_str!("standin_disk.rs"),
    include_str!("../assets/bbb/init-1x"),
    include_str!("../assets/bbb/harness-initramfs-init"),
);

/// A built, pristine Pi 1.x stand-in disk. Tests take fresh copies.
#[derive(Debug, Clone)]
pub struct Pi1xImage {
    pub path: PathBuf,
}

impl Pi1xImage {
    /// Builds the disk if its inputs (this recipe, the kernel, busybox) changed.
    /// Builds the disk if its inputs (this recipe, the kernel, busybox, the packaged ARMv7
    /// stager) changed.
    pub fn ensure(inputs: &BbbInputs) -> Result<Pi1xImage> {
        let stager = bbb1x_standin::packaged_armv7_stager()?;
        let path = paths::images_dir().join("pi-resinos1x-standin.img");
        let mut fp = Fingerprint::new(RECIPE);
        fp.text(&inputs.kernel_version).file(&inputs.busybox)?.file(&inputs.zimage)?;
        fp.file(&stager)?;
        stamp::build_if_stale(&path, &fp, &[], "the Pi resinOS 1.x stand-in", || {
            build(inputs, &stager, &path)
        })?;
        Ok(Pi1xImage { path })
    }

    /// A fresh writable copy (sparse) for one run, in `dir`.
    pub fn fresh_copy(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let dst = dir.join("pi-1x.img");
        run(
            "cp",
            [std::ffi::OsStr::new("--sparse=always"), self.path.as_os_str(), dst.as_os_str()],
        )?;
        Ok(dst)
    }
}

/// The 1.x stand-in's `config.json` (resin-conf).
pub fn config_json() -> String {
    resin1x_image::config_json("raspberrypi3", "pi-1x")
}

/// The Pi stand-ins' dtb files (under the boards' names, a named deviation): QEMU's `virt`
/// tree in `work/virt-compact.dtb`. QEMU dumps its tree padded to 1 MiB; a kernel started by
/// QEMU's own loader with that file prints nothing (measured here), so it is recompiled to its
/// real size (7 KiB).
pub fn compact_virt_dtb(work: &Path) -> Result<PathBuf> {
    let dumped = bbb_uboot::virt_dtb(work)?;
    let dtb = work.join("virt-compact.dtb");
    run(
        "dtc",
        [
            std::ffi::OsStr::new("-q"),
            "-I".as_ref(),
            "dtb".as_ref(),
            "-O".as_ref(),
            "dtb".as_ref(),
            "-o".as_ref(),
            dtb.as_os_str(),
            dumped.as_os_str(),
        ],
    )?;
    Ok(dtb)
}

fn build(inputs: &BbbInputs, stager: &Path, out: &Path) -> Result<()> {
    let work = RootTree::fresh_empty(&out.with_extension("work"))?.root;
    let dtb = compact_virt_dtb(&work)?;

    let boot = RootTree::fresh_empty(&work.join("boot"))?;
    for blob in [BOOTCODE, "start.elf", "fixup.dat"] {
        boot.file(blob, &firmware_blob(blob), 0o644)?;
    }
    boot.copy("kernel7.img", &inputs.zimage, 0o644)?;
    for model in [PiModel::Pi2, PiModel::Pi3] {
        boot.copy(model.dtb(), &dtb, 0o644)?;
    }
    boot.file("overlays/README", b"stand-in: no overlays are played\n", 0o644)?;
    boot.file("config.txt", CONFIG_1X.as_bytes(), 0o644)?;
    boot.file("cmdline.txt", CMDLINE_1X.as_bytes(), 0o644)?;
    let rd = work.join(HARNESS_INITRAMFS);
    bbb1x_standin::build_harness_initramfs(inputs, &rd)?;
    boot.copy(HARNESS_INITRAMFS, &rd, 0o644)?;

    let root =
        bbb1x_standin::build_root(inputs, &work.join("root"), &Root1x { machine: "raspberrypi3" })?;
    root.copy(bbb1x_standin::STAGER_PATH, stager, 0o755)?;

    let conf = RootTree::fresh_empty(&work.join("conf"))?;
    conf.file("config.json", config_json().as_bytes(), 0o644)?;
    let data = resin1x_image::data_tree(&work.join("data"))?;

    let trees = [boot, root, conf, data].map(|t| t.root);
    StandInDisk::new(
        DISK_ID,
        &PARTITIONS,
        (EXTENDED_START, DISK_SECTORS),
        ("e1a10001-0000-4000-8000-00000000000", "0e1a000"),
    )
    .build(out, &work, &resin1x_image::contents(&trees))
    .context("building the Pi 1.x stand-in")?;
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

/// Builds the static ARMv7 `reboot-with-command` (qemu-tests/assets/pi/reboot-with-command.c)
/// into `dir` with Debian's `arm-linux-gnueabihf-gcc` (scripts/setup.sh installs it).
pub fn reboot_with_command(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let out = dir.join("reboot-with-command");
    let src = paths::workspace_root().join("qemu-tests/assets/pi/reboot-with-command.c");
    run(
        "arm-linux-gnueabihf-gcc",
        [
            std::ffi::OsStr::new("-static"),
            "-Os".as_ref(),
            "-Wall".as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
            src.as_os_str(),
        ],
    )?;
    Ok(out)
}
