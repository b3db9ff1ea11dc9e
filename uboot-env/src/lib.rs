//! The BeagleBone Black resinOS 1.x one-shot trial as U-Boot sees it: the text of the
//! `uEnv.txt` that arms the trial (phase A) and the one that commits it (phase B), built from
//! the board's existing 1.x `uEnv.txt`. Pure text: no I/O (the stager reads the counter and
//! writes the file).
//!
//! Design: docs/arm-1x-contract.md §2.3. U-Boot v2015.07's am335x `mmcboot` loads `uEnv.txt`
//! from the boot partition with `env import -t` (one `name=value` per line, later lines win)
//! and runs `uenvcmd` if it is set, then loads `/boot/zImage` from `${bootpart}` and boots it
//! (u-boot/u-boot v2015.07 `include/configs/am335x_evm.h`). Its boot counter (AM33XX RTC
//! `scratch2`, `CONFIG_BOOTCOUNT_LIMIT`) is 1 after power-on and grows by one on every warm
//! reset, and nothing in 1.x resets it (contract B6–B8). So the trial runs when the counter
//! *equals* the value one above what the stager read before its `reboot`:
//! a power cut (counter 1) or a crash/watchdog reset during the trial (counter + 2) both
//! boot 1.x again.
//!
//! Only commands of v2015.07's BBB build are used (`if test … -eq …`, `load`, `setenv`,
//! `bootz`, `run`, `echo`; no `setexpr`, contract B10). Every `load` that fails falls
//! through to the normal 1.x boot.

mod existing;
mod trial;

pub use existing::{imported_value, ExistingUenv, StorageError, UenvError};
pub use trial::{BootCount, BootPart, CommitEnv, TrialCount, TrialEnv, TrialError, UbootInterface};

/// The files the trial boots, on the boot partition (`resin-boot`, partition 1): copied
/// there by the stager in phase A (contract §2.3).
pub const TRIAL_KERNEL: &str = "swapover/zImage";
pub const TRIAL_DTB: &str = "swapover/board.dtb";
pub const TRIAL_INITRAMFS: &str = "swapover/initramfs.img";
