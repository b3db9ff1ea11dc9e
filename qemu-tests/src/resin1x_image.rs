//! The resinOS 1.x stand-in for x86 (intel-nuc, UEFI): the 1.x partition names, order and
//! file systems (meta-resin 1.x `image_types_resin.bbclass` and balenahup's
//! `upgrade-1.x-to-2.x.sh`, cited in board-profiles' `resinos1x-intel-nuc.toml`) on an MBR
//! disk: `resin-boot` vfat 40 MiB at 4 MiB with GRUB's EFI application and `EFI/BOOT/grub.cfg`,
//! `resin-root` ext3 holding the kernel, `resin-updt` ext3 of the same size, an extended
//! partition with `resin-conf` vfat 20 MiB (config.json) and `resin-data` btrfs (the
//! applications' `/resin-data/<APP_ID>` with Docker's storage beside it).
//!
//! Sizes are scaled down so that resin-root and resin-updt coincide with the 2.x stand-in's
//! resin-rootA and resin-rootB ([`crate::resin_image::PARTITIONS`]): the planner stages on
//! resin-updt only when it lies inside the 2.x resin-rootB (written last) or past the image.
//! Built without mounting; OVMF boots it through `\EFI\BOOT\BOOTX64.EFI`.

use crate::disk::{self, SECTOR_BYTES};
use crate::grub_boot;
use crate::guest_initramfs::build_busybox_initramfs_with;
use crate::kernel::TestKernel;
use crate::paths;
use crate::resin_image::{self, StandInPartition};
use crate::rootfs::RootTree;
use crate::stamp::{self, Fingerprint};
use crate::standin_disk::StandInDisk;
use crate::tools::run;
use anyhow::{ensure, Result};
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;
const MIB_SECTORS: u64 = MIB / SECTOR_BYTES;
/// resinOS 1.x application id of the stand-in's one application.
pub const APP_ID: &str = "4321";
/// Apparent size of the Docker storage file beside resin-data (zeros: cheap on disk).
pub const DOCKER_BYTES: u64 = 40 * 1000 * 1000;
/// Apparent size of the extra application file of [`DataVariant::OverLimit`]: over the 170 MB
/// limit of the 1.x → 2.x path.
pub const OVER_LIMIT_BYTES: u64 = 200 * 1000 * 1000;
/// The WiFi network in config.json's `files."network/network.config"` (connman format).
pub const WIFI_SSID: &str = "Plant WiFi";

/// p1 resin-boot, p2 resin-root, p3 resin-updt, (p4 extended), p5 resin-conf, p6 resin-data.
pub const PARTITIONS: [StandInPartition; 5] = [
    StandInPartition {
        label: "resin-boot",
        start: 4 * MIB_SECTORS,
        sectors: 40 * MIB_SECTORS,
        mbr_type: "c",
        fs: "vfat",
    },
    StandInPartition {
        label: "resin-root",
        start: 44 * MIB_SECTORS,
        sectors: 96 * MIB_SECTORS,
        mbr_type: "83",
        fs: "ext3",
    },
    StandInPartition {
        label: "resin-updt",
        start: 140 * MIB_SECTORS,
        sectors: 96 * MIB_SECTORS,
        mbr_type: "83",
        fs: "ext3",
    },
    StandInPartition {
        label: "resin-conf",
        start: 237 * MIB_SECTORS,
        sectors: 20 * MIB_SECTORS,
        mbr_type: "c",
        fs: "vfat",
    },
    StandInPartition {
        label: "resin-data",
        start: 258 * MIB_SECTORS,
        sectors: 400 * MIB_SECTORS,
        mbr_type: "83",
        fs: "btrfs",
    },
];
pub const EXTENDED_START: u64 = 236 * MIB_SECTORS;
pub const DISK_SECTORS: u64 = 658 * MIB_SECTORS;

/// What the data partition's resin-data holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataVariant {
    /// A small application database and WiFi Connect's network.config.
    Small,
    /// The same plus a 200 MB file: over the path's backup limit.
    OverLimit,
}

const RECIPE: &str = concat!(
    include_str!("resin1x_image.rs"),
    include_str!("grub_boot.rs"),
    include_str!("guest_initramfs.rs"),
    include_str!("../assets/resin1x/grub.cfg"),
    include_str!("../assets/resin1x/init"),
);

/// A built, pristine 1.x stand-in disk. Tests take fresh copies.
#[derive(Debug, Clone)]
pub struct Resin1xImage {
    pub path: PathBuf,
}

impl Resin1xImage {
    /// Builds the disk if its inputs changed since the last build.
    pub fn ensure(variant: DataVariant) -> Result<Resin1xImage> {
        let kernel = TestKernel::locate()?;
        let name = match variant {
            DataVariant::Small => "resinos1x-standin.img",
            DataVariant::OverLimit => "resinos1x-standin-over-limit.img",
        };
        let path = paths::images_dir().join(name);
        let mut fp = Fingerprint::new(RECIPE);
        fp.text(&kernel.version)
            .text(&format!("{variant:?}"))
            .file(Path::new(crate::rootfs::BUSYBOX))?
            .file(&Path::new(grub_boot::GRUB_X86_64_EFI).join("kernel.img"))?;
        let what = format!("resinOS 1.x stand-in ({variant:?})");
        stamp::build_if_stale(&path, &fp, &[], &what, || build(&kernel, &path, variant))?;
        Ok(Resin1xImage { path })
    }

    /// A fresh writable copy (sparse) for one run.
    pub fn fresh_copy(&self, name: &str) -> Result<PathBuf> {
        let dst = paths::artifacts_dir().join("runs").join(format!("{name}.img"));
        if let Some(d) = dst.parent() {
            std::fs::create_dir_all(d)?;
        }
        run(
            "cp",
            [std::ffi::OsStr::new("--sparse=always"), self.path.as_os_str(), dst.as_os_str()],
        )?;
        Ok(dst)
    }
}

/// config.json of a 1.x device on resin-conf: its device type, the application and a connman
/// WiFi network in `files."network/network.config"` (profile source [S2]).
pub fn config_json(device_type: &str, hostname: &str) -> String {
    let network =
        format!("[service_home_wifi]\nType = wifi\nName = {WIFI_SSID}\nPassphrase = secret one\n");
    serde_json::json!({
        "applicationId": APP_ID,
        "deviceType": device_type,
        "hostname": hostname,
        "files": { "network/network.config": network },
    })
    .to_string()
}

/// resin-data of a 1.x device, in `dir`: the application's data, WiFi Connect's
/// network.config, the 1.x supervisor's database beside the applications' directories (not
/// carried) and Docker's storage (a sparse file of [`DOCKER_BYTES`], not carried).
pub fn data_tree(dir: &Path) -> Result<RootTree> {
    let data = RootTree::fresh_empty(dir)?;
    data.file(&format!("resin-data/{APP_ID}/app.db"), &vec![0x5a; 300_000], 0o644)?;
    data.file(
        &format!("resin-data/{APP_ID}/network.config"),
        b"[service_wifi_connect]\nType = wifi\nName = Shop WiFi\nPassphrase = secret two\n",
        0o644,
    )?;
    data.file("resin-data/resin-supervisor/database.sqlite", &vec![0x1a; 20_000], 0o644)?;
    std::fs::create_dir_all(data.path("docker/overlay"))?;
    sparse(&data.path("docker/overlay/layer.tar"), DOCKER_BYTES)?;
    Ok(data)
}

/// The 1.x partitions' contents for [`StandInDisk::build`], from the trees of resin-boot,
/// resin-root, resin-conf and resin-data in that order.
pub fn contents(trees: &[PathBuf; 4]) -> [(&'static str, &Path); 4] {
    let [boot, root, conf, data] = trees;
    [("resin-boot", boot), ("resin-root", root), ("resin-conf", conf), ("resin-data", data)]
}

/// A sparse file of `bytes` apparent size (reads as zeros).
fn sparse(path: &Path, bytes: u64) -> Result<()> {
    disk::create_sparse(path, bytes)
}

/// Module files and directories of the kernel package copied into resin-root's
/// `/lib/modules/<release>`: what the profile's initramfs modules (disks, ext4, vfat, btrfs,
/// nls, efivarfs) need, with their dependencies.
const MODULE_SUBSET: &[&str] = &[
    "kernel/fs/btrfs",
    "kernel/fs/ext4",
    "kernel/fs/jbd2",
    "kernel/fs/mbcache.ko",
    "kernel/fs/fat",
    "kernel/fs/nls",
    "kernel/fs/efivarfs",
    "kernel/drivers/ata",
    "kernel/drivers/nvme",
    "kernel/drivers/scsi/sd_mod.ko",
    "kernel/drivers/scsi/scsi_mod.ko",
    "kernel/drivers/scsi/scsi_common.ko",
    "kernel/lib",
    "kernel/crypto",
    "kernel/arch",
    "kernel/block",
];

fn build(kernel: &TestKernel, out: &Path, variant: DataVariant) -> Result<()> {
    // The planner's rule the sizes are chosen for: resin-updt inside the 2.x resin-rootB.
    let root_b = resin_image::PARTITIONS[2];
    let updt = PARTITIONS[2];
    ensure!(
        root_b.start <= updt.start && updt.start + updt.sectors <= root_b.start + root_b.sectors,
        "resin-updt must lie inside the 2.x stand-in's resin-rootB"
    );
    let work = out.with_extension("work");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let assets = paths::workspace_root().join("qemu-tests/assets/resin1x");

    // resin-boot: GRUB as the firmware's default EFI application, and its grub.cfg.
    let boot = RootTree { root: work.join("boot") };
    std::fs::create_dir_all(boot.path("EFI/BOOT"))?;
    // The built-in modules of poky's grub-efi of the 1.x era (GRUB_BUILDIN "boot linux ext2 fat
    // serial part_msdos part_gpt normal efi_gop iso9660 search": no loadenv, no test), plus echo
    // and terminal for the stand-in's console lines. swapover's one-shot must not need more.
    grub_boot::build_efi_image(
        &boot.path("EFI/BOOT/BOOTX64.EFI"),
        "/EFI/BOOT",
        &[
            "boot",
            "linux",
            "ext2",
            "fat",
            "serial",
            "part_msdos",
            "part_gpt",
            "normal",
            "efi_gop",
            "iso9660",
            "search",
            "echo",
            "terminal",
        ],
    )?;
    boot.copy("EFI/BOOT/grub.cfg", &assets.join("grub.cfg"), 0o644)?;

    // resin-root: the kernel and the stand-in's init, a 1.x os-release.
    let root = RootTree { root: work.join("root") };
    std::fs::create_dir_all(&root.root)?;
    root.copy("boot/bzImage", &kernel.vmlinuz(), 0o644)?;
    let initramfs = work.join("initramfs");
    build_busybox_initramfs_with(
        &initramfs,
        kernel,
        &std::fs::read(assets.join("init"))?,
        &["btrfs", "efivarfs"],
    )?;
    root.copy("boot/initramfs", &initramfs, 0o644)?;
    // The kernel's modules (the subset the migration initramfs draws from), as resinOS 1.x
    // keeps them in /lib/modules/<release>, indexed by depmod.
    let kver = &kernel.version;
    for sub in MODULE_SUBSET {
        let src = kernel.module_tree().join(sub);
        let dst = format!("lib/modules/{kver}/{sub}");
        if src.is_dir() {
            root.copy_dir(&dst, &src)?;
        } else if src.exists() {
            root.copy(&dst, &src, 0o644)?;
        }
    }
    for f in ["modules.builtin", "modules.builtin.modinfo", "modules.order"] {
        root.copy(&format!("lib/modules/{kver}/{f}"), &kernel.module_tree().join(f), 0o644)?;
    }
    run("depmod", ["-b", &root.root.to_string_lossy(), kver.as_str()])?;
    // The mount points of resin-boot, resin-conf and resin-data, as in the 1.x rootfs
    // (meta-resin's resin-mounts): the migrator mounts resin-data at the old root's /mnt/data.
    for dir in ["mnt/boot", "mnt/conf", "mnt/data"] {
        std::fs::create_dir_all(root.path(dir))?;
    }
    root.file(
        "etc/os-release",
        b"ID=\"resin-os\"\nNAME=\"Resin OS\"\nVERSION=\"1.26.0\"\nVERSION_ID=\"1.26.0\"\nPRETTY_NAME=\"Resin OS 1.26.0 (stand-in)\"\nMACHINE=\"intel-nuc\"\n",
        0o644,
    )?;

    // resin-conf: config.json with a connman WiFi network in its files.
    let conf = RootTree::fresh_empty(&work.join("conf"))?;
    conf.file("config.json", config_json(resin_image::DEVICE_TYPE, "nuc-1x").as_bytes(), 0o644)?;
    let data = data_tree(&work.join("data"))?;
    if variant == DataVariant::OverLimit {
        sparse(&data.path(&format!("resin-data/{APP_ID}/big.bin")), OVER_LIMIT_BYTES)?;
    }
    let trees = [boot, root, conf, data].map(|t| t.root);
    StandInDisk::new(
        "0x1c0ffee1",
        &PARTITIONS,
        (EXTENDED_START, DISK_SECTORS),
        ("1e51a000-0000-4000-8000-00000000000", "1c0f000"),
    )
    .build(out, &work, &contents(&trees))?;
    std::fs::remove_dir_all(&work)?;
    Ok(())
}
