//! Resume on UEFI (`grub.route = uefi-boot-next`, the resinOS 1.x Intel NUC): the stager
//! armed the migration kernel for one boot with `BootNext`, which the firmware deleted
//! before starting it. Before the first destructive write the migrator makes that same
//! option (`BootCurrent`) the first entry of `BootOrder`, so that a power cut from then on
//! brings the migrator back; giving up before destruction puts the order back, and the end
//! of the migration removes the option.
//!
//! The record ([`PermanentBoot`]: our number and the order before) is written to staging
//! before the order changes, and reused when the step runs again.

use std::path::{Path, PathBuf};

use efivars::{EfiVars, LoadOption, PermanentBoot, UefiError};
use plan::{GrubRoute, Plan};

/// The record on staging.
pub const RECORD_FILE: &str = "uefi-resume.json";
/// The directory on the boot partition where the stager put the migration kernel and
/// initramfs (`\swapover\vmlinuz`, `\swapover\initramfs.img`).
pub const BOOT_DIR: &str = "swapover";

#[derive(Debug, thiserror::Error)]
pub enum UefiResumeError {
    #[error("{0}")]
    Vars(#[from] UefiError),
    #[error("the firmware did not say which option it booted (no BootCurrent); the migration environment must be started by the stager's Boot#### option, re-stage")]
    NoBootCurrent,
    #[error("Boot{0:04X} (BootCurrent) is gone; re-stage")]
    NoOption(u16),
    #[error("Boot{number:04X} (BootCurrent) starts {file}, not the migration kernel under \\{BOOT_DIR}\\; this boot was not started by the stager's option, re-stage")]
    NotOurs { number: u16, file: String },
    #[error("Boot{number:04X} (BootCurrent) is not a load option of ours: {reason}")]
    Undecodable { number: u16, reason: String },
    #[error("cannot {action} {path}: {reason}")]
    Record { action: &'static str, path: PathBuf, reason: String },
}

/// Whether this plan resumes through the firmware's boot order.
pub fn applies(plan: &Plan) -> bool {
    plan.grub.route == GrubRoute::UefiBootNext
}

fn record_path(staging_dir: &Path) -> PathBuf {
    staging_dir.join(RECORD_FILE)
}

/// The record written by an earlier [`arm`], if any.
pub fn saved(staging_dir: &Path) -> Result<Option<PermanentBoot>, UefiResumeError> {
    let path = record_path(staging_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| UefiResumeError::Record { action: "parse", path, reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(UefiResumeError::Record { action: "read", path, reason: e.to_string() }),
    }
}

/// Make the option this boot was started from first in `BootOrder` (recorded on staging
/// first). Refused when that option is not the stager's migration kernel.
pub fn arm(vars: &EfiVars, staging_dir: &Path) -> Result<PermanentBoot, UefiResumeError> {
    let record = match saved(staging_dir)? {
        Some(record) => record,
        None => {
            let number = vars.boot_current()?.ok_or(UefiResumeError::NoBootCurrent)?;
            check_ours(vars, number)?;
            let record = PermanentBoot::record(vars, number)?;
            let path = record_path(staging_dir);
            let json = serde_json::to_vec_pretty(&record).map_err(|e| UefiResumeError::Record {
                action: "encode",
                path: path.clone(),
                reason: e.to_string(),
            })?;
            crate::durable::write_durably(&path, &json).map_err(|e| UefiResumeError::Record {
                action: "write",
                path,
                reason: e.to_string(),
            })?;
            record
        }
    };
    record.apply(vars)?;
    Ok(record)
}

/// The option must start a file in the boot partition's `swapover/`.
fn check_ours(vars: &EfiVars, number: u16) -> Result<(), UefiResumeError> {
    let variable = vars.boot_option(number)?.ok_or(UefiResumeError::NoOption(number))?;
    let option = LoadOption::decode(&variable.data)
        .map_err(|e| UefiResumeError::Undecodable { number, reason: e.to_string() })?;
    let prefix = format!("\\{BOOT_DIR}\\");
    if !option.file.to_ascii_lowercase().starts_with(&prefix) {
        return Err(UefiResumeError::NotOurs { number, file: option.file });
    }
    Ok(())
}

/// Before any destructive write: put `BootOrder` back as it was (the stager's undo removes
/// the option itself). Nothing to do when the order was never changed.
pub fn put_back(vars: &EfiVars, staging_dir: &Path) -> Result<(), UefiResumeError> {
    if let Some(record) = saved(staging_dir)? {
        record.put_back(vars)?;
        log::info!("BootOrder is as it was before the migration; the old OS boots next");
    }
    Ok(())
}
