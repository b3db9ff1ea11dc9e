//! Resume on U-Boot (`grub.route = uboot-trial`, the resinOS 1.x BeagleBone Black): the
//! stager replaced `uEnv.txt` on the boot partition with a one-shot trial that boots the
//! migration environment from `swapover/` only while U-Boot's `${bootcount}` matches
//! (docs/arm-1x-contract.md §2.3). Phase B, the commit, replaces it with the same file minus
//! the test ([`uboot_env::CommitEnv`]: `uenvcmd=run swapover_boot`, `swapover.stage=resume`),
//! so that every boot from then on resumes the migrator. Giving up before anything is
//! destroyed puts the board's 1.x `uEnv.txt` back (the stager's byte copy,
//! `grub.uboot.original_uenv`). The end of the migration
//! ([`super::boot_switch::BootSwitch::switch_to_new_system`]) makes the image's own
//! `uEnv.txt` (or none) the file and removes `swapover/`.
//!
//! Every change is one rename on the mounted FAT ([`super::fat_replace`]), so a power cut
//! leaves the old or the new file, never a mix.

use std::path::{Path, PathBuf};

use plan::{GrubRoute, Plan, UbootTrialBoot};
use uboot_env::{CommitEnv, ExistingUenv, StorageError, UenvError};

use super::fat_replace::{io_err, replace_file, FatReplaceError};

/// The file U-Boot imports from the boot partition's root (v2015.07 am335x `loadbootenv`).
pub const UENV: &str = "uEnv.txt";

#[derive(Debug, thiserror::Error)]
pub enum UbootResumeError {
    #[error("the plan has route uboot-trial but no grub.uboot section; re-stage")]
    NoTrial,
    #[error(transparent)]
    File(#[from] FatReplaceError),
    #[error("the 1.x uEnv.txt copy {path}: {source}")]
    Original { path: PathBuf, source: UenvError },
    #[error(
        "the boot partition has no {0}: the trial's files were changed since staging, re-stage"
    )]
    NoTrialFile(&'static str),
    #[error("the 1.x uEnv.txt copy {path}: {source}")]
    Storage { path: PathBuf, source: StorageError },
}

/// Whether this plan resumes through `uEnv.txt`.
pub fn applies(plan: &Plan) -> bool {
    plan.grub.route == GrubRoute::UbootTrial
}

fn trial(plan: &Plan) -> Result<&UbootTrialBoot, UbootResumeError> {
    plan.grub.uboot.as_ref().ok_or(UbootResumeError::NoTrial)
}

/// The 1.x `uEnv.txt` the stager kept, as bytes.
fn original_bytes(boot: &Path, trial: &UbootTrialBoot) -> Result<Vec<u8>, UbootResumeError> {
    let path = boot.join(&trial.original_uenv);
    Ok(std::fs::read(&path).map_err(io_err("read", &path))?)
}

/// The text that makes every boot resume the migrator: [`CommitEnv`] on top of the 1.x copy,
/// booting from where it does (`mmcdev`, `bootpart`: [`ExistingUenv::storage`], as the stager
/// read them when it armed the trial).
pub fn commit_text(boot: &Path, plan: &Plan) -> Result<String, UbootResumeError> {
    let trial = trial(plan)?;
    let bytes = original_bytes(boot, trial)?;
    let path = boot.join(&trial.original_uenv);
    let existing = ExistingUenv::parse(&bytes)
        .map_err(|source| UbootResumeError::Original { path: path.clone(), source })?;
    let (mmcdev, bootpart) = existing
        .storage()
        .map_err(|source| UbootResumeError::Storage { path: path.clone(), source })?;
    CommitEnv { interface: trial.interface, mmcdev, bootpart }
        .render(&existing)
        .map_err(|source| UbootResumeError::Original { path, source })
}

/// Phase B: make `uEnv.txt` boot the migrator on every boot. Idempotent: a repeated commit
/// renders the same text from the same 1.x copy and finds it in place.
pub fn commit(boot: &Path, plan: &Plan) -> Result<(), UbootResumeError> {
    // The committed text boots these on every boot: all must be there before it is.
    for file in [uboot_env::TRIAL_KERNEL, uboot_env::TRIAL_DTB, uboot_env::TRIAL_INITRAMFS] {
        if !boot.join(file).is_file() {
            return Err(UbootResumeError::NoTrialFile(file));
        }
    }
    let text = commit_text(boot, plan)?;
    replace_file(boot, UENV, text.as_bytes())?;
    log::info!("arm-resume: uEnv.txt committed; every boot resumes the migrator from now on");
    Ok(())
}

/// Before anything is destroyed: the board's 1.x `uEnv.txt` back in place (its copy stays
/// for the stager's `abort`), so every boot is 1.x's again.
pub fn put_back(boot: &Path, plan: &Plan) -> Result<(), UbootResumeError> {
    let bytes = original_bytes(boot, trial(plan)?)?;
    replace_file(boot, UENV, &bytes)?;
    log::info!("uEnv.txt is the board's 1.x file again; 1.x boots next");
    Ok(())
}
