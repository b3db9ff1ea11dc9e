//! The `verify` step: the written image read back from the medium and compared with the
//! sums computed while writing (after a reboot, recomputed by decoding the image again).

use std::fs::File;

use super::context::{io_err, Context, StepError};
use super::flash_plan;
use crate::flash::{self, WrittenImage};

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
    let placement = flash_plan::placement(ctx.plan, &mut probe)?;
    let expected = flash_plan::expected_digest(ctx.plan)?;
    Ok(flash_plan::replay(&ctx.image_path(), disk, placement, expected, image_bytes)?)
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
