//! The migration steps and the loop that runs them from the journal.
//!
//! Every step works on a disk that is any file or block device (`disk_path`) and
//! reaches file systems through [`FileSystems`], so the whole loop runs the same
//! on an image file with plain directories as on the real disk with mounts.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use plan::{PartitionRole, Plan};

use crate::backup::{self, BACKUP_DIR, CONNECTIONS_DIR, HOSTNAME_FILE};
use crate::fatboot::{self, FatFile, PartitionSlice};
use crate::flash::{self, WrittenImage};
use crate::flashing::{self, FlashStepError};
use crate::logging;
use crate::mounts::FileSystems;
use crate::pid1::RebootTarget;
use crate::resume;
use crate::uefi_resume;
use crate::written_last;
use crate::{boot_image, relay};
use disk_layout::units::Bytes as LayoutBytes;
use migration_journal::{next_action, Action, ActionKind, Inputs, Journal, Step};

/// Anything a step can fail with, as one line for the log.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("backup: {0}")]
    Backup(#[from] backup::BackupError),
    #[error("restore: {0}")]
    Restore(#[from] crate::restore::RestoreError),
    #[error("resume: {0}")]
    Resume(#[from] resume::ResumeError),
    #[error("flash: {0}")]
    Flash(#[from] FlashStepError),
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
    UefiResume(#[from] crate::uefi_resume::UefiResumeError),
    #[error("boot partition: {0}")]
    BootImage(#[from] crate::boot_image::BootImageError),
    #[error("relay: {0}")]
    Relay(#[from] crate::relay::RelayError),
    #[error("{0}")]
    StagedFs(#[from] crate::staged_fs::StagedFsError),
    #[error("{0}")]
    Plan(String),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StepError {
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
    written: Option<WrittenImage>,
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

    fn open_disk(&self) -> Result<File, StepError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.disk_path)
            .map_err(io_err("open", &self.disk_path))
    }
}

/// How the loop ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Reboot(RebootTarget),
    Halt(String),
}

/// The console name of a step (`SWAPOVER-STEP <name> ...`), for work actions.
pub fn step_name(kind: ActionKind) -> Option<&'static str> {
    match kind {
        ActionKind::Backup => Some("backup"),
        ActionKind::ArmResume => Some("arm-resume"),
        ActionKind::Flash => Some("flash"),
        ActionKind::VerifyFlash => Some("verify"),
        ActionKind::Restore => Some("restore"),
        ActionKind::FinalizeBoot => Some("finalize"),
        ActionKind::Begin | ActionKind::Finish => None,
    }
}

/// Interrupted attempts (power cut, crash, hang) each unit of work gets before the
/// migrator gives up on it: more than the error bound, since a power cut says nothing
/// about the step, yet bounded, since a step that brings the machine down every time
/// would otherwise loop forever.
pub const MAX_INTERRUPTED_ATTEMPTS: u32 = 10;

/// Run actions from the journal until the migration reboots or halts.
pub fn run(ctx: &mut Context<'_>, journal: &mut Journal) -> Exit {
    let max_attempts = ctx.plan.failure.step_retries.max(1);
    // The last error of this boot, so that giving up names it (problem and fix) on the
    // console, not only in the log lines above it.
    let mut last_error: Option<(ActionKind, String)> = None;
    let with_last_error = |reason: String,
                           last: &Option<(ActionKind, String)>,
                           kind: Option<ActionKind>| match last {
        Some((failed, error)) if kind.is_none_or(|k| k == *failed) => {
            format!("{reason}; last error: {error}")
        }
        _ => reason,
    };
    loop {
        let inputs = Inputs {
            plan_id: &ctx.plan_id,
            max_attempts,
            max_interrupted: MAX_INTERRUPTED_ATTEMPTS,
        };
        let action = next_action(journal.state(), &inputs);
        log::info!("next: {action:?}");
        match action {
            Action::Begin => {
                if let Err(e) = journal.begin(&ctx.plan_id) {
                    return Exit::Halt(format!("cannot start the journal: {e}"));
                }
            }
            Action::RebootIntoResin => return Exit::Reboot(RebootTarget::Resinos),
            Action::Halt { reason, retry } => {
                if let Some(kind) = retry {
                    // The disk boots only the migration environment now: the next boot
                    // (after the halt's wait, or a power cycle) tries this work again.
                    if let Err(e) = journal.reset_budget(kind) {
                        log::error!("cannot reset the retry budget of {kind:?}: {e}");
                    }
                }
                return Exit::Halt(with_last_error(reason, &last_error, retry));
            }
            Action::ReturnToOldOs { reason } => {
                return return_to_old_os(ctx, &with_last_error(reason, &last_error, None))
            }
            work => {
                let Some(kind) = work.kind() else {
                    return Exit::Halt(format!("no step for {work:?}; this is a migrator bug"));
                };
                let attempt = match journal.record_attempt(kind) {
                    Ok(n) => n,
                    Err(e) => return Exit::Halt(format!("cannot write the journal: {e}")),
                };
                let name = step_name(kind);
                if let Some(name) = name {
                    logging::marker(&format!("SWAPOVER-STEP {name} begin"));
                }
                let state = journal.state();
                log::info!(
                    "{kind:?}: attempt {attempt} ({} failed and {} interrupted before; limits {max_attempts} and {MAX_INTERRUPTED_ATTEMPTS})",
                    state.failures_of(kind),
                    state.interruptions_of(kind).saturating_sub(1)
                );
                let started = Instant::now();
                match perform(ctx, journal, &work) {
                    Ok(()) => {
                        if let Some(name) = name {
                            log::info!("step {name} took {:.1} s", started.elapsed().as_secs_f64());
                            logging::marker(&format!("SWAPOVER-STEP {name} done"));
                        }
                        if work == Action::Finish
                            || (work == Action::FinalizeBoot && ends_unjournaled(ctx.plan))
                        {
                            return Exit::Reboot(RebootTarget::Resinos);
                        }
                    }
                    Err(e) => {
                        log::error!(
                            "{kind:?} attempt {attempt} failed after {:.1} s: {e}",
                            started.elapsed().as_secs_f64()
                        );
                        last_error = Some((kind, e.to_string()));
                        if let Err(e) = journal.record_failure(kind) {
                            return Exit::Halt(format!("cannot write the journal: {e}"));
                        }
                        logging::flush();
                        std::thread::sleep(ctx.retry_delay);
                    }
                }
            }
        }
    }
}

/// Do one work action and record its milestone.
pub fn perform(
    ctx: &mut Context<'_>,
    journal: &mut Journal,
    action: &Action,
) -> Result<(), StepError> {
    match action {
        Action::Backup => {
            step_backup(ctx)?;
            journal.record(Step::BackupDone)?;
        }
        Action::ArmResume => {
            step_arm_resume(ctx)?;
            journal.record(Step::ResumeArmed)?;
        }
        Action::Flash { resume_from } => step_flash(ctx, journal, resume_from.0)?,
        Action::VerifyFlash { image_bytes } => {
            step_verify(ctx, image_bytes.0)?;
            journal.record(Step::FlashVerified)?;
        }
        Action::Restore => {
            step_restore(ctx)?;
            journal.record(Step::RestoreDone)?;
        }
        Action::FinalizeBoot => {
            step_finalize(ctx)?;
            if !ends_unjournaled(ctx.plan) {
                journal.record(Step::BootFinalized)?;
            }
        }
        Action::Finish => journal.record(Step::Done)?,
        other => return Err(StepError::Plan(format!("{other:?} is not a work step"))),
    }
    Ok(())
}

/// A plan with a partition written last ends without journaling finalize: the staging
/// area (and the journal on it) lies inside that partition, whose new bytes a journal
/// write would damage. The committed head makes the next boot resinOS's.
pub fn ends_unjournaled(plan: &Plan) -> bool {
    !plan.layout.written_last.is_empty()
}

/// Back up the old root (mounted read-only) onto staging.
pub fn step_backup(ctx: &mut Context<'_>) -> Result<(), StepError> {
    let old_root = ctx.fs.open_old_root()?;
    let result = backup::backup_all(ctx.plan, &old_root, &ctx.staging_dir());
    ctx.fs.close_old_root()?;
    let report = result?;
    log::info!(
        "backup: {} volume(s), {} keyfile(s), hostname {:?}",
        report.volumes.len(),
        report.keyfiles.len(),
        report.hostname
    );
    Ok(())
}

/// Check the staged image (its sha256, then the file systems restore and finalize will
/// open in it), then arm the way back into the migrator after a power cut: on
/// the UEFI route the firmware option this boot came from goes first in `BootOrder`;
/// otherwise the boot area is saved and the resume boot code installed.
pub fn step_arm_resume(ctx: &mut Context<'_>) -> Result<(), StepError> {
    flashing::check_staged_image(ctx.plan, &ctx.image_path())?;
    crate::staged_fs::check(ctx.plan, &ctx.image_path())?;
    if uefi_resume::applies(ctx.plan) {
        if let Some((range, _)) = written_last::boot_range(ctx.plan)? {
            boot_image::check_old_boot(&ctx.open_disk()?, range)?;
        }
        uefi_resume::arm(&ctx.efivars, &ctx.staging_dir())?;
        return Ok(());
    }
    let mut disk = ctx.open_disk()?;
    resume::arm(&mut disk, &ctx.staging_dir())?;
    flush_block_buffers(&disk);
    Ok(())
}

/// Flash the image (everything but its first MiB), journaling durable progress.
pub fn step_flash(
    ctx: &mut Context<'_>,
    journal: &mut Journal,
    resume_from: u64,
) -> Result<(), StepError> {
    let mut disk = ctx.open_disk()?;
    let placement = flashing::placement(ctx.plan, &mut disk).map_err(StepError::Flash)?;
    let expected = flashing::expected_digest(ctx.plan)?;
    if !journal.state().step.is_destructive() {
        journal.record(Step::FlashStarted)?;
    }
    logging::flush();
    if resume_from > 0 {
        log::info!("flash: resuming; image bytes below {resume_from} are already on the disk");
    }
    let image = ctx.image_path();
    let mut checkpoint = |through: u64| {
        journal
            .record(Step::FlashProgress { through: LayoutBytes(through) })
            .map_err(|e| e.to_string())
    };
    let target =
        flash::DirectTarget::open(&ctx.disk_path).map_err(io_err("open", &ctx.disk_path))?;
    log::info!(
        "flash: writing {} {}",
        ctx.disk_path.display(),
        if target.is_direct() {
            "with O_DIRECT (aligned pieces)"
        } else {
            "through the page cache"
        }
    );
    let written = flashing::write(
        &image,
        &target,
        placement,
        expected,
        resume_from,
        ctx.flash_sync_every,
        &mut checkpoint,
    )?;
    journal.record(Step::FlashWritten { image_bytes: LayoutBytes(written.image_bytes) })?;
    ctx.written = Some(written);
    Ok(())
}

/// The write hashes and head of this run's flash, or of an earlier boot's (decoded again).
fn written_image(
    ctx: &mut Context<'_>,
    disk: &File,
    image_bytes: u64,
) -> Result<WrittenImage, StepError> {
    if let Some(written) = ctx.written.take().filter(|w| w.image_bytes == image_bytes) {
        return Ok(written);
    }
    let mut probe = disk.try_clone().map_err(io_err("reopen", &ctx.disk_path))?;
    let placement = flashing::placement(ctx.plan, &mut probe)?;
    let expected = flashing::expected_digest(ctx.plan)?;
    Ok(flashing::replay(&ctx.image_path(), disk, placement, expected, image_bytes)?)
}

/// Read the written image back and compare with the hashes computed while writing.
pub fn step_verify(ctx: &mut Context<'_>, image_bytes: u64) -> Result<(), StepError> {
    let disk = ctx.open_disk()?;
    let written = written_image(ctx, &disk, image_bytes)?;
    let took = flash::verify_written(&disk, &written)?;
    log::info!(
        "verify: {} ranges read back identical in {:.1} s",
        written.ranges.len(),
        took.as_secs_f64()
    );
    ctx.written = Some(written);
    Ok(())
}

/// config.json, hostname, keyfiles onto resin-boot; backups, log and plan onto resin-data.
pub fn step_restore(ctx: &mut Context<'_>) -> Result<(), StepError> {
    let plan = ctx.plan;
    let staging_dir = ctx.staging_dir();
    let boot_files = boot_files(plan, &ctx.staging_root, &staging_dir)?;
    let boot_role = plan.config_json.restore_to.partition;
    let boot = plan.layout.by_role(boot_role).ok_or_else(|| {
        StepError::Plan(format!("the layout has no {boot_role} partition for config.json"))
    })?;
    let units = |e: plan::UnitError| StepError::Plan(e.to_string());
    let start = boot.disk_offset(plan.source_disk.sector_size).map_err(units)?;
    let len = boot.size_bytes(&plan.layout).map_err(units)?;
    let disk = ctx.open_disk()?;
    match written_last::boot_range(plan)? {
        // The flash held resin-boot back: it is written whole, carrying the migration kernel on.
        Some((range, name)) => {
            let built = boot_image::build(
                &ctx.image_path(),
                range,
                &disk,
                (start, len),
                &boot_files,
                &staging_dir,
            )?;
            boot_image::write(&disk, range, &built, &name)?;
        }
        None => {
            restore_or_save_boot(&disk, start, len, &staging_dir)?;
            fatboot::write_files(PartitionSlice::new(&disk, start, len), &boot_files)
                .map_err(io_err("write resin-boot files on", &ctx.disk_path))?;
            disk.sync_data().map_err(io_err("sync", &ctx.disk_path))?;
        }
    }
    log::info!(
        "restore: {} file(s) written to {}: {}",
        boot_files.len(),
        boot.name,
        boot_files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>().join(", ")
    );
    let data = ctx.fs.open_data()?;
    let restored = crate::restore::restore_data(plan, &staging_dir, &data);
    let closed = ctx.fs.close_data();
    let count = restored?;
    closed?;
    log::info!("restore: {count} archive entries restored");
    Ok(())
}

/// The flashed resin-boot, kept on staging before the first FAT write.
pub const BOOT_SNAPSHOT_FILE: &str = "resin-boot.orig";

/// Before the first FAT write, save the flashed (verified) resin-boot to staging;
/// before every later attempt, put it back, so a write torn by a power cut never
/// leaves fatfs a damaged file system to work on.
fn restore_or_save_boot(
    disk: &File,
    start: plan::Bytes,
    len: plan::Bytes,
    staging_dir: &Path,
) -> Result<(), StepError> {
    use std::os::unix::fs::FileExt;
    let path = staging_dir.join(BOOT_SNAPSHOT_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == len.get()) {
        let saved = std::fs::read(&path).map_err(io_err("read", &path))?;
        disk.write_all_at(&saved, start.get())
            .map_err(io_err("put back resin-boot from", &path))?;
        disk.sync_data().map_err(io_err("sync", &path))?;
        log::info!("restore: resin-boot put back as flashed before writing it again");
        return Ok(());
    }
    let size = usize::try_from(len.get())
        .map_err(|_| StepError::Plan(format!("resin-boot of {len} is too large")))?;
    let mut flashed = vec![0u8; size];
    disk.read_exact_at(&mut flashed, start.get()).map_err(io_err("read resin-boot for", &path))?;
    crate::durable::write_durably(&path, &flashed).map_err(backup::BackupError::from)?;
    Ok(())
}

/// The files resin-boot receives: config.json (with the hostname when it has none)
/// and the converted NetworkManager keyfiles.
pub fn boot_files(
    plan: &Plan,
    staging_root: &Path,
    staging_dir: &Path,
) -> Result<Vec<FatFile>, StepError> {
    if plan.config_json.restore_to.partition != PartitionRole::Boot {
        return Err(StepError::Plan(format!(
            "config.json onto {} is not supported; only resin-boot",
            plan.config_json.restore_to.partition
        )));
    }
    let staged = staging_root.join(plan.config_json.staged_at.trim_start_matches('/'));
    let text = std::fs::read_to_string(&staged).map_err(io_err("read", &staged))?;
    let backup_dir = staging_dir.join(BACKUP_DIR);
    let saved_hostname = std::fs::read_to_string(backup_dir.join(HOSTNAME_FILE))
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    let hostname = plan.hostname.clone().or(saved_hostname);
    let config = fatboot::config_with_hostname(&text, hostname.as_deref())?;
    let mut files = vec![FatFile {
        path: plan.config_json.restore_to.path.trim_start_matches('/').to_string(),
        contents: config.into_bytes(),
    }];
    let connections = backup_dir.join(CONNECTIONS_DIR);
    if let Ok(dir) = std::fs::read_dir(&connections) {
        let mut names: Vec<_> = dir.filter_map(Result::ok).map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let path = connections.join(&name);
            let contents = std::fs::read(&path).map_err(io_err("read", &path))?;
            files.push(FatFile {
                path: format!("{CONNECTIONS_DIR}/{}", name.to_string_lossy()),
                contents,
            });
        }
    }
    Ok(files)
}

/// Commit the image's head with the final table; the disk now boots resinOS. With a
/// partition written last (staging lies inside it), first the relay goes to resin-data,
/// then staging is sealed and the partition written; after the commit the firmware's
/// resume option and the relay are removed.
pub fn step_finalize(ctx: &mut Context<'_>) -> Result<(), StepError> {
    let mut disk = ctx.open_disk()?;
    let head = match ctx.written.take() {
        Some(written) => written.head.bytes().to_vec(),
        None => flash::decoded::read_head(&ctx.image_path()).map_err(FlashStepError::from)?,
    };
    let held = match written_last::held_range(ctx.plan)? {
        Some((range, name)) => {
            Some(written_last::collect(ctx.plan, &ctx.image_path(), range, &name)?)
        }
        None => None,
    };
    let staging_dir = ctx.staging_dir();
    let (_, head) = flashing::final_head(ctx.plan, &mut disk, &head, &staging_dir)?;
    let permanent_boot =
        if uefi_resume::applies(ctx.plan) { uefi_resume::saved(&staging_dir)? } else { None };
    if let Some(held) = &held {
        let data = ctx.fs.open_data()?;
        let written = relay::write(&data, &ctx.plan_id, held, &head, permanent_boot.as_ref());
        let closed = ctx.fs.close_data();
        written?;
        closed?;
        flashing::seal_and_write_last(&disk, held, &ctx.staging_root)?;
    }
    flashing::commit_head(&disk, &head)?;
    flush_block_buffers(&disk);
    reread_partitions(&disk);
    if held.is_some() {
        // Staging is gone; the relay's owner is this run: complete it.
        let data = ctx.fs.open_data()?;
        relay::complete(&ctx.efivars, &data, permanent_boot.as_ref());
        ctx.fs.close_data()?;
    }
    Ok(())
}

fn reread_partitions(disk: &File) {
    if is_block_device(disk) {
        match crate::blkpg::reread_partitions(disk) {
            Ok(()) => log::info!("finalize: the kernel re-read the partition table"),
            Err(e) => {
                log::info!("finalize: the kernel keeps the old partition view until reboot ({e})")
            }
        }
    }
}

/// A migrator whose staging is gone (written over by the partition written last) finishes
/// from the relay on resin-data: that partition again, the head, then the boot option and
/// the relay removed. Every part is idempotent.
pub fn finish_from_relay(
    disk_path: &Path,
    fs: &mut dyn FileSystems,
    efivars: &efivars::EfiVars,
    found: relay::Relay,
) -> Result<(), StepError> {
    let disk = OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk_path)
        .map_err(io_err("open", disk_path))?;
    log::info!(
        "relay: finishing plan {} from resin-data: {} again, then the head",
        found.manifest.plan_id,
        found.held.name
    );
    written_last::write(&disk, &found.held)?;
    flashing::commit_head(&disk, &found.head)?;
    flush_block_buffers(&disk);
    reread_partitions(&disk);
    let data = fs.open_data()?;
    relay::complete(efivars, &data, found.manifest.permanent_boot.as_ref());
    fs.close_data()?;
    Ok(())
}

/// Give up before anything was destroyed: restore the saved boot area (if the
/// resume boot code was installed) and reboot into the old OS.
pub fn return_to_old_os(ctx: &mut Context<'_>, reason: &str) -> Exit {
    log::error!("giving up before any destructive write: {reason}");
    let staging_dir = ctx.staging_dir();
    if uefi_resume::applies(ctx.plan) {
        if let Err(e) = uefi_resume::put_back(&ctx.efivars, &staging_dir) {
            return Exit::Halt(format!(
                "cannot put BootOrder back ({e}); the firmware still starts the migrator first. Put the order of {} back with efibootmgr -o",
                staging_dir.join(uefi_resume::RECORD_FILE).display()
            ));
        }
        return Exit::Reboot(RebootTarget::OldOs);
    }
    if resume::gap_saved(&staging_dir) {
        let rolled_back = ctx.open_disk().and_then(|mut disk| {
            resume::rollback(&mut disk, &staging_dir)?;
            disk.sync_all().map_err(io_err("sync", &ctx.disk_path))?;
            flush_block_buffers(&disk);
            Ok(())
        });
        if let Err(e) = rolled_back {
            return Exit::Halt(format!(
                "cannot restore the old boot code ({e}); the disk still boots the migrator. \
                 Restore {} onto the disk's first sectors by hand",
                staging_dir.join(resume::GAP_FILE).display()
            ));
        }
        log::info!("the old boot code is back; the old OS boots next");
    }
    Exit::Reboot(RebootTarget::OldOs)
}

fn is_block_device(file: &File) -> bool {
    use std::os::unix::fs::FileTypeExt;
    file.metadata().is_ok_and(|m| m.file_type().is_block_device())
}

fn flush_block_buffers(disk: &File) {
    if is_block_device(disk) {
        if let Err(e) = crate::blkpg::flush_buffers(disk) {
            log::warn!("cannot flush the disk's buffers ({e})");
        }
    }
}
