//! The migrator: PID 1 of the migration initramfs.
//!
//! - [`run::pid1_main`]: the whole life of `/init` (never returns).
//! - [`steps`]: the journaled step loop, one module per step (`steps/backup.rs`,
//!   `arm_resume`, `flash`, `verify`, `restore`, `finalize`, `relay`) and the steps' parts
//!   (`backup_data`, `restore_data`, `bios_resume`, `uefi_resume`, `staged_fs`,
//!   `flash_plan`, `final_table`, `written_last`, `boot_image`, `relay_store`), on any disk
//!   file or device.
//! - The engines the steps drive: [`flash`] (decode, write, verify an image; the step is
//!   `steps::flash`) and [`net`] (network settings to NetworkManager keyfiles).
//! - Shared services, one job per module: [`pid1`], [`logging`], [`watchdog`], [`modules_load`],
//!   [`disk`], [`blkpg`], [`partdev`], [`mounts`], [`fatboot`], [`fatfix`]; and the
//!   leaves [`durable`] (power-cut-safe file writes) and [`sha256`].
//!
//! Files the migrator adds in the staging directory (besides the contract's
//! `journal.0/1`, `migration.log`, `backup/<volume>.tar`, `mbr-gap.orig`):
//! `starts` (boot counter for `SWAPOVER-MIGRATOR-START attempt=N`),
//! `backup/system-connections/*` and `backup/hostname` (converted network settings
//! and the old hostname), `resin-boot.orig` (the flashed resin-boot, put back before
//! a repeated restore) and `image-ebrs.orig` (the image's EBR sectors, put back
//! before a repeated finalize); on the UEFI route `uefi-resume.json` (the boot option made
//! first in BootOrder) and `resin-boot.new` (the new resin-boot, carrying the migration
//! kernel). On the new resin-data, for the last write: `swapover-relay/` ([`steps::relay_store`]).

pub mod blkpg;
pub mod disk;
pub mod durable;
pub mod fatboot;
pub mod fatfix;
pub mod flash;
pub mod logging;
pub mod modules_load;
pub mod mounts;
pub mod net;
pub mod partdev;
pub mod pid1;
pub mod run;
pub mod sha256;
pub mod steps;
pub mod watchdog;

#[cfg(test)]
mod import_cycles;
