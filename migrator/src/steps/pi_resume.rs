//! Resume on the Raspberry Pi (`grub.route = pi-firmware-trial`, docs/arm-1x-contract.md
//! §2.2, §2.4): the stager left resin-boot (p1) untouched and armed one boot of the spare
//! partition, a FAT32 holding the trial's firmware, kernel, `config.txt` and, in
//! `swapover/`, the initramfs, `cmdline.txt` and the staging (journal, image, backup). Any
//! later reset boots p1, i.e. 1.x. Phase B, the commit, makes p1 boot the migrator too:
//!
//! 1. `swapover/<kernel>`, `swapover/initramfs.img` (the spare's) and `swapover/cmdline.txt`
//!    (the spare's with `swapover.stage=resume`) onto p1;
//! 2. `swapover/config.txt.1x`, a byte copy of p1's 1.x `config.txt` (written once: a
//!    repeated commit finds it and keeps it);
//! 3. `config.txt` replaced with the 1.x lines plus ours ([`pi_firmware::boot_config`]).
//!
//! Every write is one rename on the mounted FAT ([`super::fat_replace`]): a cut leaves the
//! 1.x `config.txt` (1.x boots) or ours (the migrator resumes from the spare's journal), and
//! an identical file is not written again, so the commit repeats safely. Giving up before
//! anything is destroyed ([`put_back`]) renames the 1.x copy back and removes p1's
//! `swapover/`: p1 is as it was, and a plain restart boots it. The end of the migration is
//! [`super::boot_switch`]'s, with `config.txt` and the plan's `grub.pi.blobs_last`.

use std::path::{Path, PathBuf};

use pi_firmware::{CmdlineError, CMDLINE, CONFIG_TXT, INITRAMFS};
use plan::{GrubRoute, PiTrialBoot, Plan};

use super::boot_switch::BOOT_DIR;
use super::fat_replace::{self, io_err, replace_file, FatReplaceError};

/// The 1.x `config.txt`'s byte copy on resin-boot, made by the commit.
pub const ORIGINAL_CONFIG: &str = "swapover/config.txt.1x";

#[derive(Debug, thiserror::Error)]
pub enum PiResumeError {
    #[error("the plan has route pi-firmware-trial but no grub.pi section; re-stage")]
    NoTrial,
    #[error(transparent)]
    File(#[from] FatReplaceError),
    #[error("the spare partition has no {}: the trial's files were changed since staging, re-stage", .0.display())]
    NoTrialFile(PathBuf),
    #[error("{} is not UTF-8 text; the migrator does not edit it", .0.display())]
    NotText(PathBuf),
    #[error("{}: {source}", .path.display())]
    Cmdline { path: PathBuf, source: CmdlineError },
}

/// Whether this plan resumes through p1's `config.txt`.
pub fn applies(plan: &Plan) -> bool {
    plan.grub.route == GrubRoute::PiFirmwareTrial
}

fn trial(plan: &Plan) -> Result<&PiTrialBoot, PiResumeError> {
    plan.grub.pi.as_ref().ok_or(PiResumeError::NoTrial)
}

fn read_trial_file(path: &Path) -> Result<Vec<u8>, PiResumeError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => PiResumeError::NoTrialFile(path.to_path_buf()),
        _ => io_err("read", path)(e).into(),
    })
}

fn text(path: &Path, bytes: Vec<u8>) -> Result<String, PiResumeError> {
    String::from_utf8(bytes).map_err(|_| PiResumeError::NotText(path.to_path_buf()))
}

/// Phase B: make p1 (mounted at `boot`) boot the migrator on every boot, from the trial's
/// files on the spare (mounted at `spare`). Idempotent.
pub fn commit(boot: &Path, spare: &Path, plan: &Plan) -> Result<(), PiResumeError> {
    let trial = trial(plan)?;
    let kernel = read_trial_file(&spare.join(&trial.kernel))?;
    let initramfs = read_trial_file(&spare.join(INITRAMFS))?;
    let cmdline_path = spare.join(CMDLINE);
    let cmdline = text(&cmdline_path, read_trial_file(&cmdline_path)?)?;
    let cmdline = pi_firmware::resume_cmdline(&cmdline)
        .map_err(|source| PiResumeError::Cmdline { path: cmdline_path, source })?;
    let dir = boot.join(BOOT_DIR);
    std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    let boot_kernel = format!("{BOOT_DIR}/{}", trial.kernel);
    replace_file(boot, &boot_kernel, &kernel)?;
    replace_file(boot, INITRAMFS, &initramfs)?;
    replace_file(boot, CMDLINE, cmdline.as_bytes())?;
    let original = boot.join(ORIGINAL_CONFIG);
    if !original.exists() {
        // A board without config.txt boots the firmware's defaults: the same as an empty one.
        let config = boot.join(CONFIG_TXT);
        let bytes = match std::fs::read(&config) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err("read", &config)(e).into()),
        };
        replace_file(boot, ORIGINAL_CONFIG, &bytes)?;
    }
    let old = text(&original, std::fs::read(&original).map_err(io_err("read", &original))?)?;
    let ours = pi_firmware::boot_config(&old, &boot_kernel);
    replace_file(boot, CONFIG_TXT, ours.as_bytes())?;
    log::info!(
        "arm-resume: config.txt committed ({boot_kernel}, {INITRAMFS}, {CMDLINE}); every boot resumes the migrator from now on"
    );
    Ok(())
}

/// Before anything is destroyed: the 1.x `config.txt` renamed back over ours and p1's
/// `swapover/` removed, so p1 is as the stager found it and every boot is 1.x's again.
pub fn put_back(boot: &Path) -> Result<(), PiResumeError> {
    let original = boot.join(ORIGINAL_CONFIG);
    if original.exists() {
        fat_replace::rename_synced(&original, &boot.join(CONFIG_TXT))?;
    }
    fat_replace::remove_dir_synced(&boot.join(BOOT_DIR))?;
    log::info!("config.txt is the board's 1.x file again and {BOOT_DIR}/ is gone; 1.x boots next");
    Ok(())
}
