//! The Raspberry Pi 3 resinOS 2.x stand-in: the image a Pi migration writes (issue 16,
//! docs/arm-1x-contract.md §2.5, §4.2), booted by the firmware player
//! (`qemu_tests::pi_firmware`) → the harness's real U-Boot (`-bios`, because `kernel7.img` is
//! the U-Boot stand-in) → this image's `boot.scr` → the kernel → the verdict init the BBB 2.x
//! stand-in uses (qemu-tests/assets/resin/verdict-init, parsed by `qemu_tests::verdict`).
//!
//! Layout: the 2.x MBR layout of the BBB 2.x stand-in ([`bbb2x_standin::PARTITIONS`]: resinOS
//! 2.x's labels and boot partition, roots and data scaled down; rootB covers the Pi 1.x
//! stand-in's resin-updt, as the planner requires of a staging partition).
//! - resin-boot (balena-raspberrypi v2.14.1+rev1,
//!   `layers/meta-resin-raspberrypi/recipes-core/images/resin-image.bbappend`,
//!   `RESIN_BOOT_PARTITION_FILES_rpi`): `kernel7.img` = U-Boot ([`UBOOT_KERNEL_STANDIN`]),
//!   `boot.scr` ([`boot_cmd`], made with mkimage), `zImage` (the kernel; Debian's armhf zImage
//!   standing for it), the firmware files (`bcm2835-bootfiles`: dummies whose bytes differ
//!   from the 1.x stand-in's, so a migration visibly replaces them), the dtbs and `overlays/`,
//!   `config.txt` and `cmdline.txt` ([`CONFIG_2X`], [`CMDLINE_2X`]), `resinOS_uEnv.txt`
//!   (`resin_root_part=2`: what balena's environment imports), the `resin-image` flag file
//!   that environment scans for, and `device-type.json` (balena-raspberrypi v2.14.1+rev1
//!   `raspberrypi3.coffee`).
//! - resin-rootA: `/etc/os-release` (2.x; on the Pi the kernel is on resin-boot, where
//!   `boot.scr` loads it: `fatload … ${resin_boot_part} … zImage`).
//! - resin-data: the image's preloaded supervisor ([`crate::resin_image::preloaded_supervisor`]).
//!
//! Named deviation: 2.x's `zImage` carries its initramfs (`${KERNEL_IMAGETYPE}${KERNEL_INITRAMFS}`
//! in the same list); the stand-in's kernel is Debian's, so `boot.scr` also loads
//! [`VERDICT_INITRAMFS`] from resin-boot and hands it to `bootz` (see [`boot_cmd`]).
//!
//! Shipped xz-compressed with a sha256 file, as a real image is served.

use crate::bbb2x_standin::{self, Arm2xImage, Disk2x};
use crate::bbb_uboot::{self, BbbInputs};
use crate::pi1x_standin;
use crate::pi_firmware::{PiModel, BOOTCODE, UBOOT_KERNEL_STANDIN};
use crate::resin_image::{DeviceTypeJson, FLAG_FILE_CONTENT, IMAGE_FLAG_FILE};
use crate::rootfs::RootTree;
use crate::stamp::Fingerprint;
use anyhow::Result;
use std::path::Path;

/// The MBR disk identifier of the image (the kernel's `root=PARTUUID=0e1a2a02-0N`).
pub const DISK_ID: &str = "0x0e1a2a02";
/// The kernel file `boot.scr` loads from resin-boot (`@@KERNEL_IMAGETYPE@@`).
pub const KERNEL_FILE: &str = "zImage";
/// The verdict initramfs beside it on resin-boot (named deviation, module comment).
pub const VERDICT_INITRAMFS: &str = "verdict-initramfs.img";

/// The image's disk identity and its 2.x release (the first with U-Boot on the Pi, P14).
const PI_DISK: Disk2x<'static> = Disk2x {
    disk_id: DISK_ID,
    ids: ("0e1a2a02-0000-4000-8000-00000000000", "0e1a200"),
    version: "2.14.1+rev1",
    machine: "raspberrypi3",
};

/// What 2.x resin-boot's `device-type.json` says (balena-raspberrypi v2.14.1+rev1
/// `raspberrypi3.coffee`: slug, alias, name, arch, `yocto.machine`; `sumo` from
/// `layers/meta-resin-raspberrypi/conf/layer.conf` `LAYERSERIES_COMPAT`).
pub const DEVICE_TYPE: DeviceTypeJson<'static> = DeviceTypeJson {
    slug: "raspberrypi3",
    alias: "raspberrypi3",
    name: "Raspberry Pi 3",
    arch: "armv7hf",
    machine: "raspberrypi3",
    yocto: "yocto-sumo",
};

/// resin-boot's `cmdline.txt`: of the kind 2.x ships (the console on `serial0`, which the
/// player resolves; no `root=`: balena's `boot.scr` appends it).
pub const CMDLINE_2X: &str =
    "dwc_otg.lpm_enable=0 console=tty1 console=serial0,115200 rootfstype=ext4 rootwait\n";

/// resin-boot's `config.txt`: lines balena-raspberrypi v2.14.1+rev1 appends
/// (`recipes-bsp/bootfiles/rpi-config_git.bbappend`: `dtparam=i2c_arm=on`, `dtparam=spi=on`,
/// `disable_splash=1`, `dtparam=audio=on`) and the 2.x marker comment; no `kernel=` (the
/// default `kernel7.img` is U-Boot).
pub const CONFIG_2X: &str = "# resinOS 2.x stand-in (qemu-tests/src/pi2x_standin.rs)\n\
dtparam=i2c_arm=on\n\
dtparam=spi=on\n\
disable_splash=1\n\
dtparam=audio=on\n";

/// The 2.x firmware files' stand-in content (different bytes from
/// [`pi1x_standin::firmware_blob`]).
pub fn firmware_blob(name: &str) -> Vec<u8> {
    format!("stand-in {name} of resinOS 2.x: the GPU firmware is played by qemu-tests/src/pi_firmware.rs\n")
        .into_bytes()
}

/// balena-raspberrypi v2.14.1+rev1
/// `layers/meta-resin-raspberrypi/recipes-bsp/rpi-u-boot-scr/rpi-u-boot-scr/boot.cmd.in`
/// (commit c7f9835269af6bdc214fa33848668eb206efc290), verbatim.
const BOOT_CMD_IN: &str = "setenv resin_kernel_load_addr ${kernel_addr_r}
run resin_set_kernel_root
fdt addr ${fdt_addr}
fdt get value bootargs /chosen bootargs
env set bootargs \"${bootargs} ${resin_kernel_root} rootwait\"
fdt rm /chosen bootargs
fatload ${resin_dev_type} ${resin_dev_index}:${resin_boot_part} ${resin_kernel_load_addr} @@KERNEL_IMAGETYPE@@
@@KERNEL_BOOTCMD@@ ${resin_kernel_load_addr} - ${fdt_addr}
";

/// What the Pi's 2.x U-Boot has compiled in and the harness U-Boot (qemu_arm v2023.01) lacks:
/// balena's `RESIN_ENV` (meta-resin 53281b802885992b5319e54dc705a5213f98232f, the submodule of
/// balena-raspberrypi v2.14.1+rev1: `meta-resin-common/recipes-bsp/u-boot/patches/
/// resin-specific-env-configuration.patch` `include/env_resin.h`, values from
/// `meta-resin-common/classes/resin-u-boot.bbclass` and `conf/distro/include/resin-os.inc`),
/// set by the script before it runs. Named deviation: `resin_scan_devs` scans `virtio` where
/// the real one scans `mmc usb` (the harness U-Boot reads virtio disks).
const RESIN_ENV: &str = r#"setenv resin_env_file resinOS_uEnv.txt
setenv resin_flasher_flag_file resin-image-flasher
setenv resin_image_flag_file resin-image
setenv resin_uboot_devices 0 1 2
setenv resin_boot_part 1
setenv resin_root_part 2
setenv resin_find_root_part_uuid 'part uuid ${resin_dev_type} ${resin_dev_index}:${resin_root_part} resin_root_part_uuid'
setenv resin_load_env_file 'echo Loading ${resin_env_file} from ${resin_dev_type} device ${resin_dev_index} partition ${resin_boot_part};fatload ${resin_dev_type} ${resin_dev_index}:${resin_boot_part} ${resin_kernel_load_addr} ${resin_env_file};'
setenv resin_import_env_file 'echo Import ${resin_env_file} in environment;env import -t ${resin_kernel_load_addr} ${filesize}'
setenv resin_flasher_detect 'fatload ${resin_scan_dev_type} ${resin_scan_dev_index}:${resin_boot_part} ${resin_kernel_load_addr} ${resin_flasher_flag_file};'
setenv resin_image_detect 'fatload ${resin_scan_dev_type} ${resin_scan_dev_index}:${resin_boot_part} ${resin_kernel_load_addr} ${resin_image_flag_file};'
setenv resin_scan_devs 'echo Scanning MMC and USB devices ${resin_uboot_devices}; for resin_scan_dev_type in virtio; do for resin_scan_dev_index in ${resin_uboot_devices}; do if run resin_flasher_detect; then setenv resin_flasher_dev_index ${resin_scan_dev_index}; setenv resin_dev_type ${resin_scan_dev_type}; exit; else; if test -n "${resin_image_dev_index}"; then ;else if run resin_image_detect; then setenv resin_image_dev_index ${resin_scan_dev_index}; setenv resin_dev_type ${resin_scan_dev_type}; fi; fi; fi; done;done;'
setenv resin_set_dev_index 'run resin_scan_devs; if test -n ${resin_flasher_dev_index}; then echo Found resin flasher on ${resin_dev_type} ${resin_flasher_dev_index}; setenv resin_dev_index ${resin_flasher_dev_index}; else; if test -n "${resin_image_dev_index}"; then echo Found resin image on ${resin_dev_type} ${resin_image_dev_index}; setenv resin_dev_index ${resin_image_dev_index}; else; echo ERROR: Could not find a resin image of any sort.; fi; fi;'
setenv resin_inject_env_file 'if run resin_load_env_file; then run resin_import_env_file;fi;'
setenv resin_set_kernel_root 'run resin_set_dev_index;run resin_inject_env_file;run resin_find_root_part_uuid;setenv resin_kernel_root root=PARTUUID=${resin_root_part_uuid}'
"#;

/// The stand-in's `boot.cmd`: [`RESIN_ENV`], then [`BOOT_CMD_IN`] with these replacements,
/// each of one whole line or token (a missing one fails the build, so the two cannot drift
/// apart unnoticed):
/// 1. `@@KERNEL_IMAGETYPE@@` → `zImage` (balena-raspberrypi `local.conf.sample`:
///    `KERNEL_IMAGETYPE="zImage"`), `@@KERNEL_BOOTCMD@@` → `bootz` (meta-raspberrypi
///    `rpi-u-boot-scr.bb` for a zImage);
/// 2. the kernel's bundled initramfs → [`VERDICT_INITRAMFS`] loaded from resin-boot to
///    `${ramdisk_addr_r}` (qemu_arm's) and given to `bootz` (named deviation, module comment).
pub fn boot_cmd() -> Result<String> {
    let boot_line = "@@KERNEL_BOOTCMD@@ ${resin_kernel_load_addr} - ${fdt_addr}";
    let with_initramfs = format!(
        "fatload ${{resin_dev_type}} ${{resin_dev_index}}:${{resin_boot_part}} ${{ramdisk_addr_r}} {VERDICT_INITRAMFS}\n\
         bootz ${{resin_kernel_load_addr}} ${{ramdisk_addr_r}}:${{filesize}} ${{fdt_addr}}"
    );
    anyhow::ensure!(
        BOOT_CMD_IN.contains(boot_line) && BOOT_CMD_IN.contains("@@KERNEL_IMAGETYPE@@"),
        "boot.cmd.in no longer has the lines the stand-in replaces"
    );
    let script = BOOT_CMD_IN
        .replace(boot_line, &with_initramfs)
        .replace("@@KERNEL_IMAGETYPE@@", KERNEL_FILE);
    Ok(format!(
        "# resinOS 2.x boot.scr stand-in (qemu-tests/src/pi2x_standin.rs)\n{RESIN_ENV}{script}"
    ))
}

const RECIPE: &str = concat!(
    include_str!("pi2x_standin.rs"),
    include_str!("bbb2x_standin.rs"),
    include_str!("pi_firmware.rs"),
    include_str!("standin_disk.rs"),
    include_str!("../assets/resin/verdict-init"),
);

/// The Pi 2.x stand-in, built if its inputs changed since the last build.
pub fn ensure(inputs: &BbbInputs) -> Result<Arm2xImage> {
    let mut fp = Fingerprint::new(RECIPE);
    fp.text(&inputs.kernel_version).file(&inputs.busybox)?.file(&inputs.mkimage)?;
    Arm2xImage::ensure_built("pi-resinos2x-standin", "the Pi resinOS 2.x stand-in", &fp, |raw| {
        build(inputs, raw)
    })
}

fn build(inputs: &BbbInputs, raw: &Path) -> Result<()> {
    let work = RootTree::fresh_empty(&raw.with_extension("work"))?.root;
    let dtb = pi1x_standin::compact_virt_dtb(&work)?;

    let boot = RootTree::fresh_empty(&work.join("boot"))?;
    for blob in [BOOTCODE, "start.elf", "fixup.dat"] {
        boot.file(blob, &firmware_blob(blob), 0o644)?;
    }
    boot.file("kernel7.img", UBOOT_KERNEL_STANDIN.as_bytes(), 0o644)?;
    bbb_uboot::boot_scr(inputs, &boot_cmd()?, &work.join("boot.cmd"), &boot.path("boot.scr"))?;
    boot.copy(KERNEL_FILE, &inputs.zimage, 0o644)?;
    let rd = work.join(VERDICT_INITRAMFS);
    bbb2x_standin::verdict_initramfs(inputs, &rd)?;
    boot.copy(VERDICT_INITRAMFS, &rd, 0o644)?;
    for model in [PiModel::Pi2, PiModel::Pi3] {
        boot.copy(model.dtb(), &dtb, 0o644)?;
    }
    boot.file("overlays/README", b"stand-in of resinOS 2.x: no overlays are played\n", 0o644)?;
    boot.file("config.txt", CONFIG_2X.as_bytes(), 0o644)?;
    boot.file("cmdline.txt", CMDLINE_2X.as_bytes(), 0o644)?;
    boot.file("resinOS_uEnv.txt", b"resin_root_part=2\n", 0o644)?;
    boot.file(IMAGE_FLAG_FILE, FLAG_FILE_CONTENT.as_bytes(), 0o644)?;
    boot.file("device-type.json", DEVICE_TYPE.render().as_bytes(), 0o644)?;

    let root_a = RootTree::fresh_empty(&work.join("rootA"))?;
    bbb2x_standin::write_2x_disk(raw, &work, &boot, &root_a, &PI_DISK)?;
    std::fs::remove_dir_all(&work)?;
    Ok(())
}
