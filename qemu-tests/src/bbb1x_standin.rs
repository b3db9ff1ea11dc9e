//! The BeagleBone Black resinOS 1.x stand-in that runs the real ARMv7 stager (issue 16,
//! docs/arm-1x-contract.md §4.2): a disk in the BBB 1.x layout (contract P6/B1) booted by the
//! harness U-Boot (`qemu_tests::bbb_uboot`), whose resin-root is a real root file system:
//!
//! - resin-boot (FAT, 40 MiB at 4 MiB): `MLO` and `u-boot.img` stand-ins (balena-beaglebone
//!   1.X `resin-image.inc`, `RESIN_BOOT_PARTITION_FILES`) and the 1.x `uEnv.txt`
//!   (`mmcdev=1`, `bootpart=1:2`, contract B2);
//! - resin-root (ext3): `/boot/zImage` (Debian's armhf kernel standing for the 1.x one, B1),
//!   the harness dtb and initramfs beside it, `/lib/modules/<release>` (a subset, indexed by
//!   `depmod`), busybox, the packaged ARMv7 stager at [`STAGER_PATH`], the 1.x
//!   `/etc/os-release`, and `/sbin/init` (qemu-tests/assets/bbb/init-1x);
//! - resin-updt (ext3, the same size, empty), resin-conf (FAT: config.json with a connman WiFi
//!   network in its `files`), resin-data (btrfs, as the profile says: the x86 1.x stand-in's
//!   [`resin1x_image::data_tree`]).
//!
//! Named deviation: the 1.x BSP boots the kernel without an initramfs (its kernel mounts
//! resin-root itself). Debian's kernel has virtio and ext4 as modules, so the harness `boot.scr`
//! loads a small initramfs (qemu-tests/assets/bbb/harness-initramfs-init) that loads them,
//! mounts the booted partition read-only and switch_roots into it.
//!
//! Sizes are scaled down so that resin-updt coincides with the BBB 2.x stand-in's resin-rootB
//! ([`crate::bbb2x_standin::PARTITIONS`]), as the planner requires of a staging partition.

use crate::bbb2x_standin;
use crate::bbb_uboot::{
    self, BbbInputs, HARNESS_DTB, HARNESS_INITRAMFS, MLO_STANDIN, UBOOT_IMG_1X,
};
use crate::disk::SECTOR_BYTES;
use crate::paths;
use crate::resin1x_image;
use crate::resin_image::StandInPartition;
use crate::rootfs::{busybox_applets, RootTree};
use crate::stamp::{self, Fingerprint};
use crate::standin_disk::StandInDisk;
use crate::tools::run;
use anyhow::{ensure, Context, Result};
use initramfs::{Compression, InitramfsBuilder};
use std::path::{Path, PathBuf};

const MIB_SECTORS: u64 = (1 << 20) / SECTOR_BYTES;
/// Where the 1.x stand-in's root holds the packaged ARMv7 stager.
pub const STAGER_PATH: &str = "/usr/bin/stager";
/// The test profile's name (the stem of its file, as `--profile-file` names it).
pub const TEST_PROFILE: &str = "resinos1x-beaglebone-black-qemu";
/// The built-in profile the test profile is made from.
const REAL_PROFILE: &str = "board-profiles/profiles/resinos1x-beaglebone-black.toml";
/// The MBR disk identifier of the stand-in.
pub const DISK_ID: &str = "0x0bbb1a01";

/// p1 resin-boot, p2 resin-root, p3 resin-updt, (p4 extended), p5 resin-conf, p6 resin-data.
pub const PARTITIONS: [StandInPartition; 5] = [
    StandInPartition::mib("resin-boot", 4, 40, "c", "vfat"),
    StandInPartition::mib("resin-root", 44, 64, "83", "ext3"),
    StandInPartition::mib("resin-updt", 108, 64, "83", "ext3"),
    StandInPartition::mib("resin-conf", 173, 20, "c", "vfat"),
    StandInPartition::mib("resin-data", 194, 200, "83", "btrfs"),
];
pub const EXTENDED_START: u64 = 172 * MIB_SECTORS;
pub const DISK_SECTORS: u64 = 394 * MIB_SECTORS;

/// Module directories of the armhf kernel copied into resin-root's `/lib/modules/<release>`:
/// virtio (disk, network), ext4, FAT, btrfs and what they depend on.
const MODULE_SUBSET: &[&str] = &[
    "kernel/drivers/virtio",
    "kernel/drivers/block/virtio_blk.ko",
    "kernel/drivers/net/virtio_net.ko",
    "kernel/drivers/net/net_failover.ko",
    "kernel/net/core/failover.ko",
    "kernel/fs/btrfs",
    "kernel/fs/ext4",
    "kernel/fs/jbd2",
    "kernel/fs/mbcache.ko",
    "kernel/fs/fat",
    "kernel/fs/nls",
    "kernel/lib",
    "kernel/crypto",
    "kernel/arch",
];

/// Modules of the harness initramfs: the disk and the root's file system.
const HARNESS_INITRAMFS_MODULES: [&str; 4] =
    ["virtio_mmio", "virtio_blk", "crc32c_generic", "ext4"];

const RECIPE: &str = concat!(
    include_str!("bbb1x_standin.rs"),
    include_str!("bbb_uboot.rs"),
    include_str!("standin_disk.rs"),
    include_str!("../assets/bbb/init-1x"),
    include_str!("../assets/bbb/harness-initramfs-init"),
);

/// A built, pristine BBB 1.x stand-in disk. Tests take fresh copies.
#[derive(Debug, Clone)]
pub struct Bbb1xImage {
    pub path: PathBuf,
}

impl Bbb1xImage {
    /// Builds the disk if its inputs (this recipe, the kernel, busybox, the packaged ARMv7
    /// stager) changed since the last build.
    pub fn ensure(inputs: &BbbInputs) -> Result<Bbb1xImage> {
        let stager = packaged_armv7_stager()?;
        let path = paths::images_dir().join("bbb-resinos1x-standin.img");
        let mut fp = Fingerprint::new(RECIPE);
        fp.text(&inputs.kernel_version).file(&inputs.busybox)?.file(&stager)?;
        stamp::build_if_stale(&path, &fp, &[], "the BBB resinOS 1.x stand-in", || {
            build(inputs, &stager, &path)
        })?;
        Ok(Bbb1xImage { path })
    }

    /// A fresh writable copy (sparse) for one run, in `dir`.
    pub fn fresh_copy(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let dst = dir.join("bbb-1x.img");
        run(
            "cp",
            [std::ffi::OsStr::new("--sparse=always"), self.path.as_os_str(), dst.as_os_str()],
        )?;
        Ok(dst)
    }
}

/// The packaged ARMv7 stager (stager + migrator), built by scripts/build-static.sh.
pub fn packaged_armv7_stager() -> Result<PathBuf> {
    let path = paths::workspace_root().join("target/swapover/armv7/stager");
    ensure!(
        path.exists(),
        "no packaged ARMv7 stager at {}: run scripts/build-static.sh first",
        path.display()
    );
    Ok(path)
}

/// The 1.x stand-in's `config.json` (resin-conf), as on x86 but for the BBB.
pub fn config_json() -> String {
    resin1x_image::config_json("beaglebone-black", "bbb-1x")
}

/// The test profile for `-M virt`, written to `dir/<TEST_PROFILE>.toml` for `stager
/// --profile-file`: the built-in BBB profile with these deviations, each replacing one line
/// (a missing line fails the build, so the two cannot drift apart unnoticed):
/// 1. `uboot_trial.interface` `mmc` → `virtio`: the harness U-Boot reads virtio disks
///    (contract §4.2);
/// 2. `uboot_trial.bootcount` AM33XX RTC `scratch2` (0x44E3E068, big-endian) → the harness
///    U-Boot's RAM counter (`CONFIG_SYS_BOOTCOUNT_ADDR=0x5c000000` in
///    scripts/setup-bbb-uboot.sh, `BOOTCOUNT_GENERIC`: a little-endian word);
/// 3. `uboot_trial.dtb` `/boot/am335x-boneblack.dtb` → the harness dtb on resin-root (the
///    kernel stays `/boot/zImage`);
/// 4. `uboot_trial.watchdog` `/dev/watchdog` (OMAP, started by U-Boot) → none: `-M virt` has
///    no OMAP watchdog;
/// 5. `initramfs.modules` + `virtio_mmio`, `virtio_blk`: the disk on `virt` (the BBB's eMMC
///    driver is the board kernel's).
pub fn write_test_profile(dir: &Path) -> Result<PathBuf> {
    let dtb = format!("/{HARNESS_DTB}");
    let deviations: [(&str, String); 6] = [
        (
            "description = \"resinOS 1.x BeagleBone Black -> resinOS 2.x beaglebone-black\"",
            "description = \"resinOS 1.x BeagleBone Black under QEMU -M virt (test profile)\""
                .to_string(),
        ),
        virt_disk_modules(),
        ("interface = \"mmc\"", "interface = \"virtio\"".to_string()),
        (
            "bootcount = { address = 0x44E3E068, byte_order = \"big-endian\" }",
            format!(
                "bootcount = {{ address = {}, byte_order = \"little-endian\" }}",
                bbb_uboot::COUNTER_ADDR
            ),
        ),
        ("dtb = \"/boot/am335x-boneblack.dtb\"", format!("dtb = \"{dtb}\"")),
        ("watchdog = \"/dev/watchdog\"", "# watchdog: none on -M virt".to_string()),
    ];
    write_derived_profile(dir, REAL_PROFILE, TEST_PROFILE, &deviations)
}

/// The ARM boards' `initramfs.modules` line and its `-M virt` deviation: + `virtio_mmio`,
/// `virtio_blk` (the disk on `virt`; the boards' SD/eMMC drivers are their kernels').
pub fn virt_disk_modules() -> (&'static str, String) {
    (
        "modules = [\"btrfs\", \"ext4\", \"fat\", \"vfat\", \"nls_cp437\", \"nls_iso8859_1\"]",
        "modules = [\"virtio_mmio\", \"virtio_blk\", \"btrfs\", \"ext4\", \"fat\", \"vfat\", \"nls_cp437\", \"nls_iso8859_1\"]"
            .to_string(),
    )
}

/// Writes `dir/<test_profile>.toml` for `stager --profile-file`: the built-in profile
/// `real_profile` (a path under the workspace) with `deviations`, each `(line, replacement)`
/// replacing one line, in file order (a missing line fails, so the test profile cannot drift
/// from the real one unnoticed).
pub fn write_derived_profile(
    dir: &Path,
    real_profile: &str,
    test_profile: &str,
    deviations: &[(&str, String)],
) -> Result<PathBuf> {
    let real = std::fs::read_to_string(paths::workspace_root().join(real_profile))?;
    let mut text = format!(
        "# {test_profile}: written by qemu-tests from {real_profile}\n\
         # with the deviations its writer names. Do not edit.\n"
    );
    let mut rest = real.as_str();
    for (line, replacement) in deviations {
        let (before, after) = rest
            .split_once(line)
            .with_context(|| format!("{real_profile} no longer has `{line}` (in this order)"))?;
        text.push_str(before);
        text.push_str(replacement);
        rest = after;
    }
    text.push_str(rest);
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{test_profile}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

fn build(inputs: &BbbInputs, stager: &Path, out: &Path) -> Result<()> {
    // The planner's rule the sizes are chosen for: resin-updt inside the 2.x resin-rootB.
    let root_b = bbb2x_standin::PARTITIONS[2];
    let updt = PARTITIONS[2];
    ensure!(
        root_b.start <= updt.start && updt.start + updt.sectors <= root_b.start + root_b.sectors,
        "resin-updt must lie inside the BBB 2.x stand-in's resin-rootB"
    );
    let work = RootTree::fresh_empty(&out.with_extension("work"))?.root;
    let boot = RootTree::fresh_empty(&work.join("boot"))?;
    let dtb = bbb_uboot::board_dtb(&work)?;

    // resin-boot: the BBB's boot files and the 1.x uEnv.txt.
    boot.file("MLO", MLO_STANDIN, 0o644)?;
    boot.file("u-boot.img", UBOOT_IMG_1X.as_bytes(), 0o644)?;
    boot.file("uEnv.txt", bbb_uboot::uenv_1x().as_bytes(), 0o644)?;

    // resin-root: a root file system, with the kernel, the harness dtb and initramfs in /boot
    // (contract B1).
    let root = build_root(inputs, &work.join("root"), &BBB_ROOT)?;
    root.copy("boot/zImage", &inputs.zimage, 0o644)?;
    root.copy(HARNESS_DTB, &dtb, 0o644)?;
    let rd = work.join("harness-initramfs.img");
    build_harness_initramfs(inputs, &rd)?;
    root.copy(HARNESS_INITRAMFS, &rd, 0o644)?;
    root.copy(STAGER_PATH, stager, 0o755)?;

    // resin-conf: config.json.
    let conf = RootTree::fresh_empty(&work.join("conf"))?;
    conf.file("config.json", config_json().as_bytes(), 0o644)?;

    let data = resin1x_image::data_tree(&work.join("data"))?;

    let trees = [boot, root, conf, data].map(|t| t.root);
    StandInDisk::new(
        DISK_ID,
        &PARTITIONS,
        (EXTENDED_START, DISK_SECTORS),
        ("bbb1a001-0000-4000-8000-00000000000", "0bbb100"),
    )
    .build(out, &work, &resin1x_image::contents(&trees))?;
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

/// What differs between the ARM boards' 1.x roots [`build_root`] makes.
#[derive(Debug, Clone, Copy)]
pub struct Root1x {
    /// `MACHINE` in `/etc/os-release`: the Yocto machine (`beaglebone` in balena-beaglebone,
    /// `raspberrypi2`/`raspberrypi3` in balena-raspberrypi).
    pub machine: &'static str,
}

const BBB_ROOT: Root1x = Root1x { machine: "beaglebone" };

/// A resinOS 1.x root file system in `dir` for the board `board`: busybox, `/sbin/init`
/// (qemu-tests/assets/bbb/init-1x, which serves every ARM board), `/lib/modules/<release>`
/// (a subset of the armhf kernel's, indexed by `depmod`), the mount points and the 1.x
/// `/etc/os-release`. The caller adds what lives on the root on its board only (the BBB's
/// `/boot`, the stager).
pub fn build_root(inputs: &BbbInputs, dir: &Path, board: &Root1x) -> Result<RootTree> {
    let assets = paths::workspace_root().join("qemu-tests/assets/bbb");
    let root = RootTree::fresh(dir)?;
    root.busybox_from(&inputs.busybox)?;
    root.copy("sbin/init", &assets.join("init-1x"), 0o755)?;
    let kver = &inputs.kernel_version;
    for sub in MODULE_SUBSET {
        let src = inputs.modules.join(sub);
        let dst = format!("lib/modules/{kver}/{sub}");
        if src.is_dir() {
            root.copy_dir(&dst, &src)?;
        } else {
            root.copy(&dst, &src, 0o644)?;
        }
    }
    for f in ["modules.builtin", "modules.builtin.modinfo", "modules.order"] {
        root.copy(&format!("lib/modules/{kver}/{f}"), &inputs.modules.join(f), 0o644)?;
    }
    run("depmod", ["-b", &root.root.to_string_lossy(), kver.as_str()])?;
    for dir in ["mnt/boot", "mnt/conf", "mnt/data", "var/lib"] {
        std::fs::create_dir_all(root.path(dir))?;
    }
    // resinOS 1.x's os-release (meta-resin 1.x `resin-os-release`: ID and NAME as on x86,
    // MACHINE the Yocto machine).
    root.file(
        "etc/os-release",
        format!(
            "ID=\"resin-os\"\nNAME=\"Resin OS\"\nVERSION=\"1.30.1\"\nVERSION_ID=\"1.30.1\"\nPRETTY_NAME=\"Resin OS 1.30.1 (stand-in)\"\nMACHINE=\"{}\"\n",
            board.machine
        )
        .as_bytes(),
        0o644,
    )?;
    Ok(root)
}

/// The harness initramfs (qemu-tests/assets/bbb/harness-initramfs-init) in `out`: loads the
/// disk and ext4 modules, mounts the 1.x root and switch_roots into it.
pub fn build_harness_initramfs(inputs: &BbbInputs, out: &Path) -> Result<()> {
    let assets = paths::workspace_root().join("qemu-tests/assets/bbb");
    InitramfsBuilder::new()
        .compression(Compression::Gzip)
        .busybox(inputs.busybox.as_path(), busybox_applets()?)
        .modules(&inputs.modules, HARNESS_INITRAMFS_MODULES)
        .init(std::fs::read(assets.join("harness-initramfs-init"))?)
        .write_to_path(out)
        .with_context(|| format!("building {}", out.display()))?;
    Ok(())
}
