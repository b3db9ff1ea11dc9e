//! The migrator: PID 1 of the migration initramfs.
//!
//! - [`run::pid1_main`]: the whole life of `/init` (never returns).
//! - [`steps`]: the journaled step loop and each step, on any disk file or device.
//! - One job per module: [`pid1`], [`logging`], [`modules_load`], [`disk`],
//!   [`blkpg`], [`partdev`], [`mounts`], [`backup`], [`restore`], [`resume`],
//!   [`fatboot`], [`fatfix`], [`flashing`], [`written_last`], [`staged_fs`], [`uefi_resume`], [`boot_image`], [`relay`]; and the engines [`flash`], [`net`].
//!
//! Files the migrator adds in the staging directory (besides the contract's
//! `journal.0/1`, `migration.log`, `backup/<volume>.tar`, `mbr-gap.orig`):
//! `starts` (boot counter for `SWAPOVER-MIGRATOR-START attempt=N`),
//! `backup/system-connections/*` and `backup/hostname` (converted network settings
//! and the old hostname), `resin-boot.orig` (the flashed resin-boot, put back before
//! a repeated restore) and `image-ebrs.orig` (the image's EBR sectors, put back
//! before a repeated finalize); on the UEFI route `uefi-resume.json` (the boot option made
//! first in BootOrder) and `resin-boot.new` (the new resin-boot, carrying the migration
//! kernel). On the new resin-data, for the last write: `swapover-relay/` ([`relay`]).

pub mod backup;
pub mod blkpg;
pub mod boot_image;
pub mod disk;
pub mod durable;
pub mod fatboot;
pub mod fatfix;
pub mod flash;
pub mod flashing;
pub mod logging;
pub mod modules_load;
pub mod mounts;
pub mod net;
pub mod partdev;
pub mod pid1;
pub mod relay;
pub mod restore;
pub mod resume;
pub mod run;
pub mod sha256;
pub mod staged_fs;
pub mod steps;
pub mod uefi_resume;
pub mod written_last;
