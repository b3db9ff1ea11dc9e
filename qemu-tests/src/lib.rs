//! The end-to-end harness of swapover.
//!
//! It builds, from scratch and without mounting anything, a legacy host disk shaped like the
//! Project STEM devices and a resinOS 2.x stand-in image, boots them under QEMU (TCG) with the
//! serial console captured, and lets tests await console markers, cut the power at a chosen
//! moment and inspect the disks afterwards. Console logs are kept under
//! `target/qemu-tests/logs/`.

pub mod arm1x_e2e;
pub mod bbb1x_standin;
pub mod bbb2x_standin;
pub mod bbb_uboot;
pub mod console_lines;
pub mod console_splice;
pub mod disk;
pub mod e2e;
pub mod fixture;
pub mod flasher_image;
pub mod fleet;
pub mod grub_boot;
pub mod guest_initramfs;
pub mod host_image;
pub mod http_standin;
pub mod kernel;
pub mod paths;
pub mod payload;
pub mod pi1x_standin;
pub mod pi2x_standin;
pub mod pi_firmware;
pub mod qemu;
pub mod resin1x_e2e;
pub mod resin1x_image;
pub mod resin_image;
pub mod rootfs;
pub mod stamp;
pub mod standin_disk;
pub mod timing;
pub mod tools;
pub mod uefi_vars;
pub mod verdict;
