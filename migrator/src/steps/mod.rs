//! The migration steps and the loop that runs them from the journal.
//!
//! Every step works on a disk that is any file or block device (`disk_path`) and
//! reaches file systems through [`crate::mounts::FileSystems`], so the whole loop runs the
//! same on an image file with plain directories as on the real disk with mounts.
//!
//! This module is the loop and the dispatch ([`run`], [`perform`]). One module per step,
//! named as the console names it (`SWAPOVER-STEP <name>`), in the order they run:
//! [`backup`], [`arm_resume`], [`flash`] (the step; the engine it drives is
//! [`crate::flash`]), [`verify`], [`restore`], [`finalize`], and [`relay`] (a boot that
//! finds staging written over). What they share: [`context`] (the [`Context`] and
//! [`StepError`]). The steps' parts, none importing a step or the context (their errors
//! are their own, wrapped by [`StepError`]): [`backup_data`] (volumes to tar), [`restore_data`] (tar to resin-data),
//! [`bios_resume`], [`uefi_resume`], [`uboot_resume`] and [`pi_resume`] (the way back after a power cut), [`staged_fs`]
//! (the staged image's file systems), [`flash_plan`] (where the image goes, progress,
//! replay), [`final_table`] (final partition table, head commit), [`written_last`]
//! (the partition written after restore), [`boot_image`] (resin-boot built whole on the
//! UEFI route), [`boot_update`] (resin-boot updated file by file on the U-Boot and Pi
//! routes), [`boot_switch`] (their last write), [`fat_replace`] (their renames on FAT),
//! [`relay_store`] (the relay's files on resin-data).

pub mod arm_resume;
pub mod backup;
pub mod backup_data;
pub mod bios_resume;
pub mod boot_image;
pub mod boot_switch;
pub mod boot_update;
pub mod context;
pub mod fat_replace;
pub mod final_table;
pub mod finalize;
pub mod flash;
pub mod flash_plan;
pub mod pi_resume;
pub mod relay;
pub mod relay_store;
pub mod restore;
pub mod restore_data;
pub mod staged_fs;
pub mod uboot_resume;
pub mod uefi_resume;
pub mod verify;
pub mod written_last;

pub use arm_resume::step_arm_resume;
pub use backup::step_backup;
pub use context::{Context, StepError};
pub use finalize::step_finalize;
pub use flash::step_flash;
pub use relay::finish_from_relay;
pub use restore::{boot_files, step_restore, BOOT_SNAPSHOT_FILE};
pub use verify::step_verify;

use std::time::Instant;

use plan::Plan;

use crate::logging;
use crate::pid1::RebootTarget;
use context::{flush_block_buffers, io_err};
use migration_journal::{next_action, Action, ActionKind, Inputs, Journal, Step};

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
    if uboot_resume::applies(ctx.plan) {
        let put_back = ctx.fs.open_boot().map_err(StepError::from).and_then(|boot| {
            let done = uboot_resume::put_back(&boot, ctx.plan);
            ctx.fs.close_boot()?;
            Ok(done?)
        });
        if let Err(e) = put_back {
            return Exit::Halt(format!(
                "cannot put the 1.x uEnv.txt back ({e}); the board still boots the migrator. Copy {} over uEnv.txt on the boot partition by hand",
                ctx.plan.grub.uboot.as_ref().map_or("swapover/uEnv.txt.1x", |u| u.original_uenv.as_str())
            ));
        }
        return Exit::Reboot(RebootTarget::OldOs);
    }
    if pi_resume::applies(ctx.plan) {
        let put_back = ctx.fs.open_boot().map_err(StepError::from).and_then(|boot| {
            let done = pi_resume::put_back(&boot);
            ctx.fs.close_boot()?;
            Ok(done?)
        });
        if let Err(e) = put_back {
            return Exit::Halt(format!(
                "cannot put the 1.x config.txt back ({e}); the board still boots the migrator. Copy {} over config.txt on the boot partition by hand",
                pi_resume::ORIGINAL_CONFIG
            ));
        }
        // reboot_part is 0 in this kernel: the restart boots p1, i.e. 1.x.
        return Exit::Reboot(RebootTarget::OldOs);
    }
    if bios_resume::gap_saved(&staging_dir) {
        let rolled_back = ctx.open_disk().and_then(|mut disk| {
            bios_resume::rollback(&mut disk, &staging_dir)?;
            disk.sync_all().map_err(io_err("sync", &ctx.disk_path))?;
            flush_block_buffers(&disk);
            Ok(())
        });
        if let Err(e) = rolled_back {
            return Exit::Halt(format!(
                "cannot restore the old boot code ({e}); the disk still boots the migrator. \
                 Restore {} onto the disk's first sectors by hand",
                staging_dir.join(bios_resume::GAP_FILE).display()
            ));
        }
        log::info!("the old boot code is back; the old OS boots next");
    }
    Exit::Reboot(RebootTarget::OldOs)
}
