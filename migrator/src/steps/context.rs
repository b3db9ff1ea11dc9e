//! What every step works with: the [`Context`] (plan, disk, file systems, staging), the
//! one error a step fails with ([`StepError`]), and the disk helpers several steps share.
//! A leaf of the steps: it names the parts' error types, and no part names it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use plan::Plan;

use super::{
    backup_data, bios_resume, boot_image, fat_replace, flash_plan, pi_resume, relay_store,
    restore_data, staged_fs, uboot_resume, uefi_resume, written_last,
};
use crate::fatboot;
use crate::flash::{self, WrittenImage};
use crate::mounts::FileSystems;

/// Anything a step can fail with, as one line for the log.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("backup: {0}")]
    Backup(#[from] backup_data::BackupError),
    #[error("restore: {0}")]
    Restore(#[from] restore_data::RestoreError),
    #[error("resume: {0}")]
    Resume(#[from] bios_resume::ResumeError),
    #[error("flash: {0}")]
    Flash(#[from] flash_plan::FlashStepError),
    #[error("verify: {0}")]
    Verify(#[from] flash::FlashError),
    #[error("mount: {0}")]
    Mount(#[from] crate::mounts::MountError),
    #[error("journal: {0}")]
    Journal(#[from] migration_journal::JournalError),
    #[error("config.json: {0}")]
    ConfigJson(#[from] fatboot::ConfigJsonError),
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("finalize: {0}")]
    WrittenLast(#[from] written_last::WrittenLastError),
    #[error("resume entry: {0}")]
    UefiResume(#[from] uefi_resume::UefiResumeError),
    #[error("uEnv.txt: {0}")]
    UbootResume(#[from] uboot_resume::UbootResumeError),
    #[error("config.txt: {0}")]
    PiResume(#[from] pi_resume::PiResumeError),
    #[error("boot partition: {0}")]
    BootFile(#[from] fat_replace::FatReplaceError),
    #[error("boot partition: {0}")]
    BootImage(#[from] boot_image::BootImageError),
    #[error("relay: {0}")]
    Relay(#[from] relay_store::RelayError),
    #[error("{0}")]
    StagedFs(#[from] staged_fs::StagedFsError),
    #[error("{0}")]
    Plan(String),
}

pub(crate) fn io_err(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> StepError {
    let path = path.to_path_buf();
    move |source| StepError::Io { action, path, source }
}

/// Everything the steps share.
pub struct Context<'a> {
    pub plan: &'a Plan,
    /// Identity of the plan (sha256 of its JSON), kept in the journal.
    pub plan_id: String,
    /// Mount point of the staging file system.
    pub staging_root: PathBuf,
    /// The whole disk: a block device, or an image file in tests.
    pub disk_path: PathBuf,
    pub fs: &'a mut dyn FileSystems,
    /// fsync (and journal a checkpoint) after this many flashed bytes.
    pub flash_sync_every: u64,
    /// Pause between a failed attempt and the next.
    pub retry_delay: Duration,
    /// The firmware's variables (UEFI route): efivarfs, or a directory in tests.
    pub efivars: efivars::EfiVars,
    pub(crate) written: Option<WrittenImage>,
}

impl<'a> Context<'a> {
    pub fn new(
        plan: &'a Plan,
        plan_id: String,
        staging_root: PathBuf,
        disk_path: PathBuf,
        fs: &'a mut dyn FileSystems,
    ) -> Self {
        Context {
            retry_delay: Duration::from_secs(u64::from(plan.failure.retry_delay_secs)),
            plan,
            plan_id,
            staging_root,
            disk_path,
            fs,
            flash_sync_every: 64 * 1024 * 1024,
            efivars: efivars::EfiVars::system(),
            written: None,
        }
    }

    /// `<staging>/swapover`: journal, log, image, backups.
    pub fn staging_dir(&self) -> PathBuf {
        self.staging_root.join(self.plan.staging.dir.trim_start_matches('/'))
    }

    pub fn image_path(&self) -> PathBuf {
        self.staging_dir().join(&self.plan.image.file)
    }

    pub(crate) fn open_disk(&self) -> Result<File, StepError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.disk_path)
            .map_err(io_err("open", &self.disk_path))
    }
}

pub(crate) fn reread_partitions(disk: &File) {
    if is_block_device(disk) {
        match crate::blkpg::reread_partitions(disk) {
            Ok(()) => log::info!("finalize: the kernel re-read the partition table"),
            Err(e) => {
                log::info!("finalize: the kernel keeps the old partition view until reboot ({e})")
            }
        }
    }
}

pub(crate) fn is_block_device(file: &File) -> bool {
    use std::os::unix::fs::FileTypeExt;
    file.metadata().is_ok_and(|m| m.file_type().is_block_device())
}

pub(crate) fn flush_block_buffers(disk: &File) {
    if is_block_device(disk) {
        if let Err(e) = crate::blkpg::flush_buffers(disk) {
            log::warn!("cannot flush the disk's buffers ({e})");
        }
    }
}
