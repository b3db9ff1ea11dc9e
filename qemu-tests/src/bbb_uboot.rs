//! The BeagleBone Black resinOS 1.x boot chain under QEMU with a real U-Boot (issue 16,
//! docs/arm-1x-contract.md §4.1–4.2): the U-Boot v2023.01 `qemu_arm` build with a generic RAM
//! boot counter (built by `scripts/setup-bbb-uboot.sh`), Debian's armhf armmp kernel, and a
//! small virtio disk in the BBB 1.x layout whose `uEnv.txt` comes from the `uboot-env` crate.
//!
//! What is real: U-Boot's hush, `env import`, `load` from FAT and ext3, `bootz`, its boot
//! counter (`bootcount`, kept over a warm reset, gone when the QEMU process ends — as the
//! AM33XX RTC `scratch2` word over a reboot or a power cut), the kernel.
//! What the harness plays:
//! - the ROM/MLO/SPL and the board's compiled-in environment: a harness disk (U-Boot's
//!   `virtio 0`, found by `qemu_arm`'s distro boot) holds a `boot.scr` ([`BOOT_CMD`]) that
//!   sets the am335x environment and runs its `mmcboot`, with `mmc` → `virtio`;
//! - the RTC word: RAM at [`COUNTER_ADDR`], kept out of Linux by a `/memreserve/` in the
//!   dtb the harness gives the kernels;
//! - the 1.x system: `/boot/zImage` on resin-root is the Debian kernel, and the stand-in
//!   loads an initramfs beside it (the real 1.x mounts resin-root instead) that prints
//!   [`MARK_1X_UP`] and warm-reboots.

use crate::disk::{self, SECTOR_BYTES};
use crate::paths;
use crate::qemu::Vm;
use crate::resin_image::StandInPartition;
use crate::rootfs::{busybox_applets, RootTree};
use crate::standin_disk::StandInDisk;
use crate::tools::run;
use anyhow::{Context, Result};
use initramfs::{Compression, InitramfsBuilder};
use std::path::{Path, PathBuf};
use uboot_env::{
    BootCount, BootPart, CommitEnv, ExistingUenv, TrialCount, TrialEnv, UbootInterface, TRIAL_DTB,
    TRIAL_INITRAMFS, TRIAL_KERNEL,
};

/// The RAM word of `CONFIG_SYS_BOOTCOUNT_ADDR` in scripts/setup-bbb-uboot.sh.
pub const COUNTER_ADDR: &str = "0x5c000000";
/// Printed by the harness `boot.scr` on every boot, before `mmcboot`.
pub const MARK_BOOTCOUNT: &str = "harness: bootcount=";
/// Printed by the 1.x stand-in's init.
pub const MARK_1X_UP: &str = "SWAPOVER-T 1x-up";
/// Printed by the working trial initramfs (the migrator's stand-in), with its command line.
pub const MARK_MIGRATOR_UP: &str = "SWAPOVER-T migrator-up";
/// Printed by the armed `swapover_boot` (uboot-env) before it loads anything.
pub const MARK_TRIAL_BOOT: &str = "swapover: trial boot ";
/// Printed by the committed `swapover_boot` (uboot-env) before it loads anything.
pub const MARK_RESUME_BOOT: &str = "swapover: resume boot ";

/// U-Boot's device number of the BBB disk: U-Boot numbers virtio-mmio devices in reverse
/// command-line order (contract §4.1), and the BBB disk comes first on the command line.
const BBB_VIRTIO_DEV: u32 = 1;

/// Stand-in for the BBB's compiled-in environment and `bootcmd` (U-Boot v2015.07, u-boot/u-boot
/// 33711bdd `include/configs/am335x_evm.h` lines 66–178 and `include/configs/ti_armv7_common.h`
/// 55–60, as read for contract B4): the same variables and the same `mmcboot` (boot.scr
/// skipped: the real p1 has none), with `mmc` → `virtio`, addresses moved from the BBB's RAM
/// at 0x80000000 to `virt`'s at 0x40000000 (same offsets), `console` ttyO0 → ttyAMA0, and
/// `findfdt` → the harness dtb. `mmcloados` differs: the stand-ins boot with an initramfs
/// beside the kernel ([`HARNESS_INITRAMFS`]; the real 1.x mounts resin-root by PARTUUID), and
/// the kernel gets `mem=448M` so that the counter word lies outside its RAM (as the RTC lies
/// outside the BBB's), where a `STRICT_DEVMEM` kernel lets `/dev/mem` read it.
///
/// Which U-Boot runs is the one resin-boot holds: the harness reads `harness_uboot` from
/// `u-boot.img` (a stand-in file of `key=value` text, see [`UBOOT_IMG_1X`]). For the 2.x
/// U-Boot (`2x`) it plays balena's integration before `mmcboot`: `resin_root_part` defaults
/// to 2 and is imported from `resinOS_uEnv.txt` on partition 1 when there is one, and
/// `bootpart` becomes `${mmcdev}:${resin_root_part}` (meta-balena `env_resin.h`
/// `resin_load_env_file`/`resin_import_env_file`, `RESIN_ENV_FILE = "resinOS_uEnv.txt"`,
/// `RESIN_DEFAULT_ROOT_PART = "2"` in `u-boot-resin.inc`; balena-beaglebone
/// `recipes-bsp/u-boot/u-boot/0004-Integrate-with-Balena-environment-configuration.patch`:
/// `bootcmd` = `… run resin_set_kernel_root; setenv mmcdev ${resin_dev_index}; setenv bootpart
/// ${resin_dev_index}:${resin_root_part}; run set_os_cmdline; run envboot; run mmcboot`, so
/// uEnv.txt is still imported and `uenvcmd` still runs). Not played: 2.x's device scan, its
/// `bootcount.env` rollback (`os_bc_*`) and `os_cmdline`.
const BOOT_CMD: &str = r#"echo harness: bootcount=${bootcount}
setenv loadaddr 0x42000000
setenv fdtaddr 0x48000000
setenv rdaddr 0x48080000
setenv console ttyAMA0,115200n8
setenv bootenv uEnv.txt
setenv bootdir /boot
setenv bootfile zImage
setenv fdtfile harness-virt.dtb
setenv mmcdev 1
setenv bootpart 1:2
setenv harness_uboot 1x
setenv harness_os 1x
setenv loaduboot 'load virtio ${mmcdev}:1 ${loadaddr} u-boot.img'
setenv importuboot 'env import -t ${loadaddr} ${filesize} harness_uboot'
if run loaduboot; then run importuboot; fi
setenv resin_root_part 2
setenv loadresinenv 'load virtio ${mmcdev}:1 ${loadaddr} resinOS_uEnv.txt'
setenv importresinenv 'env import -t ${loadaddr} ${filesize}'
setenv balena2x 'if run loadresinenv; then run importresinenv; fi; setenv bootpart ${mmcdev}:${resin_root_part}; setenv harness_os 2x'
if test "${harness_uboot}" = "2x"; then run balena2x; fi
echo harness: u-boot.img=${harness_uboot} bootpart=${bootpart}
setenv loadbootenv 'load virtio ${mmcdev} ${loadaddr} ${bootenv}'
setenv importbootenv 'echo Importing environment from mmc ...; env import -t -r ${loadaddr} ${filesize}'
setenv loadimage 'load virtio ${bootpart} ${loadaddr} ${bootdir}/${bootfile}'
setenv loadfdt 'load virtio ${bootpart} ${fdtaddr} ${bootdir}/${fdtfile}'
setenv loadrd 'load virtio ${bootpart} ${rdaddr} ${bootdir}/harness-initramfs.img'
setenv mmcloados 'setenv bootargs console=${console} panic=10 mem=448M harness.os=${harness_os} harness.root=${bootpart}; if run loadfdt; then if run loadrd; then bootz ${loadaddr} ${rdaddr}:${filesize} ${fdtaddr}; fi; fi'
setenv mmcboot 'if virtio dev ${mmcdev}; then echo SD/MMC found on device ${mmcdev}; if run loadbootenv; then echo Loaded environment from ${bootenv}; run importbootenv; fi; if test -n $uenvcmd; then echo Running uenvcmd ...; run uenvcmd; fi; if run loadimage; then run mmcloados; fi; fi'
run mmcboot
echo harness: mmcboot returned
"#;

/// The harness's dtb and initramfs beside `/boot/zImage` on the root partition the stand-in
/// U-Boot boots (1.x resin-root, 2.x resin-rootA).
pub const HARNESS_DTB: &str = "boot/harness-virt.dtb";
pub const HARNESS_INITRAMFS: &str = "boot/harness-initramfs.img";

/// resin-boot's `u-boot.img` stand-ins: text the harness `boot.scr` imports to know which
/// U-Boot the board would run (the ROM/SPL and U-Boot itself are QEMU's `-bios`). The 1.x
/// one also carries, in a comment line (`env import -t` skips lines starting with `#`), the
/// strings `stager stage-1x` looks for in the board's u-boot.img before it arms the trial
/// (`UBOOT_NEEDS` in stager/src/stage/resinos1x/stage_1x.rs): the real v2015.07 BBB build
/// has them (`CONFIG_BOOTCOUNT_LIMIT`'s `bootcount`, `mmcboot`'s `uenvcmd`, `bootz`), as the
/// harness's own U-Boot (-bios) does.
pub const UBOOT_IMG_1X: &str =
    "# stand-in: U-Boot v2015.07 of resinOS 1.x (QEMU -bios runs the harness U-Boot)\n\
     # strings of the real one the stager checks: bootcount uenvcmd bootz\n\
     harness_uboot=1x\n";
pub const UBOOT_IMG_2X: &str =
    "# stand-in: U-Boot of resinOS 2.x with balena's environment (QEMU -bios runs the harness U-Boot)\nharness_uboot=2x\n";
pub const MLO_STANDIN: &[u8] = b"stand-in: the AM335x ROM's SPL is played by QEMU -bios\n";
/// The 2.x image's `MLO` stand-in: another SPL than 1.x's, as on the board (2.x builds its
/// own U-Boot and SPL), so that a migration renames both blobs through the window.
pub const MLO_STANDIN_2X: &[u8] =
    b"stand-in: the AM335x ROM's SPL of resinOS 2.x is played by QEMU -bios\n";

/// The 1.x stand-in's `/init`: says it is up and reboots warm (the counter goes on).
const INIT_1X: &str = r#"#!/bin/sh
mount -t proc proc /proc
echo "SWAPOVER-T 1x-up cmdline=$(cat /proc/cmdline)"
echo "SWAPOVER-T 1x-reboot"
reboot -f
"#;

/// The working trial's `/init`: says it is up and stays up (the test cuts the power).
const INIT_TRIAL: &str = r#"#!/bin/sh
mount -t proc proc /proc
echo "SWAPOVER-T migrator-up cmdline=$(cat /proc/cmdline)"
while true; do sleep 60; done
"#;

/// The built inputs from `.cache/` (scripts/setup-bbb-uboot.sh).
#[derive(Debug, Clone)]
pub struct BbbInputs {
    pub uboot_bin: PathBuf,
    pub mkimage: PathBuf,
    pub zimage: PathBuf,
    pub busybox: PathBuf,
    /// `uname -r` of the armhf kernel.
    pub kernel_version: String,
    /// Its `/lib/modules/<version>` (with `modules.dep`).
    pub modules: PathBuf,
}

/// The harness U-Boot's build (`u-boot.bin`, `mkimage`), made by scripts/setup-bbb-uboot.sh.
pub fn harness_uboot_dir() -> PathBuf {
    paths::cache_dir().join("uboot/current")
}

impl BbbInputs {
    pub fn locate() -> Result<BbbInputs> {
        let cache = paths::cache_dir();
        let uboot = harness_uboot_dir();
        let kdir = cache.join("kernel-armhf");
        let version = std::fs::read_to_string(kdir.join("VERSION"))
            .context("no armhf kernel in .cache/kernel-armhf: run scripts/setup.sh")?;
        let inputs = BbbInputs {
            uboot_bin: uboot.join("u-boot.bin"),
            mkimage: uboot.join("mkimage"),
            zimage: kdir.join("root/boot").join(format!("vmlinuz-{}", version.trim())),
            busybox: cache.join("busybox-armhf/root/bin/busybox"),
            kernel_version: version.trim().to_string(),
            modules: kdir.join("root/lib/modules").join(version.trim()),
        };
        for p in [
            &inputs.uboot_bin,
            &inputs.mkimage,
            &inputs.zimage,
            &inputs.busybox,
            &inputs.modules.join("modules.dep"),
        ] {
            anyhow::ensure!(p.exists(), "missing {}: run scripts/setup.sh", p.display());
        }
        Ok(inputs)
    }
}

/// What the trial initramfs on resin-boot does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialKind {
    /// `/init` prints [`MARK_TRIAL_UP`].
    Working,
    /// An `/init` the kernel cannot execute (its interpreter is missing) and no shell to
    /// fall back to: the kernel panics ("No working init found") and `panic=10` resets the
    /// board.
    BrokenInit,
}

const MIB_SECTORS: u64 = (1 << 20) / SECTOR_BYTES;
/// The BBB 1.x layout (contract P6/B1: resin-boot FAT at 4 MiB with the boot flag, resin-root
/// and resin-updt ext3 of one size, extended, resin-conf FAT, resin-data), with small root
/// and data partitions; resin-data is ext4 here (btrfs needs > 100 MiB; U-Boot never reads it).
const PARTITIONS: [StandInPartition; 5] = [
    StandInPartition::mib("resin-boot", 4, 40, "c", "vfat"),
    StandInPartition::mib("resin-root", 44, 32, "83", "ext3"),
    StandInPartition::mib("resin-updt", 76, 32, "83", "ext3"),
    StandInPartition::mib("resin-conf", 109, 20, "c", "vfat"),
    StandInPartition::mib("resin-data", 130, 16, "83", "ext4"),
];
const EXTENDED_START: u64 = 108 * MIB_SECTORS;
const DISK_SECTORS: u64 = 146 * MIB_SECTORS;

/// The uEnv.txt a BBB 1.x eMMC carries (balena-beaglebone 1.X
/// `recipes-bsp/u-boot/u-boot-ti-staging/uEnv.txt_internal`, contract B2), with the device
/// number U-Boot gives the test's disk.
pub fn uenv_1x() -> String {
    format!("mmcdev={BBB_VIRTIO_DEV}\nbootpart={BBB_VIRTIO_DEV}:2\n")
}

/// The trial `uEnv.txt` from the `uboot-env` crate, armed for the boot after a counter at `now`.
pub fn trial_uenv(now: BootCount) -> Result<String> {
    let existing = ExistingUenv::parse(uenv_1x().as_bytes())?;
    let env = TrialEnv {
        interface: UbootInterface::Virtio,
        mmcdev: BBB_VIRTIO_DEV,
        bootpart: BootPart { device: BBB_VIRTIO_DEV, partition: 2 },
        trial_count: TrialCount::after(now)?,
    };
    Ok(env.render(&existing)?)
}

/// Phase B on the BBB disk: `uEnv.txt` replaced by the `uboot-env` crate's commit text (the
/// migrator's rename is not played: this writes the file with mtools between power-ons).
pub fn commit(bbb_disk: &Path) -> Result<()> {
    let existing = ExistingUenv::parse(uenv_1x().as_bytes())?;
    let env = CommitEnv {
        interface: UbootInterface::Virtio,
        mmcdev: BBB_VIRTIO_DEV,
        bootpart: BootPart { device: BBB_VIRTIO_DEV, partition: 2 },
    };
    let table = disk::PartitionTable::read(bbb_disk)?;
    disk::write_fat_file(bbb_disk, table.number(1)?, "uEnv.txt", env.render(&existing)?.as_bytes())
}

/// QEMU's own `virt` device tree for the ARM boards' machine ([`crate::qemu::arm_virt_command`]),
/// dumped to `work/virt.dtb`.
pub fn virt_dtb(work: &Path) -> Result<PathBuf> {
    let dumped = work.join("virt.dtb");
    run(
        "qemu-system-arm",
        [
            "-M".into(),
            format!("virt,dumpdtb={}", dumped.display()),
            "-cpu".into(),
            "cortex-a15".into(),
            "-m".into(),
            "512".into(),
            "-display".into(),
            "none".into(),
        ],
    )?;
    Ok(dumped)
}

/// The VMs' dtb: QEMU's own `virt` tree (dumped) plus a `/memreserve/` over the counter word,
/// so that no kernel writes the RAM the counter lives in.
pub fn board_dtb(work: &Path) -> Result<PathBuf> {
    let dumped = virt_dtb(work)?;
    let dts = String::from_utf8(run(
        "dtc",
        ["-q", "-I", "dtb", "-O", "dts"]
            .map(Into::into)
            .into_iter()
            .chain([dumped.into_os_string()]),
    )?)?;
    let dts =
        dts.replacen("/dts-v1/;", &format!("/dts-v1/;\n/memreserve/ {COUNTER_ADDR} 0x1000;"), 1);
    anyhow::ensure!(dts.contains("/memreserve/"), "no /dts-v1/ header in the dumped dtb");
    let out = work.join("board.dtb");
    crate::tools::run_with_input(
        "dtc",
        ["-q", "-I", "dts", "-O", "dtb", "-o"]
            .map(std::ffi::OsString::from)
            .into_iter()
            .chain([out.clone().into_os_string()]),
        Some(dts.as_bytes()),
    )?;
    Ok(out)
}

/// A gzip initramfs with `init` and, unless `kind` is [`TrialKind::BrokenInit`], the armhf
/// busybox.
pub fn initramfs(out: &Path, inputs: &BbbInputs, init: &str, kind: TrialKind) -> Result<()> {
    let mut builder = InitramfsBuilder::new().compression(Compression::Gzip);
    builder = match kind {
        // The applet list of the host's busybox: the same Debian busybox-static version.
        TrialKind::Working => builder.busybox(inputs.busybox.as_path(), busybox_applets()?),
        // Without a shell, the kernel's fallbacks after a failed /init (/sbin/init … /bin/sh)
        // fail too.
        TrialKind::BrokenInit => builder,
    };
    builder
        .init(init.as_bytes().to_vec())
        .write_to_path(out)
        .with_context(|| format!("building {}", out.display()))?;
    Ok(())
}

/// The broken trial's `/init`: its interpreter does not exist, so exec fails.
const INIT_BROKEN: &str = "#!/bin/no-such-shell\n";

/// Builds, in `dir`, the harness disk (boot.scr) and a BBB disk armed for a trial of `kind`
/// on the boot after power-on (counter 1 → trial at 2). Returns (bbb disk, harness disk).
pub fn build_disks(dir: &Path, inputs: &BbbInputs, kind: TrialKind) -> Result<(PathBuf, PathBuf)> {
    let work = dir.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let dtb = board_dtb(&work)?;

    let harness_disk = build_harness_disk(dir, inputs, &[])?;

    // resin-boot: the BBB's boot files (dummies: the ROM/SPL are played), the armed
    // uEnv.txt and the trial's files as the stager copies them.
    let boot = RootTree { root: work.join("boot") };
    std::fs::create_dir_all(&boot.root)?;
    boot.file("MLO", MLO_STANDIN, 0o644)?;
    boot.file("u-boot.img", UBOOT_IMG_1X.as_bytes(), 0o644)?;
    boot.file("uEnv.txt", trial_uenv(BootCount(1))?.as_bytes(), 0o644)?;
    boot.copy(TRIAL_KERNEL, &inputs.zimage, 0o644)?;
    boot.copy(TRIAL_DTB, &dtb, 0o644)?;
    let trial_rd = work.join("trial-initramfs.img");
    let trial_init = match kind {
        TrialKind::Working => INIT_TRIAL,
        TrialKind::BrokenInit => INIT_BROKEN,
    };
    initramfs(&trial_rd, inputs, trial_init, kind)?;
    boot.copy(TRIAL_INITRAMFS, &trial_rd, 0o644)?;

    // resin-root: /boot/zImage (contract B1) and the stand-in's dtb and initramfs.
    let root = RootTree { root: work.join("root") };
    std::fs::create_dir_all(&root.root)?;
    root.copy("boot/zImage", &inputs.zimage, 0o644)?;
    root.copy(HARNESS_DTB, &dtb, 0o644)?;
    let rd_1x = work.join("initramfs-1x.img");
    initramfs(&rd_1x, inputs, INIT_1X, TrialKind::Working)?;
    root.copy(HARNESS_INITRAMFS, &rd_1x, 0o644)?;

    let conf = RootTree { root: work.join("conf") };
    conf.file("config.json", br#"{"deviceType":"beaglebone-black"}"#, 0o644)?;

    let bbb_disk = dir.join("bbb.img");
    StandInDisk::new(
        "0x0bbb1a00",
        &PARTITIONS,
        (EXTENDED_START, DISK_SECTORS),
        ("bbb1a000-0000-4000-8000-00000000000", "0bbb000"),
    )
    .build(
        &bbb_disk,
        &work,
        &[("resin-boot", &boot.root), ("resin-root", &root.root), ("resin-conf", &conf.root)],
    )?;
    std::fs::remove_dir_all(&work)?;
    Ok((bbb_disk, harness_disk))
}

/// The harness disk in `dir`: one FAT partition (label `HARNESS`) with `boot.scr`, found by
/// `qemu_arm`'s distro boot, and `files` (`(name on the disk, host file)`) beside it, for the
/// stand-ins to read (the 1.x stand-in mounts it at `/run/harness` and runs its `run.sh`).
pub fn build_harness_disk(
    dir: &Path,
    inputs: &BbbInputs,
    files: &[(&str, &Path)],
) -> Result<PathBuf> {
    let work = dir.join("harness-work");
    let tree = RootTree::fresh_empty(&work.join("tree"))?;
    boot_scr(inputs, BOOT_CMD, &work.join("boot.cmd"), &tree.path("boot.scr"))?;
    let mut content_bytes = 0;
    for (name, src) in files {
        tree.copy(name, src, 0o755)?;
        content_bytes += std::fs::metadata(src)?.len();
    }
    let fs_bytes = (content_bytes + content_bytes / 8 + (8 << 20)).next_multiple_of(1 << 20);
    let harness_disk = dir.join("harness.img");
    let harness_fs = work.join("harness.fs");
    disk::mkfs_vfat(&harness_fs, fs_bytes, HARNESS_LABEL, "4a524e53", &tree.root)?;
    disk::create_sparse(&harness_disk, (1 << 20) + fs_bytes)?;
    disk::write_table(
        &harness_disk,
        &format!(
            "label: dos\nunit: sectors\n\nstart={MIB_SECTORS}, size={}, type=c, bootable\n",
            fs_bytes / SECTOR_BYTES
        ),
    )?;
    disk::place_into_fresh_sparse(&harness_disk, 1 << 20, &harness_fs)?;
    std::fs::remove_dir_all(&work)?;
    Ok(harness_disk)
}

/// The 2.x image's name on a [`stager_harness_disk`].
pub const IMAGE_ON_HARNESS: &str = "2x.img.xz";

/// The harness disk of a 1.x stand-in run that calls the stager, in `dir`: `run.sh` =
/// `script` with `@PROFILE@` (the test profile's name: `profile`'s file stem) and `@IMAGE@`
/// ([`IMAGE_ON_HARNESS`]) filled in, the test profile and the 2.x image `image_xz`.
pub fn stager_harness_disk(
    dir: &Path,
    inputs: &BbbInputs,
    script: &str,
    profile: &Path,
    image_xz: &Path,
) -> Result<PathBuf> {
    let profile_name = profile.file_name().context("a profile file")?.to_string_lossy();
    let stem = profile.file_stem().context("a profile file")?.to_string_lossy();
    let run_sh = dir.join("run.sh");
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        &run_sh,
        script.replace("@PROFILE@", &stem).replace("@IMAGE@", IMAGE_ON_HARNESS),
    )?;
    build_harness_disk(
        dir,
        inputs,
        &[("run.sh", &run_sh), (&profile_name, profile), (IMAGE_ON_HARNESS, image_xz)],
    )
}

/// A U-Boot script image `out` (`boot.scr`) of `script`, written to `cmd` first, made with the
/// harness U-Boot's `mkimage` (`-A arm -T script -C none`).
pub fn boot_scr(inputs: &BbbInputs, script: &str, cmd: &Path, out: &Path) -> Result<()> {
    std::fs::write(cmd, script)?;
    run(
        &inputs.mkimage.to_string_lossy(),
        [
            "-A".as_ref(),
            "arm".as_ref(),
            "-T".as_ref(),
            "script".as_ref(),
            "-C".as_ref(),
            "none".as_ref(),
            "-d".as_ref(),
            cmd.as_os_str(),
            out.as_os_str(),
        ],
    )?;
    Ok(())
}

/// The FAT label of the harness disk.
pub const HARNESS_LABEL: &str = "HARNESS";

/// The board's network: none, or QEMU's user network (the guest is 10.0.2.15 by its own
/// configuration, the host 10.0.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nic {
    None,
    User,
}

/// Powers on the board: a new QEMU process (so the RAM counter starts from nothing) running
/// the built U-Boot, the BBB disk first on the command line (U-Boot `virtio 1`), the
/// harness disk after it (`virtio 0`), then the NIC if any. Warm resets stay in the process.
pub fn power_on(
    name: &str,
    inputs: &BbbInputs,
    bbb_disk: &Path,
    harness_disk: &Path,
) -> Result<Vm> {
    power_on_with(name, inputs, bbb_disk, harness_disk, Nic::None)
}

/// [`power_on`] with a network card.
pub fn power_on_with(
    name: &str,
    inputs: &BbbInputs,
    bbb_disk: &Path,
    harness_disk: &Path,
    nic: Nic,
) -> Result<Vm> {
    let mut cmd = crate::qemu::arm_virt_command(
        &[("bbb", bbb_disk), ("harness", harness_disk)],
        nic == Nic::User,
    );
    cmd.arg("-bios").arg(&inputs.uboot_bin);
    Vm::start_command(name, cmd)
}
