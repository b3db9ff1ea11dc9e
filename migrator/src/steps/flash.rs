//! The `flash` step: the staged image onto the disk through the flash engine
//! ([`crate::flash`]), everything but its first MiB and the ranges held back, journaling
//! durable progress. Where the image goes and how progress is reported: [`super::flash_plan`].

use migration_journal::{Journal, Step};
use plan::units::Bytes;

use super::context::{io_err, Context, StepError};
use super::flash_plan;
use crate::flash;
use crate::logging;

/// Flash the image (everything but its first MiB), journaling durable progress.
pub fn step_flash(
    ctx: &mut Context<'_>,
    journal: &mut Journal,
    resume_from: u64,
) -> Result<(), StepError> {
    let mut disk = ctx.open_disk()?;
    let placement = flash_plan::placement(ctx.plan, &mut disk).map_err(StepError::Flash)?;
    let expected = flash_plan::expected_digest(ctx.plan)?;
    if !journal.state().step.is_destructive() {
        journal.record(Step::FlashStarted)?;
    }
    logging::flush();
    if resume_from > 0 {
        log::info!("flash: resuming; image bytes below {resume_from} are already on the disk");
    }
    let image = ctx.image_path();
    let mut checkpoint =
        |through: u64| journal.record(Step::FlashProgress { through: Bytes(through) });
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
    let written = flash_plan::write(
        &image,
        &target,
        placement,
        expected,
        resume_from,
        ctx.flash_sync_every,
        &mut checkpoint,
    )?;
    journal.record(Step::FlashWritten { image_bytes: Bytes(written.image_bytes) })?;
    ctx.written = Some(written);
    Ok(())
}
